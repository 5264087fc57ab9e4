"""Prometheus metrics: the series, and how one process or many are read out.

Counters and histograms are counted where things happen (HTTP requests here, through
`register_request_metrics`; vendor requests in api_service; runs and webhook
deliveries in the sync engine).  Under gunicorn every worker writes its own files in
PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets it before the workers start) and a
scrape adds them up (prometheus_client's multiprocess mode); elsewhere the default
registry of the one process is read.

What the database already knows (records by sync status, the oldest pending record,
the last successful run, held deletions) is read from it at scrape time by a
collector the caller passes to `exposition()`: every worker answers the same.

Names follow Prometheus conventions: a `scheduler_` prefix, base units (`_seconds`),
`_total` on counters, and bounded label values (a route's endpoint name, never the
raw path; a status code; a method).
"""
from __future__ import annotations

import os
import time
from typing import Callable, Iterable, Optional

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               generate_latest)
from prometheus_client.core import REGISTRY

__all__ = ["CONTENT_TYPE_LATEST", "HTTP_REQUESTS", "HTTP_SECONDS", "SYNC_RUNS", "SYNC_RUN_SECONDS",
           "VENDOR_REQUESTS", "VENDOR_SECONDS", "WEBHOOK_DELIVERIES", "exposition",
           "observe_vendor", "register_request_metrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RUN_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)

HTTP_REQUESTS = Counter("scheduler_http_requests_total", "HTTP requests answered",
                        ["endpoint", "method", "status"])
HTTP_SECONDS = Histogram("scheduler_http_request_duration_seconds",
                         "Time to answer an HTTP request", ["endpoint", "method"],
                         buckets=LATENCY_BUCKETS)
VENDOR_REQUESTS = Counter("scheduler_vendor_requests_total",
                          "Requests sent to the vendor API (each attempt), by answer",
                          ["method", "status"])
VENDOR_SECONDS = Histogram("scheduler_vendor_request_duration_seconds",
                           "Time the vendor took to answer one attempt", ["method"],
                           buckets=LATENCY_BUCKETS)
SYNC_RUNS = Counter("scheduler_sync_runs_total", "Finished sync runs, by status", ["status"])
SYNC_RUN_SECONDS = Histogram("scheduler_sync_run_duration_seconds", "Duration of a sync run",
                             ["status"], buckets=RUN_BUCKETS)
WEBHOOK_DELIVERIES = Counter("scheduler_webhook_deliveries_total",
                             "Webhook deliveries received, by outcome", ["outcome"])

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method(name: Optional[str]) -> str:
    """A bounded method label."""
    name = (name or "").upper()
    return name if name in METHODS else "OTHER"


def observe_vendor(method: str, status: Optional[int], seconds: float) -> None:
    """Count one attempt at the vendor (status None: no answer, e.g. a timeout)."""
    method = _method(method)
    VENDOR_REQUESTS.labels(method, str(status) if status else "error").inc()
    VENDOR_SECONDS.labels(method).observe(seconds)


def observe_run(status: str, seconds: float) -> None:
    """Count a finished sync run."""
    SYNC_RUNS.labels(status).inc()
    SYNC_RUN_SECONDS.labels(status).observe(seconds)


def observe_delivery(outcome: str) -> None:
    """Count a webhook delivery by its outcome (a short fixed word)."""
    WEBHOOK_DELIVERIES.labels(outcome).inc()


def register_request_metrics(app) -> None:
    """Time and count every request by endpoint name (`unmatched` for a 404 path)."""
    from flask import g, request

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count_request(response):
        started = g.pop("metrics_started", None)
        if started is not None:
            endpoint = request.url_rule.endpoint if request.url_rule is not None else "unmatched"
            method = _method(request.method)
            HTTP_REQUESTS.labels(endpoint, method, str(response.status_code)).inc()
            HTTP_SECONDS.labels(endpoint, method).observe(time.perf_counter() - started)
        return response


def _registry() -> CollectorRegistry:
    """All processes' series under gunicorn (multiprocess mode), else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


class _Extra:
    """Adapts a function that yields metric families to a registry collector."""

    def __init__(self, collect: Callable[[], Iterable]):
        self.collect = collect


def exposition(extra: Optional[Callable[[], Iterable]] = None) -> bytes:
    """The text format of every series, plus the families `extra` yields (read now)."""
    registry = _registry()
    if extra is None:
        return generate_latest(registry)
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Extra(lambda: [*registry.collect(), *extra()]))
    return generate_latest(scrape)
