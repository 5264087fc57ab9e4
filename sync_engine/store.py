"""Storing what the vendor answered a push: the record linked, versioned and synced.

A push's successful write is a `PushResult`; `queue_result` keeps it for the end of
the push batch (or stores it at once outside one), `store_queued_results` stores a
batch's in one transaction (`store_batch`: the plain ones in one UPDATE, then
`store_result_now` one by one for the rest).  The record is re-read under the apply
lock first (`reread`): a decision taken while the request was in flight stands.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, Optional

from sqlalchemy import bindparam, or_, select, update

import history
from models import day_taken_words, Employee, Schedule, SyncMixin, db, utcnow

from .context import apply_lock
from .mapping import rows_of, vendor_version, jsonable, local_payload
from .apply import count_repair, day_conflict


class PushResult(NamedTuple):
    """A create or update the vendor accepted, waiting to be stored."""

    resource: str
    model: Any
    row_id: int
    obj: dict  # the vendor's answer
    sent: Optional[datetime]  # the row's updated_at when it was sent


def store_queued_results(ctx) -> None:
    """Store the batch's successful writes in one transaction (their keys were stored before)."""
    results, ctx.results = ctx.results or [], None
    if not results:
        return
    with apply_lock:
        try:
            for result in store_batch(results):
                store_result_now(result, ctx=ctx)
            db.session.commit()
        except BaseException:
            db.session.rollback()  # the keys stay: the next run replays these creates
            raise


def store_batch(results: list[PushResult]) -> list[PushResult]:
    """The batch's answers in one owner look-up and one UPDATE executemany (building a
    statement per record was a third of a push).  Returns the rows for `store_result_now`:
    an object another row already holds, or a row changed or decided (deleted, in
    conflict) while in flight."""
    model = results[0].model
    owners = dict(db.session.execute(select(model.external_id, model.id).where(
        model.external_id.in_({result.obj["id"] for result in results}))).all())
    simple, rare, seen = [], [], set()
    for result in results:
        ext = result.obj["id"]
        plain = owners.get(ext, result.row_id) == result.row_id and ext not in seen
        (simple if plain else rare).append(result)
        seen.add(ext)
    if simple:
        rare += _store_plain(model, simple)
    return rare


def _store_plain(model, simple: list[PushResult]) -> list[PushResult]:
    """One UPDATE executemany for answers no other row holds; returns those it did not
    mark synced (the row changed or was decided while in flight)."""
    table = model.__table__
    db.session.execute(
        update(table).where(table.c.id == bindparam("b_id"),
                            table.c.updated_at == bindparam("b_sent"),
                            table.c.deleted_at.is_(None), table.c.sync_status == "pending",
                            or_(table.c.remote_version.is_(None),
                                table.c.remote_version <= bindparam("b_version")))
        .values(external_id=bindparam("b_ext"), remote_version=bindparam("b_version"),
                **SyncMixin.synced_values()),
        [{"b_id": r.row_id, "b_sent": r.sent, "b_version": vendor_version(r.obj),
          "b_ext": r.obj["id"]} for r in simple])
    state = {row_id: (ext, status, version) for row_id, ext, status, version in
             db.session.execute(select(model.id, model.external_id, model.sync_status,
                                         model.remote_version)
                                  .where(model.id.in_([r.row_id for r in simple])))}
    return [r for r in simple
            if state.get(r.row_id) != (r.obj["id"], "synced", vendor_version(r.obj))]


def queue_result(ctx, result: PushResult) -> None:
    """Count a successful write and keep it for the end of the push batch (stored at once,
    in its own commit, when no batch is open)."""
    ctx.stats.pushed += 1
    if ctx.results is not None:
        ctx.results.append(result)
        return
    with apply_lock:
        store_result_now(result)
        db.session.commit()


def reread(model, row_id: int):
    """The row as the database holds it now, locked as the pull and the webhook lock it
    (FOR UPDATE on PostgreSQL; the caller holds `apply_lock`)."""
    return db.session.scalar(rows_of(model).where(model.id == row_id).with_for_update()
                             .execution_options(populate_existing=True))


def decided_elsewhere(row) -> bool:
    """Did a newer decision (a vendor delete applied, a conflict, a change adopted) take the
    row out of the push while its request was in flight?  Then its rules stand."""
    return row is None or row.deleted_at is not None or row.sync_status != "pending"


def store_result_now(result: PushResult, ctx=None) -> None:
    """Write a successful answer after re-reading the row (the caller holds apply_lock and
    commits).  Synced only if nothing changed meanwhile; changed here: stays pending with
    the answer's id and version (pushed again); deleted meanwhile by the vendor's rules: the
    delete stands, and an object our create made is a stray: linked and deleted there."""
    resource, model, row_id, obj, sent = result
    version = vendor_version(obj)
    owner_id = db.session.scalar(select(model.id).where(model.external_id == obj["id"],
                                                        model.id != row_id))
    if owner_id is not None:
        merge_duplicate(resource, model, db.session.get(model, owner_id), row_id)
    row = reread(model, row_id)
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
        row.mark_pending("created at the vendor after it was deleted here: deleting it there")
        count_repair(ctx, resource, row_id, f"repaired: the create of #{row_id} was answered "
                                             f"after it was deleted here; vendor object "
                                             f"{obj['id']} is deleted there")
    elif row.external_id is None:  # in conflict or failed meanwhile: keep the link known
        row.external_id = obj["id"]


def merge_duplicate(resource, model, other, row_id) -> None:
    """A pull/webhook inserted the object our create made before we stored the answer:
    move its links to our row and retire it (never hard-deleted)."""
    if resource == "employees":
        hide_day_clashes(other.id, row_id)
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


def hide_day_clashes(from_id: int, to_id: int) -> None:
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
        day_conflict("schedules", sched, remote,
                     day_taken_words(employee.name, sched.local_day,
                                     f"schedule #{held[sched.local_day]}", rule=True), None)
    db.session.flush()


def link_replayed_create(resource, model, row_id: int, obj: dict) -> None:
    """A create replayed for a record deleted here before its answer was stored: link the
    record to the object (so its delete reaches the vendor).  A copy a webhook or pull
    inserted meanwhile (the create had reached the vendor) is merged into it: the local
    delete, the newer decision, stands."""
    owner_id = db.session.scalar(select(model.id).where(model.external_id == obj["id"],
                                                        model.id != row_id))
    if owner_id is not None:
        merge_duplicate(resource, model, db.session.get(model, owner_id), row_id)
    row = reread(model, row_id)
    if row.external_id is None:
        row.external_id, row.remote_version = obj["id"], vendor_version(obj)
