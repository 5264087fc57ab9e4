"""The bulk look-ups of a page of vendor objects (one query each, not one per object).

`Refs` (vendor id → local id of the events and employees schedules name), `Applied`
(what happened to one object), `page_rows` (the page's local rows and link
candidates, locked FOR UPDATE on PostgreSQL), `Candidates` (bucketed by slot),
`NewRows` (inserts in one executemany), `DaySlots` (who holds each employee's local
day), and the vendor ids known to be deleted (`retire`, `retired_among`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Optional

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite

import history
from local_days import local_day_of
from bulk_rows import insert_rows
from models import (day_holders, RetiredVendorId, Schedule, app_tz, db,
                    in_list, utcnow)

from .mapping import normalize, rows_of, vendor_version


@dataclass
class Refs:
    """Vendor id → local id for the events and employees a batch of schedules names."""

    events: dict = field(default_factory=dict)
    employees: dict = field(default_factory=dict)
    days: Optional["DaySlots"] = None  # who holds each employee's local day (schedules)
    tz: Any = None  # APP_TIMEZONE, read once for the batch (`day_key`)


@dataclass
class Applied:
    """What happened to one vendor object."""

    outcome: str  # applied | stale | conflict | deferred | skipped
    detail: Optional[str] = None
    row: Any = None


def retired_among(resource: str, items: list[dict], rows: dict) -> dict:
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
            RetiredVendorId.resource == resource, in_list(RetiredVendorId.external_id, unknown))
    ).all())


def retired_words(obj: dict, record_id: Optional[int]) -> str:
    """Why a message about a deleted vendor object changed nothing, in an admin's words."""
    who = f"; record #{record_id} was created again under a new id" if record_id else ""
    return (f"vendor object {obj['id']} was deleted at the vendor{who}: a late message "
            f"about it (version {obj.get('version')}) changes nothing")


def retire(resource: str, gone: list[tuple]) -> None:
    """Remember vendor ids deleted at the vendor that no record here holds any more,
    [(tombstone or object, record id or None)], in one statement (ids already kept stay)."""
    if not gone:
        return
    now = utcnow()
    values = [{"resource": resource, "external_id": obj["id"], "record_id": record_id,
               "version": vendor_version(obj) if obj.get("deleted") else None, "retired_at": now}
              for obj, record_id in gone]
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    db.session.execute(dialect.insert(RetiredVendorId).on_conflict_do_nothing(), values)


def _slot_filter(resource: str, model, items: list[dict], refs: Refs):
    """WHERE for `page_rows`: a page's rows by external_id, or live rows in the slot of one
    of its live objects (schedules: of an event `refs` names)."""
    ids = {o["id"] for o in items if o.get("id")}
    live = [o for o in items if not o.get("deleted") and o.get("id")]
    where = [in_list(model.external_id, ids)] if ids else []
    if live:
        if resource == "events":
            refnums = {o.get("project_ref_num") for o in live} - {None}
            if refnums:
                where.append(and_(model.deleted_at.is_(None), in_list(model.project_ref_num, refnums)))
        elif resource == "schedules":
            events = {refs.events.get(o.get("event_id")) for o in live} - {None}
            if events:
                where.append(and_(model.deleted_at.is_(None), in_list(model.event_id, events)))
        else:
            where.append(and_(model.deleted_at.is_(None), model.external_id.is_(None),
                              model.idempotency_key.is_not(None)))
    return or_(*where) if where else None


def page_rows(resource: str, model, items: list[dict], refs: Refs,
               only: Optional[list] = None) -> tuple[dict, list]:
    """The local rows of a page's objects (by external_id) and their link candidates, in one
    query locked FOR UPDATE on PostgreSQL (a first pull's pages ran two, plus two for the
    schedules' links: most of what the app's pull cost over its floor).  `only`: the ids
    of these rows if a look-up without locks found them (none: no query).

    Link candidates are live local rows an object new here may be, or may clash with:
    events with the same project_ref_num; schedules of the same event; employees: creates
    already sent whose answer may not be stored yet (matched on equal fields).  The slots
    asked for are those of every live object of the page, a superset of the new ones':
    `Candidates.near` only looks in a new object's own slot.
    """
    where = _slot_filter(resource, model, items, refs)
    if where is None or (only is not None and not only):
        return {}, []
    if only is not None:  # conditions checked again: the rows are locked as they are now
        where = and_(in_list(model.id, only), where)
    ids = {o["id"] for o in items if o.get("id")}
    live = [o for o in items if not o.get("deleted")]
    key = Candidates.KEYS.get(resource)
    slots = ({o.get("project_ref_num") for o in live} if resource == "events" else
             {refs.events.get(o.get("event_id")) for o in live} if resource == "schedules"
             else None)
    rows, near = {}, []
    for row in db.session.scalars(rows_of(model).where(where).with_for_update()):
        if row.external_id is not None and row.external_id in ids:
            rows[row.external_id] = row
        if row.deleted_at is None and (
                getattr(row, key) in slots if key else
                row.external_id is None and row.idempotency_key is not None):
            near.append(row)
    return rows, near


class Candidates:
    """Link candidates bucketed by their unique slot (ref num, event), so that matching a
    page of vendor objects costs O(page), not O(page²); `_same_slot` still decides."""

    KEYS = {"events": "project_ref_num", "schedules": "event_id"}

    def __init__(self, resource: str, refs: Refs, rows: Iterable = ()):
        self.resource, self.refs, self.buckets = resource, refs, {}
        self.new_rows: Optional[NewRows] = None
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


class NewRows:
    """Vendor objects new here, inserted with one executemany per page.

    The ORM's unit of work (an object per row, then a flush) was most of a
    first pull's time.  The Applied of a row inserted this way has no `row`;
    a later object of the same page that needs it (same id or slot) flushes
    the batch and loads it.
    """

    def __init__(self, resource: str, model, rows: dict, candidates: Candidates):
        self.resource, self.model, self.rows, self.candidates = resource, model, rows, candidates
        self.items: list = []
        self.ids: set = set()
        self.slots: set = set()

    def add(self, obj: dict, values: dict) -> Applied:
        """Queue an insert; the Applied's row is set when the batch is flushed."""
        applied = Applied("applied", "created here")
        self.items.append((obj["id"], values, applied))
        self.ids.add(obj["id"])
        key = Candidates.KEYS.get(self.resource)
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
        if not insert_rows(self.model.__table__, rows):
            db.session.execute(insert(self.model.__table__), rows)
        # their history: the new ids in one query, the entries in one COPY (or executemany)
        by_ext = {values["external_id"]: values for values in rows}
        entries = history.created_entries(self.resource, [
            (record_id, by_ext[ext]) for record_id, ext in db.session.execute(
                select(self.model.id, self.model.external_id)
                .where(in_list(self.model.external_id, list(by_ext))))])
        history.write(db.session.connection(), entries)


class DaySlots:
    """Who holds each (employee, local day) that a page of vendor schedules asks for, in one
    query a page: a local schedule's id, or the vendor id of one queued for insert here.

    A row that left its day earlier in the page (moved, deleted) no longer holds it:
    `holder` looks at the session's object before answering, and flushes that change so
    that it reaches the database before the row taking the day.
    """

    def __init__(self, items: list[dict], refs: Refs):
        self.held: dict = {}
        keys = {day_key(o, refs) for o in items if not o.get("deleted")} - {None}
        employees, days = {k[0] for k in keys}, {k[1] for k in keys}
        if keys:
            for row_id, employee_id, day in db.session.execute(day_holders(employees, days)):
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


def day_key(obj: dict, refs: Refs) -> Optional[tuple]:
    """(local employee id, local day) of a vendor schedule, when both are known."""
    employee_id = refs.employees.get(obj.get("employee_id"))
    start = normalize("start_datetime", obj.get("start_datetime"))
    if employee_id is None or not isinstance(start, datetime):
        return None
    if refs.tz is None:  # the zone once a batch, not a config look-up for each schedule
        refs.tz = app_tz()
    return employee_id, local_day_of(start, refs.tz)
