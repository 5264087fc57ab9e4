"""Two-way sync between the app's database and the vendor's scheduling API.

This module knows both sides' data and the rules of sync, nothing about Flask
requests: `app.py`'s routes, the CLI, `sync_scheduler.py` and the webhook call
the functions below; `api_service.py` does the HTTP, `models.py` holds the rows.

Layout, top to bottom:

* errors and settings (`SyncDisabled`, `SyncInProgress`, `settings`)
* the vendor ⇄ local mapping (`local_payload`, `remote_values`, `differing_fields`)
* the lease (`acquire_lease`, `renew_lease`, `release_lease`): one run at a
  time across processes and hosts
* runs (`start_run`, `run_sync`, `RunStats`)
* applying vendor objects (`apply_items`: one function for pull pages and
  webhooks, with the version and conflict rules)
* pull (`pull_resource`, with the deletion guard `_deletions_after_full_listing`)
  and push (`push_resource`)
* admin actions (`retry_failed`, `retry_record`, `list_conflicts`, `resolve_conflict`)
* held deletions (`held_deletions`, `held_counts`, `resolve_held`)
* webhooks (`handle_webhook`)
* history pruning, status and health (`status_counts`, `last_run`,
  `health_status`, `health`): what the pages and /api/sync/* show.

The interval job and the coalesced push/pull soon-runs live in
`sync_scheduler.py`, which imports this module; the engine asks for a
soon-run through the app's `app.extensions["sync_scheduler"]`.

Rules in one place (see the docstrings): a pulled change never makes a
record pending; a version not newer than `remote_version` is skipped; both
sides changed → `SYNC_CONFLICT_POLICY` (last_write_wins by `updated_at`, or
manual); nothing is ever hard-deleted; bookmarks (sync tokens) move only when
a listing has been fully applied; a full listing never deletes more than
SYNC_DELETE_GUARD of a resource (it holds them for an admin); a push re-reads
its record under the apply lock before acting on the vendor's answer, so a
decision taken meanwhile (a vendor delete applied, a conflict) stands.
"""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Optional

from flask import current_app, has_app_context
from sqlalchemy import (and_, bindparam, delete, func, insert, literal_column, or_, select,
                        union_all, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer

import api_service
import history
import inputs
from api_service import (
    TIMESTAMP_FIELDS,
    AuthError,
    Duplicate,
    InUse,
    InvalidPageToken,
    NotFound,
    RateLimited,
    SyncTokenExpired,
    TransientError,
    VendorClient,
    VendorError,
    VersionMismatch,
    format_timestamp,
    parse_object,
    parse_timestamp,
)
from config import delete_guard_share
from models import (
    EVENT_TYPES,
    SYNCED_MODELS,
    ApiError,
    Employee,
    Event,
    HeldDeletion,
    RetiredVendorId,
    RecordHistory,
    Schedule,
    SyncLease,
    SyncMixin,
    SyncRun,
    SyncState,
    WebhookMessage,
    copy_rows,
    db,
    local_day,
    utcnow,
)

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
LEASE_NAME = "sync"
MAX_STORED_ERRORS = 200

# One writer at a time inside this process for the "read a row, decide, write
# it" steps (pull pages, webhooks, push results).  Across processes the
# database does it: SELECT ... FOR UPDATE on PostgreSQL, conditional UPDATEs.
_apply_lock = threading.RLock()


# ---------------------------------------------------------------------------
# Errors and settings
# ---------------------------------------------------------------------------

class SyncError(Exception):
    """Base of the engine's own errors."""


class SyncDisabled(SyncError):
    """SYNC_ENABLED is false (or the vendor is not configured)."""


class SyncInProgress(SyncError):
    """Another run holds the lease; `run_id` names it (None if unknown)."""

    def __init__(self, run_id: Optional[int]):
        super().__init__(f"a sync run is already in progress (run {run_id})")
        self.run_id = run_id


class LeaseLost(SyncError):
    """The lease expired or was taken over while this run was working."""


class SyncStopped(SyncError):
    """The process is shutting down (`shutdown_scheduler`): the run stopped at a safe point."""


class TickTaken(SyncError):
    """Another process already recorded the run of this interval tick: nothing to do."""


class VendorUnavailable(SyncError):
    """A request failed after the client's retries and the vendor's health check fails too:
    the run stops there (partial) instead of spending the same retries on everything left."""


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
def _context(app):
    """The app context: reuse the caller's when it is this app's, else push one."""
    if has_app_context() and current_app._get_current_object() is app:
        yield
    else:
        with app.app_context():
            yield


# ---------------------------------------------------------------------------
# Mapping between local rows and vendor objects
# ---------------------------------------------------------------------------

def local_payload(resource: str, row) -> dict:
    """The vendor fields of a local row (schedules name their event/employee by vendor id)."""
    if resource == "schedules":
        return {"event_id": row.event.external_id, "employee_id": row.employee.external_id,
                "start_datetime": row.start_datetime}
    return {name: getattr(row, name) for name in FIELDS[resource]}


def _norm(name: str, value: Any) -> Any:
    if name in DATETIME_FIELDS and isinstance(value, str):
        value = parse_timestamp(value)
    if isinstance(value, datetime):
        if value.tzinfo is timezone.utc:  # what parse_timestamp gives: already normal
            return value
        return value.astimezone(timezone.utc).replace(microsecond=value.microsecond)
    return value


def _remote_field(resource: str, obj: dict, name: str) -> Any:
    """A vendor field with the contract's defaults for absent optional fields."""
    if name == "active":
        return obj.get("active", True)
    value = obj.get(name)
    if name == "event_type":
        return value or "Other"
    if name in DATETIME_FIELDS or isinstance(value, datetime):  # what _norm changes
        return _norm(name, value)
    return value


def differing_fields(resource: str, row, obj: dict) -> list[str]:
    """Names of the vendor fields whose values differ between `row` and `obj` ("deleted"
    alone when the vendor deleted it)."""
    if obj.get("deleted"):
        return ["deleted"]
    return field_differences(resource, row, obj)


def field_differences(resource: str, row, obj: dict) -> list[str]:
    """Names of the vendor fields whose values differ, field by field (timestamps by instant)."""
    mine = local_payload(resource, row)
    return [name for name in FIELDS[resource]
            if _norm(name, mine[name]) != _remote_field(resource, obj, name)]


def remote_values(resource: str, obj: dict, refs: "Refs") -> dict:
    """The local column values for a vendor object (refs map schedule links to local ids)."""
    if resource == "schedules":
        return {"event_id": refs.events[obj["event_id"]],
                "employee_id": refs.employees[obj["employee_id"]],
                "start_datetime": _norm("start_datetime", obj.get("start_datetime"))}
    return {name: _remote_field(resource, obj, name) for name in FIELDS[resource]}


def jsonable(obj: dict) -> dict:
    """A vendor object with datetimes as RFC 3339 text (for JSON columns and answers)."""
    return {k: (format_timestamp(v) if isinstance(v, datetime) else v) for k, v in obj.items()}


def _version(obj: dict) -> Optional[int]:
    try:
        return int(obj.get("version"))
    except (TypeError, ValueError):
        return None


def _remote_updated(obj: dict) -> Optional[datetime]:
    value = obj.get("updated_at")
    if isinstance(value, str):
        try:
            value = parse_timestamp(value)
        except ValueError:
            return None
    return value


def _newer(obj: dict, known: Optional[int]) -> bool:
    """Is the vendor object's version newer than the version we last saw?"""
    version = _version(obj)
    return known is None or version is None or version > known


# ---------------------------------------------------------------------------
# The lease: one run at a time across processes and hosts
# ---------------------------------------------------------------------------

def new_owner() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _read_first_line(path: str) -> str:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.readline().strip()
    except OSError:
        return ""


def _host_identity() -> str:
    """This host as the lease records it: its name, plus on Linux the boot id and the PID
    namespace, so two containers that share a name but not a process table never judge
    each other's pids."""
    parts = [socket.gethostname()[:100], _read_first_line("/proc/sys/kernel/random/boot_id")]
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    return " ".join(p for p in parts if p)[:255]


HOST_IDENTITY = _host_identity()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (signal 0 sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, as another user's process
        return True
    return True


def _dead_local_holder(now: datetime) -> Optional[str]:
    """The owner of a live lease whose holder ran on this host and is gone, else None."""
    held = db.session.execute(
        select(SyncLease.owner, SyncLease.holder_host, SyncLease.holder_pid)
        .where(SyncLease.name == LEASE_NAME, SyncLease.owner.is_not(None),
               SyncLease.expires_at >= now)).first()
    db.session.rollback()
    if held is None or held.holder_host != HOST_IDENTITY or not held.holder_pid:
        return None
    if held.holder_pid == os.getpid() or pid_alive(held.holder_pid):
        return None
    return held.owner


def acquire_lease(owner: str, ttl: float, run_id: Optional[int] = None) -> bool:
    """Take the lease with one conditional UPDATE (inserting the row the first time).

    Free means: nobody holds it, its holder let it expire, or its holder ran on this
    host and that process is gone (taken at once; a holder on another host is only
    ever taken over once its lease expires).
    """
    now = utcnow()
    values = {"owner": owner, "expires_at": now + timedelta(seconds=ttl), "run_id": run_id,
              "holder_host": HOST_IDENTITY, "holder_pid": os.getpid()}
    free = or_(SyncLease.owner.is_(None), SyncLease.expires_at < now)
    dead = _dead_local_holder(now)
    if dead is not None:
        free = or_(free, SyncLease.owner == dead)  # still that dead holder's, or no takeover
    stmt = (update(SyncLease).where(SyncLease.name == LEASE_NAME, free)
            .values(**values).execution_options(synchronize_session=False))
    if db.session.execute(stmt).rowcount == 1:
        db.session.commit()
        if dead is not None:
            log.warning("took over the sync lease of %s: that process on this host is gone",
                        dead)
        return True
    db.session.rollback()
    if db.session.get(SyncLease, LEASE_NAME) is not None:
        return False
    try:
        db.session.add(SyncLease(name=LEASE_NAME, **values))
        db.session.commit()
        return True
    except IntegrityError:  # another process inserted it first
        db.session.rollback()
        return False


def renew_lease(owner: str, ttl: float, run_id: Optional[int] = None) -> None:
    """Push the expiry forward; LeaseLost if another owner holds it now."""
    values: dict = {"expires_at": utcnow() + timedelta(seconds=ttl)}
    if run_id is not None:
        values["run_id"] = run_id
    stmt = (update(SyncLease).where(SyncLease.name == LEASE_NAME, SyncLease.owner == owner)
            .values(**values).execution_options(synchronize_session=False))
    if db.session.execute(stmt).rowcount != 1:
        db.session.rollback()
        raise LeaseLost("the sync lease was lost (expired and taken by another run)")
    db.session.commit()


def release_lease(owner: str) -> None:
    """Give the lease back (only if still ours)."""
    stmt = (update(SyncLease).where(SyncLease.name == LEASE_NAME, SyncLease.owner == owner)
            .values(owner=None, expires_at=None, run_id=None, holder_host=None, holder_pid=None)
            .execution_options(synchronize_session=False))
    db.session.execute(stmt)
    db.session.commit()


def _lease_held() -> bool:
    lease = db.session.get(SyncLease, LEASE_NAME)
    return bool(lease is not None and lease.owner and lease.expires_at
                and lease.expires_at >= utcnow())


def lease_holder_run_id() -> Optional[int]:
    """The run id of the live lease, if any."""
    lease = db.session.get(SyncLease, LEASE_NAME)
    if lease is None or lease.owner is None or lease.expires_at is None \
            or lease.expires_at < utcnow():
        return None
    return lease.run_id


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------

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

    def checkpoint(self, force: bool = False) -> None:
        """Renew the lease (at most every few seconds) and publish the counters."""
        if self.owner is None:
            return
        if _stopping.is_set():
            raise SyncStopped("the process is shutting down: the run stopped after its last "
                              "committed page or record; the next run carries on")
        if not force and time.monotonic() - self.last_renew < min(0.5, self.conf["lease_renew"]):
            return
        session = db.session()
        keep, session.expire_on_commit = session.expire_on_commit, False  # keep a batch's rows
        try:
            renew_lease(self.owner, self.conf["lease_ttl"], self.stats.run_id)
            _write_counts(self.stats)
        finally:
            session.expire_on_commit = keep
        self.last_renew = time.monotonic()


def _write_counts(stats: RunStats, **extra) -> None:
    values = dict(pushed=stats.pushed, pulled=stats.pulled, failed=stats.failed,
                  conflicts=stats.conflicts, held=stats.held, repaired=stats.repaired,
                  errors=list(stats.errors), **extra)
    db.session.execute(update(SyncRun).where(SyncRun.id == stats.run_id).values(**values)
                         .execution_options(synchronize_session=False))
    db.session.commit()


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
    with _context(app):
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
        run_id = run.id
        job = (app, run_id, owner, chosen, direction, full, trigger in MANUAL_TRIGGERS)
        if wait:
            _execute(*job)
            db.session.expire_all()
            return db.session.get(SyncRun, run_id)
    thread = threading.Thread(target=_execute_in_context, name=f"sync-run-{run_id}", daemon=True,
                              args=job)
    thread.start()
    with _context(app):
        return db.session.get(SyncRun, run_id)


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


def _execute_in_context(app, run_id, owner, resources, direction, full,
                        ignore_backoff) -> None:
    with app.app_context():
        _execute(app, run_id, owner, resources, direction, full, ignore_backoff)
        db.session.remove()


def _execute(app, run_id: int, owner: str, resources: list[str], direction: str,
             full: bool, ignore_backoff: bool = False) -> None:
    """Pull, then push, resource by resource; record how it ended; release the lease.
    Whatever the run changes is history from source "pull" with the run's id as ref (the
    records a push had to repair too: the run is what changed them)."""
    with history.source("pull", actor=None, ref=run_id):
        _execute_run(app, run_id, owner, resources, direction, full, ignore_backoff)


def _execute_run(app, run_id: int, owner: str, resources: list[str], direction: str,
                 full: bool, ignore_backoff: bool = False) -> None:
    stats = RunStats(run_id=run_id)
    status, message, client = "failed", None, None
    started = time.monotonic()
    try:
        client = make_client(app)
        ctx = RunContext(app, client, owner, stats, settings(app), last_renew=time.monotonic(),
                         ignore_backoff=ignore_backoff)
        if direction in ("both", "pull"):
            _start_listings(ctx, resources, full)
            for resource in resources:
                pull_resource(ctx, resource, full=full)
        if direction in ("both", "push"):
            push_all(ctx, resources)
        status = ("partial" if (stats.failed or stats.conflicts or stats.deferred or stats.held)
                  else "succeeded")
        message = _held_message(stats, ctx.conf)
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
        db.session.rollback()
        if stats.errors_total > len(stats.errors):
            extra = f"{stats.errors_total} errors, the first {len(stats.errors)} listed"
            message = f"{message}; {extra}" if message else extra
        try:
            _write_counts(stats, status=status, message=message, finished_at=utcnow(),
                          requests_sent=client.requests_sent if client else 0)
        finally:
            release_lease(owner)
            if client is not None:
                client.close()
    log.info("sync run %s %s in %.2fs: pulled=%d pushed=%d failed=%d conflicts=%d held=%d "
             "repaired=%d", run_id, status, time.monotonic() - started, stats.pulled,
             stats.pushed, stats.failed, stats.conflicts, stats.held, stats.repaired)


# ---------------------------------------------------------------------------
# Applying vendor objects (pull pages and webhooks share this)
# ---------------------------------------------------------------------------

@dataclass
class Refs:
    """Vendor id → local id for the events and employees a batch of schedules names."""

    events: dict = field(default_factory=dict)
    employees: dict = field(default_factory=dict)
    days: Optional["_DaySlots"] = None  # who holds each employee's local day (schedules)


@dataclass
class Applied:
    """What happened to one vendor object."""

    outcome: str  # applied | stale | conflict | deferred | skipped
    detail: Optional[str] = None
    row: Any = None


def _load_refs(items: list[dict], ctx: Optional[RunContext]) -> Refs:
    """One query (UNION ALL) for the events and employees the schedules name; missing ones
    fetched from the vendor when we can."""
    refs, _found, _fetched = _schedule_links(items, ctx)
    return refs


def _schedule_links(items: list[dict], ctx: Optional[RunContext],
                    rows_too: bool = False) -> tuple[Refs, Optional[list], bool]:
    """(refs, ids of the page's schedule rows, whether links were fetched from the vendor).

    One query (UNION ALL): the events and employees the schedules name and, with
    `rows_too`, the ids of the local schedules `_page_rows` would load (by external_id,
    or live on an event named), so that a page of schedules new here (a first pull)
    costs one look-up, not two.  Missing links are fetched from the vendor when we can.
    """
    live = [o for o in items if not o.get("deleted")]
    refs = Refs()
    sources = (("events", Event, "event_id"), ("employees", Employee, "employee_id"))
    wanted = {name: {o.get(key) for o in live if o.get(key)} for name, _model, key in sources}
    parts = [select(literal_column(f"'{name}'").label("kind"), model.external_id, model.id)
             .where(_in(model.external_id, wanted[name]))
             for name, model, _key in sources if wanted[name]]
    found = None
    if rows_too:  # what _slot_filter asks, as two branches each with its own index
        found = []
        ids = {o["id"] for o in items if o.get("id")}
        kind = literal_column("'schedules'").label("kind")
        if ids:
            parts.append(select(kind, Schedule.external_id, Schedule.id)
                         .where(_in(Schedule.external_id, ids)))
        if wanted["events"]:
            parts.append(select(kind, Schedule.external_id, Schedule.id)
                         .join(Event, Event.id == Schedule.event_id)
                         .where(_in(Event.external_id, wanted["events"]),
                                Schedule.deleted_at.is_(None)))
    if parts:
        query = parts[0] if len(parts) == 1 else union_all(*parts)
        for kind, ext, local in db.session.execute(query):
            if kind == "schedules":
                found.append(local)
            else:
                getattr(refs, kind)[ext] = local
    fetched = False
    for name, model, _key in sources:
        known = getattr(refs, name)
        missing = wanted[name] - set(known)
        if missing and ctx is not None and ctx.client is not None:
            for ext in sorted(missing):  # rare path: a link we have never seen
                try:
                    obj = ctx.client.get(name, ext)
                except NotFound:
                    continue
                fetched = True
                result = apply_items(name, [obj], ctx, source="pull")
                row = result[0].row or db.session.scalar(  # inserted in bulk: no row object
                    select(model).where(model.external_id == ext))
                if row is not None and row.external_id == ext:
                    known[ext] = row.id
    return refs, found, fetched


def apply_items(resource: str, items: list[dict], ctx: Optional[RunContext],
                source: str = "pull", seen_at: Optional[datetime] = None) -> list[Applied]:
    """Apply vendor objects (live or tombstones) to local rows, in the caller's transaction.

    Bulk look-ups: the local rows by external_id IN (...), locked FOR UPDATE
    on PostgreSQL; link candidates in one query; schedule links in one query
    per resource.  The caller commits.
    """
    model = SYNCED_MODELS[resource]
    items = [parse_object(o) if isinstance(o.get("updated_at"), str) else o for o in items]
    if resource == "schedules":
        refs, found, fetched = _schedule_links(items, ctx, rows_too=True)
        # no local row to load (a first pull's pages): skip the locking look-up; an event
        # fetched just now may have linked a local create, whose schedules it must see
        rows, near = _page_rows(resource, model, items, refs, only=None if fetched else found)
        refs.days = _DaySlots(items, refs)
    else:
        refs = Refs()
        rows, near = _page_rows(resource, model, items, refs)
    candidates = _Candidates(resource, refs, near)
    candidates.new_rows = _NewRows(resource, model, rows, candidates)
    retired = _retired_among(resource, items, rows) if source == "webhook" else {}
    out = []
    for obj in items:
        if obj["id"] in retired and obj["id"] not in rows:
            out.append(Applied("skipped", _retired_words(obj, retired[obj["id"]])))
            continue
        if obj.get("id") in candidates.new_rows.ids:  # the same object twice: the second
            candidates.new_rows.flush()                # sees the row the first inserted
            rows[obj["id"]] = db.session.scalar(select(model).where(model.external_id == obj["id"]))
        candidates.last = (None, [])  # near() remembers within one object only
        out.append(_apply_one(resource, model, obj, rows, refs, candidates, ctx, source))
    candidates.new_rows.flush()
    _retire(resource, [(obj, None) for obj, res in zip(items, out)
                       if obj.get("deleted") and res.row is None and obj["id"] not in retired])
    return out


def _retired_among(resource: str, items: list[dict], rows: dict) -> dict:
    """{vendor id: record id or None} of the items' live objects that no record here holds
    and that are known to be deleted at the vendor (one query; none without such items).

    Only webhooks ask: a listing is the vendor's current state, but a message may be
    older than a deletion the app learned of another way (the contract: messages can
    arrive late and out of order, an older version after a newer one)."""
    unknown = {o["id"] for o in items if not o.get("deleted") and o["id"] not in rows}
    if not unknown:
        return {}
    return dict(db.session.execute(
        select(RetiredVendorId.external_id, RetiredVendorId.record_id).where(
            RetiredVendorId.resource == resource, _in(RetiredVendorId.external_id, unknown))
    ).all())


def _retired_words(obj: dict, record_id: Optional[int]) -> str:
    """Why a message about a deleted vendor object changed nothing, in an admin's words."""
    who = f"; record #{record_id} was created again under a new id" if record_id else ""
    return (f"vendor object {obj['id']} was deleted at the vendor{who}: a late message "
            f"about it (version {obj.get('version')}) changes nothing")


def _retire(resource: str, gone: list[tuple]) -> None:
    """Remember vendor ids deleted at the vendor that no record here holds any more,
    [(tombstone or object, record id or None)], in one statement (ids already kept stay)."""
    if not gone:
        return
    now = utcnow()
    values = [{"resource": resource, "external_id": obj["id"], "record_id": record_id,
               "version": _version(obj) if obj.get("deleted") else None, "retired_at": now}
              for obj, record_id in gone]
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    db.session.execute(dialect.insert(RetiredVendorId).on_conflict_do_nothing(), values)


def _in(column, values):
    """`column IN (values)`; on PostgreSQL `= ANY(one array parameter)`, which a pulled page's
    look-ups ran 40 % faster with than with one parameter per value (200 a page)."""
    values = [v for v in values if v is not None]
    if db.session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    from sqlalchemy import any_
    from sqlalchemy.dialects.postgresql import ARRAY

    return column == any_(bindparam(None, values, type_=ARRAY(column.type)))


def _rows_of(model):
    """select(model) without Event.is_scheduled: the engine never reads it, and its EXISTS
    made PostgreSQL hash every schedule for each page's look-up (EXPLAIN ANALYZE)."""
    return select(model).options(defer(Event.is_scheduled)) if model is Event else select(model)


def _slot_filter(resource: str, model, items: list[dict], refs: Refs):
    """WHERE for `_page_rows`: a page's rows by external_id, or live rows in the slot of one
    of its live objects (schedules: of an event `refs` names)."""
    ids = {o["id"] for o in items if o.get("id")}
    live = [o for o in items if not o.get("deleted") and o.get("id")]
    where = [_in(model.external_id, ids)] if ids else []
    if live:
        if resource == "events":
            refnums = {o.get("project_ref_num") for o in live} - {None}
            if refnums:
                where.append(and_(model.deleted_at.is_(None), _in(model.project_ref_num, refnums)))
        elif resource == "schedules":
            events = {refs.events.get(o.get("event_id")) for o in live} - {None}
            if events:
                where.append(and_(model.deleted_at.is_(None), _in(model.event_id, events)))
        else:
            where.append(and_(model.deleted_at.is_(None), model.external_id.is_(None),
                              model.idempotency_key.is_not(None)))
    return or_(*where) if where else None


def _page_rows(resource: str, model, items: list[dict], refs: Refs,
               only: Optional[list] = None) -> tuple[dict, list]:
    """The local rows of a page's objects (by external_id) and their link candidates, in one
    query locked FOR UPDATE on PostgreSQL (a first pull's pages ran two, plus two for the
    schedules' links: most of what the app's pull cost over its floor).  `only`: the ids
    of these rows if a look-up without locks found them (none: no query).

    Link candidates are live local rows an object new here may be, or may clash with:
    events with the same project_ref_num; schedules of the same event; employees: creates
    already sent whose answer may not be stored yet (matched on equal fields).  The slots
    asked for are those of every live object of the page, a superset of the new ones':
    `_Candidates.near` only looks in a new object's own slot.
    """
    where = _slot_filter(resource, model, items, refs)
    if where is None or (only is not None and not only):
        return {}, []
    if only is not None:  # conditions checked again: the rows are locked as they are now
        where = and_(_in(model.id, only), where)
    ids = {o["id"] for o in items if o.get("id")}
    live = [o for o in items if not o.get("deleted")]
    key = _Candidates.KEYS.get(resource)
    slots = ({o.get("project_ref_num") for o in live} if resource == "events" else
             {refs.events.get(o.get("event_id")) for o in live} if resource == "schedules"
             else None)
    rows, near = {}, []
    for row in db.session.scalars(_rows_of(model).where(where).with_for_update()):
        if row.external_id is not None and row.external_id in ids:
            rows[row.external_id] = row
        if row.deleted_at is None and (
                getattr(row, key) in slots if key else
                row.external_id is None and row.idempotency_key is not None):
            near.append(row)
    return rows, near


class _Candidates:
    """Link candidates bucketed by their unique slot (ref num, event), so that matching a
    page of vendor objects costs O(page), not O(page²); `_same_slot` still decides."""

    KEYS = {"events": "project_ref_num", "schedules": "event_id"}

    def __init__(self, resource: str, refs: Refs, rows: Iterable = ()):
        self.resource, self.refs, self.buckets = resource, refs, {}
        self.new_rows: Optional[_NewRows] = None
        self.last: tuple = (None, [])
        for row in rows:
            self.add(row)

    def add(self, row) -> None:
        key = self.KEYS.get(self.resource)
        self.buckets.setdefault(getattr(row, key) if key else None, []).append(row)

    def near(self, obj: dict) -> list:
        if obj is self.last[0]:  # _find_candidate then _find_clash ask for the same object
            return self.last[1]
        bucket = self._near(obj)
        self.last = (obj, bucket)
        return bucket

    def _near(self, obj: dict) -> list:
        if self.resource == "events":
            key = obj.get("project_ref_num")
        elif self.resource == "schedules":
            key = self.refs.events.get(obj.get("event_id"))
        else:
            key = None
        if self.new_rows is not None and key is not None and key in self.new_rows.slots:
            self.new_rows.flush()  # a row waiting to be inserted holds this slot: load it
            model = self.new_rows.model
            known = {id(row) for row in self.buckets.get(key, [])}
            for row in db.session.scalars(select(model).where(
                    getattr(model, self.KEYS[self.resource]) == key, model.deleted_at.is_(None))):
                if id(row) not in known:
                    self.add(row)
        return self.buckets.get(key, [])


class _NewRows:
    """Vendor objects new here, inserted with one executemany per page.

    The ORM's unit of work (an object per row, then a flush) was most of a
    first pull's time.  The Applied of a row inserted this way has no `row`;
    a later object of the same page that needs it (same id or slot) flushes
    the batch and loads it.
    """

    def __init__(self, resource: str, model, rows: dict, candidates: _Candidates):
        self.resource, self.model, self.rows, self.candidates = resource, model, rows, candidates
        self.items: list = []
        self.ids: set = set()
        self.slots: set = set()

    def add(self, obj: dict, values: dict) -> Applied:
        """Queue an insert; the Applied's row is set when the batch is flushed."""
        applied = Applied("applied", "created here")
        self.items.append((obj["id"], values, applied))
        self.ids.add(obj["id"])
        key = _Candidates.KEYS.get(self.resource)
        if key:
            self.slots.add(values[key])
        return applied

    def flush(self) -> None:
        if not self.items:
            return
        items, self.items, self.ids, self.slots = self.items, [], set(), set()
        if self.model is Schedule:  # rows that left an employee's day go first
            db.session.flush()
        rows = [values for _, values, _ in items]
        if not copy_rows(self.model.__table__, rows):
            db.session.execute(insert(self.model.__table__), rows)
        # their history: the new ids in one query, the entries in one COPY (or executemany)
        by_ext = {values["external_id"]: values for values in rows}
        entries = history.created_entries(self.resource, [
            (record_id, by_ext[ext]) for record_id, ext in db.session.execute(
                select(self.model.id, self.model.external_id)
                .where(_in(self.model.external_id, list(by_ext))))])
        history.write(db.session.connection(), entries)


class DayTaken(RuntimeError):
    """The vendor's version of a schedule would give an employee a second live schedule on
    a local day (a rule the vendor does not know)."""


class _DaySlots:
    """Who holds each (employee, local day) that a page of vendor schedules asks for, in one
    query a page: a local schedule's id, or the vendor id of one queued for insert here.

    A row that left its day earlier in the page (moved, deleted) no longer holds it:
    `holder` looks at the session's object before answering, and flushes that change so
    that it reaches the database before the row taking the day.
    """

    def __init__(self, items: list[dict], refs: Refs):
        self.held: dict = {}
        keys = {_day_key(o, refs) for o in items if not o.get("deleted")} - {None}
        employees, days = {k[0] for k in keys}, {k[1] for k in keys}
        if keys:
            query = select(Schedule.id, Schedule.employee_id, Schedule.local_day).where(
                Schedule.deleted_at.is_(None), _in(Schedule.employee_id, employees),
                _in(Schedule.local_day, days))
            for row_id, employee_id, day in db.session.execute(query):
                self.held[(employee_id, day)] = row_id

    def holder(self, key: tuple, row=None):
        """The live schedule (or queued vendor id) other than `row` holding `key`, or None."""
        entry = self.held.get(key)
        if entry is None or isinstance(entry, str):
            return entry
        if row is not None and entry == row.id:
            return None
        other = db.session.get(Schedule, entry)
        if other is None or other.deleted_at is not None or (other.employee_id,
                                                             other.local_day) != key:
            del self.held[key]
            db.session.flush()
            return None
        return other

    def take(self, key: tuple, who) -> None:
        self.held[key] = who


def _day_key(obj: dict, refs: Refs) -> Optional[tuple]:
    """(local employee id, local day) of a vendor schedule, when both are known."""
    employee_id = refs.employees.get(obj.get("employee_id"))
    start = _norm("start_datetime", obj.get("start_datetime"))
    if employee_id is None or not isinstance(start, datetime):
        return None
    return employee_id, local_day(start)


def _day_taken(row, obj: dict, refs: Refs) -> Optional[str]:
    """Why the vendor's version of schedule `row` (None: new here) cannot be live here:
    another live schedule holds that employee's day.  None when the day is free, which
    `row` then holds."""
    key = _day_key(obj, refs)
    if key is None:
        return None
    if refs.days is None:  # one object outside a page (resolving a conflict)
        refs.days = _DaySlots([obj], refs)
    holder = refs.days.holder(key, row)
    if holder is None:
        if row is not None:
            refs.days.take(key, row.id)
        return None
    employee = db.session.get(Employee, key[0])
    other = (f"the vendor's schedule {holder} of the same pull" if isinstance(holder, str)
             else f"schedule #{holder.id}")
    return (f"{employee.name if employee else 'the employee'} already has work on "
            f"{key[1].isoformat()} ({other}): one schedule per employee per day")


def _day_conflict(resource: str, row, obj: dict, message: str, ctx) -> Applied:
    """The vendor's schedule clashes with a local one on an employee's day: an admin decides
    (under either policy); the local row keeps its values."""
    row.sync_status = "conflict"
    row.conflict_remote = jsonable(obj)
    row.sync_error = "conflict: " + message
    _count_conflict(ctx, resource, row, "conflict (waiting for an admin): " + message)
    return Applied("conflict", message, row)


def _insert_day_conflict(obj: dict, values: dict, message: str, ctx) -> Applied:
    """A vendor schedule new here whose day is taken: kept as a conflict row, not live (the
    index allows one live schedule a day), its vendor version as the remote side."""
    row = Schedule(**values)
    row.deleted_at = utcnow()
    db.session.add(row)
    db.session.flush()
    return _day_conflict("schedules", row, obj, message, ctx)


def _same_slot(resource: str, row, obj: dict, refs: Refs) -> bool:
    if resource == "events":
        return row.project_ref_num == obj.get("project_ref_num")
    if resource == "schedules":
        return row.event_id == refs.events.get(obj.get("event_id"))
    return not differing_fields(resource, row, obj)


def _find_candidate(resource: str, obj: dict, candidates: _Candidates, refs: Refs):
    """A live local row never pushed that holds the same slot (ref num, event, fields)."""
    for row in candidates.near(obj):
        if row.external_id is None and row.deleted_at is None \
                and _same_slot(resource, row, obj, refs):
            return row
    return None


def _find_clash(resource: str, obj: dict, candidates: _Candidates, refs: Refs):
    """A live local row linked to another vendor object that holds the same unique slot."""
    if resource == "employees":
        return None
    for row in candidates.near(obj):
        if row.external_id not in (None, obj["id"]) and row.deleted_at is None \
                and _same_slot(resource, row, obj, refs):
            return row
    return None


def _apply_one(resource, model, obj, rows, refs, candidates, ctx, source) -> Applied:
    """The version and conflict rules for one vendor object."""
    row = rows.get(obj["id"])
    if obj.get("deleted"):
        if row is None:
            return Applied("skipped", f"vendor object {obj['id']} is not known here; "
                                      "remembered as deleted there")
        return _apply_tombstone(resource, row, obj, ctx)
    if row is None:
        row = _find_candidate(resource, obj, candidates, refs)
        if row is not None:
            row.external_id = obj["id"]
            rows[obj["id"]] = row
            if resource == "employees" or not differing_fields(resource, row, obj):
                _adopt(row, obj, synced=True)
                return Applied("applied", "linked to a local create", row)
            return _reconcile(resource, row, obj, ctx)
        return _insert(resource, model, obj, rows, refs, candidates, ctx)
    if row.sync_status == "conflict":
        stored = _version(row.conflict_remote or {}) or 0
        if _newer(obj, stored):
            row.conflict_remote = jsonable(obj)
        return Applied("conflict", "in conflict: the vendor version was refreshed", row)
    if not _newer(obj, row.remote_version):
        return Applied("stale", _stale_words(obj, row), row)
    if resource == "schedules" and not _refs_known(obj, refs):
        return Applied("deferred", "its event or employee is not known here yet", row)
    if row.sync_status == "synced":
        if row.deleted_at is not None and source == "webhook":
            # deleted here because the vendor deleted it, and a webhook shows it live: a
            # late delivery of a version older than the deletion (a deletion found by a
            # full listing has no version to compare), or a real change.  A listing knows:
            # a pull decides (the contract lets messages arrive late and out of order).
            return Applied("deferred", "deleted here after the vendor deleted it; "
                                       "a pull checks whether it is still live", row)
        taken = _day_taken(row, obj, refs) if resource == "schedules" else None
        if taken:
            return _day_conflict(resource, row, obj, taken, ctx)
        if row.deleted_at is not None:
            # deleted here because the vendor deleted it, yet its listing shows it live
            # and newer: the vendor's word wins (nothing is lost).
            row.deleted_at = None
        _apply_remote(resource, row, obj, refs)
        return Applied("applied", None, row)
    # pending or failed: a local change not yet at the vendor
    if not differing_fields(resource, row, obj) and row.deleted_at is None:
        _adopt(row, obj, synced=True)
        return Applied("applied", "same values on both sides", row)
    return _reconcile(resource, row, obj, ctx, refs)


def _stale_words(obj: dict, row) -> str:
    """Why a vendor version was not applied, in an admin's words."""
    if obj.get("version") == row.remote_version:
        return "already had this version"
    if row.remote_version is None:
        return "not newer than the version here"
    return f"older than the version here (version {row.remote_version})"


def _refs_known(obj: dict, refs: Refs) -> bool:
    return obj.get("event_id") in refs.events and obj.get("employee_id") in refs.employees


def _insert(resource, model, obj, rows, refs, candidates, ctx=None) -> Applied:
    """A vendor object new here: insert it (unless a live local row holds its slot; a
    schedule whose employee's day is taken becomes a conflict)."""
    if resource == "schedules" and not _refs_known(obj, refs):
        return Applied("deferred", "its event or employee is not known here yet")
    clash = _find_clash(resource, obj, candidates, refs)
    if clash is not None:
        newer = (_remote_updated(obj) or utcnow()) >= (clash.updated_at or utcnow())
        if not (resource == "schedules" and clash.sync_status == "synced" and newer):
            what = "schedule" if resource == "schedules" else "project_ref_num"
            return Applied("deferred", f"a live local {SINGULAR[resource]} #{clash.id} "
                                       f"holds the same {what}")
    now = utcnow()
    values = remote_values(resource, obj, refs)  # the fields _adopt(synced=True) sets, too:
    values.update(SyncMixin.synced_values(now), external_id=obj["id"],
                  remote_version=_version(obj), updated_at=_remote_updated(obj) or now,
                  created_at=now)
    if resource == "schedules":
        key = _day_key(obj, refs)
        holder = refs.days.holder(key) if key else None
        if isinstance(holder, str):  # queued in this page: insert it, to name it by its id
            candidates.new_rows.flush()
            refs.days.take(key, db.session.scalar(select(Schedule.id).where(
                Schedule.external_id == holder)))
            holder = refs.days.holder(key)
        if holder is not None and not (clash is not None and holder is clash):
            return _insert_day_conflict(obj, values, _day_taken(None, obj, refs), ctx)
        values["local_day"] = key[1]
        refs.days.take(key, obj["id"])
    if clash is not None:
        clash.deleted_at = utcnow()  # the vendor replaced it; its tombstone follows
        clash.last_synced = utcnow()
    return candidates.new_rows.add(obj, values)


def _adopt(row, obj: dict, synced: bool) -> None:
    """Record the vendor's version (and mark synced) without touching local fields."""
    row.remote_version = _version(obj)
    row.last_synced = utcnow()
    if synced:
        row.updated_at = _remote_updated(obj) or utcnow()
        row.mark_synced()


def _apply_remote(resource: str, row, obj: dict, refs: Optional[Refs] = None) -> None:
    """Make the local row equal to the vendor's object (a pulled change: never pending)."""
    if resource == "schedules" and refs is None:
        refs = _load_refs([obj], None)
    for name, value in remote_values(resource, obj, refs or Refs()).items():
        setattr(row, name, value)
    _adopt(row, obj, synced=True)


def _soft_delete_from_vendor(resource: str, row, obj: Optional[dict]) -> None:
    """The vendor deleted it: hide it here (never hard-deleted), synced."""
    now = utcnow()
    if row.deleted_at is None:
        row.deleted_at = now
    row.mark_synced(now)
    if obj is not None and _version(obj) is not None:
        row.remote_version = _version(obj)
    if resource in ("events", "employees"):
        column = Schedule.event_id if resource == "events" else Schedule.employee_id
        for sched in db.session.scalars(select(Schedule).where(
                column == row.id, Schedule.deleted_at.is_(None))):
            if sched.sync_status == "synced":
                sched.deleted_at = now  # the vendor refused to delete it while scheduled
                sched.last_synced = now
            elif sched.sync_status != "conflict":
                sched.mark_failed(f"its {SINGULAR[resource]} was deleted at the vendor; "
                                  "choose another or delete this schedule")


def _apply_tombstone(resource: str, row, obj: dict, ctx) -> Applied:
    """A deletion at the vendor: soft delete here, unless a local change competes."""
    if row.sync_status == "conflict":
        row.conflict_remote = jsonable(obj)
        return Applied("conflict", "in conflict: the vendor deleted it", row)
    if obj.get("version") is not None and not _newer(obj, row.remote_version):
        return Applied("stale", "a delete older than the version here", row)
    if row.sync_status == "synced" or row.deleted_at is not None:
        _soft_delete_from_vendor(resource, row, obj)
        return Applied("applied", "deleted here", row)
    return _reconcile(resource, row, obj, ctx)


def _reconcile(resource: str, row, obj: dict, ctx, refs: Optional[Refs] = None) -> Applied:
    """Both sides changed: SYNC_CONFLICT_POLICY decides (LWW by updated_at, or manual).

    Returns outcome "applied" (remote won), "conflict" (manual) or "local_wins"
    (the row stays pending with remote_version = the vendor's version, so the
    next PATCH carries If-Match of the vendor's current version).
    """
    policy = settings(ctx.app)["policy"] if ctx is not None else _policy_now()
    fields = differing_fields(resource, row, obj)
    summary = (f"local #{row.id} changed {_ts(row.updated_at)}; vendor v{obj.get('version')} "
               f"changed {_ts(_remote_updated(obj))}; fields: {', '.join(fields)}")
    if policy == "manual":
        row.mark_conflict(jsonable(obj), summary)
        _count_conflict(ctx, resource, row, "conflict (waiting for an admin): " + summary)
        return Applied("conflict", summary, row)
    remote_ts = _remote_updated(obj)
    local_ts = row.updated_at
    remote_wins = remote_ts is not None and local_ts is not None and remote_ts > local_ts
    if obj.get("deleted"):
        if remote_wins:
            _soft_delete_from_vendor(resource, row, obj)
            _count_conflict(ctx, resource, row, "conflict, vendor delete won: " + summary)
            return Applied("applied", "vendor delete won: " + summary, row)
        _recreate(resource, row, obj)
        _count_conflict(ctx, resource, row, "conflict, local change won over a vendor "
                                            "delete (re-created): " + summary)
        return Applied("local_wins", summary, row)
    if remote_wins and (resource != "schedules" or refs is None or _refs_known(obj, refs)):
        taken = _day_taken(row, obj, refs or _load_refs([obj], None)) \
            if resource == "schedules" else None
        if taken:
            return _day_conflict(resource, row, obj, taken, ctx)
        restored = row.deleted_at is not None
        row.deleted_at = None
        _apply_remote(resource, row, obj, refs)
        _count_conflict(ctx, resource, row, ("conflict, vendor change won"
                                             + (" (local delete undone)" if restored else "")
                                             + ": " + summary))
        return Applied("applied", "vendor change won: " + summary, row)
    row.remote_version = _version(obj)
    _count_conflict(ctx, resource, row, "conflict, local change won: " + summary)
    return Applied("local_wins", summary, row)


def _recreate(resource: str, row, tomb: Optional[dict]) -> None:
    """The vendor deleted it but the local change wins: create it again (with `tomb`, the
    deletion, its former vendor id is remembered: a late webhook about that id must not
    create a record here)."""
    if row.external_id is not None and tomb is not None:
        _retire(resource, [(dict(tomb, id=row.external_id), row.id)])
    row.external_id = None
    row.remote_version = None
    row.reset_for_retry()


def _count_conflict(ctx, resource, row, message) -> None:
    if ctx is not None:
        ctx.stats.conflicts += 1
        ctx.stats.error(resource, row.id, message)


def _policy_now() -> str:
    return settings(current_app)["policy"]


def _ts(dt: Optional[datetime]) -> str:
    return format_timestamp(dt) if dt else "?"


# ---------------------------------------------------------------------------
# Pull
# ---------------------------------------------------------------------------

def _state(resource: str):
    state = db.session.get(SyncState, resource)
    if state is None:
        state = SyncState(resource=resource)
        db.session.add(state)
    return state


def _start_listings(ctx: RunContext, resources: list[str], full: bool) -> None:
    """Ask for the first page of every listing of the run at once (one query for the
    tokens): they are applied one resource after the other, as before."""
    tokens = {} if full else dict(db.session.execute(
        select(SyncState.resource, SyncState.sync_token).where(SyncState.resource.in_(resources))
    ).all())
    db.session.rollback()
    ctx.client.start_listings((r, tokens.get(r), ctx.conf["page_size"]) for r in resources)


def pull_resource(ctx: RunContext, resource: str, full: bool = False) -> None:
    """Incremental (or full) listing, each page applied and committed as one transaction.

    The new sync token is saved only with the last page.  A 410 discards the
    token and lists everything; after a full listing, linked local records the
    listing did not return (and last synced before it started) are deleted.
    """
    state = db.session.get(SyncState, resource)
    token = None if full or state is None else state.sync_token
    db.session.rollback()
    for attempt in range(3):
        try:
            _listing(ctx, resource, token)
            return
        except SyncTokenExpired:
            log.info("sync token for %s expired: full listing", resource)
            token = None
        except InvalidPageToken:
            log.warning("vendor refused its own page token for %s; listing again", resource)
        except (TransientError, RateLimited) as exc:
            db.session.rollback()
            ctx.stats.deferred += 1
            ctx.stats.error(resource, None, f"pull stopped, will resume next run: {exc}")
            _stop_if_vendor_down(ctx, exc, f"pulling {resource}")
            return
        except VendorError as exc:
            if isinstance(exc, AuthError):
                raise
            db.session.rollback()
            ctx.stats.failed += 1
            ctx.stats.error(resource, None, f"pull failed: {exc}")
            return
    ctx.stats.error(resource, None, "pull gave up after repeated listing restarts")
    ctx.stats.deferred += 1


def _listing(ctx: RunContext, resource: str, token: Optional[str]) -> None:
    full = token is None
    started = utcnow()
    seen: set[str] = set()
    postponed: list[dict] = []
    growth = _Growth(resource)
    for page in ctx.client.iter_pages(resource, sync_token=token, limit=ctx.conf["page_size"]):
        with _apply_lock:
            try:
                results = _apply_page(resource, page.items, ctx)
                growth.add(results)
                for obj, res in zip(page.items, results):
                    _tally(ctx, resource, obj, res, postponed)
                if full:  # applied rows are stamped last_synced >= started: no need to
                    # remember them, so memory is set by the page size, not the data size
                    seen.update(o["id"] for o, res in zip(page.items, results)
                                if o.get("id") and res.outcome != "applied")
                if page.next_sync_token:
                    complete = _retry_postponed(ctx, resource, postponed)
                    if full:
                        _deletions_after_full_listing(ctx, resource, seen, started)
                    state = _state(resource)
                    state.last_pull_at = utcnow()
                    if full:
                        state.last_full_pull_at = started
                    if complete:
                        state.sync_token = page.next_sync_token
                    state.updated_at = utcnow()
                db.session.commit()
            except Exception:
                db.session.rollback()
                raise
        ctx.checkpoint()


def _apply_page(resource: str, items: list[dict], ctx: RunContext) -> list[Applied]:
    """apply_items for one pulled page, flushed.  A unique index that refuses the page (a
    local write committed meanwhile took an employee's day or an event) rolls it back, and
    the page is applied once more against what won: a clash then becomes a conflict."""
    stats = ctx.stats
    before = (stats.conflicts, list(stats.errors), stats.errors_total)
    try:
        results = apply_items(resource, items, ctx, source="pull")
        db.session.flush()
        return results
    except IntegrityError as exc:
        db.session.rollback()
        stats.conflicts, stats.errors, stats.errors_total = before
        log.info("a %s page lost a race to a local write; applying it again: %s", resource,
                 exc.orig)
    results = apply_items(resource, items, ctx, source="pull")
    db.session.flush()
    return results


class _Growth:
    """ANALYZE a table that a listing is filling fast (PostgreSQL), at 1,000 new rows and
    each doubling after.  The statistics of a table that was empty when the first pull
    began say "tiny", so the planner scanned it whole for every page's look-ups: 15 s
    instead of 2.6 s for a first pull of 45k objects."""

    def __init__(self, resource: str):
        self.table = SYNCED_MODELS[resource].__tablename__
        self.created, self.next = 0, 1000

    def add(self, results: list) -> None:
        self.created += sum(1 for res in results if res.detail == "created here")
        if self.created < self.next:
            return
        self.next = self.created * 2
        if db.session.get_bind().dialect.name == "postgresql":
            from sqlalchemy import text

            db.session.execute(text(f"ANALYZE {self.table}"))


def _tally(ctx, resource, obj, res: Applied, postponed: list) -> None:
    if res.outcome in ("applied", "local_wins"):
        ctx.stats.pulled += 1
    elif res.outcome == "deferred":
        postponed.append(obj)
    elif res.outcome == "stale":
        _repair_stray(ctx, resource, obj, res.row)


def _repair_stray(ctx, resource: str, obj: dict, row) -> None:
    """The invariant, for a listed object: a live vendor object linked to a record deleted
    here (and synced), at the version we last saw, is a stray (e.g. a create answered after
    its record was deleted).  The local delete stands: it is sent again, so this run's push
    deletes the object at the vendor.  (A newer version undeletes the record instead: the
    vendor's later word, `_apply_one`.)"""
    if (obj.get("deleted") or row is None or row.deleted_at is None
            or row.sync_status != "synced" or row.external_id != obj.get("id")
            or _version(obj) != row.remote_version):
        return
    row.sync_status = "pending"
    row.sync_attempts = 0
    row.next_attempt_at = None
    row.sync_error = "the vendor still held it after its delete here: deleting it there"
    _count_repair(ctx, resource, row.id, f"repaired: vendor {SINGULAR[resource]} {obj['id']} "
                                         f"was live though #{row.id} was deleted here; "
                                         "it is deleted at the vendor")


def _count_repair(ctx, resource: str, record_id, message: str) -> None:
    """Count one repair of the sync invariant in the run (and log it)."""
    log.warning("sync invariant: %s #%s %s", resource, record_id, message)
    if ctx is not None:
        ctx.stats.repaired += 1
        ctx.stats.error(resource, record_id, message)


def _retry_postponed(ctx, resource, postponed: list) -> bool:
    """Objects that could not be applied in their page get one more try at the end."""
    complete = True
    for obj in postponed:
        with db.session.begin_nested():
            res = apply_items(resource, [obj], ctx, source="pull")[0]
        if res.outcome == "deferred":
            complete = False
            ctx.stats.deferred += 1
            ctx.stats.error(resource, obj.get("id"), f"not applied yet: {res.detail} "
                                                     "(the listing will be read again)")
        elif res.outcome in ("applied", "local_wins"):
            ctx.stats.pulled += 1
    return complete


def _deletions_after_full_listing(ctx, resource: str, seen: set, started: datetime) -> None:
    """Linked live rows the full listing did not return were deleted at the vendor: deleted
    here too, unless they are more than SYNC_DELETE_GUARD of the resource's linked rows
    (and at least SYNC_DELETE_GUARD_MIN): then none is deleted, all are held for an admin.

    The listing is the vendor's latest word on the resource: what an earlier listing held
    and this one returned again is held no more.
    """
    model = SYNCED_MODELS[resource]
    gone = _gone_after_full_listing(ctx, model, seen, started)
    db.session.execute(delete(HeldDeletion).where(HeldDeletion.resource == resource))
    if not gone:
        return
    linked = _over_guard(ctx.conf, model, len(gone))
    if linked:
        _hold(ctx, resource, gone, linked)
        return
    size = ctx.conf["batch_size"]
    for start in range(0, len(gone), size):
        # the deletion time is unknown: a competing local change wins (loses nothing)
        tombs = [{"id": ext, "deleted": True, "version": None, "updated_at": None}
                 for _id, ext in gone[start:start + size]]
        for res in apply_items(resource, tombs, ctx, source="pull"):
            if res.outcome in ("applied", "local_wins"):
                ctx.stats.pulled += 1


def _gone_after_full_listing(ctx, model, seen: set, started: datetime) -> list[tuple]:
    """(id, external_id) of the linked live rows a full listing did not return (and that
    were last synced before it started), read in keyset batches."""
    gone, last_id = [], 0
    while True:
        batch = db.session.execute(
            select(model.id, model.external_id, model.last_synced)
            .where(model.external_id.is_not(None), model.deleted_at.is_(None), model.id > last_id,
                   or_(model.last_synced.is_(None), model.last_synced < started))
            .order_by(model.id).limit(ctx.conf["batch_size"])).all()
        if not batch:
            return gone
        last_id = batch[-1][0]
        gone += [(row_id, ext) for row_id, ext, synced in batch
                 if ext not in seen and (synced is None or synced < started)]


def _over_guard(conf: dict, model, count: int) -> int:
    """The number of linked live rows when deleting `count` of them trips the deletion
    guard (more than SYNC_DELETE_GUARD of them, at least SYNC_DELETE_GUARD_MIN), else 0."""
    share = conf["delete_guard"]
    if share is None or count < conf["delete_guard_min"]:
        return 0
    linked = db.session.scalar(select(func.count()).select_from(model).where(
        model.external_id.is_not(None), model.deleted_at.is_(None)))
    return linked if count > share * linked else 0


def _hold(ctx, resource: str, gone: list, linked: int) -> None:
    """Record the deletions as held (one executemany) instead of applying them."""
    now = utcnow()
    db.session.execute(insert(HeldDeletion), [
        {"resource": resource, "record_id": row_id, "external_id": ext,
         "run_id": ctx.stats.run_id, "held_at": now} for row_id, ext in gone])
    ctx.stats.held += len(gone)
    ctx.stats.held_notes.append((resource, len(gone), linked))
    message = (f"{len(gone)} of {linked} linked {resource} are missing from the vendor's "
               "full listing: held by SYNC_DELETE_GUARD, nothing deleted here")
    ctx.stats.error(resource, None, message)
    log.warning("sync run %s: %s", ctx.stats.run_id, message)


def _held_message(stats: RunStats, conf: dict) -> Optional[str]:
    """The run's message when it held deletions: how many, and why."""
    if not stats.held_notes:
        return None
    what = ", ".join(f"{count} {resource} ({100 * count / linked:.0f}% of the {linked} "
                     "linked here)" for resource, count, linked in stats.held_notes)
    return (f"deletions held: the vendor's full listing no longer has {what}; that is more "
            f"than SYNC_DELETE_GUARD ({100 * conf['delete_guard']:g}%, at least "
            f"{conf['delete_guard_min']}), so nothing was deleted here. The vendor may have "
            "lost its data: an admin applies the deletions or restores the records to the "
            "vendor on /sync/admin (or POST /api/sync/held/<resource>)")


# ---------------------------------------------------------------------------
# Push
# ---------------------------------------------------------------------------

def push_all(ctx: RunContext, resources: list[str]) -> None:
    """Schedule deletes first, then creates/changes by dependency, then other deletes."""
    order = [("schedules", "delete")]
    order += [(r, "upsert") for r in RESOURCES]
    order += [("events", "delete"), ("employees", "delete")]
    waiting = _phases_with_pending(resources)
    for resource, phase in order:
        if (resource, phase) in waiting:
            push_resource(ctx, resource, phase)


def _phases_with_pending(resources: list[str]) -> set:
    """The (resource, phase) pairs with a pending record, in one query: a sync with
    nothing to send asks once, not once per phase."""
    parts = [select(literal_column(f"'{r}'"), SYNCED_MODELS[r].deleted_at.is_not(None))
             .where(SYNCED_MODELS[r].sync_status == "pending").distinct() for r in resources]
    query = parts[0] if len(parts) == 1 else union_all(*parts)
    found = {(r, "delete" if deleted else "upsert") for r, deleted in db.session.execute(query)}
    db.session.rollback()
    return found


def push_resource(ctx: RunContext, resource: str, phase: str) -> None:
    """Send due pending records in batches (keyset by id), a few commits per batch.

    Per batch: the idempotency keys of the creates are stored in ONE commit
    before anything is sent (a crash then replays the same keys: no
    duplicates), the records are sent one by one, and the answers are stored
    in ONE commit at the end of the batch (`_store_results`).  Failures are
    recorded as they happen.
    """
    model = SYNCED_MODELS[resource]
    last_id = 0
    while True:
        now = utcnow()
        query = (select(model.id).where(model.sync_status == "pending", model.id > last_id)
                 .order_by(model.id).limit(ctx.conf["batch_size"]))
        if not ctx.ignore_backoff:
            query = query.where(or_(model.next_attempt_at.is_(None),
                                    model.next_attempt_at <= now))
        query = query.where(model.deleted_at.is_not(None) if phase == "delete"
                            else model.deleted_at.is_(None))
        ids = list(db.session.scalars(query))
        db.session.rollback()
        if not ids:
            return
        if phase == "upsert":
            _reserve_keys(model, ids)
        ctx.results = []
        try:
            _push_batch(ctx, resource, model, ids, phase)
        except BaseException:
            db.session.rollback()
            _store_results(ctx)
            raise
        _store_results(ctx)
        last_id = ids[-1]


def _push_batch(ctx: RunContext, resource: str, model, ids: list, phase: str) -> None:
    """Send a batch's records: over the client's workers (EXTERNAL_API_CONCURRENCY), a
    few records at a time in a database session of the worker's own, or one by one
    when there is one worker.

    The phases of `push_all` run one after the other, each finished before the next
    begins, so no schedule is sent before the events and employees it names.  The
    run's counters and lease are kept in this thread; the answers gather in
    `ctx.results`, stored together by the caller.
    """
    if ctx.client.workers <= 1 or not _sessions_share_data():
        # the batch's rows loaded in one query and held, so each send's look-up is in memory
        held = db.session.scalars(select(model).where(model.id.in_(ids))).all()  # noqa: F841
        for row_id in ids:
            _push_one(ctx, resource, model, row_id, phase)
            ctx.checkpoint()
        return

    merging = threading.Lock()

    def send(chunk):  # a worker's share: one session, its rows loaded in one query
        worker = RunContext(ctx.app, ctx.client, None, RunStats(run_id=ctx.stats.run_id),
                            ctx.conf, results=ctx.results)
        try:
            with ctx.app.app_context(), history.source("pull", actor=None,
                                                       ref=ctx.stats.run_id):
                held = db.session.scalars(select(model).where(model.id.in_(chunk))).all()  # noqa: F841
                for row_id in chunk:
                    _push_one(worker, resource, model, row_id, phase)
        finally:
            with merging:
                ctx.stats.merge(worker.stats)

    # the batch split evenly: a session, a connection check-out and a look-up per record
    # cost more than the send (on PostgreSQL, round trips to a busy server)
    size = max(1, -(-len(ids) // ctx.client.workers))
    chunks = [ids[i:i + size] for i in range(0, len(ids), size)]
    with closing(ctx.client.run_concurrently(send, chunks)) as outcomes:
        for _chunk, _none, error in outcomes:
            if error is not None:
                raise error  # AuthError, LeaseLost...: the workers in flight finish first
            with merging:
                ctx.checkpoint()


def _sessions_share_data() -> bool:
    """Do sessions of other threads see this database? (not an in-memory SQLite one)"""
    url = db.engine.url
    return not (url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))


def _reserve_keys(model, ids: list) -> None:
    """Give each create of the batch its idempotency key: one UPDATE, one commit, before sending."""
    need = db.session.scalars(select(model.id).where(
        model.id.in_(ids), model.external_id.is_(None), model.idempotency_key.is_(None))).all()
    if need:
        db.session.execute(update(model), [{"id": row_id, "idempotency_key": str(uuid.uuid4())}
                                             for row_id in need])
    db.session.commit()


def _store_results(ctx) -> None:
    """Store the batch's successful writes in one transaction (their keys were stored before)."""
    results, ctx.results = ctx.results or [], None
    if not results:
        return
    with _apply_lock:
        try:
            for args in _store_batch(results):
                _store_now(*args, ctx=ctx)
            db.session.commit()
        except BaseException:
            db.session.rollback()  # the keys stay: the next run replays these creates
            raise


def _store_batch(results: list) -> list:
    """The batch's answers in one owner look-up and one UPDATE executemany (building a
    statement per record was a third of a push).  Returns the rows for `_store_now`:
    an object another row already holds, or a row changed or decided (deleted, in
    conflict) while in flight."""
    model = results[0][1]
    owners = dict(db.session.execute(select(model.external_id, model.id).where(
        model.external_id.in_({obj["id"] for _, _, _, obj, _ in results}))).all())
    simple, rare, seen = [], [], set()
    for item in results:
        _, _, row_id, obj, _ = item
        plain = owners.get(obj["id"], row_id) == row_id and obj["id"] not in seen
        (simple if plain else rare).append(item)
        seen.add(obj["id"])
    if simple:
        table = model.__table__
        db.session.execute(
            update(table).where(table.c.id == bindparam("b_id"), table.c.updated_at == bindparam("b_sent"),
                                table.c.deleted_at.is_(None), table.c.sync_status == "pending",
                                or_(table.c.remote_version.is_(None),
                                    table.c.remote_version <= bindparam("b_version")))
            .values(external_id=bindparam("b_ext"), remote_version=bindparam("b_version"),
                    **SyncMixin.synced_values()),
            [{"b_id": row_id, "b_sent": sent, "b_version": _version(obj), "b_ext": obj["id"]}
             for _, _, row_id, obj, sent in simple])
        state = {row_id: (ext, status, version) for row_id, ext, status, version in
                 db.session.execute(select(model.id, model.external_id, model.sync_status,
                                             model.remote_version)
                                      .where(model.id.in_([item[2] for item in simple])))}
        rare += [item for item in simple
                 if state.get(item[2]) != (item[3]["id"], "synced", _version(item[3]))]
    return rare


def _push_one(ctx, resource, model, row_id, phase) -> None:
    row = db.session.get(model, row_id)
    if row is None or row.sync_status != "pending":
        return
    try:
        if phase == "delete":
            _push_delete(ctx, resource, model, row)
        else:
            _push_upsert(ctx, resource, model, row)
    except AuthError:
        db.session.rollback()
        raise
    except (TransientError, RateLimited) as exc:
        db.session.rollback()
        _transient(ctx, resource, model, row_id, exc)
        _stop_if_vendor_down(ctx, exc, f"pushing {SINGULAR[resource]} #{row_id}")
    except VendorError as exc:
        db.session.rollback()
        _permanent(ctx, resource, model, row_id, exc)
    except (LeaseLost, SyncDisabled):
        raise
    except Exception as exc:  # noqa: BLE001 - one bad record never stops the others
        # unknown outcome (the request may have been applied): retry later with the same key
        log.exception("push of %s #%s failed", resource, row_id)
        db.session.rollback()
        _transient(ctx, resource, model, row_id, exc)


# TransientErrors the engine raises itself about one record (not the vendor being down)
RECORD_WAITS = ("waiting", "in_use")


def _stop_if_vendor_down(ctx, exc: VendorError, doing: str) -> None:
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


def _transient(ctx, resource, model, row_id, exc) -> None:
    """Stay pending; try again after a growing backoff (same idempotency key)."""
    row = db.session.get(model, row_id)
    row.sync_attempts = (row.sync_attempts or 0) + 1
    delay = backoff_delay(row.sync_attempts, ctx.conf["backoff_base"], ctx.conf["backoff_max"])
    if getattr(exc, "retry_after", None):
        delay = max(delay, float(exc.retry_after))
    row.next_attempt_at = utcnow() + timedelta(seconds=delay)
    row.sync_error = f"will retry: {exc}"
    db.session.commit()
    ctx.stats.deferred += 1
    ctx.stats.error(resource, row_id, f"temporary failure, retry in {delay:.0f}s: {exc}")


def _permanent(ctx, resource, model, row_id, exc) -> None:
    """The vendor refused it: failed, with its message and details."""
    row = db.session.get(model, row_id)
    message = getattr(exc, "message", None) or str(exc)
    details = getattr(exc, "details", None)
    if details:
        message += " — " + "; ".join(f"{k}: {v}" for k, v in details.items())
    status = getattr(exc, "status", None)
    row.mark_failed(f"the vendor refused it ({status}): {message}" if status else message)
    row.sync_attempts = (row.sync_attempts or 0) + 1
    if row.external_id is None:
        row.idempotency_key = None  # a refused create made nothing; a retry needs a new key
    db.session.commit()
    ctx.stats.failed += 1
    ctx.stats.error(resource, row_id, row.sync_error)


def _push_upsert(ctx, resource, model, row) -> None:
    if resource == "schedules":
        if row.event.deleted_at is not None or row.employee.deleted_at is not None:
            raise VendorError("its event or employee was deleted; choose another or delete it",
                              code="dangling")
        if row.event.external_id is None or row.employee.external_id is None:
            ctx.stats.deferred += 1  # waits, no attempt counted
            return
    payload = local_payload(resource, row)
    sent = row.updated_at
    if row.external_id is None:
        if row.idempotency_key is None:
            row.idempotency_key = str(uuid.uuid4())
            db.session.commit()  # the key is stored BEFORE the request (see _reserve_keys)
        try:
            obj = ctx.client.create(resource, payload, idempotency_key=row.idempotency_key)
        except Duplicate as exc:
            if resource == "schedules" or resource == "events":
                _link_duplicate(ctx, resource, model, row, exc)
                return
            raise
        _store_result(ctx, resource, model, row.id, obj, sent)
        return
    try:
        obj = ctx.client.update(resource, row.external_id, payload, if_match=row.remote_version)
    except VersionMismatch as exc:
        current = exc.current or ctx.client.get(resource, row.external_id)
        _resolve_push_conflict(ctx, resource, model, row, current, payload, sent)
        return
    except NotFound:
        _vendor_lost_it(ctx, resource, model, row)
        return
    _store_result(ctx, resource, model, row.id, obj, sent)


def _store_result(ctx, resource, model, row_id, obj, sent) -> None:
    """Record a successful write (at the end of the push batch when one is open)."""
    ctx.stats.pushed += 1
    if ctx.results is not None:
        ctx.results.append((resource, model, row_id, obj, sent))
        return
    with _apply_lock:
        _store_now(resource, model, row_id, obj, sent)
        db.session.commit()


def _reread(model, row_id: int):
    """The row as the database holds it now, locked as the pull and the webhook lock it
    (FOR UPDATE on PostgreSQL; the caller holds `_apply_lock`)."""
    return db.session.scalar(_rows_of(model).where(model.id == row_id).with_for_update()
                             .execution_options(populate_existing=True))


def _decided_elsewhere(row) -> bool:
    """Did a newer decision (a vendor delete applied, a conflict, a change adopted) take the
    row out of the push while its request was in flight?  Then its rules stand."""
    return row is None or row.deleted_at is not None or row.sync_status != "pending"


def _store_now(resource, model, row_id, obj, sent, ctx=None) -> None:
    """Write a successful answer after re-reading the row (the caller holds _apply_lock and
    commits).  Synced only if nothing changed meanwhile; changed here: stays pending with
    the answer's id and version (pushed again); deleted meanwhile by the vendor's rules: the
    delete stands, and an object our create made is a stray: linked and deleted there."""
    version = _version(obj)
    owner_id = db.session.scalar(select(model.id).where(model.external_id == obj["id"],
                                                        model.id != row_id))
    if owner_id is not None:
        _merge_duplicate(resource, model, db.session.get(model, owner_id), row_id)
    row = _reread(model, row_id)
    if row is None:
        return
    newer = row.remote_version is None or version is None or row.remote_version <= version
    if row.sync_status == "pending":
        if newer:
            row.external_id, row.remote_version, row.idempotency_key = obj["id"], version, None
            if row.updated_at == sent and row.deleted_at is None:
                row.mark_synced()
        elif row.external_id is None:
            row.external_id = obj["id"]
    elif row.external_id is None and row.deleted_at is not None and row.sync_status == "synced":
        row.external_id, row.remote_version, row.idempotency_key = obj["id"], version, None
        row.sync_status, row.sync_attempts, row.next_attempt_at = "pending", 0, None
        row.sync_error = "created at the vendor after it was deleted here: deleting it there"
        _count_repair(ctx, resource, row_id, f"repaired: the create of #{row_id} was answered "
                                             f"after it was deleted here; vendor object "
                                             f"{obj['id']} is deleted there")
    elif row.external_id is None:  # in conflict or failed meanwhile: keep the link known
        row.external_id = obj["id"]


def _merge_duplicate(resource, model, other, row_id) -> None:
    """A pull/webhook inserted the object our create made before we stored the answer:
    move its links to our row and retire it (never hard-deleted)."""
    if resource == "employees":
        _hide_day_clashes(other.id, row_id)
    if resource in ("events", "employees"):
        column = Schedule.event_id if resource == "events" else Schedule.employee_id
        moved = db.session.scalars(select(Schedule.id).where(column == other.id)).all()
        history.record_changed("schedules", [(schedule_id, {column.key: (other.id, row_id)})
                                             for schedule_id in moved])
        db.session.execute(update(Schedule).where(column == other.id)
                             .values({column.key: row_id})
                             .execution_options(synchronize_session=False))
    other.external_id = None
    other.deleted_at = other.deleted_at or utcnow()
    other.mark_synced(note=f"merged into #{row_id} (the same vendor object)")
    db.session.flush()


def _hide_day_clashes(from_id: int, to_id: int) -> None:
    """Live schedules of employee `from_id` that would give `to_id` a second schedule on a
    day once merged: conflicts for an admin (not live), their vendor version as the remote
    side, so that the merge keeps the one-per-day rule and loses nothing."""
    held = dict(db.session.execute(select(Schedule.local_day, Schedule.id).where(
        Schedule.employee_id == to_id, Schedule.deleted_at.is_(None))).all())
    if not held:
        return
    employee = db.session.get(Employee, to_id)
    for sched in db.session.scalars(select(Schedule).where(
            Schedule.employee_id == from_id, Schedule.deleted_at.is_(None),
            Schedule.local_day.in_(list(held)))):
        remote = {**jsonable(local_payload("schedules", sched)), "id": sched.external_id,
                  "version": sched.remote_version}
        sched.deleted_at = utcnow()
        _day_conflict("schedules", sched, remote,
                      f"{employee.name} already has work on {sched.local_day.isoformat()} "
                      f"(schedule #{held[sched.local_day]}): one schedule per employee per day",
                      None)
    db.session.flush()


def _link_duplicate(ctx, resource, model, row, exc: Duplicate) -> None:
    """409 duplicate on a create: link to the vendor's object, then the conflict rule."""
    existing = exc.existing_id
    if not existing:
        raise exc
    obj = ctx.client.get(resource, existing)
    with _apply_lock:
        row = _reread(model, row.id)
        if _decided_elsewhere(row):
            db.session.commit()
            return
        other = db.session.scalar(select(model).where(model.external_id == existing))
        if other is not None and other.id != row.id:
            if other.deleted_at is not None and other.sync_status == "pending":
                raise TransientError("waiting for the delete of the record it replaces",
                                     code="waiting")
            raise VendorError(f"the vendor already holds this as {existing}, linked to "
                              f"#{other.id} here", status=409, code="duplicate")
        row.external_id = existing
        row.idempotency_key = None
        refs = _load_refs([obj], ctx) if resource == "schedules" else None
        if not differing_fields(resource, row, obj):
            _adopt(row, obj, synced=True)
            db.session.commit()
            ctx.stats.pushed += 1
            return
        res = _reconcile(resource, row, obj, ctx, refs)
        db.session.commit()
    if res.outcome == "local_wins":
        _push_upsert(ctx, resource, model, db.session.get(model, row.id))


def _resolve_push_conflict(ctx, resource, model, row, current, payload, sent) -> None:
    """412 on PATCH: the vendor changed it too (the row re-read first: a decision taken
    while the PATCH was in flight stands)."""
    with _apply_lock:
        row = _reread(model, row.id)
        if _decided_elsewhere(row):
            db.session.commit()
            return
        if current.get("deleted"):
            res = _reconcile(resource, row, current, ctx)
        elif not differing_fields(resource, row, current):
            _adopt(row, current, synced=row.updated_at == sent)
            db.session.commit()
            ctx.stats.pushed += 1
            return
        else:
            refs = _load_refs([current], ctx) if resource == "schedules" else None
            res = _reconcile(resource, row, current, ctx, refs)
        db.session.commit()
    if res.outcome == "local_wins" and row.external_id is not None:
        obj = ctx.client.update(resource, row.external_id, payload, if_match=_version(current))
        _store_result(ctx, resource, model, row.id, obj, sent)


def _vendor_lost_it(ctx, resource, model, row) -> None:
    """404 on PATCH: deleted at the vendor after our last pull; the local change is kept
    by creating it again (the reading that loses no data), recorded as a conflict.

    The row is re-read first: if the vendor's delete reached us meanwhile (webhook, pull)
    and its rules decided (the delete won, or a conflict), that decision stands."""
    with _apply_lock:
        row = _reread(model, row.id)
        if _decided_elsewhere(row):
            db.session.commit()
            log.info("%s #%s: the 404 was already decided here; nothing re-created",
                     resource, getattr(row, "id", None))
            return
        tomb = {"id": row.external_id, "deleted": True, "version": None, "updated_at": None}
        res = _reconcile(resource, row, tomb, ctx)
        db.session.commit()
    if res.outcome == "local_wins":
        _push_upsert(ctx, resource, model, db.session.get(model, row.id))


def _push_delete(ctx, resource, model, row) -> None:
    if row.external_id is None and row.idempotency_key is not None:
        # a create may have reached the vendor: replay it (same key) to learn its id
        try:
            obj = ctx.client.create(resource, local_payload(resource, row),
                                    idempotency_key=row.idempotency_key)
            with _apply_lock:  # a webhook or pull may have inserted its copy: merged here
                _link_replayed_create(resource, model, row.id, obj)
                db.session.commit()
        except (Duplicate, api_service.ValidationFailed, api_service.Conflict):
            pass
    if row.external_id is None:
        _mark_deleted_synced(ctx, model, row)
        return
    try:
        ctx.client.delete(resource, row.external_id, if_match=row.remote_version)
    except NotFound:
        pass
    except InUse as exc:
        if not _delete_blocked(ctx, resource, model, row, exc):
            return
    except VersionMismatch as exc:
        try:
            current = exc.current or ctx.client.get(resource, row.external_id)
        except NotFound:
            current = {"id": row.external_id, "deleted": True, "version": None}
        if current.get("deleted"):
            _mark_deleted_synced(ctx, model, row)
            return
        with _apply_lock:
            res = _reconcile(resource, row, current, ctx,
                             _load_refs([current], ctx) if resource == "schedules" else None)
            db.session.commit()
        if res.outcome != "local_wins":
            return
        try:
            ctx.client.delete(resource, row.external_id, if_match=_version(current))
        except NotFound:
            pass
    _mark_deleted_synced(ctx, model, row)


def _link_replayed_create(resource, model, row_id: int, obj: dict) -> None:
    """A create replayed for a record deleted here before its answer was stored: link the
    record to the object (so its delete reaches the vendor).  A copy a webhook or pull
    inserted meanwhile (the create had reached the vendor) is merged into it: the local
    delete, the newer decision, stands."""
    owner_id = db.session.scalar(select(model.id).where(model.external_id == obj["id"],
                                                        model.id != row_id))
    if owner_id is not None:
        _merge_duplicate(resource, model, db.session.get(model, owner_id), row_id)
    row = _reread(model, row_id)
    if row.external_id is None:
        row.external_id, row.remote_version = obj["id"], _version(obj)


def _delete_blocked(ctx, resource, model, row, exc: InUse) -> bool:
    """409 in_use: the vendor holds a live schedule of the event/employee deleted here.

    The schedule is a vendor-side change the local delete did not know of,
    so the conflict rule decides.  Last write wins: a schedule changed after
    the local delete undoes the delete; otherwise the schedule is deleted at
    the vendor too and the delete is sent again (True: go on and finish).
    Manual: the record waits in `conflict`; keeping local deletes the
    schedule first (see resolve_conflict).
    """
    sid = exc.schedule_id
    if not sid:
        raise TransientError("the vendor refused the delete: still in use", status=409,
                             code="in_use") from exc
    try:
        blocking = ctx.client.get("schedules", sid)
    except NotFound:
        raise TransientError(f"schedule {sid} blocked the delete, then went away; trying "
                             "again", status=409, code="in_use") from exc
    current = ctx.client.get(resource, row.external_id)
    local_copy = db.session.scalar(select(Schedule).where(Schedule.external_id == sid))
    summary = (f"deleted here {_ts(row.updated_at)}, but the vendor has schedule {sid} "
               f"(v{_version(blocking)}, changed {_ts(_remote_updated(blocking))}) for it")
    with _apply_lock:
        if settings(ctx.app)["policy"] == "manual":
            row.mark_conflict({**jsonable(current), "blocking_schedule_id": sid}, summary)
            _count_conflict(ctx, resource, row, "conflict (waiting for an admin): " + summary)
            db.session.commit()
            return False
        remote_ts = _remote_updated(blocking)
        if remote_ts is not None and row.updated_at is not None and remote_ts > row.updated_at:
            row.deleted_at = None
            _apply_remote(resource, row, current)
            _count_conflict(ctx, resource, row, "conflict, the vendor's newer schedule won "
                                                "(local delete undone): " + summary)
            db.session.commit()
            return False
        db.session.commit()
    try:
        ctx.client.delete("schedules", sid)
    except NotFound:
        pass
    if local_copy is not None:
        _soft_delete_from_vendor("schedules", local_copy, None)
    _count_conflict(ctx, resource, row, "conflict, the local delete won (the vendor's "
                                        "schedule was deleted too): " + summary)
    db.session.commit()
    try:
        ctx.client.delete(resource, row.external_id)
    except NotFound:
        pass
    return True


def _mark_deleted_synced(ctx, model, row) -> None:
    """The delete reached the vendor (or there was nothing to reach): synced, unless a
    newer decision took the row meanwhile (re-read under the apply lock)."""
    with _apply_lock:
        row = _reread(model, row.id)
        if row is not None and row.deleted_at is not None and row.sync_status == "pending":
            row.mark_synced()
        db.session.commit()
    ctx.stats.pushed += 1


# ---------------------------------------------------------------------------
# Admin actions
# ---------------------------------------------------------------------------

def retry_failed(app) -> int:
    """Every failed record back to pending, attempts 0, a fresh key; returns how many."""
    total = 0
    with _context(app):
        for model in SYNCED_MODELS.values():
            total += db.session.execute(
                update(model).where(model.sync_status == "failed")
                .values(**SyncMixin.RETRY_VALUES)
                .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
    if total:
        _ask(app, "push")
    return total


def retry_record(app, record) -> bool:
    """One failed record back to pending and a push soon; False (unchanged) if it was not failed."""
    if record.sync_status != "failed":
        return False
    record.reset_for_retry()
    db.session.commit()
    _ask(app, "push")
    return True


def list_conflicts(app, limit: int = 500) -> list[dict]:
    """Records in conflict: local and vendor versions side by side, and what differs."""
    out = []
    with _context(app):
        for resource, model in SYNCED_MODELS.items():
            for row in db.session.scalars(select(model).where(model.sync_status == "conflict")
                                            .order_by(model.id).limit(limit)):
                remote = row.conflict_remote or {}
                local = jsonable(local_payload(resource, row))
                local.update({"id": row.id, "external_id": row.external_id,
                              "updated_at": _ts(row.updated_at),
                              "deleted": row.deleted_at is not None})
                out.append({"resource": resource, "id": row.id,
                            "external_id": row.external_id, "local": local, "remote": remote,
                            "fields": differing_fields(resource, row, parse_object(remote))
                            if remote else [],
                            "message": row.sync_error})
    return out


def _delete_schedules_of(resource: str, row, blocking_id: str) -> None:
    """Keep a local delete of an event/employee: its schedules go first (pending deletes)."""
    column = Schedule.event_id if resource == "events" else Schedule.employee_id
    for sched in db.session.scalars(select(Schedule).where(
            or_(column == row.id, Schedule.external_id == blocking_id),
            Schedule.deleted_at.is_(None))):
        sched.soft_delete()


def _history_kept_local(resource: str, row, remote: dict) -> None:
    """An admin kept the local version: an entry even though nothing changes here, with
    the vendor's values turned down as old and the local ones kept as new (what the
    vendor's record will change from and to)."""
    theirs = {}
    if remote and not remote.get("deleted"):
        refs = _load_refs([remote], None) if resource == "schedules" else Refs()
        if resource != "schedules" or _refs_known(remote, refs):
            theirs = remote_values(resource, remote, refs)  # local ids, as the fields here
    changes = {name: (value, getattr(row, name)) for name, value in theirs.items()
               if value != getattr(row, name)}
    history.record_changed(resource, [(row.id, changes)], keep_empty=True)


def resolve_conflict(app, resource: str, record_id: int, keep: str):
    """keep=local: push it over the vendor's version; keep=remote: apply the vendor's."""
    if resource not in RESOURCES:
        raise LookupError(f"unknown resource {resource!r}")
    if keep not in ("local", "remote"):
        raise ValueError("keep must be 'local' or 'remote'")
    model = SYNCED_MODELS[resource]
    with _context(app), history.source("conflict", ref=keep):
        with _apply_lock:
            row = db.session.get(model, record_id)
            if row is None:
                raise LookupError(f"{SINGULAR[resource]} {record_id} not found")
            if row.sync_status != "conflict":
                raise RuntimeError(f"{SINGULAR[resource]} {record_id} is not in conflict")
            remote = parse_object(row.conflict_remote or {})
            if keep == "local":
                _history_kept_local(resource, row, remote)
                if row.deleted_at is not None and remote.get("blocking_schedule_id"):
                    _delete_schedules_of(resource, row, remote["blocking_schedule_id"])
                if remote.get("deleted") or not remote:
                    _recreate(resource, row, remote if remote.get("deleted") else None)
                else:
                    row.remote_version = _version(remote)
                    row.reset_for_retry()
                row.conflict_remote = None
            elif remote.get("deleted"):
                _soft_delete_from_vendor(resource, row, remote)
            else:
                refs = _load_refs([remote], None) if resource == "schedules" else None
                if refs is not None and not _refs_known(remote, refs):
                    raise RuntimeError("the vendor version names an event or employee not "
                                       "known here yet; run a sync first")
                taken = _day_taken(row, remote, refs) if refs is not None else None
                if taken:
                    raise DayTaken(f"cannot keep the vendor version: {taken}; unschedule or "
                                   "move that schedule first")
                row.deleted_at = None
                _apply_remote(resource, row, remote, refs)
            db.session.commit()
            result = row
    if keep == "local":
        _ask(app, "push")
    return result


# ---------------------------------------------------------------------------
# Held deletions (SYNC_DELETE_GUARD): counted, applied or restored by an admin
# ---------------------------------------------------------------------------

HELD_ACTIONS = ("apply", "restore")


class NothingHeld(SyncError):
    """An apply or restore of a resource with no deletion held."""


def _held_join(resource: str):
    """HeldDeletion joined to its record while the record is live and still linked to the
    object the listing lacked (a record deleted, re-created or re-linked since is not held)."""
    model = SYNCED_MODELS[resource]
    return (model, and_(model.id == HeldDeletion.record_id,
                        model.external_id == HeldDeletion.external_id,
                        model.deleted_at.is_(None), HeldDeletion.resource == resource))


def held_counts() -> dict:
    """{resource: number of deletions held} (one count query per resource)."""
    out = {}
    for resource in RESOURCES:
        model, on = _held_join(resource)
        out[resource] = db.session.scalar(select(func.count()).select_from(HeldDeletion)
                                          .join(model, on))
    return out


def held_deletions(sample: int = 5) -> dict:
    """{resource: {"count", "run_id", "sample": [records]}} for resources with some held."""
    out = {}
    for resource in RESOURCES:
        model, on = _held_join(resource)
        count, run_id = db.session.execute(
            select(func.count(), func.max(HeldDeletion.run_id)).select_from(HeldDeletion)
            .join(model, on)).one()
        if count:
            rows = db.session.scalars(_rows_of(model).join(HeldDeletion, on)
                                      .order_by(model.id).limit(sample)).all()
            out[resource] = {"count": count, "run_id": run_id, "sample": rows}
    return out


def resolve_held(app, resource: str, action: str) -> dict:
    """Apply the held deletions of a resource (delete here as the listing said) or restore
    them (each record pushed again as a new object; a schedule's held event and employee
    with it).  Returns {"resource", "action", "count", "also", "message"}; NothingHeld
    when none is held, LookupError / ValueError for a bad resource / action."""
    if resource not in RESOURCES:
        raise LookupError(f"unknown resource {resource!r}; use {', '.join(RESOURCES)}")
    if action not in HELD_ACTIONS:
        raise ValueError("action must be 'apply' or 'restore'")
    with _context(app), _apply_lock:
        run_id = db.session.scalar(select(func.max(HeldDeletion.run_id))
                                   .where(HeldDeletion.resource == resource))
        ids = _take_held(resource)
        if not ids:
            db.session.commit()
            raise NothingHeld(f"No {SINGULAR[resource]} deletions are held.")
        also = {}
        # history: an applied deletion is the run's listing taking effect (source "pull",
        # the run's id as ref, the admin as actor); a restore is source "restore"
        with history.source("pull" if action == "apply" else "restore", ref=run_id):
            if action == "apply":
                count = _apply_held(resource, ids)
            else:
                count, also = _restore_held(resource, ids), _restore_parents(resource, ids)
            db.session.commit()
    if action == "restore":
        _ask(app, "push")
    return {"resource": resource, "action": action, "count": count, "also": also,
            "message": _held_done_message(resource, action, count, also)}


def _take_held(resource: str, record_ids: Optional[list] = None) -> list:
    """The ids of the records held for `resource` (all, or those of `record_ids`), their
    held rows removed (locked FOR UPDATE on PostgreSQL: a second admin finds none)."""
    model, on = _held_join(resource)
    query = select(HeldDeletion.id, model.id).join(model, on)
    if record_ids is not None:
        query = query.where(_in(model.id, record_ids))
    found = db.session.execute(query.with_for_update(of=HeldDeletion)).all()
    stale = delete(HeldDeletion).where(HeldDeletion.resource == resource)
    if record_ids is not None:
        stale = stale.where(HeldDeletion.id.in_([held_id for held_id, _ in found]))
    db.session.execute(stale.execution_options(synchronize_session=False))
    return [record_id for _, record_id in found]


def _apply_held(resource: str, ids: list) -> int:
    """Delete the records here as the vendor's listing said (its tombstone rules)."""
    model = SYNCED_MODELS[resource]
    count = 0
    for start in range(0, len(ids), 200):
        exts = db.session.scalars(select(model.external_id).where(
            _in(model.id, ids[start:start + 200]))).all()
        tombs = [{"id": ext, "deleted": True, "version": None, "updated_at": None}
                 for ext in exts]
        count += sum(res.outcome == "applied"
                     for res in apply_items(resource, tombs, None, source="pull"))
    return count


def _restore_held(resource: str, ids: list) -> int:
    """Unlink the records so that the push creates each again at the vendor (their former
    ids, which a full listing found deleted there, remembered: one statement a chunk)."""
    model = SYNCED_MODELS[resource]
    for start in range(0, len(ids), 200):
        rows = db.session.scalars(_rows_of(model).where(_in(model.id, ids[start:start + 200])))
        gone = []
        for row in rows:
            if row.external_id is not None:
                gone.append(({"id": row.external_id, "deleted": True, "version": None}, row.id))
            _recreate(resource, row, None)
            row.sync_error = None
        _retire(resource, gone)
        # kept here and created again at the vendor: "restored", though no field changes
        history.record_changed(resource, [(record_id, {}) for record_id in ids[start:start + 200]],
                               action="restored", keep_empty=True)
    return len(ids)


def _restore_parents(resource: str, ids: list) -> dict:
    """Restoring schedules restores their held events and employees too (pushed first)."""
    if resource != "schedules":
        return {}
    also = {}
    for parent, column in (("events", Schedule.event_id), ("employees", Schedule.employee_id)):
        wanted = db.session.scalars(select(column).where(_in(Schedule.id, ids)).distinct()).all()
        held = _take_held(parent, wanted)
        if held:
            also[parent] = _restore_held(parent, held)
    return also


def _held_done_message(resource: str, action: str, count: int, also: dict) -> str:
    """What an apply or restore did, in a sentence for the page and the API."""
    noun = resource if count != 1 else SINGULAR[resource]
    if action == "apply":
        return (f"{count} {noun} {'were' if count != 1 else 'was'} deleted here, as the "
                "vendor's listing said.")
    extra = " and ".join(f"{n} {parent if n != 1 else SINGULAR[parent]}"
                         for parent, n in also.items())
    return (f"{count} {noun} will be created again at the vendor"
            + (f", with the {extra} they need" if extra else "") + ".")


# ---------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------

class WebhookRejected(ApiError):
    """A webhook answer other than 2xx: status, code and message (answered as an ApiError)."""


def handle_webhook(app, raw_body: bytes, headers: dict) -> dict:
    """Verify, record and apply one webhook message; returns {"outcome", ...}.

    Raises WebhookRejected(503 when sync is off, 401 bad signature, 400 not
    a message); those deliveries are logged and counted (`count_rejected`),
    never stored one row each.  A verified message whose fields break the
    rules local input follows is recorded under its webhook-id as "rejected"
    with the reasons (2xx: a retry cannot make it valid, and counts as a
    repeat).  No vendor calls: anything needing one becomes "deferred" plus
    a coalesced background pull.
    """
    import json

    from standardwebhooks import Webhook

    secret = app.config.get("WEBHOOK_SECRET")
    if not secret:
        raise WebhookRejected(503, "sync_disabled", "no WEBHOOK_SECRET is set here; retry later")
    claimed = str({k.lower(): v for k, v in headers.items()}.get("webhook-id") or "?")
    try:
        Webhook(secret).verify(raw_body, headers, json_parse=False)
    except Exception as exc:  # noqa: BLE001 - any verification failure is a 401
        count_rejected("invalid_signature",
                       f"401: verification failed: {exc} (webhook-id {claimed[:80]!r})")
        raise WebhookRejected(401, "invalid_signature",
                              f"webhook verification failed: {exc}") from None
    if not is_enabled(app):
        raise WebhookRejected(503, "sync_disabled", "sync is off here; retry later")
    try:
        message = json.loads(raw_body)
        resource, action, data = _parse_message(message)
    except (ValueError, RecursionError, WebhookRejected) as exc:
        reason = exc.message if isinstance(exc, WebhookRejected) else "the body is not JSON"
        count_rejected("not_a_message", f"400: {reason} (webhook-id {claimed[:80]!r})")
        if isinstance(exc, WebhookRejected):
            raise
        raise WebhookRejected(400, "bad_request", reason) from None
    problems = vendor_field_problems(resource, data, deleted=action == "deleted")
    webhook_id = claimed
    for attempt in range(3):
        if db.session.scalar(select(WebhookMessage.id)
                             .where(WebhookMessage.webhook_id == webhook_id)) is not None:
            count_delivery("duplicate", webhook_id, "already received, nothing changed", message)
            return {"outcome": "duplicate"}
        try:
            with _apply_lock, history.source("webhook", actor=None, ref=webhook_id[:255]):
                if problems:
                    outcome, detail = "rejected", "invalid fields: " + "; ".join(problems)
                    log.warning("webhook %s rejected: %s", webhook_id[:80], detail[:500])
                else:
                    data = parse_object(data)
                    if action == "deleted":
                        data["deleted"] = True
                    outcome, detail = _apply_webhook(app, resource, action, data)
                db.session.add(WebhookMessage(
                    webhook_id=webhook_id[:255], type=message["type"][:64],
                    object_id=str(data["id"])[:64], version=_version(data), outcome=outcome,
                    detail=detail[:1000] if detail else detail))
                db.session.commit()
            break
        except IntegrityError:
            db.session.rollback()
    else:
        raise WebhookRejected(503, "busy", "could not record the message; retry")
    if outcome == "deferred":
        _ask(app, "pull")
    if outcome == "rejected":
        return {"outcome": outcome, "detail": detail}
    return {"outcome": outcome}


def count_rejected(reason: str, detail: str) -> None:
    """Log a rejected delivery and count it in the row of this minute and reason."""
    log.warning("webhook delivery rejected (%s): %s", reason, detail[:500])
    count_delivery("rejected", reason, detail)


def count_delivery(outcome: str, key: str, detail: str, message: Optional[dict] = None) -> None:
    """Count a rejected or repeated delivery for the admin page: one row per minute and
    `key` (the reason, or the repeated webhook-id), whose `count` goes up by one.

    The row's webhook_id is `<key>#<outcome>-<minute>`, so the message's own
    webhook-id stays free for the real, verified message, and a flood of junk
    adds one row a minute, not one per request.
    """
    now = utcnow()
    row_id = f"{key[:200]}#{outcome}-{now:%Y%m%dT%H%MZ}"
    data = message.get("data") if isinstance(message, dict) else None
    data = data if isinstance(data, dict) else {}
    values = {"detail": detail[:1000], "received_at": now}
    for attempt in range(3):
        try:
            counted = db.session.execute(
                update(WebhookMessage).where(WebhookMessage.webhook_id == row_id)
                .values(count=WebhookMessage.count + 1, **values)
                .execution_options(synchronize_session=False)).rowcount
            if not counted:
                db.session.add(WebhookMessage(
                    webhook_id=row_id, outcome=outcome, count=1,
                    type=str((message or {}).get("type") or "?")[:64] if message else "?",
                    object_id=str(data["id"])[:64] if data.get("id") else None,
                    version=data.get("version") if isinstance(data.get("version"), int) else None,
                    **values))
            db.session.commit()
            return
        except IntegrityError:  # another process inserted this minute's row first
            db.session.rollback()
        except Exception:  # noqa: BLE001 - the log must never change the answer
            db.session.rollback()
            log.exception("could not record a %s webhook delivery", outcome)
            return


def _parse_message(message: Any) -> tuple[str, str, dict]:
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise WebhookRejected(400, "bad_request", "not a webhook message: no type")
    name, _, action = message["type"].partition(".")
    if name not in PLURAL or action not in ACTIONS:
        raise WebhookRejected(400, "bad_request",
                              f"unknown message type {message['type'][:64]!r}")
    data = message.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise WebhookRejected(400, "bad_request", "data must be an object with an id")
    return PLURAL[name], action, data


# The vendor contract's rules for an object's fields, which are also the rules local
# input follows (the JSON API's checks and the columns' sizes).
REQUIRED_FIELDS = {"employees": ("name",),
                   "events": ("project_ref_num", "project_name", "start_datetime", "due_datetime"),
                   "schedules": ("event_id", "employee_id", "start_datetime")}
MINIMUMS = {"project_ref_num": 1, "estimated_minutes": 0}
INT32 = inputs.INT_MAX
VENDOR_ID_LENGTH = 64
# The instants local input may carry too (inputs.py): shown in any zone, a week added, still a date.
EARLIEST, LATEST = inputs.MIN_INSTANT, inputs.MAX_INSTANT - timedelta(microseconds=1)


def vendor_field_problems(resource: str, data: dict, deleted: bool = False) -> list[str]:
    """What is wrong with a vendor object's fields (empty when nothing is)."""
    problems = [f"id must be at most {VENDOR_ID_LENGTH} characters"] \
        if len(data["id"]) > VENDOR_ID_LENGTH else []
    for name in TIMESTAMP_FIELDS:
        value = data.get(name)
        if value is None:
            continue
        try:
            parsed = parse_timestamp(value)
        except (TypeError, ValueError, OverflowError):
            problems.append(f"{name} is not an RFC 3339 timestamp within the calendar")
            continue
        if not EARLIEST <= parsed <= LATEST:
            problems.append(f"{name} is outside the dates this app can store")
    if deleted:
        return problems
    model = SYNCED_MODELS[resource]
    for name in FIELDS[resource]:
        value = data.get(name)
        if value is None:
            if name in REQUIRED_FIELDS[resource]:
                problems.append(f"{name} is required")
            continue
        if name in DATETIME_FIELDS:
            continue  # checked above
        if resource == "schedules" and name != "start_datetime":
            if not isinstance(value, str) or not 0 < len(value) <= VENDOR_ID_LENGTH:
                problems.append(f"{name} must be a vendor id of 1-{VENDOR_ID_LENGTH} characters")
            continue
        problems.extend(_column_problems(model.__table__.columns[name], name, value))
    if resource == "events" and data.get("event_type") is not None \
            and data["event_type"] not in EVENT_TYPES:
        problems.append(f"event_type must be one of {', '.join(EVENT_TYPES)}")
    return problems


def _column_problems(column, name: str, value: Any) -> list[str]:
    """A value's problems for its column: type, size, range, text safe to store."""
    kind = column.type.python_type
    if kind is bool:
        return [] if isinstance(value, bool) else [f"{name} must be true or false"]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{name} must be an integer"]
        low = MINIMUMS.get(name, -INT32 - 1)
        if not low <= value <= INT32:
            return [f"{name} must be between {low} and {INT32}"]
        return []
    if not isinstance(value, str):
        return [f"{name} must be a string"]
    try:
        inputs.check_text(value, name)
    except inputs.BadInput as exc:
        return [exc.message]
    if not value.strip() and not column.nullable:
        return [f"{name} must not be empty"]
    length = getattr(column.type, "length", None)
    if length is not None and len(value) > length:
        return [f"{name} must be at most {length} characters ({len(value)} given)"]
    return []


def _apply_webhook(app, resource: str, action: str, data: dict) -> tuple[str, Optional[str]]:
    results = apply_items(resource, [data], None, source="webhook")
    res = results[0]
    outcome = {"local_wins": "conflict", "skipped": "stale"}.get(res.outcome, res.outcome)
    if res.outcome == "local_wins":
        _ask(app, "push")
    return outcome, res.detail


# ---------------------------------------------------------------------------
# Soon-runs and the scheduler: sync_scheduler.py installs them per app
# ---------------------------------------------------------------------------

def _scheduler(app):
    """The app's SyncScheduler (app.extensions, installed by sync_scheduler.init_app), or None."""
    return app.extensions.get("sync_scheduler")


def _ask(app, kind: str) -> None:
    """Ask for one coalesced push or pull run soon (nothing without a scheduler)."""
    scheduler = _scheduler(app)
    if scheduler is not None:
        scheduler.request(kind)


def next_run_at(app) -> Optional[datetime]:
    """When the interval job runs next (None without a running scheduler)."""
    scheduler = _scheduler(app)
    return scheduler.next_run_at() if scheduler is not None else None


def scheduler_running(app) -> bool:
    scheduler = _scheduler(app)
    return bool(scheduler is not None and scheduler.running)


def stop_runs() -> None:
    """Process shutdown: runs in progress stop at their next checkpoint."""
    _stopping.set()


def wait_stopping(timeout: float) -> bool:
    """Wait up to `timeout` seconds for a process shutdown (stop_runs); True once stopping."""
    return _stopping.wait(timeout)


def allow_runs() -> None:
    """A scheduler starts in this process: runs may go on again."""
    _stopping.clear()


PRUNE_BATCH = 5000  # record_history rows deleted per statement (and commit)


def prune_history(app, now: Optional[datetime] = None) -> dict:
    """Delete webhook records, retired vendor ids and finished runs older than
    SYNC_HISTORY_DAYS (one DELETE each), and per-record history older than HISTORY_DAYS in
    bounded batches (PRUNE_BATCH rows a DELETE, each committed), so the tables stay bounded."""
    now = now or utcnow()
    conf = settings(app)
    cutoff = now - timedelta(days=conf["history_days"])
    with _context(app):
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


# ---------------------------------------------------------------------------
# Status and health
# ---------------------------------------------------------------------------

def status_counts() -> dict:
    """Per resource {synced, pending, failed, conflict}: one GROUP BY query per model.

    Counted: live rows, plus soft-deleted rows whose delete still has to
    reach the vendor (not yet synced); rows deleted and synced are history.
    """
    out = {}
    for resource, model in SYNCED_MODELS.items():
        counts = {s: 0 for s in ("synced", "pending", "failed", "conflict")}
        rows = db.session.execute(
            select(model.sync_status, func.count()).where(
                or_(model.deleted_at.is_(None), model.sync_status != "synced"))
            .group_by(model.sync_status)).all()
        for status, n in rows:
            counts[status] = counts.get(status, 0) + n
        out[resource] = counts
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
    with _context(app):
        run = last_run_shown()
        running = _lease_held()
        nxt = next_run_at(app)
        return {"enabled": is_enabled(app), "running": running,
                "policy": settings(app)["policy"],
                "last_run": run.to_dict() if run is not None else None,
                "next_run_at": format_timestamp(nxt) if nxt else None,
                "counts": status_counts(), "held": held_counts()}


_health_lock = threading.Lock()  # guards each app's app.extensions["sync_health"]


def vendor_health(app) -> dict:
    """{reachable, latency_ms, error}, cached SYNC_HEALTH_CACHE_SECONDS in the app's extensions."""
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
        with _context(app):
            db.session.execute(select(1))
            counts = status_counts()
            run = last_run()
    except Exception:  # noqa: BLE001
        db_ok, counts, run = False, {}, None
    api = vendor_health(app) if is_enabled(app) else {"reachable": None, "latency_ms": None,
                                                      "error": None}
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
