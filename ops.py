"""What operators and their tools read: `/healthz`, `/readyz` and `/metrics`.

The probes need no sign-in, and say no more than whether all is well:
`/healthz` answers 200 while the process serves (it touches neither the database
nor the vendor); `/readyz` answers 200 when the database answers a trivial query,
else 503.  `/metrics` is the Prometheus text format (metrics.py), for admins.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, jsonify
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

import alerts
import metrics
import sync_engine
from auth import admin_required
from models import SyncRun, db, utcnow

bp = Blueprint("ops", __name__)
log = logging.getLogger("app.ops")


@bp.get("/healthz")
def healthz():
    """Alive: the process serves requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready: the database answers."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("readyz: the database does not answer (%s)", type(exc).__name__)
        return jsonify(status="unavailable"), 503
    finally:
        db.session.remove()
    return jsonify(status="ok")


# -- /metrics: Prometheus text format, for admins (token or Basic) -------------------

def _database_families():
    """What the database knows, read at scrape time (the same from every worker)."""
    from prometheus_client.core import GaugeMetricFamily

    records = GaugeMetricFamily("scheduler_sync_records", "Synced records by resource and sync status",
                                labels=["resource", "status"])
    for resource, counts in sync_engine.status_counts().items():
        for status, n in counts.items():
            records.add_metric([resource, status], n)
    held = GaugeMetricFamily("scheduler_sync_held_deletions", "Deletions held for an admin",
                             labels=["resource"])
    for resource, n in sync_engine.held_counts().items():
        held.add_metric([resource], n)
    oldest = alerts.oldest_pending_at()
    age = GaugeMetricFamily("scheduler_sync_oldest_pending_age_seconds",
                            "Age of the oldest pending local change (0: none)")
    age.add_metric([], max((utcnow() - oldest).total_seconds(), 0.0) if oldest else 0.0)
    last_ok = db.session.scalar(select(func.max(SyncRun.finished_at)).where(SyncRun.status == "succeeded"))
    success = GaugeMetricFamily("scheduler_sync_last_success_timestamp_seconds",
                                "When the last successful sync run finished (Unix time; 0: never)")
    success.add_metric([], last_ok.timestamp() if last_ok else 0.0)
    firing = GaugeMetricFamily("scheduler_alerts_firing", "Alerts firing now (1) or not (0)",
                               labels=["alert"])
    now_firing = {a.name for a in alerts.firing()}
    for name in alerts.ALERT_NAMES:
        firing.add_metric([name], 1.0 if name in now_firing else 0.0)
    return [records, held, age, success, firing]


@bp.get("/metrics")
@admin_required
def metrics_text():
    """Prometheus metrics (admins; anonymous 401, schedulers 403, as for the API)."""
    if not current_app.config.get("METRICS_ENABLED", True):
        abort(404)
    body = metrics.exposition(_database_families)
    return Response(body, mimetype=None, headers={"Content-Type": metrics.CONTENT_TYPE_LATEST})
