"""Push: pending records sent to the vendor, batch by batch, phase by phase.

`push_all` sends schedule deletes, then creates and changes by dependency, then the
other deletes; `push_resource` sends a phase's due records in keyset batches (over the
client's workers when it has several).  The vendor's answers are stored by `store`;
its refusals (412, 404, 409 duplicate or in_use) go through the conflict rule of
`apply.reconcile`.
"""
from __future__ import annotations

import threading
import uuid
from contextlib import closing
from datetime import timedelta

from sqlalchemy import literal_column, or_, select, union_all, update
from sqlalchemy.orm import joinedload

import api_service
import history
from api_service import (AuthError, Duplicate, InUse, NotFound, RateLimited, TransientError,
                         VendorError, VersionMismatch)
from models import SYNCED_MODELS, Event, Schedule, db, utcnow

from .errors import LeaseLost, SyncDisabled
from .context import (RESOURCES, RunContext, RunStats, SINGULAR, apply_lock, stop_if_vendor_down,
                      stamp, backoff_delay, log, settings)
from .mapping import (remote_updated, vendor_version, differing_fields, jsonable, local_payload,
                      rows_of)
from .apply import (adopt, apply_remote, count_conflict, load_refs, reconcile,
                    soft_delete_from_vendor)
from .store import (PushResult, decided_elsewhere, link_replayed_create, queue_result, reread,
                    store_queued_results)


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
    in ONE commit at the end of the batch (`store_queued_results`).  Failures are
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
            if resource == "schedules":
                ctx.deletes_waiting = _schedule_deletes_pending()
        ctx.results = []
        try:
            _push_batch(ctx, resource, model, ids, phase)
        except BaseException:
            db.session.rollback()
            store_queued_results(ctx)
            raise
        store_queued_results(ctx)
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
        held = _held_rows(model, ids)  # noqa: F841
        for row_id in ids:
            _push_one(ctx, resource, model, row_id, phase)
            ctx.checkpoint()
        return
    _push_concurrently(ctx, resource, ids, phase)


def _push_concurrently(ctx: RunContext, resource: str, ids: list, phase: str) -> None:
    """`_push_batch` over the client's workers, each chunk in a session of its own."""
    model = SYNCED_MODELS[resource]
    merging = threading.Lock()

    def send(chunk):  # a worker's share: one session, its rows loaded in one query
        worker = RunContext(ctx.app, ctx.client, None, RunStats(run_id=ctx.stats.run_id),
                            ctx.conf, results=ctx.results, deletes_waiting=ctx.deletes_waiting)
        try:
            with ctx.app.app_context(), history.source("push", actor=None,
                                                       ref=ctx.stats.run_id):
                held = _held_rows(model, chunk)  # noqa: F841
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


def _held_rows(model, ids: list) -> list:
    """The rows of a batch (a schedule with its event and employee), loaded in one query
    without `Event.is_scheduled`: the push never reads it, and its EXISTS ran for each row."""
    query = rows_of(model)
    if model is Schedule:
        query = query.options(joinedload(Schedule.event).defer(Event.is_scheduled))
    return db.session.scalars(query.where(model.id.in_(ids))).all()


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
        stop_if_vendor_down(ctx, exc, f"pushing {SINGULAR[resource]} #{row_id}")
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


def _transient(ctx, resource, model, row_id, exc) -> None:
    """Stay pending; try again after a growing backoff (same idempotency key)."""
    row = db.session.get(model, row_id)
    delay = backoff_delay((row.sync_attempts or 0) + 1, ctx.conf["backoff_base"],
                          ctx.conf["backoff_max"])
    if getattr(exc, "retry_after", None):
        delay = max(delay, float(exc.retry_after))
    row.back_off(utcnow() + timedelta(seconds=delay), f"will retry: {exc}")
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


def _push_upsert(ctx, resource, model, row, retried: bool = False) -> None:
    """Create or change one record at the vendor (a create refused after our own delete is
    sent once more with a new key: `retried`)."""
    if resource == "schedules":
        if row.event.deleted_at is not None or row.employee.deleted_at is not None:
            raise VendorError("its event or employee was deleted; choose another or delete it",
                              code="dangling")
        if row.event.external_id is None or row.employee.external_id is None:
            ctx.stats.deferred += 1  # waits, no attempt counted
            return
        if row.external_id is None and ctx.deletes_waiting is not False \
                and not _deletes_sent_first(ctx, row):
            ctx.stats.deferred += 1  # its event's or day's old schedule is still at the vendor
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
                _link_duplicate(ctx, resource, row, exc, retried)
                return
            raise
        queue_result(ctx, PushResult(resource, model, row.id, obj, sent))
        return
    try:
        obj = ctx.client.update(resource, row.external_id, payload, if_match=row.remote_version)
    except VersionMismatch as exc:
        current = exc.current or ctx.client.get(resource, row.external_id)
        _resolve_push_conflict(ctx, PushResult(resource, model, row.id, current, sent), payload)
        return
    except NotFound:
        _vendor_lost_it(ctx, resource, model, row)
        return
    queue_result(ctx, PushResult(resource, model, row.id, obj, sent))


def _schedule_deletes_pending() -> bool:
    """Is any schedule's delete waiting to reach the vendor? (one query a batch of creates)"""
    found = db.session.scalar(select(Schedule.id).where(
        Schedule.deleted_at.is_not(None), Schedule.sync_status == "pending",
        Schedule.external_id.is_not(None)).limit(1)) is not None
    db.session.rollback()
    return found


def _deletes_sent_first(ctx, row) -> bool:
    """Send now the pending deletes of schedules that hold this new schedule's event or its
    employee's day at the vendor (a create sent before them is refused as a duplicate);
    True when none is left pending."""
    blocking = select(Schedule.id).where(
        Schedule.id != row.id, Schedule.deleted_at.is_not(None),
        Schedule.sync_status == "pending", Schedule.external_id.is_not(None),
        or_(Schedule.event_id == row.event_id,
            (Schedule.employee_id == row.employee_id) & (Schedule.local_day == row.local_day)))
    for other_id in db.session.scalars(blocking).all():
        _push_one(ctx, "schedules", Schedule, other_id, "delete")
    return db.session.scalar(blocking.limit(1)) is None


def _own_delete_refused(ctx, resource, model, row, existing: str) -> bool:
    """Was a create refused as a duplicate of an object whose delete is ours (pending here,
    or sent since: a replayed refusal)?  Then the delete is sent first and the create gets a
    NEW idempotency key (the old one replays the refusal); TransientError while the delete
    still waits.  False when the duplicate is someone else's object."""
    other = db.session.scalar(select(model).where(model.external_id == existing))
    if other is None or other.id == row.id or other.deleted_at is None:
        return False
    if other.sync_status == "pending":
        _push_one(ctx, resource, model, other.id, "delete")
        other = db.session.get(model, other.id)
    fresh = reread(model, row.id)
    if fresh is not None and fresh.external_id is None:
        fresh.idempotency_key = str(uuid.uuid4())  # the refused create made nothing
    db.session.commit()
    if other is not None and other.sync_status == "pending":
        raise TransientError("waiting for the delete of the record it replaces", code="waiting")
    return True


def _link_duplicate(ctx, resource, row, exc: Duplicate, retried: bool) -> None:
    """409 duplicate on a create: after our own delete, the create again with a new key;
    else link to the vendor's object, then the conflict rule."""
    model = SYNCED_MODELS[resource]
    existing = exc.existing_id
    if not existing:
        raise exc
    if _own_delete_refused(ctx, resource, model, row, existing):
        if retried:
            raise TransientError("refused as a duplicate of a record deleted here; "
                                 "trying again", code="waiting")
        _push_upsert(ctx, resource, model, db.session.get(model, row.id), retried=True)
        return
    obj = ctx.client.get(resource, existing)
    with apply_lock:
        row = reread(model, row.id)
        if decided_elsewhere(row):
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
        refs = load_refs([obj], ctx) if resource == "schedules" else None
        if not differing_fields(resource, row, obj):
            adopt(row, obj, synced=True)
            db.session.commit()
            ctx.stats.pushed += 1
            return
        res = reconcile(resource, row, obj, ctx, refs)
        db.session.commit()
    if res.outcome == "local_wins":
        _push_upsert(ctx, resource, model, db.session.get(model, row.id))


def _resolve_push_conflict(ctx, answer: PushResult, payload: dict) -> None:
    """412 on PATCH: the vendor changed it too (`answer.obj`: its current version; the row
    re-read first: a decision taken while the PATCH was in flight stands)."""
    resource, model, row_id, current, sent = answer
    with apply_lock:
        row = reread(model, row_id)
        if decided_elsewhere(row):
            db.session.commit()
            return
        if current.get("deleted"):
            res = reconcile(resource, row, current, ctx)
        elif not differing_fields(resource, row, current):
            adopt(row, current, synced=row.updated_at == sent)
            db.session.commit()
            ctx.stats.pushed += 1
            return
        else:
            refs = load_refs([current], ctx) if resource == "schedules" else None
            res = reconcile(resource, row, current, ctx, refs)
        db.session.commit()
    if res.outcome == "local_wins" and row.external_id is not None:
        obj = ctx.client.update(resource, row.external_id, payload,
                                if_match=vendor_version(current))
        queue_result(ctx, PushResult(resource, model, row.id, obj, sent))


def _vendor_lost_it(ctx, resource, model, row) -> None:
    """404 on PATCH: deleted at the vendor after our last pull; the local change is kept
    by creating it again (the reading that loses no data), recorded as a conflict.

    The row is re-read first: if the vendor's delete reached us meanwhile (webhook, pull)
    and its rules decided (the delete won, or a conflict), that decision stands."""
    with apply_lock:
        row = reread(model, row.id)
        if decided_elsewhere(row):
            db.session.commit()
            log.info("%s #%s: the 404 was already decided here; nothing re-created",
                     resource, getattr(row, "id", None))
            return
        tomb = {"id": row.external_id, "deleted": True, "version": None, "updated_at": None}
        res = reconcile(resource, row, tomb, ctx)
        db.session.commit()
    if res.outcome == "local_wins":
        _push_upsert(ctx, resource, model, db.session.get(model, row.id))


def _push_delete(ctx, resource, model, row) -> None:
    if row.external_id is None and row.idempotency_key is not None:
        # a create may have reached the vendor: replay it (same key) to learn its id
        try:
            obj = ctx.client.create(resource, local_payload(resource, row),
                                    idempotency_key=row.idempotency_key)
            with apply_lock:  # a webhook or pull may have inserted its copy: merged here
                link_replayed_create(resource, model, row.id, obj)
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
        with apply_lock:
            res = reconcile(resource, row, current, ctx,
                             load_refs([current], ctx) if resource == "schedules" else None)
            db.session.commit()
        if res.outcome != "local_wins":
            return
        try:
            ctx.client.delete(resource, row.external_id, if_match=vendor_version(current))
        except NotFound:
            pass
    _mark_deleted_synced(ctx, model, row)


def _delete_blocked(ctx, resource, model, row, exc: InUse) -> bool:
    """409 in_use: the vendor holds a live schedule of the event/employee deleted here.

    The schedule is a vendor-side change the local delete did not know of,
    so the conflict rule decides.  Last write wins: a schedule changed after
    the local delete undoes the delete; otherwise the schedule is deleted at
    the vendor too and the delete is sent again (True: go on and finish).
    Manual: the record waits in `conflict`; keeping local deletes the
    schedule first (see resolve_conflict).
    """
    sid, blocking = _blocking_schedule(ctx, exc)
    current = ctx.client.get(resource, row.external_id)
    local_copy = db.session.scalar(select(Schedule).where(Schedule.external_id == sid))
    summary = (f"deleted here {stamp(row.updated_at)}, but the vendor has schedule {sid} "
               f"(v{vendor_version(blocking)}, changed {stamp(remote_updated(blocking))}) for it")
    with apply_lock:
        decided = _blocking_schedule_decides(ctx, (resource, row), blocking, current, summary)
        db.session.commit()
    if decided:
        return False
    try:
        ctx.client.delete("schedules", sid)
    except NotFound:
        pass
    if local_copy is not None:
        soft_delete_from_vendor("schedules", local_copy, None)
    count_conflict(ctx, resource, row, "conflict, the local delete won (the vendor's "
                                        "schedule was deleted too): " + summary)
    db.session.commit()
    try:
        ctx.client.delete(resource, row.external_id)
    except NotFound:
        pass
    return True


def _blocking_schedule(ctx, exc: InUse) -> tuple[str, dict]:
    """(vendor id, object) of the schedule an in_use answer names; TransientError (the
    delete is tried again later) when it names none or the schedule went away."""
    sid = exc.schedule_id
    if not sid:
        raise TransientError("the vendor refused the delete: still in use", status=409,
                             code="in_use") from exc
    try:
        return sid, ctx.client.get("schedules", sid)
    except NotFound:
        raise TransientError(f"schedule {sid} blocked the delete, then went away; trying "
                             "again", status=409, code="in_use") from exc


def _blocking_schedule_decides(ctx, record: tuple, blocking: dict, current: dict,
                               summary: str) -> bool:
    """True when the schedule blocking the delete of `record` (resource, row) leaves it
    undeleted: manual policy (a conflict for an admin), or the schedule is newer than the
    local delete (last write wins: the delete is undone).  The caller commits."""
    resource, row = record
    if settings(ctx.app)["policy"] == "manual":
        row.mark_conflict({**jsonable(current), "blocking_schedule_id": blocking.get("id")},
                          summary)
        count_conflict(ctx, resource, row, "conflict (waiting for an admin): " + summary)
        return True
    remote_ts = remote_updated(blocking)
    if remote_ts is not None and row.updated_at is not None and remote_ts > row.updated_at:
        row.deleted_at = None
        apply_remote(resource, row, current)
        count_conflict(ctx, resource, row, "conflict, the vendor's newer schedule won "
                                            "(local delete undone): " + summary)
        return True
    return False


def _mark_deleted_synced(ctx, model, row) -> None:
    """The delete reached the vendor (or there was nothing to reach): synced, unless a
    newer decision took the row meanwhile (re-read under the apply lock)."""
    with apply_lock:
        row = reread(model, row.id)
        if row is not None and row.deleted_at is not None and row.sync_status == "pending":
            row.mark_synced()
        db.session.commit()
    ctx.stats.pushed += 1
