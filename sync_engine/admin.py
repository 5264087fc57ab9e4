"""Admin actions on records: retry the failed ones, list and resolve conflicts.

`resolve_conflict` keeps the local version (pending again, pushed over the vendor's)
or the vendor's (applied here with the rules of `apply`); both are history from
source "conflict".
"""
from __future__ import annotations

from sqlalchemy import or_, select, update

import history
from api_service import parse_object
from models import SYNCED_MODELS, Schedule, SyncMixin, db

from .errors import DayTaken
from .context import RESOURCES, SINGULAR, apply_lock, app_context, stamp
from .soon import ask_soon
from .mapping import differing_fields, jsonable, local_payload, remote_values, vendor_version
from .rows import Refs
from .apply import (apply_remote, day_clash, load_refs, recreate, refs_known,
                    soft_delete_from_vendor)


def retry_failed(app) -> int:
    """Every failed record back to pending, attempts 0, a fresh key; returns how many."""
    total = 0
    with app_context(app):
        for model in SYNCED_MODELS.values():
            total += db.session.execute(
                update(model).where(model.sync_status == "failed")
                .values(**SyncMixin.RETRY_VALUES)
                .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
    if total:
        ask_soon(app, "push")
    return total


def retry_record(app, record) -> bool:
    """One failed record back to pending and a push soon; False (unchanged) if it was not failed."""
    if record.sync_status != "failed":
        return False
    record.reset_for_retry()
    db.session.commit()
    ask_soon(app, "push")
    return True


def list_conflicts(app, limit: int = 500) -> list[dict]:
    """Records in conflict: local and vendor versions side by side, and what differs."""
    out = []
    with app_context(app):
        for resource, model in SYNCED_MODELS.items():
            for row in db.session.scalars(select(model).where(model.sync_status == "conflict")
                                            .order_by(model.id).limit(limit)):
                remote = row.conflict_remote or {}
                local = jsonable(local_payload(resource, row))
                local.update({"id": row.id, "external_id": row.external_id,
                              "updated_at": stamp(row.updated_at),
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
        refs = load_refs([remote], None) if resource == "schedules" else Refs()
        if resource != "schedules" or refs_known(remote, refs):
            theirs = remote_values(resource, remote, refs)  # local ids, as the fields here
    changes = {name: (value, getattr(row, name)) for name, value in theirs.items()
               if value != getattr(row, name)}
    history.record_changed(resource, [(row.id, changes)], keep_empty=True)


def _keep_local(resource: str, row, remote: dict) -> None:
    """An admin kept the local version: pending again, over the vendor's version (created
    again when the vendor deleted it; a blocking schedule's delete goes first)."""
    _history_kept_local(resource, row, remote)
    if row.deleted_at is not None and remote.get("blocking_schedule_id"):
        _delete_schedules_of(resource, row, remote["blocking_schedule_id"])
    if remote.get("deleted") or not remote:
        recreate(resource, row, remote if remote.get("deleted") else None)
    else:
        row.remote_version = vendor_version(remote)
        row.reset_for_retry()
    row.conflict_remote = None


def _keep_remote(resource: str, row, remote: dict) -> None:
    """An admin kept the vendor's version: applied here (RuntimeError when its links are
    not known here yet, DayTaken when it would take an employee's day held here)."""
    if remote.get("deleted"):
        soft_delete_from_vendor(resource, row, remote)
        return
    refs = load_refs([remote], None) if resource == "schedules" else None
    if refs is not None and not refs_known(remote, refs):
        raise RuntimeError("the vendor version names an event or employee not "
                           "known here yet; run a sync first")
    taken = day_clash(row, remote, refs) if refs is not None else None
    if taken:
        raise DayTaken(f"cannot keep the vendor version: {taken}; unschedule or "
                       "move that schedule first")
    row.deleted_at = None
    apply_remote(resource, row, remote, refs)


def resolve_conflict(app, resource: str, record_id: int, keep: str):
    """keep=local: push it over the vendor's version; keep=remote: apply the vendor's."""
    if resource not in RESOURCES:
        raise LookupError(f"unknown resource {resource!r}")
    if keep not in ("local", "remote"):
        raise ValueError("keep must be 'local' or 'remote'")
    model = SYNCED_MODELS[resource]
    with app_context(app), history.source("conflict", ref=keep):
        with apply_lock:
            row = db.session.get(model, record_id)
            if row is None:
                raise LookupError(f"{SINGULAR[resource]} {record_id} not found")
            if row.sync_status != "conflict":
                raise RuntimeError(f"{SINGULAR[resource]} {record_id} is not in conflict")
            remote = parse_object(row.conflict_remote or {})
            if keep == "local":
                _keep_local(resource, row, remote)
            else:
                _keep_remote(resource, row, remote)
            db.session.commit()
            result = row
    if keep == "local":
        ask_soon(app, "push")
    return result
