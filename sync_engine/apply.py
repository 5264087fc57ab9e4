"""Applying vendor objects to local rows, with the version and conflict rules.

`apply_items` is the one way in for pull pages, webhooks, held deletions and the
links a push or a conflict needs.  The rules other modules share are this named
interface (the rest is private):

* `load_refs`: the local ids of the events and employees vendor schedules name
* `adopt`, `apply_remote`: take the vendor's version (its fields too) as synced
* `reconcile`: both sides changed; SYNC_CONFLICT_POLICY decides
* `recreate`: the local change wins over a vendor delete: created again
* `soft_delete_from_vendor`: the vendor deleted it: hidden here, synced
* `refs_known`, `day_clash`, `day_conflict`: a schedule's links and its employee's day
* `count_conflict`, `count_repair`: a run's counters
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import literal_column, select, union_all

from api_service import NotFound, parse_object
from models import (SYNCED_MODELS, Employee, Event, Schedule, SyncMixin, day_taken_words, db,
                    in_list, utcnow)

from .clock import one_offset
from .context import RunContext, SINGULAR, policy_now, stamp, log, settings
from .mapping import (differing_fields, is_newer, jsonable, remote_updated, remote_values,
                      vendor_version)
from .rows import (Applied, Candidates, DaySlots, NewRows, Refs, day_key, page_rows, retire,
                   retired_among, retired_words)


@dataclass
class Page:
    """One `apply_items` call: its resource, what its look-ups found, who asked."""

    resource: str
    model: Any
    rows: dict  # vendor id → local row
    refs: Refs
    candidates: Candidates
    ctx: Optional[RunContext]
    source: str  # pull | webhook


def load_refs(items: list[dict], ctx: Optional[RunContext]) -> Refs:
    """One query (UNION ALL) for the events and employees the schedules name; missing ones
    fetched from the vendor when we can."""
    refs, _found, _fetched = _schedule_links(items, ctx)
    return refs


def _schedule_links(items: list[dict], ctx: Optional[RunContext],
                    rows_too: bool = False) -> tuple[Refs, Optional[list], bool]:
    """(refs, ids of the page's schedule rows, whether links were fetched from the vendor).

    One query (UNION ALL): the events and employees the schedules name and, with
    `rows_too`, the ids of the local schedules `page_rows` would load (by external_id,
    or live on an event named), so that a page of schedules new here (a first pull)
    costs one look-up, not two.  Missing links are fetched from the vendor when we can.
    """
    live = [o for o in items if not o.get("deleted")]
    refs = Refs()
    wanted = {name: {o.get(key) for o in live if o.get(key)} for name, _model, key in _LINKS}
    parts = [select(literal_column(f"'{name}'").label("kind"), model.external_id, model.id)
             .where(in_list(model.external_id, wanted[name]))
             for name, model, _key in _LINKS if wanted[name]]
    found = None
    if rows_too:
        found = []
        parts += _schedule_row_parts(items, wanted["events"])
    if parts:
        query = parts[0] if len(parts) == 1 else union_all(*parts)
        for kind, ext, local in db.session.execute(query):
            if kind == "schedules":
                found.append(local)
            else:
                getattr(refs, kind)[ext] = local
    return refs, found, _fetch_missing_links(refs, wanted, ctx)


_LINKS = (("events", Event, "event_id"), ("employees", Employee, "employee_id"))


def _schedule_row_parts(items: list[dict], events: set) -> list:
    """What `_slot_filter` asks, as two branches each with its own index: the page's
    schedules by external_id, and the live schedules of the events it names."""
    ids = {o["id"] for o in items if o.get("id")}
    kind = literal_column("'schedules'").label("kind")
    parts = []
    if ids:
        parts.append(select(kind, Schedule.external_id, Schedule.id)
                     .where(in_list(Schedule.external_id, ids)))
    if events:
        parts.append(select(kind, Schedule.external_id, Schedule.id)
                     .join(Event, Event.id == Schedule.event_id)
                     .where(in_list(Event.external_id, events), Schedule.deleted_at.is_(None)))
    return parts


def _fetch_missing_links(refs: Refs, wanted: dict, ctx: Optional[RunContext]) -> bool:
    """Fetch from the vendor (and apply) the events and employees named but not known here;
    True when any was fetched.  Rare: a link we have never seen."""
    if ctx is None or ctx.client is None:
        return False
    fetched = False
    for name, model, _key in _LINKS:
        known = getattr(refs, name)
        for ext in sorted(wanted[name] - set(known)):
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
    return fetched


def apply_items(resource: str, items: list[dict], ctx: Optional[RunContext],
                source: str = "pull", seen_at: Optional[datetime] = None) -> list[Applied]:
    """Apply vendor objects (live or tombstones) to local rows, in the caller's transaction.

    Bulk look-ups: the local rows by external_id IN (...), locked FOR UPDATE
    on PostgreSQL; link candidates in one query; schedule links in one query
    per resource.  The caller commits.
    """
    with one_offset():  # every stamp of the page corrected by one offset, asked once
        return _apply_items(resource, items, ctx, source)


def _apply_items(resource: str, items: list[dict], ctx: Optional[RunContext],
                 source: str) -> list[Applied]:
    model = SYNCED_MODELS[resource]
    items = [parse_object(o) if isinstance(o.get("updated_at"), str) else o for o in items]
    if resource == "schedules":
        refs, found, fetched = _schedule_links(items, ctx, rows_too=True)
        # no local row to load (a first pull's pages): skip the locking look-up; an event
        # fetched just now may have linked a local create, whose schedules it must see
        rows, near = page_rows(resource, model, items, refs, only=None if fetched else found)
        refs.days = DaySlots(items, refs)
    else:
        refs = Refs()
        rows, near = page_rows(resource, model, items, refs)
    candidates = Candidates(resource, refs, near)
    candidates.new_rows = NewRows(resource, model, rows, candidates)
    page = Page(resource, model, rows, refs, candidates, ctx, source)
    retired = retired_among(resource, items, rows) if source == "webhook" else {}
    out = []
    for obj in items:
        if obj["id"] in retired and obj["id"] not in rows:
            out.append(Applied("skipped", retired_words(obj, retired[obj["id"]])))
            continue
        if obj.get("id") in candidates.new_rows.ids:  # the same object twice: the second
            candidates.new_rows.flush()                # sees the row the first inserted
            rows[obj["id"]] = db.session.scalar(select(model).where(model.external_id == obj["id"]))
        candidates.last = (None, [])  # near() remembers within one object only
        out.append(_apply_one(page, obj))
    candidates.new_rows.flush()
    retire(resource, [(obj, None) for obj, res in zip(items, out)
                       if obj.get("deleted") and res.row is None and obj["id"] not in retired])
    return out


def day_clash(row, obj: dict, refs: Refs) -> Optional[str]:
    """Why the vendor's version of schedule `row` (None: new here) cannot be live here:
    another live schedule holds that employee's day.  None when the day is free, which
    `row` then holds."""
    key = day_key(obj, refs)
    if key is None:
        return None
    if refs.days is None:  # one object outside a page (resolving a conflict)
        refs.days = DaySlots([obj], refs)
    holder = refs.days.holder(key, row)
    if holder is None:
        if row is not None:
            refs.days.take(key, row.id)
        return None
    employee = db.session.get(Employee, key[0])
    other = (f"the vendor's schedule {holder} of the same pull" if isinstance(holder, str)
             else f"schedule #{holder.id}")
    return day_taken_words(employee.name if employee else "the employee", key[1], other,
                           rule=True)


def day_conflict(resource: str, row, obj: dict, message: str, ctx) -> Applied:
    """The vendor's schedule clashes with a local one on an employee's day: an admin decides
    (under either policy); the local row keeps its values."""
    row.mark_conflict(jsonable(obj), message)
    count_conflict(ctx, resource, row, "conflict (waiting for an admin): " + message)
    return Applied("conflict", message, row)


def _insert_day_conflict(obj: dict, values: dict, message: str, ctx) -> Applied:
    """A vendor schedule new here whose day is taken: kept as a conflict row, not live (the
    index allows one live schedule a day), its vendor version as the remote side."""
    row = Schedule(**values)
    row.deleted_at = utcnow()
    db.session.add(row)
    db.session.flush()
    return day_conflict("schedules", row, obj, message, ctx)


def _same_slot(resource: str, row, obj: dict, refs: Refs) -> bool:
    if resource == "events":
        return row.project_ref_num == obj.get("project_ref_num")
    if resource == "schedules":
        return row.event_id == refs.events.get(obj.get("event_id"))
    return not differing_fields(resource, row, obj)


def _find_candidate(resource: str, obj: dict, candidates: Candidates, refs: Refs):
    """A live local row never pushed that holds the same slot (ref num, event, fields)."""
    for row in candidates.near(obj):
        if row.external_id is None and row.deleted_at is None \
                and _same_slot(resource, row, obj, refs):
            return row
    return None


def _find_clash(resource: str, obj: dict, candidates: Candidates, refs: Refs):
    """A live local row linked to another vendor object that holds the same unique slot."""
    if resource == "employees":
        return None
    for row in candidates.near(obj):
        if row.external_id not in (None, obj["id"]) and row.deleted_at is None \
                and _same_slot(resource, row, obj, refs):
            return row
    return None


def _apply_one(page: Page, obj: dict) -> Applied:
    """The version and conflict rules for one vendor object."""
    row = page.rows.get(obj["id"])
    if obj.get("deleted"):
        if row is None:
            return Applied("skipped", f"vendor object {obj['id']} is not known here; "
                                      "remembered as deleted there")
        return _apply_tombstone(page.resource, row, obj, page.ctx)
    if row is None:
        return _link_or_insert(page, obj)
    if row.sync_status == "conflict":
        stored = vendor_version(row.conflict_remote or {}) or 0
        if is_newer(obj, stored):
            row.conflict_remote = jsonable(obj)
        return Applied("conflict", "in conflict: the vendor version was refreshed", row)
    if not is_newer(obj, row.remote_version):
        return Applied("stale", _stale_words(obj, row), row)
    if page.resource == "schedules" and not refs_known(obj, page.refs):
        return Applied("deferred", "its event or employee is not known here yet", row)
    if row.sync_status == "synced":
        return _apply_newer(page, row, obj)
    # pending or failed: a local change not yet at the vendor
    if not differing_fields(page.resource, row, obj) and row.deleted_at is None:
        adopt(row, obj, synced=True)
        return Applied("applied", "same values on both sides", row)
    return reconcile(page.resource, row, obj, page.ctx, page.refs)


def _link_or_insert(page: Page, obj: dict) -> Applied:
    """A vendor object no row here holds: linked to a local create of the same slot, else
    inserted."""
    resource = page.resource
    row = _find_candidate(resource, obj, page.candidates, page.refs)
    if row is None:
        return _insert(page, obj)
    row.external_id = obj["id"]
    page.rows[obj["id"]] = row
    if resource == "employees" or not differing_fields(resource, row, obj):
        adopt(row, obj, synced=True)
        return Applied("applied", "linked to a local create", row)
    return reconcile(resource, row, obj, page.ctx)


def _apply_newer(page: Page, row, obj: dict) -> Applied:
    """A newer vendor version of a synced row: applied (a schedule's day permitting)."""
    if row.deleted_at is not None and page.source == "webhook":
        # deleted here because the vendor deleted it, and a webhook shows it live: a
        # late delivery of a version older than the deletion (a deletion found by a
        # full listing has no version to compare), or a real change.  A listing knows:
        # a pull decides (the contract lets messages arrive late and out of order).
        return Applied("deferred", "deleted here after the vendor deleted it; "
                                   "a pull checks whether it is still live", row)
    taken = day_clash(row, obj, page.refs) if page.resource == "schedules" else None
    if taken:
        return day_conflict(page.resource, row, obj, taken, page.ctx)
    if row.deleted_at is not None:
        # deleted here because the vendor deleted it, yet its listing shows it live
        # and newer: the vendor's word wins (nothing is lost).
        row.deleted_at = None
    apply_remote(page.resource, row, obj, page.refs)
    return Applied("applied", None, row)


def _stale_words(obj: dict, row) -> str:
    """Why a vendor version was not applied, in an admin's words."""
    if obj.get("version") == row.remote_version:
        return "already had this version"
    if row.remote_version is None:
        return "not newer than the version here"
    return f"older than the version here (version {row.remote_version})"


def refs_known(obj: dict, refs: Refs) -> bool:
    return obj.get("event_id") in refs.events and obj.get("employee_id") in refs.employees


def _insert(page: Page, obj: dict) -> Applied:
    """A vendor object new here: insert it (unless a live local row holds its slot; a
    schedule whose employee's day is taken becomes a conflict)."""
    resource, refs, candidates = page.resource, page.refs, page.candidates
    if resource == "schedules" and not refs_known(obj, refs):
        return Applied("deferred", "its event or employee is not known here yet")
    clash = _find_clash(resource, obj, candidates, refs)
    if clash is not None:
        newer = (remote_updated(obj) or utcnow()) >= (clash.updated_at or utcnow())
        if not (resource == "schedules" and clash.sync_status == "synced" and newer):
            what = "schedule" if resource == "schedules" else "project_ref_num"
            return Applied("deferred", f"a live local {SINGULAR[resource]} #{clash.id} "
                                       f"holds the same {what}")
    now = utcnow()
    values = remote_values(resource, obj, refs)  # the fields adopt(synced=True) sets, too:
    values.update(SyncMixin.synced_values(now), external_id=obj["id"],
                  remote_version=vendor_version(obj), updated_at=remote_updated(obj) or now,
                  created_at=now)
    if resource == "schedules":
        key = day_key(obj, refs)
        holder = refs.days.holder(key) if key else None
        if isinstance(holder, str):  # queued in this page: insert it, to name it by its id
            candidates.new_rows.flush()
            refs.days.take(key, db.session.scalar(select(Schedule.id).where(
                Schedule.external_id == holder)))
            holder = refs.days.holder(key)
        if holder is not None and not (clash is not None and holder is clash):
            return _insert_day_conflict(obj, values, day_clash(None, obj, refs), page.ctx)
        values["local_day"] = key[1]
        refs.days.take(key, obj["id"])
    if clash is not None:
        clash.deleted_at = utcnow()  # the vendor replaced it; its tombstone follows
        clash.last_synced = utcnow()
    return candidates.new_rows.add(obj, values)


def adopt(row, obj: dict, synced: bool) -> None:
    """Record the vendor's version (and mark synced) without touching local fields."""
    row.remote_version = vendor_version(obj)
    row.last_synced = utcnow()
    if synced:
        row.updated_at = remote_updated(obj) or utcnow()
        row.mark_synced()


def apply_remote(resource: str, row, obj: dict, refs: Optional[Refs] = None) -> None:
    """Make the local row equal to the vendor's object (a pulled change: never pending)."""
    if resource == "schedules" and refs is None:
        refs = load_refs([obj], None)
    for name, value in remote_values(resource, obj, refs or Refs()).items():
        setattr(row, name, value)
    adopt(row, obj, synced=True)


def soft_delete_from_vendor(resource: str, row, obj: Optional[dict]) -> None:
    """The vendor deleted it: hide it here (never hard-deleted), synced."""
    now = utcnow()
    if row.deleted_at is None:
        row.deleted_at = now
    row.mark_synced(now)
    if obj is not None and vendor_version(obj) is not None:
        row.remote_version = vendor_version(obj)
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
    if obj.get("version") is not None and not is_newer(obj, row.remote_version):
        return Applied("stale", "a delete older than the version here", row)
    if row.sync_status == "synced" or row.deleted_at is not None:
        soft_delete_from_vendor(resource, row, obj)
        return Applied("applied", "deleted here", row)
    return reconcile(resource, row, obj, ctx)


def reconcile(resource: str, row, obj: dict, ctx, refs: Optional[Refs] = None) -> Applied:
    """Both sides changed: SYNC_CONFLICT_POLICY decides (LWW by updated_at, or manual).

    Returns outcome "applied" (remote won), "conflict" (manual) or "local_wins"
    (the row stays pending with remote_version = the vendor's version, so the
    next PATCH carries If-Match of the vendor's current version).
    """
    policy = settings(ctx.app)["policy"] if ctx is not None else policy_now()
    fields = differing_fields(resource, row, obj)
    summary = (f"local #{row.id} changed {stamp(row.updated_at)}; vendor v{obj.get('version')} "
               f"changed {stamp(remote_updated(obj))}; fields: {', '.join(fields)}")
    if policy == "manual":
        row.mark_conflict(jsonable(obj), summary)
        count_conflict(ctx, resource, row, "conflict (waiting for an admin): " + summary)
        return Applied("conflict", summary, row)
    remote_ts = remote_updated(obj)
    local_ts = row.updated_at
    remote_wins = remote_ts is not None and local_ts is not None and remote_ts > local_ts
    if obj.get("deleted"):
        if remote_wins:
            return _vendor_delete_won(resource, row, obj, ctx, summary)
        recreate(resource, row, obj)
        count_conflict(ctx, resource, row, "conflict, local change won over a vendor "
                                            "delete (re-created): " + summary)
        return Applied("local_wins", summary, row)
    if remote_wins and (resource != "schedules" or refs is None or refs_known(obj, refs)):
        taken = day_clash(row, obj, refs or load_refs([obj], None)) \
            if resource == "schedules" else None
        if taken:
            return day_conflict(resource, row, obj, taken, ctx)
        restored = row.deleted_at is not None
        row.deleted_at = None
        apply_remote(resource, row, obj, refs)
        count_conflict(ctx, resource, row, ("conflict, vendor change won"
                                             + (" (local delete undone)" if restored else "")
                                             + ": " + summary))
        return Applied("applied", "vendor change won: " + summary, row)
    row.remote_version = vendor_version(obj)
    count_conflict(ctx, resource, row, "conflict, local change won: " + summary)
    return Applied("local_wins", summary, row)


def _vendor_delete_won(resource: str, row, obj: dict, ctx, summary: str) -> Applied:
    soft_delete_from_vendor(resource, row, obj)
    count_conflict(ctx, resource, row, "conflict, vendor delete won: " + summary)
    return Applied("applied", "vendor delete won: " + summary, row)


def recreate(resource: str, row, tomb: Optional[dict]) -> None:
    """The vendor deleted it but the local change wins: create it again (with `tomb`, the
    deletion, its former vendor id is remembered: a late webhook about that id must not
    create a record here)."""
    if row.external_id is not None and tomb is not None:
        retire(resource, [(dict(tomb, id=row.external_id), row.id)])
    row.external_id = None
    row.remote_version = None
    row.reset_for_retry()


def count_conflict(ctx, resource, row, message) -> None:
    if ctx is not None:
        ctx.stats.conflicts += 1
        ctx.stats.error(resource, row.id, message)


def count_repair(ctx, resource: str, record_id, message: str) -> None:
    """Count one repair of the sync invariant in the run (and log it)."""
    log.warning("sync invariant: %s #%s %s", resource, record_id, message)
    if ctx is not None:
        ctx.stats.repaired += 1
        ctx.stats.error(resource, record_id, message)
