"""Deletions a full listing would make, held by SYNC_DELETE_GUARD, and an admin's answer.

A full listing that misses more than SYNC_DELETE_GUARD of a resource's linked records
(and at least SYNC_DELETE_GUARD_MIN) deletes none: `deletions_after_full_listing`
holds them; `held_counts`/`held_deletions` show them; `resolve_held` applies them
(the listing's tombstones) or restores the records (created again at the vendor).
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import and_, delete, func, insert, or_, select

import history
from models import SYNCED_MODELS, HeldDeletion, Schedule, db, in_list, utcnow

from .errors import NothingHeld
from .context import RESOURCES, RunStats, SINGULAR, apply_lock, app_context, log
from .soon import ask_soon
from .mapping import rows_of
from .rows import retire
from .apply import recreate, apply_items


def deletions_after_full_listing(ctx, resource: str, seen: set, started: datetime) -> None:
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


def held_message(stats: RunStats, conf: dict) -> Optional[str]:
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


HELD_ACTIONS = ("apply", "restore")


def _held_join(resource: str):
    """HeldDeletion joined to its record while the record is live and still linked to the
    object the listing lacked (a record deleted, re-created or re-linked since is not held)."""
    model = SYNCED_MODELS[resource]
    return (model, and_(model.id == HeldDeletion.record_id,
                        model.external_id == HeldDeletion.external_id,
                        model.deleted_at.is_(None), HeldDeletion.resource == resource))


def held_counts() -> dict:
    """{resource: number of deletions held}: one query, a count per resource."""
    counts = []
    for resource in RESOURCES:
        model, on = _held_join(resource)
        counts.append(select(func.count()).select_from(HeldDeletion).join(model, on)
                      .scalar_subquery())
    return dict(zip(RESOURCES, db.session.execute(select(*counts)).one()))


def held_deletions(sample: int = 5) -> dict:
    """{resource: {"count", "run_id", "sample": [records]}} for resources with some held."""
    out = {}
    for resource in RESOURCES:
        model, on = _held_join(resource)
        count, run_id = db.session.execute(
            select(func.count(), func.max(HeldDeletion.run_id)).select_from(HeldDeletion)
            .join(model, on)).one()
        if count:
            rows = db.session.scalars(rows_of(model).join(HeldDeletion, on)
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
    with app_context(app), apply_lock:
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
        ask_soon(app, "push")
    return {"resource": resource, "action": action, "count": count, "also": also,
            "message": _held_done_message(resource, action, count, also)}


def _take_held(resource: str, record_ids: Optional[list] = None) -> list:
    """The ids of the records held for `resource` (all, or those of `record_ids`), their
    held rows removed (locked FOR UPDATE on PostgreSQL: a second admin finds none)."""
    model, on = _held_join(resource)
    query = select(HeldDeletion.id, model.id).join(model, on)
    if record_ids is not None:
        query = query.where(in_list(model.id, record_ids))
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
            in_list(model.id, ids[start:start + 200]))).all()
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
        rows = db.session.scalars(rows_of(model).where(in_list(model.id, ids[start:start + 200])))
        gone = []
        for row in rows:
            if row.external_id is not None:
                gone.append(({"id": row.external_id, "deleted": True, "version": None}, row.id))
            recreate(resource, row, None)
            row.sync_error = None
        retire(resource, gone)
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
        wanted = db.session.scalars(select(column).where(in_list(Schedule.id, ids)).distinct()).all()
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
