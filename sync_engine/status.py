"""What the pages and /api/sync/* show, and the pruning of old sync records.

`status_counts`, `last_run`, `last_run_shown`, `sync_status`, `vendor_health`
(cached), `health_status`, `health`; `prune_history` (run by the interval job).
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import func, literal, or_, select, union_all

from api_service import AuthError, format_timestamp
from models import (SYNC_STATUSES, SYNCED_MODELS, RecordHistory, RetiredVendorId, SyncRun,
                    WebhookMessage, db, utcnow)

from .clock import save_offset, vendor_offset
from .lease import lease_held
from .context import app_context, is_enabled, log, make_client, settings
from .soon import next_run_at, scheduler_running
from .held import held_counts


PRUNE_BATCH = 5000  # record_history rows deleted per statement (and commit)


def prune_history(app, now: Optional[datetime] = None) -> dict:
    """Delete webhook records, retired vendor ids and finished runs older than
    SYNC_HISTORY_DAYS (one DELETE each), and per-record history older than HISTORY_DAYS in
    bounded batches (PRUNE_BATCH rows a DELETE, each committed), so the tables stay bounded."""
    now = now or utcnow()
    conf = settings(app)
    cutoff = now - timedelta(days=conf["history_days"])
    with app_context(app):
        webhooks = db.session.execute(
            WebhookMessage.__table__.delete().where(WebhookMessage.received_at < cutoff)
        ).rowcount
        retired = db.session.execute(
            RetiredVendorId.__table__.delete().where(RetiredVendorId.retired_at < cutoff)
        ).rowcount
        runs = db.session.execute(
            SyncRun.__table__.delete().where(SyncRun.started_at < cutoff,
                                               SyncRun.status != "running")).rowcount
        db.session.commit()
        records = _prune_record_history(now - timedelta(days=conf["record_history_days"]))
    if webhooks or runs or retired or records:
        log.info("pruned %s webhook records, %s retired vendor ids and %s runs older than %s, "
                 "%s history entries", webhooks, retired, runs, cutoff, records)
    return {"webhooks": webhooks, "runs": runs, "retired_ids": retired, "record_history": records}


def _prune_record_history(cutoff: datetime) -> int:
    """Delete history entries older than `cutoff`, PRUNE_BATCH at a time (by id)."""
    table, total = RecordHistory.__table__, 0
    while True:
        batch = select(table.c.id).where(table.c.at < cutoff).order_by(table.c.id) \
            .limit(PRUNE_BATCH).scalar_subquery()
        done = db.session.execute(table.delete().where(table.c.id.in_(batch))).rowcount
        db.session.commit()
        total += done
        if done < PRUNE_BATCH:
            return total


def status_counts() -> dict:
    """Per resource {synced, pending, failed, conflict}: one query (a GROUP BY per model,
    joined by UNION ALL; the dashboard and /api/sync/status ask it on every request).

    Counted: live rows, plus soft-deleted rows whose delete still has to
    reach the vendor (not yet synced); rows deleted and synced are history.
    """
    parts = [select(literal(resource).label("resource"), model.sync_status, func.count())
             .where(or_(model.deleted_at.is_(None), model.sync_status != "synced"))
             .group_by(model.sync_status)
             for resource, model in SYNCED_MODELS.items()]
    out = {resource: {s: 0 for s in SYNC_STATUSES} for resource in SYNCED_MODELS}
    for resource, status, n in db.session.execute(union_all(*parts)).all():
        out[resource][status] = out[resource].get(status, 0) + n
    return out


def last_run():
    """The newest run, whatever it did (health goes by it)."""
    return db.session.scalar(select(SyncRun).order_by(SyncRun.id.desc()).limit(1))


def last_run_shown() -> Optional[SyncRun]:
    """The "last run" people see (dashboard, /api/sync/status): the newest run that did
    something, is running, or did not succeed.  A run that succeeded with nothing to do
    never hides an earlier partial or failed one, so that one stays shown until a later
    run succeeds with work.  With no such run, the newest run (or None)."""
    newest = (SyncRun.started_at.desc(), SyncRun.id.desc())
    work = SyncRun.pushed + SyncRun.pulled + SyncRun.failed + SyncRun.conflicts
    shown = db.session.scalar(select(SyncRun).where(or_(SyncRun.status != "succeeded", work > 0))
                              .order_by(*newest).limit(1))
    return shown or db.session.scalar(select(SyncRun).order_by(*newest).limit(1))


def sync_status(app) -> dict:
    """The /api/sync/status answer."""
    with app_context(app):
        run = last_run_shown()
        running = lease_held()
        nxt = next_run_at(app)
        return {"enabled": is_enabled(app), "running": running,
                "policy": settings(app)["policy"],
                "last_run": run.to_dict() if run is not None else None,
                "next_run_at": format_timestamp(nxt) if nxt else None,
                "counts": status_counts(), "held": held_counts()}


_health_lock = threading.Lock()  # guards each app's app.extensions["sync_health"]


def vendor_health(app) -> dict:
    """{reachable, latency_ms, error, clock_offset_s (vendor minus ours: the measured one, else
    the one another process shared)}, cached SYNC_HEALTH_CACHE_SECONDS in the app's extensions."""
    ttl = settings(app)["health_cache"]
    with _health_lock:
        cached = app.extensions.get("sync_health")
        if cached and time.monotonic() - cached[0] < ttl:
            return dict(cached[1])
    try:
        with make_client(app) as client:
            client.max_retries = 0
            answer = client.health()
        result = {"reachable": True, "latency_ms": answer.get("latency_ms"), "error": None}
    except AuthError:
        result = {"reachable": True, "latency_ms": None,
                  "error": "the vendor refused the API key (401)"}
    except Exception as exc:  # noqa: BLE001
        result = {"reachable": False, "latency_ms": None, "error": str(exc)[:300]}
    with app_context(app):
        offset = vendor_offset(app)
        save_offset(app)
    result["clock_offset_s"] = None if offset is None else round(offset, 3)
    with _health_lock:
        app.extensions["sync_health"] = (time.monotonic(), result)
    return dict(result)


def health_status(run, counts: dict, api: Optional[dict] = None) -> str:
    """ok, degraded, down or unknown from the last run, the counts and the vendor check.

    Without a vendor check (`api` None: pages never call the vendor) the last
    run stands for it: none or running → unknown, failed → down.  With one:
    unreachable → down; failed/conflicting records, a failed or partial last
    run or a refused key → degraded.
    """
    trouble = any(c.get("failed") or c.get("conflict") for c in counts.values())
    if api is None:
        if run is None or run.status == "running":
            return "unknown"
        if run.status == "failed":
            return "down"
        return "degraded" if run.status == "partial" or trouble else "ok"
    if not api["reachable"]:
        return "down"
    last_bad = run is not None and run.status in ("failed", "partial")
    return "degraded" if (trouble or last_bad or api["error"]) else "ok"


def health(app, detailed: bool) -> tuple[int, dict]:
    """(status code, body) for /api/sync/health.

    disabled when sync is off; down (503) when the database is not answering;
    otherwise `health_status` with a (cached) vendor check.
    """
    db_ok = True
    try:
        with app_context(app):
            db.session.execute(select(1))
            counts = status_counts()
            run = last_run()
    except Exception:  # noqa: BLE001
        db_ok, counts, run = False, {}, None
    api = vendor_health(app) if is_enabled(app) else {"reachable": None, "latency_ms": None,
                                                      "error": None, "clock_offset_s": None}
    if not is_enabled(app):
        status = "disabled"
    elif not db_ok:
        status = "down"
    else:
        status = health_status(run, counts, api)
    body: dict = {"status": status}
    if detailed:
        nxt = next_run_at(app)
        body.update({"api": api,
                     "scheduler": {"running": scheduler_running(app),
                                   "next_run_at": format_timestamp(nxt) if nxt else None},
                     "database": {"ok": db_ok}})
    return (503 if status == "down" else 200), body
