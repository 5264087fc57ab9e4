"""The scheduler's pages: the dashboard and its CSV import, scheduling an event, the roster.

The week's roster and list (`/calendar`), a free cell's events, reschedule and
unschedule.  Form helpers shared with the employees pages are in shared.py.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Optional

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import login_required
from sqlalchemy import func, select

import availability
import csv_formats
import fields
import inputs
import roster
from error_handlers import wants_json
from models import (
    EVENT_TYPES,
    ApiError,
    DomainError,
    Employee,
    Event,
    LocalTimeError,
    day_taken,
    day_taken_words,
    Schedule,
    db,
    fmt_local,
    get_live,
    live,
    local_day_bounds,
    local_to_utc,
    notify_local_change,
    to_local,
)
from paging import PageOf, page_number, paginate
from shared import (
    FormErrors,
    commit_or_conflict,
    event_history,
    event_local_dates,
    local_today,
    parse_local_date,
    parse_local_time,
)
from timestamps import parse_timestamp

bp = Blueprint("pages", __name__)


def dashboard_filters() -> dict:
    """The dashboard's ?type= and ?store= filters, cleaned."""
    event_type = request.args.get("type", "")
    return {"type": event_type if event_type in EVENT_TYPES else "",
            "store": store_arg()}


def store_arg() -> Optional[int]:
    """?store=: a store number in its column's range (fields.py), else no filter; 422 past INTEGER."""
    rule = fields.limit("events", "store_number")
    return inputs.lenient_number(request.args.get("store"), "store", low=rule.minimum, high=rule.maximum)


def render_dashboard(import_errors: Optional[list] = None, status: int = 200):
    """The dashboard: unscheduled live events, a page at a time, filtered."""
    filters = dashboard_filters()
    conditions = [Event.deleted_at.is_(None), ~Event.is_scheduled]
    if filters["type"]:
        conditions.append(Event.event_type == filters["type"])
    if filters["store"] is not None:
        conditions.append(Event.store_number == filters["store"])
    order = [Event.start_datetime, Event.due_datetime, Event.id]
    listing = paginate(Event, conditions, order, page_number())
    args = {k: v for k, v in filters.items() if v not in ("", None)}
    return render_template("index.html", listing=listing, filters=filters, filter_args=args,
                           event_types=EVENT_TYPES, import_errors=import_errors), status


@bp.route("/")
@login_required
def index():
    """Dashboard: the events still waiting for a day and an employee."""
    return render_dashboard()


@bp.route("/import", methods=["POST"])
@login_required
@inputs.large_upload
def import_events():
    """Import a WorkBankVisits CSV uploaded from the dashboard (all or nothing)."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        problem = {"line": None, "column": None, "message": "Choose a CSV file to import."}
        return render_dashboard([problem], 422)
    try:
        result = csv_formats.import_events_csv(upload.stream, upload.filename)
    except csv_formats.CsvImportError as exc:
        db.session.rollback()
        problems = list(exc.details)
        if exc.total > len(problems):
            problems.append({"line": None, "column": None,
                             "message": f"… and {exc.total - len(problems)} more problems."})
        return render_dashboard(problems, exc.status)
    # import_events_csv commits and asks for a push itself.
    flash("Imported: {created} new, {updated} updated, {unchanged} unchanged events, "
          "{scheduled} scheduled.".format(**{k: result.get(k, 0) for k in
                                             ("created", "updated", "unchanged", "scheduled")}),
          "success")
    return redirect(url_for("pages.index"))


def read_schedule_form(form) -> tuple[date, time, Employee]:
    """The date, time and employee a schedule form posts, or FormErrors."""
    errors = {}
    day = parse_local_date(form.get("date"))
    if day is None:
        errors["date"] = "Enter a date as YYYY-MM-DD."
    at = parse_local_time(form.get("time"))
    if at is None:
        errors["time"] = "Enter a time as HH:MM."
    raw_id = (form.get("employee_id") or "").strip()
    known = raw_id.isascii() and raw_id.isdigit() and inputs.in_int_range(int(raw_id[:12]))
    employee = get_live(Employee, int(raw_id)) if known else None
    if employee is None:
        errors["employee_id"] = "Choose an employee." if not raw_id else "That employee does not exist."
    if errors:
        raise FormErrors(errors)
    return day, at, employee


def schedule_from_form(event: Event, form, schedule: Optional[Schedule] = None):
    """Validate a schedule form for `event`: (start in UTC, employee) or FormErrors."""
    day, at, employee = read_schedule_form(form)
    first, last = event_local_dates(event)
    if not first <= day <= last:
        raise FormErrors({"date": f"Pick a day between {first:%Y-%m-%d} and {last:%Y-%m-%d}."})
    try:
        start = local_to_utc(datetime.combine(day, at))
    except LocalTimeError as exc:
        raise FormErrors({"time": f"{exc}; pick another time."}) from None
    try:
        availability.check_schedule(event, employee, start, schedule=schedule)
    except DomainError as exc:
        field = {"start_datetime": "time", "employee_id": "employee_id"}.get(exc.field, "form")
        raise FormErrors({field: exc.message[:1].upper() + exc.message[1:] + "."}, exc.status,
                         exc.code) from None
    return start, employee


def default_schedule_date(event: Event) -> date:
    """Today when it lies inside the event's window, else the window's first day."""
    first, last = event_local_dates(event)
    today = local_today()
    return today if first <= today <= last else first


def render_schedule_form(event: Event, values: dict, errors: dict, status: int = 200,
                         schedule: Optional[Schedule] = None):
    """The schedule (or reschedule) form, listing who is free on the chosen day."""
    first, last = event_local_dates(event)
    day = parse_local_date(values.get("date"))
    employees = []
    if day is not None and first <= day <= last:
        employees = availability.free_employees(day, schedule.id if schedule else None)
    elif values.get("date") and "date" not in errors:
        errors = {**errors, "date": f"Pick a day between {first:%Y-%m-%d} and {last:%Y-%m-%d}."}
    return render_template("schedule.html", event=event, schedule=schedule, values=values,
                           errors=errors, employees=employees, min_date=first, max_date=last,
                           chosen_day=day, history=event_history(event)), status


def blocked_event_message(event: Event) -> Optional[tuple[str, int]]:
    """Why an event cannot be scheduled (deleted or already scheduled), with a status."""
    if event.deleted_at is not None:
        return "This event was deleted; it can no longer be scheduled.", 410
    current = db.session.scalar(live(Schedule).where(Schedule.event_id == event.id).limit(1))
    if current is not None:
        when = fmt_local(current.start_datetime)
        return f"This event is already scheduled: {current.employee.name}, {when}.", 409
    return None


@bp.route("/schedule/<int:event_id>", methods=["GET", "POST"])
@login_required
def schedule_event(event_id: int):
    """Schedule one event: a day in its window, a free employee, a time."""
    event = db.session.get(Event, event_id) or abort(404)
    blocked = blocked_event_message(event)
    if blocked is not None:
        status = blocked[1] if request.method == "POST" or blocked[1] == 410 else 200
        return render_template("schedule.html", event=event, blocked=blocked[0],
                               history=event_history(event)), status
    if request.method == "GET":
        # ?date=, ?employee_id= and ?time= pre-fill the form (the roster's free cells link here).
        values = {"date": request.args.get("date") or default_schedule_date(event).isoformat(),
                  "time": request.args.get("time") or "09:00",
                  "employee_id": request.args.get("employee_id", ""),
                  "back": back_to(request.args)}
        return render_schedule_form(event, values, {})
    if request.form.get("action") == "refresh":
        return redirect(url_for("pages.schedule_event", event_id=event.id,
                                **refresh_args(request.form)))
    try:
        start, employee = schedule_from_form(event, request.form)
    except FormErrors as exc:
        return render_schedule_form(event, request.form.to_dict(), exc.errors, exc.status)
    db.session.add(Schedule(event_id=event.id, employee_id=employee.id, start_datetime=start))
    lost = commit_schedule_form(event, request.form)
    if lost is not None:
        return render_schedule_form(event, request.form.to_dict(), lost.errors, lost.status)
    flash(f"Scheduled “{event.project_name}” for {employee.name} on {fmt_local(start)}.", "success")
    if wants_json():  # the roster's Undo of an unschedule reloads the page itself
        return jsonify({"event_id": event.id, "employee_id": employee.id})
    if back_to(request.form) == "calendar":
        return redirect(url_for("pages.calendar", week=to_local(start).date().isoformat()))
    return redirect(url_for("pages.index"))


def back_to(args) -> str:
    """Where a schedule form returns: "calendar" (opened from the roster) or "" (the dashboard)."""
    return "calendar" if args.get("back") == "calendar" else ""


def refresh_args(form) -> dict:
    """The query string that re-renders a schedule form for the posted day (no JS)."""
    return {k: form.get(k) for k in ("date", "time", "employee_id", "back") if form.get(k)}


def commit_schedule_form(event: Event, form, schedule: Optional[Schedule] = None
                         ) -> Optional[FormErrors]:
    """Commit a schedule form's change; None, or the FormErrors of a race lost meanwhile.

    The database refuses a second live schedule for an employee's day or an event; the
    form is then checked again against what won, so the page says what it says today.
    """
    if commit_or_conflict():
        return None
    try:
        schedule_from_form(event, form, schedule)
    except FormErrors as exc:
        return exc
    return FormErrors({"form": "Someone else changed the schedule meanwhile; try again."}, 409)


def week_bounds(day: date) -> tuple[date, datetime, datetime]:
    """The Monday of `day`'s week and the week's [start, end) in UTC."""
    monday = roster.monday_of(day)
    return monday, local_day_bounds(monday)[0], local_day_bounds(monday + timedelta(days=6))[1]


def week_arg() -> date:
    """?week=: any day of the week to show (YYYY-MM-DD; missing: this week), else 422."""
    text = (request.args.get("week") or "").strip()
    if not text:
        return roster.monday_of(local_today())
    day = parse_local_date(text, "week")
    if day is None:
        raise inputs.BadInput("week", f"week must be a date as YYYY-MM-DD, got {text[:40]!r}")
    return roster.monday_of(day)


def roster_filters() -> dict:
    """The roster's ?name= and ?store= filters, cleaned (a NUL in the name: 422)."""
    longest = fields.limit("employees", "name").max_length
    name = inputs.check_text((request.args.get("name") or "").strip()[:longest], "name")
    return {"name": name,
            "store": store_arg()}


def week_nav(monday: date, view: str, keep: dict) -> dict:
    """What both calendar views' week navigation needs (templates/_calendar_nav.html);
    `keep`: the query arguments its links carry besides the week."""
    return {"monday": monday, "today": local_today(), "prev_week": monday - timedelta(days=7),
            "next_week": monday + timedelta(days=7), "days": roster.week_days(monday),
            "view": view, "keep": keep, "page_args": {"week": monday.isoformat(), **keep}}


@bp.route("/calendar")
@login_required
def calendar():
    """The week (Monday first, APP_TIMEZONE) as a roster of employees by day; ?view=list
    gives the day-by-day list."""
    view = request.args.get("view") or "grid"
    if view not in ("grid", "list"):
        raise inputs.BadInput("view", f"view must be grid or list, got {view[:40]!r}")
    monday, page = week_arg(), page_number(lenient=False)
    if view == "list":
        return calendar_list(monday, page)
    filters = roster_filters()
    per_page = current_app.config["ROSTER_PAGE_SIZE"]
    rows, total = roster.week_rows(monday, filters["name"], filters["store"], page, per_page)
    args = {k: v for k, v in filters.items() if v not in ("", None)}
    nav = week_nav(monday, "grid", args)
    day_labels = [{"iso": d.isoformat(), "date": d, "long": d.strftime("%A %d %B"),
                   "today": d == nav["today"]}
                  for d in nav["days"]]
    opened = roster.open_counts(monday, filters["store"])
    for label, count in zip(day_labels, opened):
        label["open"] = count
    return render_template("calendar.html", rows=rows, listing=PageOf(rows, page, per_page, total),
                           filters=filters, filter_args=args, day_labels=day_labels,
                           links=roster_links(), totals=roster.day_totals(rows),
                           twins=roster.repeated_names(rows),
                           unavailable=roster.unavailable_cells(monday, rows),
                           type_labels=roster.TYPE_LABELS, cells=roster.row_cells, **nav)


def roster_links() -> dict:
    """The roster's links, each url_for'd once: a cell's URL is then string work (a page
    of the grid has hundreds).  `reschedule(id)`, `unschedule(id)`, `free` (no query)."""
    def by_id(endpoint: str, **kwargs):
        head, tail = url_for(endpoint, schedule_id=1234567, **kwargs).split("1234567")
        return lambda record_id: f"{head}{record_id}{tail}"

    return {"reschedule": by_id("pages.reschedule"), "unschedule": by_id("pages.unschedule"),
            "free": url_for("pages.calendar_free")}


def calendar_list(monday: date, page: int):
    """Scheduled work for one week, day by day, a page of schedules at a time."""
    _, start, end = week_bounds(monday)
    conditions = [Schedule.deleted_at.is_(None), Schedule.start_datetime >= start,
                  Schedule.start_datetime < end, Schedule.event.has(Event.deleted_at.is_(None))]
    listing = paginate(Schedule, conditions, [Schedule.start_datetime, Schedule.id], page,
                       per_page=current_app.config["CALENDAR_PAGE_SIZE"])
    by_day = {day: [] for day in roster.week_days(monday)}
    for schedule in listing.items:
        by_day.setdefault(to_local(schedule.start_datetime).date(), []).append(schedule)
    return render_template("calendar_list.html", by_day=by_day,
                           day_totals=day_totals(by_day, conditions), listing=listing,
                           **week_nav(monday, "list", {"view": "list"}))


def day_totals(days: dict, conditions: list) -> dict:
    """{local day: live schedules that day} for the week's days, in one query."""
    bounds = [local_day_bounds(day) for day in days]
    counts = [func.count(Schedule.id).filter(Schedule.start_datetime >= low, Schedule.start_datetime < high)
              for low, high in bounds]
    row = db.session.execute(select(*counts).where(*conditions)).one()
    return dict(zip(days, row))


@bp.route("/calendar/free")
@login_required
def calendar_free():
    """A roster's free cell: the unscheduled events whose window covers that day, earliest
    due first, each linking to the schedule page pre-filled with the employee, day and time."""
    employee_id = inputs.whole_number(request.args.get("employee_id"), "employee_id")
    day_text = (request.args.get("date") or "").strip()
    day = parse_local_date(day_text)
    if day is None:
        raise inputs.BadInput("date", f"date must be a date as YYYY-MM-DD, got {day_text[:40]!r}")
    employee = get_live(Employee, employee_id) or abort(404, f"No employee with id {employee_id}.")
    filters = dashboard_filters()
    blocked = None
    if not employee.active:
        blocked = f"{employee.name} is inactive; activate them on the Employees page to schedule them."
    elif day_taken(employee.id, day) is not None:
        blocked = day_taken_words(employee.name, day) + "."
    elif (problem := availability.availability_problem(employee, day)) is not None:
        blocked = problem.message + "."
    listing = PageOf([], 1, 1, 0)
    if blocked is None:
        listing = paginate(Event, roster.free_event_conditions(day, filters["store"], filters["type"]),
                           list(roster.FREE_EVENT_ORDER), page_number(lenient=False))
    times = {event.id: roster.default_time(event, day).strftime("%H:%M") for event in listing.items}
    args = {"employee_id": employee.id, "date": day.isoformat(),
            **{k: v for k, v in filters.items() if v not in ("", None)}}
    return render_template("calendar_free.html", employee=employee, day=day, listing=listing,
                           times=times, filters=filters, page_args=args, event_types=EVENT_TYPES,
                           blocked=blocked, monday=roster.monday_of(day)), 409 if blocked else 200


PLAN_LIMIT = 10000  # assignments (and unplaced ids) a proposal's description takes


@bp.route("/calendar/plan/describe", methods=["POST"])
@login_required
def calendar_plan_describe():
    """The roster's "Plan this week" (static/js/roster.js): POST /api/plan's proposal in
    words ({"assignments": [...], "unplaced": [event ids]}) — each assignment's local day,
    time, event and employee; each unplaced event's name.  Writes nothing."""
    body = request.get_json(silent=True)
    items = body.get("assignments") if isinstance(body, dict) else None
    unplaced = body.get("unplaced", []) if isinstance(body, dict) else None
    if not isinstance(items, list) or len(items) > PLAN_LIMIT:
        raise inputs.BadInput("assignments", f"assignments must be a list of at most {PLAN_LIMIT} "
                              "objects {event_id, employee_id, start_datetime}")
    if (not isinstance(unplaced, list) or len(unplaced) > PLAN_LIMIT
            or not all(_whole(i) for i in unplaced)):
        raise inputs.BadInput("unplaced", f"unplaced must be a list of at most {PLAN_LIMIT} event ids")
    return jsonify(roster.describe_plan([_proposed(item, n) for n, item in enumerate(items)], unplaced))


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= inputs.INT_MAX


def _proposed(item, n: int) -> tuple:
    """(event id, employee id, UTC start) of one assignment of a proposal, else BadInput."""
    start = None
    if isinstance(item, dict) and isinstance(item.get("start_datetime"), str):
        try:
            start = parse_timestamp(item["start_datetime"])
        except ValueError:
            start = None
    if start is None or not (_whole(item.get("event_id")) and _whole(item.get("employee_id"))):
        raise inputs.BadInput(f"assignments[{n}]", "each assignment must be an object with whole "
                              "event_id and employee_id and an RFC 3339 start_datetime")
    return item["event_id"], item["employee_id"], start


@bp.route("/calendar/<int:schedule_id>/unschedule", methods=["POST"])
@login_required
def unschedule(schedule_id: int):
    """Take an event off the calendar; it goes back to the dashboard."""
    schedule = get_live(Schedule, schedule_id) or abort(404)
    week = to_local(schedule.start_datetime).date().isoformat()
    schedule.soft_delete()
    db.session.commit()
    notify_local_change()
    if wants_json():  # the roster (static/js/roster.js) offers an Undo: what re-creates it
        local = to_local(schedule.start_datetime)
        return jsonify({"id": schedule.id, "event_id": schedule.event_id, "employee_id": schedule.employee_id,
                        "date": local.date().isoformat(), "time": local.strftime("%H:%M"),
                        "name": schedule.event.project_name,
                        "schedule_url": url_for("pages.schedule_event", event_id=schedule.event_id)})
    flash(f"Unscheduled “{schedule.event.project_name}”; it is back on the dashboard.", "success")
    return redirect(url_for("pages.calendar", week=week))


@bp.route("/calendar/states")
@login_required
def calendar_states():
    """{schedule id: sync state} for ?ids=1,2,3 (at most 400): the roster's badges follow
    the sync without a reload (static/js/roster.js polls while some are pending)."""
    ids = [int(i) for i in (request.args.get("ids") or "").split(",")[:400] if i.strip().isdigit()]
    rows = db.session.execute(select(Schedule.id, Schedule.sync_status, Schedule.deleted_at)
                              .where(Schedule.id.in_(ids))) if ids else []
    return jsonify({str(i): ("deleted" if gone else state) for i, state, gone in rows})


@bp.route("/calendar/<int:schedule_id>/reschedule", methods=["GET", "POST"])
@login_required
def reschedule(schedule_id: int):
    """Change the day, time or employee of a scheduled event."""
    schedule = get_live(Schedule, schedule_id) or abort(404)
    if request.method == "GET":
        local = to_local(schedule.start_datetime)
        values = {"date": request.args.get("date") or local.date().isoformat(),
                  "time": request.args.get("time") or local.strftime("%H:%M"),
                  "employee_id": request.args.get("employee_id") or str(schedule.employee_id)}
        return render_schedule_form(schedule.event, values, {}, schedule=schedule)
    if request.form.get("action") == "refresh":
        return redirect(url_for("pages.reschedule", schedule_id=schedule.id,
                                **refresh_args(request.form)))
    try:
        start, employee = schedule_from_form(schedule.event, request.form, schedule)
    except FormErrors as exc:
        return refused_reschedule(schedule, exc)
    schedule.start_datetime, schedule.employee_id = start, employee.id
    schedule.mark_changed()
    lost = commit_schedule_form(schedule.event, request.form, schedule)
    if lost is not None:
        return refused_reschedule(schedule, lost)
    flash(f"Rescheduled “{schedule.event.project_name}”: {employee.name}, {fmt_local(start)}.", "success")
    week = to_local(start).date().isoformat()
    if wants_json():  # the roster's drag and drop (static/js/roster.js) reloads the page itself
        return jsonify({"id": schedule.id, "week": week})
    return redirect(url_for("pages.calendar", week=week))


def refused_reschedule(schedule: Schedule, exc: FormErrors):
    """A reschedule the rules refuse: the form with its messages, or (for the roster's
    drag and drop, which asks for JSON) the one error path's body naming each field."""
    if wants_json():
        message = " ".join(exc.errors.values())
        details = [{"field": name, "message": text} for name, text in exc.errors.items()]
        code = exc.code or ("conflict" if exc.status == 409 else "validation_failed")
        raise ApiError(exc.status, code, message, details)  # error_handlers answers, with an error id
    return render_schedule_form(schedule.event, request.form.to_dict(), exc.errors, exc.status,
                                schedule)
