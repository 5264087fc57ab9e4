"""The bottom of the engine above its errors and lease: names, settings, a run's state.

Names (`RESOURCES`, `FIELDS`...), the sync settings under short names (`SETTINGS`,
`settings`), the vendor client (`make_client`), the per-run `RunStats` and
`RunContext` (its `checkpoint` renews the lease and publishes the counters), the
in-process `apply_lock`, and process shutdown (`stop_runs`, `wait_stopping`,
`allow_runs`).
"""
from __future__ import annotations

import logging
import random
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from flask import current_app, has_app_context
from sqlalchemy import update

from api_service import (AuthError, RateLimited, TransientError, VendorClient, VendorError,
                         format_timestamp)
from config import delete_guard_share
from models import SyncRun, db

from .clock import save_offset
from .errors import LeaseLost, SyncDisabled, SyncStopped, VendorUnavailable
from .lease import renew_lease


log = logging.getLogger("sync_engine")

RESOURCES = ("employees", "events", "schedules")
SINGULAR = {"employees": "employee", "events": "event", "schedules": "schedule"}
PLURAL = {v: k for k, v in SINGULAR.items()}
DIRECTIONS = ("both", "push", "pull")
MANUAL_TRIGGERS = ("manual", "cli")  # a person asked: what waits out a backoff goes now
ACTIONS = ("created", "updated", "deleted")
FIELDS = {
    "employees": ("name", "email", "active"),
    "events": ("project_ref_num", "project_name", "event_type", "store_number", "store_name",
               "location_mvid", "start_datetime", "due_datetime", "estimated_minutes"),
    "schedules": ("event_id", "employee_id", "start_datetime"),
}
DATETIME_FIELDS = ("start_datetime", "due_datetime")
MAX_STORED_ERRORS = 200

# One writer at a time inside this process for the "read a row, decide, write
# it" steps (pull pages, webhooks, push results).  Across processes the
# database does it: SELECT ... FOR UPDATE on PostgreSQL, conditional UPDATEs.
apply_lock = threading.RLock()

# Set by stop_runs() (sync_scheduler.shutdown_scheduler): runs stop at their next
# checkpoint (after a committed page or a pushed record), record why, and give the
# lease back.
_stopping = threading.Event()

# short name → (setting, type): what settings() reads (config.py declares each, with its default)
SETTINGS = {
    "enabled": ("SYNC_ENABLED", bool), "policy": ("SYNC_CONFLICT_POLICY", str),
    "interval": ("SYNC_INTERVAL_MINUTES", float), "push_delay": ("SYNC_PUSH_DELAY_SECONDS", float),
    "push_on_change": ("SYNC_PUSH_ON_CHANGE", bool), "page_size": ("SYNC_PAGE_SIZE", int),
    "batch_size": ("SYNC_PUSH_BATCH_SIZE", int), "lease_ttl": ("SYNC_LEASE_TTL_SECONDS", float),
    "lease_renew": ("SYNC_LEASE_RENEW_SECONDS", float),
    "backoff_base": ("SYNC_BACKOFF_BASE_SECONDS", float),
    "backoff_max": ("SYNC_BACKOFF_MAX_SECONDS", float),
    "busy_retry": ("SYNC_BUSY_RETRY_SECONDS", float),
    "first_run_delay": ("SYNC_FIRST_RUN_DELAY_SECONDS", float),
    "health_cache": ("SYNC_HEALTH_CACHE_SECONDS", float),
    "history_days": ("SYNC_HISTORY_DAYS", float),
    "record_history_days": ("HISTORY_DAYS", float),
    "delete_guard_min": ("SYNC_DELETE_GUARD_MIN", int),
}


def settings(app) -> dict:
    """The sync settings under short names, typed."""
    conf = {short: kind(app.config[name]) for short, (name, kind) in SETTINGS.items()}
    # webhook ids must outlive the vendor's 24 h of retries: never under 2 days
    conf["history_days"] = max(2.0, conf["history_days"])
    conf["delete_guard"] = delete_guard_share(app.config["SYNC_DELETE_GUARD"])  # None: off
    return conf


def is_enabled(app) -> bool:
    return bool(app.config["SYNC_ENABLED"])


def make_client(app, max_retries: Optional[int] = None) -> VendorClient:
    """The vendor client for this app's EXTERNAL_API_* settings; SyncDisabled without a vendor.
    `max_retries` overrides EXTERNAL_API_MAX_RETRIES (0: one attempt, for a health probe)."""
    if not app.config["EXTERNAL_API_BASE_URL"] or not app.config["EXTERNAL_API_KEY"]:
        raise SyncDisabled("EXTERNAL_API_BASE_URL and EXTERNAL_API_KEY must be set to sync")
    if max_retries is None:
        return VendorClient.from_config(app.config)
    return VendorClient.from_config({**app.config, "EXTERNAL_API_MAX_RETRIES": max_retries})


def backoff_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next push attempt: min(base·2^attempts, cap), jittered 50–100 %."""
    delay = min(cap, base * (2 ** max(0, attempts)))
    return delay * (0.5 + random.random() / 2)


@contextmanager
def app_context(app):
    """The app context: reuse the caller's when it is this app's, else push one."""
    if has_app_context() and current_app._get_current_object() is app:
        yield
    else:
        with app.app_context():
            yield


@dataclass
class RunStats:
    """A run's counters and errors, written to its SyncRun row at checkpoints."""

    run_id: Optional[int] = None
    pushed: int = 0
    pulled: int = 0
    failed: int = 0
    conflicts: int = 0
    deferred: int = 0
    held: int = 0
    repaired: int = 0
    held_notes: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    errors_total: int = 0

    def error(self, resource: str, record_id: Any, message: str) -> None:
        self.errors_total += 1
        if len(self.errors) < MAX_STORED_ERRORS:
            self.errors.append({"resource": resource, "id": record_id, "message": message})

    def merge(self, other: "RunStats") -> None:
        """Add a push worker's counters and errors to the run's."""
        for name in ("pushed", "pulled", "failed", "conflicts", "deferred"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors_total += other.errors_total - len(other.errors)
        for error in other.errors:
            self.error(error["resource"], error["id"], error["message"])


@dataclass
class RunContext:
    """What one run needs while it works: app, client, lease owner, counters."""

    app: Any
    client: Optional[VendorClient]
    owner: Optional[str]
    stats: RunStats
    conf: dict
    last_renew: float = 0.0
    # a push batch's successful writes, stored together at the end of the batch
    results: Optional[list] = None
    # a manual or CLI run sends what waits out a backoff at once
    ignore_backoff: bool = False
    # the run's lease renewer (lease.LeaseHeartbeat): a lost lease stops the run here
    heartbeat: Any = None
    # schedule deletes pending when the creates began (False: no create need wait for one)
    deletes_waiting: Optional[bool] = None

    def checkpoint(self, force: bool = False) -> None:
        """Renew the lease (at most every few seconds) and publish the counters."""
        if self.owner is None:
            return
        if self.heartbeat is not None and self.heartbeat.lost:
            raise LeaseLost("the sync lease was lost (expired and taken by another run)")
        if _stopping.is_set():
            raise SyncStopped("the process is shutting down: the run stopped after its last "
                              "committed page or record; the next run carries on")
        if not force and time.monotonic() - self.last_renew < min(0.5, self.conf["lease_renew"]):
            return
        session = db.session()
        keep, session.expire_on_commit = session.expire_on_commit, False  # keep a batch's rows
        try:
            renew_lease(self.owner, self.conf["lease_ttl"], self.stats.run_id)
            write_counts(self.stats)
            save_offset(self.app)  # shared at once when it moved by more than 0.5 s
        finally:
            session.expire_on_commit = keep
        self.last_renew = time.monotonic()


def write_counts(stats: RunStats, **extra) -> None:
    values = dict(pushed=stats.pushed, pulled=stats.pulled, failed=stats.failed,
                  conflicts=stats.conflicts, held=stats.held, repaired=stats.repaired,
                  errors=list(stats.errors), **extra)
    db.session.execute(update(SyncRun).where(SyncRun.id == stats.run_id).values(**values)
                         .execution_options(synchronize_session=False))
    db.session.commit()


def policy_now() -> str:
    return settings(current_app)["policy"]


def stamp(dt: Optional[datetime]) -> str:
    return format_timestamp(dt) if dt else "?"


# TransientErrors the engine raises itself about one record (not the vendor being down)
RECORD_WAITS = ("waiting", "in_use")


def stop_if_vendor_down(ctx, exc: VendorError, doing: str) -> None:
    """After a request failed for good (the client's retries spent): if the vendor's health
    check fails too (one request, no retries), raise VendorUnavailable so the run ends
    there, partial, instead of spending the same retries on every resource and record
    left (a minute and more in an outage).  What is left is sent by the next run."""
    if isinstance(exc, TransientError) and exc.code in RECORD_WAITS:
        return
    if not isinstance(exc, RateLimited):
        try:
            with make_client(ctx.app, max_retries=0) as probe:
                probe.health()
            return  # the vendor answers: this failure was about this request only
        except AuthError:
            return
        except VendorError:
            pass
    raise VendorUnavailable(f"the vendor is unavailable (while {doing}: {exc}); the run "
                            "stopped after the client's retries, and what is left waits for "
                            "the next run")


def stop_runs() -> None:
    """Process shutdown: runs in progress stop at their next checkpoint."""
    _stopping.set()


def wait_stopping(timeout: float) -> bool:
    """Wait up to `timeout` seconds for a process shutdown (stop_runs); True once stopping."""
    return _stopping.wait(timeout)


def allow_runs() -> None:
    """A scheduler starts in this process: runs may go on again."""
    _stopping.clear()
