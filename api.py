"""The JSON API: /api/employees, /api/events, /api/schedules, history, CSV import/export.

The contract is docs/openapi.yaml.  Bodies: read-only fields (`id`, the sync
fields) and unknown fields are ignored; every bad field is reported at once
(422, details [{field, message}]), each checked against its model column's
limits (fields.py, through bodies.py).  Lists answer {data, page, per_page, total}.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from flask import Blueprint, jsonify, request, url_for
from flask_login import login_required
from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError

import availability
import csv_formats
import feeds
import fields
import history
import inputs
import planner
import security
import table_stats
from bodies import Body, boolean, field, json_object
from error_handlers import invalid, is_transient_db_error
from models import (
    SYNCED_MODELS,
    ApiError,
    DomainError,
    Employee,
    Event,
    RecordHistory,
    Schedule,
    TimeOff,
    db,
    deactivate,
    event_type_for,
    get_live,
    iso,
    live,
    local_day,
    local_day_bounds,
    notify_local_change,
    parse_api_datetime,
    utcnow,
    value_taken,
    workdays_mask,
)
from paging import PageOf, listing_json, page_args, page_json, paginate

# An employee's fields that are this app's own (availability): never pushed to the vendor.
LOCAL_EMPLOYEE_FIELDS = ("workdays", "max_days_per_week")
EVENT_REQUIRED = ("project_ref_num", "project_name", "start_datetime", "due_datetime")

bp = Blueprint("api", __name__, url_prefix="/api")
security.throttle_signin(bp)  # failed HTTP Basic sign-ins, like the login form's


def _page_of(model, order_by: tuple, *conditions):
    """One JSON page of live records."""
    return page_json(model, order_by, model.deleted_at.is_(None), *conditions)


def _get_or_404(model, record_id: int):
    """A live record, else 404 not_found."""
    record = get_live(model, record_id)
    if record is None:
        raise ApiError(404, "not_found", f"no {model.__name__.lower()} with id {record_id}")
    return record


def _get(record):
    """A record as JSON."""
    return jsonify(record.to_dict())


def _patch(model, record_id: int, checked):
    """Change the fields a PATCH names, as `checked(data, record)` (422/409) allows."""
    record = _get_or_404(model, record_id)
    data = json_object()
    for name, value in checked(data, record).items():
        setattr(record, name, value)
    return _save(record, recheck=lambda: checked(data, record))


def _save(record, created: Optional[str] = None, recheck=None, push: bool = True):
    """Mark a change, commit, ask for a push, answer the record (201 + Location when created).

    `push=False`: only local fields changed (availability), so the record is not marked
    for the vendor.
    """
    _commit(record, recheck, push)
    notify_local_change()
    response = jsonify(record.to_dict())
    if created:
        response.status_code = 201
        response.headers["Location"] = url_for(f"api.get_{created}", **{f"{created}_id": record.id})
    return response


def _commit(record, recheck=None, push: bool = True) -> None:
    """Mark a change (unless `push` is False) and commit it.

    A unique index that refuses the commit means a race lost to a request committed
    meanwhile: `recheck()` runs the request's Python checks again, which now see the
    winner and raise the very 409 they give when there is no race.
    """
    if push:
        record.mark_changed()
    db.session.add(record)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if recheck is not None:
            recheck()
        raise ApiError(409, "conflict", "another change got there first; reload and try again") from None


def _delete(record):
    """Soft-delete, commit, ask for a push: 204."""
    record.soft_delete()
    db.session.commit()
    notify_local_change()
    return "", 204


def _refuse_if_scheduled(condition, what: str) -> None:
    """409 in_use naming the live schedules that still use a record."""
    ids = db.session.scalars(select(Schedule.id).where(Schedule.deleted_at.is_(None), condition)
                             .order_by(Schedule.id)).all()
    if ids:
        raise ApiError(409, "in_use",
                       f"{what} still has schedules ({', '.join(map(str, ids))}); delete them first",
                       [{"resource": "schedule", "id": i} for i in ids])


def _day_arg(value: str, name: str) -> date:
    """A YYYY-MM-DD date in the supported years, else 422 naming the parameter."""
    import re

    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        return inputs.check_day(date.fromisoformat(value), name)
    except inputs.BadInput as exc:
        raise invalid([exc.detail()]) from None
    except ValueError:
        raise invalid([{"field": name, "message": f"{name} must be a date as YYYY-MM-DD, got {value[:40]!r}"}]) from None


def _optional_arg(name: str) -> Optional[str]:
    """A query parameter that may be left out, but not given empty (422)."""
    value = request.args.get(name)
    if value is not None and not value.strip():
        raise invalid([{"field": name, "message": f"{name} is empty: leave it out or give a value"}])
    return value.strip() if value is not None else None


# -- employees ---------------------------------------------------------------

@bp.get("/employees")
@login_required
def list_employees():
    """Employees by name, a page at a time."""
    return _page_of(Employee, (Employee.name, Employee.id))


@bp.post("/employees")
@login_required
def create_employee():
    """Add an employee: 201 with Location."""
    data = json_object()
    employee = Employee(**_employee_fields(data))
    return _save(employee, created="employee", recheck=lambda: _employee_fields(data))


@bp.get("/employees/<int:employee_id>")
@login_required
def get_employee(employee_id: int):
    """One employee."""
    return _get(_get_or_404(Employee, employee_id))


@bp.patch("/employees/<int:employee_id>")
@login_required
def update_employee(employee_id: int):
    """Change some of an employee's fields; deactivating one with future schedules is 409
    in_use unless `"unschedule_future": true` unschedules them in the same transaction."""
    employee = _get_or_404(Employee, employee_id)
    data = json_object()
    values = _employee_fields(data, employee)
    flag = Body(data, partial=True)
    flag.take("unschedule_future", boolean)
    unschedule_future = flag.done().get("unschedule_future", False)  # 422 when not a boolean
    if values.get("active") is False:
        try:
            deactivate(employee, unschedule_future=unschedule_future)
        except DomainError as exc:
            raise exc.to_api_error() from None
    for name, value in values.items():
        setattr(employee, name, value)
    synced = any(name not in LOCAL_EMPLOYEE_FIELDS for name in values)  # else nothing to push
    return _save(employee, recheck=lambda: _employee_fields(data, employee), push=synced)


@bp.delete("/employees/<int:employee_id>")
@login_required
def delete_employee(employee_id: int):
    """Delete an employee that has no live schedules (else 409 in_use)."""
    employee = _get_or_404(Employee, employee_id)
    _refuse_if_scheduled(Schedule.employee_id == employee.id, f"employee {employee.id}")
    return _delete(employee)


def _employee_fields(data: dict, employee: Optional[Employee] = None) -> dict:
    """Checked employee fields (422), with a live-unique code (409)."""
    body = Body(data, partial=employee is not None)
    parse = field("employees")
    body.take("name", parse, required=True)
    for name in ("code", "email", "active"):
        body.take(name, parse)
    body.take("workdays", workdays_mask)
    body.take("max_days_per_week", availability.max_days_value)
    values = body.done()
    code = values.get("code")
    if code is not None and value_taken(Employee.code, code, employee):
        raise ApiError(409, "duplicate", f"another employee has the code {code}",
                       [{"field": "code", "message": "already used by another employee"}])
    return values


# -- an employee's time off (availability.py; local, never pushed) ---------------

@bp.get("/employees/<int:employee_id>/time_off")
@login_required
def list_time_off(employee_id: int):
    """An employee's time off, earliest first, a page at a time."""
    employee = _get_or_404(Employee, employee_id)
    return page_json(TimeOff, (TimeOff.start_date, TimeOff.id), TimeOff.employee_id == employee.id)


@bp.post("/employees/<int:employee_id>/time_off")
@login_required
def add_time_off(employee_id: int):
    """Add whole local days off (start_date..end_date inclusive): 201 (422 naming fields)."""
    employee = _get_or_404(Employee, employee_id)
    try:
        values = availability.parse_time_off(json_object())
    except DomainError as exc:
        raise invalid([{"field": exc.field or "body", "message": exc.message}]) from None
    off = TimeOff(employee_id=employee.id, **values)
    db.session.add(off)
    db.session.commit()
    response = jsonify(off.to_dict())
    response.status_code = 201
    return response


@bp.delete("/employees/<int:employee_id>/time_off/<int:time_off_id>")
@login_required
def delete_time_off(employee_id: int, time_off_id: int):
    """Remove one range of time off: 204 (404 when it is not this employee's)."""
    off = db.session.get(TimeOff, time_off_id)
    if off is None or off.employee_id != _get_or_404(Employee, employee_id).id:
        raise ApiError(404, "not_found", f"no time off with id {time_off_id} for employee {employee_id}")
    db.session.delete(off)
    db.session.commit()
    return "", 204


# -- an employee's calendar feed (feeds.py; the address is shown once) -----------

@bp.post("/employees/<int:employee_id>/feed")
@login_required
def make_employee_feed(employee_id: int):
    """Make (or replace) the employee's private feed address: 201 {"url", "token"}, shown once."""
    employee = _get_or_404(Employee, employee_id)
    token = feeds.make_feed(employee)
    db.session.commit()
    url = url_for("calendar_feeds.employee_feed", token=token, _external=True)
    return jsonify({"employee_id": employee.id, "url": url, "token": token}), 201


@bp.delete("/employees/<int:employee_id>/feed")
@login_required
def revoke_employee_feed(employee_id: int):
    """Revoke the employee's feed address: 204 (404 when there is none)."""
    employee = _get_or_404(Employee, employee_id)
    if not feeds.revoke_feed(employee):
        raise ApiError(404, "not_found", f"employee {employee_id} has no feed")
    db.session.commit()
    return "", 204


# -- events ------------------------------------------------------------------

@bp.get("/events")
@login_required
def list_events():
    """Events by start, then due, a page at a time."""
    return _page_of(Event, (Event.start_datetime, Event.due_datetime, Event.id))


@bp.post("/events")
@login_required
def create_event():
    """Add an event: 201 with Location."""
    data = json_object()
    values = _event_fields(data)
    values.setdefault("event_type", event_type_for(values["project_name"]))
    event = Event(**values)
    return _save(event, created="event", recheck=lambda: _event_fields(data))


@bp.get("/events/<int:event_id>")
@login_required
def get_event(event_id: int):
    """One event."""
    return _get(_get_or_404(Event, event_id))


@bp.patch("/events/<int:event_id>")
@login_required
def update_event(event_id: int):
    """Change exactly the fields named (a new project name keeps the event type)."""
    return _patch(Event, event_id, _event_fields)


@bp.delete("/events/<int:event_id>")
@login_required
def delete_event(event_id: int):
    """Delete an event that is not scheduled (else 409 in_use)."""
    event = _get_or_404(Event, event_id)
    _refuse_if_scheduled(Schedule.event_id == event.id, f"event {event.id}")
    return _delete(event)


def _event_fields(data: dict, event: Optional[Event] = None) -> dict:
    """Checked event fields (422; PATCH checks the merged window), unique ref (409)."""
    body = Body(data, partial=event is not None)
    parse = field("events")
    for name in fields.WRITABLE["events"]:
        body.take(name, parse, required=name in EVENT_REQUIRED)
    values = body.values
    start = values.get("start_datetime", event.start_datetime if event else None)
    due = values.get("due_datetime", event.due_datetime if event else None)
    if start is not None and due is not None and due < start:
        body.fail("due_datetime", "due_datetime must not be before start_datetime")
    elif event is not None and start is not None and due is not None:
        current = db.session.scalar(live(Schedule).where(Schedule.event_id == event.id))
        if current is not None and not (start <= current.start_datetime <= due):
            moved = "start_datetime" if "start_datetime" in values else "due_datetime"
            body.fail(moved, f"the event is scheduled at {iso(current.start_datetime)}, "
                             "which would fall outside the new window")
    values = body.done()
    ref = values.get("project_ref_num")
    if ref is not None and value_taken(Event.project_ref_num, ref, event):
        raise ApiError(409, "duplicate", f"another event has the reference number {ref}",
                       [{"field": "project_ref_num", "message": "already used by another event"}])
    return values


# -- schedules ---------------------------------------------------------------

@bp.get("/schedules")
@login_required
def list_schedules():
    """Schedules by time, a page at a time; `?from=&to=` (dates or RFC 3339) narrow them."""
    conditions = []
    low, high = _optional_arg("from"), _optional_arg("to")
    if low is not None:
        conditions.append(Schedule.start_datetime >= _bound_arg(low, "from", end=False))
    if high is not None:
        bound = _bound_arg(high, "to", end=True)
        conditions.append(Schedule.start_datetime < bound if len(high) == 10
                          else Schedule.start_datetime <= bound)
    page, per_page = page_args()
    listing = paginate(Schedule, [Schedule.deleted_at.is_(None), *conditions],
                       [Schedule.start_datetime, Schedule.id], page, per_page)
    warnings = availability.schedule_warnings(listing.items)
    return listing_json(listing, lambda s: schedule_json(s, warnings))


def schedule_json(schedule: Schedule, warnings: dict) -> dict:
    """A schedule's JSON with its availability `warnings` (words; empty when none)."""
    return {**schedule.to_dict(), "warnings": warnings.get(schedule.id, [])}


@bp.post("/schedules")
@login_required
def create_schedule():
    """Give an event to an employee at a time: 201, 422 (window, inactive), 409 (taken,
    employee_unavailable, over_weekly_limit)."""
    schedule = new_schedule(json_object())
    notify_local_change()
    response = jsonify(schedule.to_dict())
    response.headers["Location"] = url_for("api.get_schedule", schedule_id=schedule.id)
    return response, 201


def new_schedule(data: dict) -> Schedule:
    """Create and commit a schedule from a JSON body, or raise ApiError (422/409): the one
    way POST /api/schedules and the planner's apply create one."""
    schedule = Schedule(**_schedule_fields(data))
    _commit(schedule, recheck=lambda: _schedule_fields(data))
    return schedule


@bp.get("/schedules/<int:schedule_id>")
@login_required
def get_schedule(schedule_id: int):
    """One schedule, with its availability warnings."""
    schedule = _get_or_404(Schedule, schedule_id)
    return jsonify(schedule_json(schedule, availability.schedule_warnings([schedule])))


@bp.patch("/schedules/<int:schedule_id>")
@login_required
def update_schedule(schedule_id: int):
    """Reschedule: another time, employee or event, under the same rules."""
    return _patch(Schedule, schedule_id, _schedule_fields)


@bp.delete("/schedules/<int:schedule_id>")
@login_required
def delete_schedule(schedule_id: int):
    """Unschedule: the event becomes unscheduled."""
    return _delete(_get_or_404(Schedule, schedule_id))


def _schedule_fields(data: dict, schedule: Optional[Schedule] = None) -> dict:
    """Checked schedule fields; the merged result must pass check_schedule."""
    return _checked(_schedule_values(data, schedule), schedule)


def _schedule_values(data: dict, schedule: Optional[Schedule] = None) -> dict:
    """A schedule body's fields, each valid on its own (422 naming the bad ones)."""
    body = Body(data, partial=schedule is not None)
    for name in fields.WRITABLE["schedules"]:
        body.take(name, field("schedules"), required=True)
    return body.done()


def _checked(values: dict, schedule: Optional[Schedule] = None,
             batch: Optional[availability.Batch] = None) -> dict:
    """`values` if the merged schedule passes check_schedule (the planner's apply: its
    `batch`'s loaded rows instead of a query each), else ApiError 422/409."""
    event_id = values.get("event_id", schedule.event_id if schedule else None)
    employee_id = values.get("employee_id", schedule.employee_id if schedule else None)
    if batch is None:
        event, employee = get_live(Event, event_id), get_live(Employee, employee_id)
    else:
        event, employee = batch.events.get(event_id), batch.employees.get(employee_id)
    missing = [{"field": f"{name}_id", "message": f"no {name} with id {rid}"}
               for name, rid, obj in (("event", event_id, event), ("employee", employee_id, employee))
               if obj is None]
    if missing:
        raise invalid(missing)
    start = values.get("start_datetime", schedule.start_datetime if schedule else None)
    try:
        if batch is None:
            availability.check_schedule(event, employee, start, schedule)
        else:
            batch.check(event, employee, start)
    except DomainError as exc:
        raise exc.to_api_error() from None
    return values


# -- the planner (planner.py) ----------------------------------------------------

MAX_APPLY = 5000  # assignments per POST /api/plan/apply
APPLY_ATTEMPTS = 3  # an apply that loses a deadlock (to a pull's inserts) is run again


@bp.post("/plan")
@login_required
def make_plan():
    """Propose schedules for the unscheduled events of up to 31 days; writes nothing."""
    try:
        arguments = planner.parse_plan_request(json_object())
    except DomainError as exc:
        raise invalid([{"field": exc.field or "body", "message": exc.message}]) from None
    return jsonify(planner.plan(**arguments))


@bp.post("/plan/apply")
@login_required
def apply_plan():
    """Create each assignment as POST /api/schedules would (history source planner):
    {"created": [ids], "refused": [{"event_id", "employee_id", "error"}]}.

    One transaction, one commit, one push-soon: the employees' locks are taken at once
    (in id order), the checks read what they need in one query each (availability.Batch)
    and the accepted ones are inserted together under a SAVEPOINT.  Should that insert
    break a unique rule (a writer that takes no employee lock, such as a pull, committed
    one of these meanwhile), it is undone and each assignment is checked against the
    database and inserted under a SAVEPOINT of its own, as POST /api/schedules would.
    On SQLite the database's write lock is held for the whole apply (about a second for
    the 1,000 of the benchmark; other writers wait up to the busy timeout)."""
    items = json_object().get("assignments")
    if not isinstance(items, list) or len(items) > MAX_APPLY:
        raise invalid([{"field": "assignments", "message": "assignments must be a list of at "
                        f"most {MAX_APPLY} objects {{event_id, employee_id, start_datetime}}"}])
    outcomes: list = [None] * len(items)  # an id, or a refusal, per assignment
    wanted = []
    for position, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ApiError(422, "validation_failed", "each assignment must be a JSON object")
            wanted.append((position, _schedule_values(item)))
        except ApiError as exc:
            outcomes[position] = _refusal(item, exc)
    first = list(outcomes)
    for attempt in range(1, APPLY_ATTEMPTS + 1):
        try:
            with history.source("planner"):
                if wanted and not _apply_together(wanted, items, outcomes):
                    _apply_one_by_one(wanted, items, outcomes)
                db.session.commit()
            break
        except DBAPIError as exc:  # lost a deadlock to a pull: nothing was saved, go again
            db.session.rollback()
            if attempt == APPLY_ATTEMPTS or not is_transient_db_error(exc):
                raise
            outcomes[:] = first
    created = [o for o in outcomes if isinstance(o, int)]
    if created:
        notify_local_change()
    table_stats.after_bulk_write(["schedules"], len(created))  # a week planned at once
    return jsonify({"created": created, "refused": [o for o in outcomes if isinstance(o, dict)]})


def _new_schedule(values: dict) -> Schedule:
    """A schedule added to the session as POST /api/schedules makes one (pending)."""
    schedule = Schedule(**values)
    schedule.mark_changed()
    db.session.add(schedule)
    return schedule


def _apply_together(wanted: list, items: list, outcomes: list) -> bool:
    """The fast path of an apply: checked against rows loaded once (availability.Batch),
    the accepted ones inserted by one executemany under a SAVEPOINT, their ids read back
    by event (one live schedule an event), their history in one write; False, with
    nothing kept, when the database refused the insert."""

    batch = availability.Batch([(v["event_id"], v["employee_id"], v["start_datetime"])
                                for _, v in wanted])
    accepted, refused = {}, {}
    for position, values in wanted:
        try:
            _checked(values, batch=batch)
        except ApiError as exc:
            refused[position] = _refusal(items[position], exc)
            continue
        batch.hold(values["event_id"], values["employee_id"], values["start_datetime"])
        accepted[position] = values
    if accepted:
        now = utcnow()  # as mark_changed stamps a new schedule: pending, changed now
        rows = [{**values, **Schedule.pending_values(), "local_day": local_day(values["start_datetime"]),
                 "created_at": now, "updated_at": now} for values in accepted.values()]
        try:
            with db.session.begin_nested():
                db.session.execute(insert(Schedule.__table__), rows)
        except IntegrityError:
            return False
        id_of = dict(db.session.execute(select(Schedule.event_id, Schedule.id).where(
            Schedule.deleted_at.is_(None), Schedule.event_id.in_([v["event_id"] for v in rows]))).all())
        history.record_created("schedules", [(id_of[v["event_id"]], v) for v in rows])
        for position, values in accepted.items():
            outcomes[position] = id_of[values["event_id"]]
    for position, refusal in refused.items():
        outcomes[position] = refusal
    return True


def _apply_one_by_one(wanted: list, items: list, outcomes: list) -> None:
    """The slow path of an apply (after a lost race): each assignment checked against the
    database and inserted under its own SAVEPOINT; a unique rule that refuses one is
    explained by the checks run again (which now see the winner)."""

    for position, values in wanted:
        try:
            _checked(values)
            try:
                with db.session.begin_nested():
                    schedule = _new_schedule(values)
                    db.session.flush()
                outcomes[position] = schedule.id
            except IntegrityError:
                _checked(values)
                raise ApiError(409, "conflict",
                               "another change got there first; reload and try again") from None
        except ApiError as exc:
            outcomes[position] = _refusal(items[position], exc)


def _refusal(item, exc: ApiError) -> dict:
    """A refused assignment of an apply, with the error POST /api/schedules would answer."""
    error = {"code": exc.code, "message": exc.message}
    if exc.details:
        error["details"] = exc.details
    item = item if isinstance(item, dict) else {}
    return {"event_id": item.get("event_id"), "employee_id": item.get("employee_id"), "error": error}


# -- history of a record (history.py writes it) --------------------------------

def history_page(resource: str, record_id: int, page: int, per_page: int) -> PageOf:
    """A page of a record's history, newest first (also for a deleted record)."""
    return paginate(RecordHistory, [RecordHistory.resource == resource,
                                    RecordHistory.record_id == record_id],
                    [RecordHistory.at.desc(), RecordHistory.id.desc()], page, per_page)


@login_required
def record_history(resource: str, record_id: int):
    """Who changed the record, when, through which path, and what: newest first, paged;
    404 for an id that never existed."""
    page, per_page = page_args()
    if db.session.get(SYNCED_MODELS[resource], record_id) is None:
        raise ApiError(404, "not_found", f"no {resource[:-1]} with id {record_id}")
    return listing_json(history_page(resource, record_id, page, per_page))


for _resource in SYNCED_MODELS:  # GET /api/employees/<id>/history, events, schedules
    bp.add_url_rule(f"/{_resource}/<int:record_id>/history", f"{_resource}_history",
                    record_history, methods=["GET"], defaults={"resource": _resource})


def _bound_arg(value: str, name: str, end: bool) -> datetime:
    """A `from`/`to` bound: a local date (whole day) or an RFC 3339 instant."""
    value = value.strip()
    if len(value) == 10:
        day = _day_arg(value, name)
        return local_day_bounds(day)[1 if end else 0]
    try:
        return parse_api_datetime(value, name)
    except DomainError as exc:
        raise invalid([{"field": name, "message": f"{name} must be YYYY-MM-DD or an RFC 3339 timestamp"
                                                  f" in the years 0002 to 9998 ({exc.message})"}]) from None


# -- scheduling helpers, CSV import and export -------------------------------

@bp.get("/available_employees/<day>")
@login_required
def available_employees_on(day: str):
    """Active employees free that local day (no schedule, available): [{id, name}]."""
    free = availability.free_employees(_day_arg(day, "date"))
    return jsonify([{"id": e.id, "name": e.name} for e in free])


@bp.post("/import/events", endpoint="import_events")
@login_required
@inputs.large_upload
def api_import_events():
    """Import a WorkBankVisits.csv (multipart field `file`, with or without a filename).

    Counts, or 422 with the first 100 problems and their total.
    """
    upload = request.files.get("file")
    source = upload.stream if upload is not None else request.form.get("file")
    filename = upload.filename if upload is not None else None
    if source is None:
        raise ApiError(400, "bad_request", "send the CSV file as the multipart form field 'file'")
    try:
        result = csv_formats.import_events_csv(source, filename)
    except csv_formats.CsvImportError as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.details, fields={"total": exc.total}) from None
    return jsonify(result)


@bp.get("/export/schedule")
@login_required
def export_schedule():
    """CalendarSchedule.csv of live schedules (`?from=&to=` local dates, inclusive).

    Every argument is checked before the first byte is sent: a bad one is a JSON 422.
    """
    from flask import Response, stream_with_context

    low, high = _optional_arg("from"), _optional_arg("to")
    from_date = _day_arg(low, "from") if low is not None else None
    to_date = _day_arg(high, "to") if high is not None else None
    body = stream_with_context(csv_formats.iter_schedule_csv(from_date, to_date))
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": 'attachment; filename="CalendarSchedule.csv"'})

