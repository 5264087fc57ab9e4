"""A sync run: the lease taken, a SyncRun row recorded, pull then push, how it ended.

`start_run` (and `run_sync`, the inline entry point) validates the request, claims the
lease and the run's row (`_claim`), and executes the `RunJob` inline or in a thread.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Optional

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

import history
import metrics
import table_stats
from api_service import AuthError, format_timestamp
from models import SYNCED_MODELS, SyncRun, db, utcnow

from .clock import save_offset
from .errors import (LeaseLost, SyncDisabled, SyncInProgress, SyncStopped, TickTaken,
                     VendorUnavailable)
from .lease import LeaseHeartbeat, acquire_lease, lease_holder_run_id, new_owner, release_lease, renew_lease
from .context import (DIRECTIONS, MANUAL_TRIGGERS, RESOURCES, RunContext, RunStats, app_context,
                      is_enabled, log, make_client, settings, write_counts)
from .held import held_message
from .pull import pull_resource, start_listings
from .push import push_all


@dataclass
class RunJob:
    """What a claimed run does: its id, the lease owner, and the request."""

    app: object
    run_id: int
    owner: str
    resources: list
    direction: str
    full: bool
    ignore_backoff: bool = False  # a person asked: what waits out a backoff goes now


def check_request(resources: Optional[Iterable[str]], direction: str) -> list[str]:
    """Validate a run request; ValueError names the bad value."""
    chosen = list(resources) if resources else list(RESOURCES)
    unknown = [r for r in chosen if r not in RESOURCES]
    if unknown:
        raise ValueError(f"unknown resource(s) {', '.join(map(str, unknown))}; "
                         f"use {', '.join(RESOURCES)}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}")
    return [r for r in RESOURCES if r in chosen]


def start_run(app, trigger: str = "manual", resources=None, direction: str = "both",
              full: bool = False, wait: bool = False, tick_at: Optional[datetime] = None):
    """Take the lease, record a running SyncRun and run it (inline, or in a thread).

    `tick_at` (interval runs): the tick this run is for; the run's row claims it (a
    unique column), so a tick another process took records nothing here (TickTaken).
    A manual or CLI run sends what waits out a backoff at once.

    Raises SyncDisabled, SyncInProgress(run_id), TickTaken or ValueError (bad request).
    Returns the SyncRun (finished when `wait`, else still running).
    """
    if not is_enabled(app):
        raise SyncDisabled("sync is disabled (SYNC_ENABLED is false)")
    chosen = check_request(resources, direction)
    with app_context(app):
        owner, run_id = _claim(app, trigger, chosen, direction, tick_at)
        job = RunJob(app, run_id, owner, chosen, direction, full, trigger in MANUAL_TRIGGERS)
        if wait:
            execute(job)
            db.session.expire_all()
            return db.session.get(SyncRun, run_id)
    thread = threading.Thread(target=_execute_in_context, name=f"sync-run-{run_id}", daemon=True,
                              args=(job,))
    thread.start()
    with app_context(app):
        return db.session.get(SyncRun, run_id)


def _claim(app, trigger: str, chosen: list, direction: str, tick_at: Optional[datetime]):
    """(lease owner, run id): the lease taken and the running SyncRun recorded with it."""
    conf = settings(app)
    owner = new_owner()
    if tick_at is not None and _tick_taken(tick_at):
        raise TickTaken(f"the run of tick {format_timestamp(tick_at)} is recorded already")
    if not acquire_lease(owner, conf["lease_ttl"]):
        raise SyncInProgress(lease_holder_run_id())
    try:
        _close_abandoned_runs()
        run = SyncRun(status="running", trigger=trigger, direction=direction,
                      resources=chosen, started_at=utcnow(), errors=[], tick_at=tick_at)
        db.session.add(run)
        db.session.flush()  # its id; renew_lease commits the run with the lease's run_id
        run_id = run.id
        renew_lease(owner, conf["lease_ttl"], run_id)
    except IntegrityError:
        db.session.rollback()
        release_lease(owner)
        if tick_at is None:
            raise
        raise TickTaken(f"the run of tick {format_timestamp(tick_at)} is recorded already")
    except Exception:
        db.session.rollback()
        release_lease(owner)
        raise
    return owner, run_id


def _tick_taken(tick_at: datetime) -> bool:
    taken = db.session.scalar(select(SyncRun.id).where(SyncRun.tick_at == tick_at)) is not None
    db.session.rollback()
    return taken


def _close_abandoned_runs() -> None:
    """Runs still marked running while we hold the lease were abandoned: their process
    died (kill -9, OOM) and its lease expired.  Record that (a run that only lost its
    lease and is still working writes its own ending over this)."""
    db.session.execute(
        update(SyncRun).where(SyncRun.status == "running")
        .values(status="failed", finished_at=utcnow(),
                message="abandoned: its process stopped before the run finished "
                        "(its lease expired, or its process on this host was gone, "
                        "and another run took over)")
        .execution_options(synchronize_session=False))


def run_sync(app, trigger: str = "manual", resources=None, direction: str = "both",
             full: bool = False, tick_at: Optional[datetime] = None):
    """Run one sync now, inline, and return its finished SyncRun (the one entry point)."""
    return start_run(app, trigger=trigger, resources=resources, direction=direction,
                     full=full, wait=True, tick_at=tick_at)


def _execute_in_context(job: RunJob) -> None:
    with job.app.app_context():
        execute(job)
        db.session.remove()


def execute(job: RunJob) -> None:
    """Pull, then push, resource by resource; record how it ended; release the lease.
    Whatever the run changes is history with the run's id as ref: source "pull" for what
    the pull applies, "push" for what a push changes here (a duplicate linked, the
    vendor's newer fields taken, a repair)."""
    with history.source("pull", actor=None, ref=job.run_id):
        _execute_run(job)


def _work(ctx: RunContext, job: RunJob) -> None:
    """The run's pull, then its push."""
    if job.direction in ("both", "pull"):
        start_listings(ctx, job.resources, job.full)
        pulled = {}
        for resource in job.resources:
            before = ctx.stats.pulled
            pull_resource(ctx, resource, full=job.full)
            pulled[SYNCED_MODELS[resource].__tablename__] = ctx.stats.pulled - before
        # a first or large pull: the planner's statistics of what it filled
        table_stats.after_bulk_write([t for t, n in pulled.items() if n], sum(pulled.values()))
    if job.direction in ("both", "push"):
        with history.source("push", actor=None, ref=job.run_id):
            push_all(ctx, job.resources)


def _execute_run(job: RunJob) -> None:
    run_id = job.run_id
    stats = RunStats(run_id=run_id)
    status, message, client = "failed", None, None
    started = time.monotonic()
    try:
        client = make_client(job.app)
        conf = settings(job.app)
        with LeaseHeartbeat(job.app, job.owner, run_id, conf) as heartbeat:
            ctx = RunContext(job.app, client, job.owner, stats, conf, heartbeat=heartbeat,
                             last_renew=time.monotonic(), ignore_backoff=job.ignore_backoff)
            _work(ctx, job)
        status = ("partial" if (stats.failed or stats.conflicts or stats.deferred or stats.held)
                  else "succeeded")
        message = held_message(stats, ctx.conf)
    except AuthError as exc:
        message = ("the vendor refused the API key (401): check EXTERNAL_API_KEY; "
                   f"vendor said: {exc.message}")
        stats.error("*", None, message)
    except VendorUnavailable as exc:
        status, message = "partial", str(exc)
    except (LeaseLost, SyncStopped) as exc:
        message = str(exc)
    except SyncDisabled as exc:
        message = str(exc)
    except Exception as exc:  # noqa: BLE001 - a run records why it stopped
        log.exception("sync run %s aborted", run_id)
        message = f"the run stopped: {type(exc).__name__}: {exc}"
        stats.error("*", None, message)
    finally:
        _finish(job, stats, status, message, client)
        _after_run(job.app, status, time.monotonic() - started)
    log.info("sync run %s %s in %.2fs: pulled=%d pushed=%d failed=%d conflicts=%d held=%d "
             "repaired=%d", run_id, status, time.monotonic() - started, stats.pulled,
             stats.pushed, stats.failed, stats.conflicts, stats.held, stats.repaired)


def _after_run(app, status: str, seconds: float) -> None:
    """Count the run in the metrics and share the vendor clock's offset (never raises)."""
    try:
        metrics.observe_run(status, seconds)
        save_offset(app, force=True)
    except Exception:  # noqa: BLE001 - bookkeeping never fails a run
        log.warning("sync run: could not record its metrics or the vendor clock", exc_info=True)


def _finish(job: RunJob, stats: RunStats, status: str, message: Optional[str], client) -> None:
    """Record how the run ended (its counters, status, message) and give the lease back."""
    db.session.rollback()
    if stats.errors_total > len(stats.errors):
        extra = f"{stats.errors_total} errors, the first {len(stats.errors)} listed"
        message = f"{message}; {extra}" if message else extra
    try:
        write_counts(stats, status=status, message=message, finished_at=utcnow(),
                     requests_sent=client.requests_sent if client else 0)
    finally:
        release_lease(job.owner)
        if client is not None:
            client.close()
