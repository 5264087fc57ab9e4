"""Per-record history: who changed an employee, event or schedule, when, how, and what.

One place computes it.  ORM writes are recorded by a session hook (`after_flush`):
every new, changed or deleted synced object's tracked fields are compared with their
old values (the ORM's attribute history) and the flush's entries are written with one
executemany on the flush's connection, in the same transaction as the change.  Bulk
Core paths (a pull's inserts, a CSV import's new events) cannot be seen by the hook:
they hand their rows to `record_created` / `write`, again one executemany per batch.

Who wrote is the session's *source*: `with history.source("api", actor=name):` (or
`set_source` for a whole request).  A request that writes with no source set fails
loudly; outside a request (a CLI command, a script) the source is "cli".

Only user-visible fields are history (`TRACKED`): sync bookkeeping (sync_status,
external_id, remote_version, attempts, errors, timestamps) never is, so a push that
links a record to its vendor id records nothing.  Setting `deleted_at` is a `deleted`
entry, clearing it a `restored` one.

Imports only models (and Flask for the request check).
"""
from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, Iterable, Optional

from flask import current_app, has_request_context
from flask.globals import request_ctx
from sqlalchemy import event as sa_event
from sqlalchemy import insert, inspect
from sqlalchemy.orm import Session

from bulk_rows import insert_rows
from models import (Employee, Event, RecordHistory, Schedule, db, iso, utcnow,
                    workday_names)

ACTIONS = ("created", "changed", "deleted", "restored")
SOURCES = ("page", "api", "csv", "pull", "push", "webhook", "conflict", "restore", "cli",
           "planner")
TRACKED = {
    "employees": ("code", "name", "email", "active", "workdays", "max_days_per_week"),
    "events": ("project_ref_num", "project_name", "event_type", "store_number", "store_name",
               "location_mvid", "start_datetime", "due_datetime", "estimated_minutes"),
    "schedules": ("event_id", "employee_id", "start_datetime"),
}
# Tracked when they change, not listed on creation (the availability defaults: noise there).
CHANGE_ONLY = frozenset(("workdays", "max_days_per_week"))
RESOURCE_OF = {Employee: "employees", Event: "events", Schedule: "schedules"}
INFO_KEY = "history_source"
_KEEP = object()


class NoSource(RuntimeError):
    """A request wrote a record without saying which path it is (a bug: set a source)."""


# ---------------------------------------------------------------------------
# The source: which write path, who, and its reference
# ---------------------------------------------------------------------------

def set_source(name: str, actor: Optional[str] = None, ref: Any = None) -> None:
    """Every write of the current session from now on comes from `name` (until cleared)."""
    if name not in SOURCES:
        raise ValueError(f"unknown history source {name!r}")
    db.session.info[INFO_KEY] = (name, actor, None if ref is None else str(ref)[:255])


def clear_source() -> None:
    db.session.info.pop(INFO_KEY, None)


def current() -> Optional[tuple]:
    return db.session.info.get(INFO_KEY)


@contextmanager
def source(name: str, actor: Any = _KEEP, ref: Any = None):
    """Writes inside the block come from `name`; the actor is kept from the enclosing
    source (the signed-in user of the request) unless given."""
    before = current()
    if actor is _KEEP:
        actor = before[1] if before else None
    set_source(name, actor, ref)
    try:
        yield
    finally:
        if before is None:
            clear_source()
        else:
            db.session.info[INFO_KEY] = before


def import_ref(filename: Optional[str]) -> str:
    """A CSV import's ref: a new id and the file's name ("3f2a9c1e07b4:WorkBankVisits.csv")."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip() or "an upload"
    return f"{uuid.uuid4().hex[:12]}:{name[:200]}"


def import_file(ref: Optional[str]) -> Optional[str]:
    """The file name in a CSV import's ref."""
    return ref.split(":", 1)[1] if ref and ":" in ref else None


def _source_of(session: Session) -> tuple:
    found = session.info.get(INFO_KEY)
    if found is not None:
        return found
    if has_request_context() and request_ctx.app is current_app._get_current_object():
        # (a request of another app, e.g. a test's vendor sandbox writing here, is not ours)
        raise NoSource("a request changed a record with no history source set")
    return ("cli", None, None)


# ---------------------------------------------------------------------------
# Values and entries
# ---------------------------------------------------------------------------

def jsonable(value: Any) -> Any:
    """A field's value as JSON: datetimes as ISO UTC strings, dates as YYYY-MM-DD."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def entry(resource: str, record_id: int, action: str, changes: dict, src: tuple,
          at: Optional[datetime] = None) -> dict:
    """One history row's values (for `write`)."""
    name, actor, ref = src
    return {"resource": resource, "record_id": record_id, "at": at or utcnow(),
            "action": action, "source": name, "actor": actor, "ref": ref,
            "changes": changes}


_PLAIN = frozenset((str, int, float, bool))


def created_changes(resource: str, values: dict) -> dict:
    """A new record's tracked fields that have a value, each as [null, value]."""
    return {name: [None, value if value.__class__ in _PLAIN else jsonable(value)]
            for name in TRACKED[resource] if (value := values.get(name)) is not None}


def write(connection, rows: list[dict]) -> None:
    """Insert history rows in one COPY on PostgreSQL, one driver-level executemany on
    SQLite (bulk_rows.insert_rows: the entry time, one value a batch, converted once),
    else one SQLAlchemy executemany (nothing when there are none)."""
    if not rows or insert_rows(RecordHistory.__table__, rows, connection):
        return
    connection.execute(insert(RecordHistory.__table__), rows)


def created_entries(resource: str, ids_values: Iterable[tuple[int, dict]]) -> list[dict]:
    """The entries of records a bulk Core INSERT created ((id, inserted values) each)."""
    ids_values = list(ids_values)
    if not ids_values:
        return []
    (name, actor, ref), at = _source_of(db.session()), utcnow()
    return [{"resource": resource, "record_id": record_id, "at": at, "action": "created",
             "source": name, "actor": actor, "ref": ref,
             "changes": created_changes(resource, values)}
            for record_id, values in ids_values]


def record_created(resource: str, ids_values: Iterable[tuple[int, dict]]) -> None:
    """History of records a bulk Core INSERT created: one executemany."""
    write(db.session.connection(), created_entries(resource, ids_values))


def record_changed(resource: str, rows: Iterable[tuple[int, dict]], action: str = "changed",
                   keep_empty: bool = False) -> None:
    """History of records changed outside the ORM's view ({field: (old, new)} each), in
    one executemany; a record with no change is left out unless `keep_empty` (an admin's
    decision that changes no field: a conflict kept local, a held deletion restored)."""
    wanted = [(record_id, changes) for record_id, changes in rows if changes or keep_empty]
    if not wanted:
        return
    src, at = _source_of(db.session()), utcnow()
    write(db.session.connection(), [
        entry(resource, record_id, action,
              {k: [jsonable(old), jsonable(new)] for k, (old, new) in changes.items()}, src, at)
        for record_id, changes in wanted])


# ---------------------------------------------------------------------------
# The session hook: every ORM write of a synced record
# ---------------------------------------------------------------------------

def _changes(state, resource: str) -> dict:
    out = {}
    for name in TRACKED[resource]:
        hist = state.attrs[name].history
        if not hist.has_changes():
            continue
        old = hist.deleted[0] if hist.deleted else None
        new = hist.added[0] if hist.added else None
        if old != new and name == "workdays":  # as the API shows them: ["mon", ...]
            out[name] = [None if old is None else workday_names(old), workday_names(new)]
        elif old != new:
            out[name] = [jsonable(old), jsonable(new)]
    return out


def _entry_of(obj, resource: str, is_new: bool, at: datetime) -> Optional[dict]:
    """The object's entry (its source filled in by the caller), or None when no tracked
    field changed."""
    src = (None, None, None)
    state = inspect(obj)
    if is_new:
        if obj.deleted_at is not None:  # born hidden (a sync conflict's row): not a record yet
            return None
        values = {name: getattr(obj, name) for name in TRACKED[resource] if name not in CHANGE_ONLY}
        return entry(resource, obj.id, "created", created_changes(resource, values), src, at)
    changes = _changes(state, resource)
    deleted = state.attrs["deleted_at"].history
    action = "changed"
    if deleted.has_changes():
        was = deleted.deleted[0] if deleted.deleted else None
        now = deleted.added[0] if deleted.added else None
        if was is None and now is not None:
            action = "deleted"
        elif was is not None and now is None:
            action = "restored"
    if action == "changed" and not changes:
        return None
    return entry(resource, obj.id, action, changes, src, at)


@sa_event.listens_for(Session, "after_flush")
def _record_flush(session: Session, _flush_context) -> None:
    """Write the flush's history rows (the objects still show their old values here)."""
    found = []
    for is_new, objects in ((True, session.new), (False, session.dirty)):
        for obj in objects:
            resource = RESOURCE_OF.get(type(obj))
            if resource is not None:
                found.append((obj, resource, is_new))
    if not found:
        return
    at, rows = utcnow(), []
    for obj, resource, is_new in found:
        if is_new or session.is_modified(obj):
            row = _entry_of(obj, resource, is_new, at)
            if row is not None:
                rows.append(row)
    if rows:
        name, actor, ref = _source_of(session)
        for row in rows:
            row.update(source=name, actor=actor, ref=ref)
        write(session.connection(), rows)
