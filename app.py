"""The scheduling app: extensions, auth, pages, JSON API, sync API, webhook, CLI.

Order (banners below): imports → extensions → auth → routes by area (pages,
JSON API, sync API, webhook, sync admin pages) → template filters →
create_app and register_* → CLI commands.  Models, db, time helpers and
domain rules live in `models.py`; the vendor sync in `sync_engine.py`, which
talks HTTP through `api_service.py`.  Imports point one way: nothing below
this module imports it.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from functools import wraps
from typing import Any, Optional

import click
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.cli import AppGroup
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import and_, event as sa_event, func, or_, select
from werkzeug.exceptions import RequestEntityTooLarge

import config as app_config
import csv_formats
import inputs
import security
import demo_data
import roster
import history
import sync_engine
import sync_scheduler
import metrics
import tokens
from account import account
from observability import register_request_ids
from ops import ops
from api_service import parse_object
from error_handlers import register_error_handlers, wants_json
from models import (
    EVENT_TYPES,
    ROLES,
    SYNCED_MODELS,
    ApiError,
    DomainError,
    Employee,
    Event,
    LocalTimeError,
    RecordHistory,
    Schedule,
    SyncRun,
    User,
    WebhookMessage,
    app_tz,
    available_employees,
    check_schedule,
    db,
    deactivate,
    event_type_for,
    fmt_local,
    future_schedules,
    get_live,
    is_email,
    iso,
    live,
    local_day_bounds,
    local_to_utc,
    notify_local_change,
    parse_api_datetime,
    to_local,
    utcnow,
    value_taken,
)

log = logging.getLogger("app")

# ---------------------------------------------------------------------------
# Extensions (unbound; bound in create_app).  Models, db, time helpers and
# domain rules live in models.py.
# ---------------------------------------------------------------------------

migrate = Migrate()
csrf = CSRFProtect()
login_manager = LoginManager()



pages = Blueprint("pages", __name__)


# ---------------------------------------------------------------------------
# Auth: session login for pages, HTTP Basic for the JSON API, roles
# ---------------------------------------------------------------------------

login_manager.user_loader(security.load_session_user)


@login_manager.request_loader
def load_user_from_basic_auth(req) -> Optional[User]:
    """An API token (`Authorization: Bearer`), or HTTP Basic (`curl -u name:password`,
    the slow way: a password hash per request; failures are throttled)."""
    auth = req.authorization
    if auth is not None and auth.type == "bearer":
        user = tokens.user_for_token(auth.token or "")
    elif auth is None or auth.type != "basic" or not auth.username:
        return None
    else:
        user = security.authenticate(auth.username, auth.password or "")
    if user is not None:
        g.basic_auth = True
    return user


@login_manager.unauthorized_handler
def unauthorized():
    """401 JSON for the API, a redirect to the login page for pages."""
    if request.path.startswith("/api/"):
        raise ApiError(401, "unauthorized", "sign in: an API token (Authorization: Bearer) or HTTP Basic credentials are required")
    return redirect(url_for("pages.login", next=request.full_path if request.query_string else request.path))


def admin_required(view):
    """Signed in as an admin, else 401/redirect (anonymous) or 403 (scheduler)."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_admin:
            if request.path.startswith("/api/"):
                raise ApiError(403, "forbidden", "this needs the admin role")
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def create_user(username: str, password: str, role: str = "scheduler") -> User:
    """Create (or update the password and role of) a user."""
    if role not in ROLES:
        raise DomainError(f"role must be one of {', '.join(ROLES)}", field="role")
    if not username or len(username) > 80:
        raise DomainError("username must be 1–80 characters", field="username")
    if len(password) < 8:
        raise DomainError("password must be at least 8 characters", field="password")
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, role=role)
        db.session.add(user)
    user.role = role
    user.active = True
    user.set_password(password)
    db.session.commit()
    return user


@pages.route("/login", methods=["GET", "POST"])
@security.throttle_signin
def login():
    """Sign in with a username and password (failures are throttled: 429)."""
    error = None
    if request.method == "POST":
        username = (request.form.get("username") or "").strip()
        user = security.authenticate(username, request.form.get("password") or "")
        if user is not None:
            login_user(user)
            return redirect(security.safe_next(request.args.get("next")) or url_for("pages.index"))
        error = "Unknown username or wrong password."
        log.info("failed login for %r", username[:80])
    return render_template("login.html", error=error), (401 if error else 200)


@pages.route("/logout", methods=["POST"])
def logout():
    """Sign out (POST only, CSRF-protected): every session of this user ends."""
    if current_user.is_authenticated:
        security.end_sessions(current_user)
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("pages.login"))


# ---------------------------------------------------------------------------
# Routes: pages
# ---------------------------------------------------------------------------

class FormErrors(Exception):
    """Per-field messages for a page form, and the status the page answers with."""

    def __init__(self, errors: dict, status: int = 422):
        super().__init__("; ".join(errors.values()))
        self.errors = errors
        self.status = status
        self.future: list = []  # schedules a deactivation would leave (employee pages)


class PageOf:
    """One page of a list: its rows, its number and the totals."""

    def __init__(self, items: list, page: int, per_page: int, total: int):
        self.items, self.page, self.per_page, self.total = items, page, per_page, total
        self.pages = max(1, -(-total // per_page))
        self.has_prev, self.has_next = page > 1, page < self.pages


def page_number(name: str = "page") -> int:
    """A page's ?page= (1 when missing or not a positive number; 422 past the INTEGER range)."""
    return inputs.lenient_number(request.args.get(name), name, default=1)


def paginate(model, conditions: list, order_by: list, page: int,
             per_page: Optional[int] = None) -> PageOf:
    """One COUNT and one LIMIT/OFFSET query over `model` rows matching `conditions`
    (every list: pages, JSON API, sync API)."""
    per_page = per_page or current_app.config["PAGE_SIZE"]
    total = db.session.scalar(select(func.count(model.id)).where(*conditions)) or 0
    query = select(model).where(*conditions).order_by(*order_by)
    items = list(db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)))
    return PageOf(items, page, per_page, total)


def parse_local_date(text: Optional[str], field: str = "date") -> Optional[date]:
    """A YYYY-MM-DD date from a form or query string, or None; 422 near the calendar's ends."""
    try:
        day = date.fromisoformat((text or "").strip())
    except ValueError:
        return None
    return inputs.check_day(day, field)


def parse_local_time(text: Optional[str]) -> Optional[time]:
    """An HH:MM (or HH:MM:SS) wall-clock time from a form, or None."""
    text = (text or "").strip()
    for fmt in ("%H:%M", "%H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).time()
        except ValueError:
            continue
    return None


def local_today() -> date:
    """Today's date in APP_TIMEZONE."""
    return utcnow().astimezone(app_tz()).date()


def event_local_dates(event: Event) -> tuple[date, date]:
    """The first and last local day of an event's window."""
    return to_local(event.start_datetime).date(), to_local(event.due_datetime).date()


def dashboard_filters() -> dict:
    """The dashboard's ?type= and ?store= filters, cleaned."""
    event_type = request.args.get("type", "")
    return {"type": event_type if event_type in EVENT_TYPES else "",
            "store": inputs.lenient_number(request.args.get("store"), "store", low=-inputs.INT_MAX - 1)}


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


@pages.route("/")
@login_required
def index():
    """Dashboard: the events still waiting for a day and an employee."""
    return render_dashboard()


@pages.route("/import", methods=["POST"])
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
        check_schedule(event, employee, start, schedule=schedule)
    except DomainError as exc:
        field = {"start_datetime": "time", "employee_id": "employee_id"}.get(exc.field, "form")
        raise FormErrors({field: exc.message[:1].upper() + exc.message[1:] + "."}, exc.status) from None
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
        employees = available_employees(day, schedule.id if schedule else None)
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


# -- history sections (history.py writes the entries) -------------------------

HISTORY_PAGE_SIZE = 20
HISTORY_VERBS = {
    "schedules": {"created": "scheduled", "changed": "moved", "deleted": "unscheduled",
                  "restored": "restored"},
    "employees": {"created": "added", "changed": "changed", "deleted": "deleted",
                  "restored": "restored"},
    "events": {"created": "created", "changed": "changed", "deleted": "deleted",
               "restored": "restored"},
}


def history_words(entry: RecordHistory) -> str:
    """What happened and through which path, as a person says it: "moved by the vendor
    (webhook)", "imported from WorkBankVisits.csv by ana", "kept local by admin in a
    conflict"."""
    verb = HISTORY_VERBS[entry.resource][entry.action]
    who, source = entry.actor or "someone", entry.source
    if source == "page":
        return f"{verb} by {who}"
    if source == "api":
        return f"{verb} by {who} (API)"
    if source == "cli":
        return f"{verb} from the command line"
    if source == "csv":
        return f"{verb}: imported from {history.import_file(entry.ref) or 'a file'} by {who}"
    if source == "webhook":
        return f"{verb} by the vendor (webhook)"
    if source == "pull" and entry.actor:
        return f"{verb} by {who}, applying the vendor's listing (sync run #{entry.ref})"
    if source == "pull":
        return f"{verb} by the vendor (sync run #{entry.ref})"
    if source == "restore":
        return f"kept by {who} and sent to the vendor again (held deletion)"
    if source == "conflict" and entry.ref == "local":
        return f"kept local by {who} in a conflict"
    return f"{verb}: the vendor's version kept by {who} in a conflict"


def history_values(entries: list) -> dict:
    """{(field, raw value): text} for a page of entries: times in APP_TIMEZONE, schedules'
    employee and event ids as names (one query each)."""
    wanted = {"employee_id": set(), "event_id": set()}
    for entry in entries:
        for name, pair in (entry.changes or {}).items():
            if name in wanted:
                wanted[name].update(v for v in pair if v is not None)
    shown = {}
    if wanted["employee_id"]:
        shown.update((("employee_id", i), n) for i, n in db.session.execute(
            select(Employee.id, Employee.name).where(Employee.id.in_(wanted["employee_id"]))))
    if wanted["event_id"]:
        shown.update((("event_id", i), f"{n} (#{ref})") for i, n, ref in db.session.execute(
            select(Event.id, Event.project_name, Event.project_ref_num)
            .where(Event.id.in_(wanted["event_id"]))))
    return shown


def history_value(name: str, value: Any, shown: dict) -> str:
    """One old or new value of an entry as the page shows it."""
    if value is None:
        return "—"
    if (name, value) in shown:
        return shown[(name, value)]
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name.endswith("_datetime") and isinstance(value, str):
        try:
            return fmt_local(parse_api_datetime(value, name))
        except DomainError:
            return value
    return str(value)


def history_section(conditions, endpoint: str, args: dict) -> dict:
    """A History section: the latest HISTORY_PAGE_SIZE entries (?history_page= for more)."""
    listing = paginate(RecordHistory, [conditions],
                       [RecordHistory.at.desc(), RecordHistory.id.desc()],
                       page_number("history_page"), HISTORY_PAGE_SIZE)
    return {"listing": listing, "shown": history_values(listing.items),
            "endpoint": endpoint, "args": args}


def event_history(event: Event) -> dict:
    """The event's entries and its schedules' together."""
    schedule_ids = select(Schedule.id).where(Schedule.event_id == event.id).scalar_subquery()
    condition = or_(and_(RecordHistory.resource == "events", RecordHistory.record_id == event.id),
                    and_(RecordHistory.resource == "schedules",
                         RecordHistory.record_id.in_(schedule_ids)))
    return history_section(condition, "pages.schedule_event", {"event_id": event.id})


def employee_history(employee: Employee) -> dict:
    return history_section(and_(RecordHistory.resource == "employees",
                                RecordHistory.record_id == employee.id),
                           "pages.edit_employee", {"employee_id": employee.id})


@pages.route("/schedule/<int:event_id>", methods=["GET", "POST"])
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


def commit_or_conflict() -> bool:
    """Commit and ask for a push; False (rolled back) when a unique rule was broken."""
    from sqlalchemy.exc import IntegrityError

    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    notify_local_change()
    return True


def week_bounds(day: date) -> tuple[date, datetime, datetime]:
    """The Monday of `day`'s week and the week's [start, end) in UTC."""
    monday = roster.monday_of(day)
    return monday, local_day_bounds(monday)[0], local_day_bounds(monday + timedelta(days=6))[1]


def strict_page() -> int:
    """?page=: a whole number from 1 (missing: 1), else 422 naming it."""
    return inputs.whole_number(request.args.get("page"), "page", default=1)


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
    name = inputs.check_text((request.args.get("name") or "").strip()[:120], "name")
    return {"name": name,
            "store": inputs.lenient_number(request.args.get("store"), "store", low=-inputs.INT_MAX - 1)}


def week_nav(monday: date, view: str, keep: dict) -> dict:
    """What both calendar views' week navigation needs (templates/_calendar_nav.html);
    `keep`: the query arguments its links carry besides the week."""
    return {"monday": monday, "today": local_today(), "prev_week": monday - timedelta(days=7),
            "next_week": monday + timedelta(days=7), "days": roster.week_days(monday),
            "view": view, "keep": keep, "page_args": {"week": monday.isoformat(), **keep}}


@pages.route("/calendar")
@login_required
def calendar():
    """The week (Monday first, APP_TIMEZONE) as a roster of employees by day; ?view=list
    gives the day-by-day list."""
    view = request.args.get("view") or "grid"
    if view not in ("grid", "list"):
        raise inputs.BadInput("view", f"view must be grid or list, got {view[:40]!r}")
    monday, page = week_arg(), strict_page()
    if view == "list":
        return calendar_list(monday, page)
    filters = roster_filters()
    per_page = current_app.config["ROSTER_PAGE_SIZE"]
    rows, total = roster.week_rows(monday, filters["name"], filters["store"], page, per_page)
    args = {k: v for k, v in filters.items() if v not in ("", None)}
    nav = week_nav(monday, "grid", args)
    day_labels = [{"iso": d.isoformat(), "long": d.strftime("%A %d %B"), "today": d == nav["today"]}
                  for d in nav["days"]]
    return render_template("calendar.html", rows=rows, listing=PageOf(rows, page, per_page, total),
                           filters=filters, filter_args=args, day_labels=day_labels,
                           links=roster_links(), **nav)


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


@pages.route("/calendar/free")
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
    elif db.session.scalar(select(Schedule.id).where(
            Schedule.employee_id == employee.id, Schedule.deleted_at.is_(None),
            Schedule.local_day == day).limit(1)) is not None:
        blocked = f"{employee.name} already has work on {day.isoformat()}."
    listing = PageOf([], 1, 1, 0)
    if blocked is None:
        listing = paginate(Event, roster.free_event_conditions(day, filters["store"], filters["type"]),
                           list(roster.FREE_EVENT_ORDER), strict_page())
    times = {event.id: roster.default_time(event, day).strftime("%H:%M") for event in listing.items}
    args = {"employee_id": employee.id, "date": day.isoformat(),
            **{k: v for k, v in filters.items() if v not in ("", None)}}
    return render_template("calendar_free.html", employee=employee, day=day, listing=listing,
                           times=times, filters=filters, page_args=args, event_types=EVENT_TYPES,
                           blocked=blocked, monday=roster.monday_of(day)), 409 if blocked else 200


@pages.route("/calendar/<int:schedule_id>/unschedule", methods=["POST"])
@login_required
def unschedule(schedule_id: int):
    """Take an event off the calendar; it goes back to the dashboard."""
    schedule = get_live(Schedule, schedule_id) or abort(404)
    week = to_local(schedule.start_datetime).date().isoformat()
    schedule.soft_delete()
    db.session.commit()
    notify_local_change()
    flash(f"Unscheduled “{schedule.event.project_name}”; it is back on the dashboard.", "success")
    return redirect(url_for("pages.calendar", week=week))


@pages.route("/calendar/<int:schedule_id>/reschedule", methods=["GET", "POST"])
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
    drag and drop, which asks for JSON) the standard error body naming each field."""
    if wants_json():
        message = " ".join(exc.errors.values())
        details = [{"field": name, "message": text} for name, text in exc.errors.items()]
        code = "conflict" if exc.status == 409 else "validation_failed"
        return jsonify({"error": {"code": code, "message": message, "details": details}}), exc.status
    return render_schedule_form(schedule.event, request.form.to_dict(), exc.errors, exc.status,
                                schedule)


def read_employee_form(form, employee: Optional[Employee] = None) -> dict:
    """Name, code, email and active from an employee form, or FormErrors."""
    values = {"name": (form.get("name") or "").strip(), "code": (form.get("code") or "").strip() or None,
              "email": (form.get("email") or "").strip() or None, "active": bool(form.get("active"))}
    errors = {}
    if not 1 <= len(values["name"]) <= 120:
        errors["name"] = "Enter a name (1–120 characters)."
    if values["code"] and len(values["code"]) > 64:
        errors["code"] = "The employee ID is at most 64 characters."
    elif values["code"] and value_taken(Employee.code, values["code"], employee):
        errors["code"] = f"Employee ID {values['code']} belongs to someone else."
    if values["email"] and len(values["email"]) > 255:
        errors["email"] = "The email address is at most 255 characters."
    elif values["email"] and not is_email(values["email"]):
        errors["email"] = "Enter an email address like name@example.com."
    if errors:
        raise FormErrors(errors)
    return values


def render_employees(values: dict, errors: dict, status: int = 200):
    """The employee list (active first, then by name) with the add form."""
    order = [Employee.active.desc(), Employee.name, Employee.id]
    listing = paginate(Employee, [Employee.deleted_at.is_(None)], order, page_number())
    return render_template("employees.html", listing=listing, values=values, errors=errors), status


@pages.route("/employees", methods=["GET", "POST"])
@login_required
def employees():
    """List employees and add one."""
    if request.method == "GET":
        return render_employees({"active": True}, {})
    try:
        values = read_employee_form(request.form)
    except FormErrors as exc:
        return render_employees(request.form.to_dict(), exc.errors, exc.status)
    employee = Employee(**values)
    db.session.add(employee)
    if not commit_or_conflict():
        return render_employees(request.form.to_dict(), {"code": "That employee ID is taken."}, 409)
    flash(f"Added {employee.name}.", "success")
    return redirect(url_for("pages.employees"))


@pages.route("/employees/<int:employee_id>/edit", methods=["GET", "POST"])
@login_required
def edit_employee(employee_id: int):
    """Change an employee's name, code, email or active flag."""
    employee = get_live(Employee, employee_id) or abort(404)
    if request.method == "GET":
        values = {"name": employee.name, "code": employee.code or "",
                  "email": employee.email or "", "active": employee.active}
        return render_employee_edit(employee, values, {})
    try:
        values = read_employee_form(request.form, employee)
        unscheduled = deactivate_from_form(employee, request.form) if not values["active"] else []
    except FormErrors as exc:
        return render_employee_edit(employee, request.form.to_dict(), exc.errors,
                                    future=exc.future), exc.status
    for name, value in values.items():
        setattr(employee, name, value)
    employee.mark_changed()
    if not commit_or_conflict():
        return render_employee_edit(employee, request.form.to_dict(),
                                    {"code": "That employee ID is taken."}), 409
    flash(f"Saved {employee.name}.{unscheduled_note(unscheduled)}", "success")
    return redirect(url_for("pages.employees"))


def render_employee_edit(employee: Employee, values: dict, errors: dict, **extra) -> str:
    """The edit form, with the employee's History section below it."""
    return render_template("employee_edit.html", employee=employee, values=values,
                           errors=errors, history=employee_history(employee), **extra)


def deactivate_from_form(employee: Employee, form) -> list[Schedule]:
    """Deactivate from a page: the schedules unscheduled, or FormErrors (409) that ask,
    listing the future schedules, unless the form ticked unschedule_future."""
    try:
        return deactivate(employee, unschedule_future=form.get("unschedule_future") == "1")
    except DomainError as exc:
        errors = FormErrors({"active": f"{employee.name} still has future work: tick "
                                       "“Unschedule them too” to deactivate."}, exc.status)
        errors.future = future_schedules(employee.id)
        raise errors from None


def unscheduled_note(unscheduled: list) -> str:
    """The flash message's note on schedules a deactivation took off the calendar."""
    if not unscheduled:
        return ""
    count = len(unscheduled)
    return (f" {count} future schedule{'s' if count != 1 else ''} unscheduled; "
            f"{'their events are' if count != 1 else 'its event is'} back on the dashboard.")


@pages.route("/employees/<int:employee_id>/active", methods=["POST"])
@login_required
def set_employee_active(employee_id: int):
    """Deactivate (active=0) or reactivate (active=1) an employee."""
    employee = get_live(Employee, employee_id) or abort(404)
    page = request.form.get("page", type=int) or None
    unscheduled = []
    if request.form.get("active") == "1":
        employee.active = True
    else:
        try:
            unscheduled = deactivate_from_form(employee, request.form)
        except FormErrors as exc:
            return render_template("employee_deactivate.html", employee=employee,
                                   future=exc.future, page=page), exc.status
    employee.mark_changed()
    db.session.commit()
    notify_local_change()
    flash(f"{employee.name} is now {'active' if employee.active else 'inactive'}."
          f"{unscheduled_note(unscheduled)}", "success")
    return redirect(url_for("pages.employees", page=page))


# ---------------------------------------------------------------------------
# Routes: JSON API (/api/employees, /api/events, /api/schedules, helpers)
# ---------------------------------------------------------------------------

api = Blueprint("api", __name__, url_prefix="/api")
security.throttle_signin(api)  # failed HTTP Basic sign-ins, like the login form's

# Bodies: read-only fields (`id`, the sync fields) and unknown fields are
# ignored; every bad field is reported at once (422, details [{field, message}]).
MAX_PER_PAGE = 500
EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"
DEFAULT_PER_PAGE = 50
INT_MAX = inputs.INT_MAX


def _json_object(optional: bool = False) -> dict:
    """The request body as a JSON object (depth-limited, clean text), else 400/422 (413 when too big)."""
    data = request.get_data(cache=True)
    if optional and not data.strip():
        return {}
    document = inputs.parse_json(data)
    if not isinstance(document, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return document


def _invalid(details: list[dict]) -> ApiError:
    """422 validation_failed naming every bad field."""
    if len(details) == 1:
        return ApiError(422, "validation_failed", details[0]["message"], details)
    fields = ", ".join(dict.fromkeys(d["field"] for d in details))
    return ApiError(422, "validation_failed", f"{len(details)} fields are invalid: {fields}", details)


class _Body:
    """Checks the fields of a JSON body, collecting every problem."""

    def __init__(self, data: dict, partial: bool):
        self.data, self.partial = data, partial
        self.values: dict[str, Any] = {}
        self.errors: list[dict] = []

    def take(self, name: str, parse, required: bool = False) -> None:
        """Parse `name` if given; a missing required field is a problem on create."""
        if name not in self.data:
            if required and not self.partial:
                self.fail(name, f"{name} is required")
            return
        try:
            self.values[name] = parse(self.data[name], name)
        except DomainError as exc:
            self.fail(name, exc.message)

    def fail(self, name: str, message: str) -> None:
        self.errors.append({"field": name, "message": message})

    def done(self) -> dict:
        if self.errors:
            raise _invalid(self.errors)
        return self.values


def _text(max_len: int, nullable: bool = False):
    """A parser for a trimmed string of 1..max_len characters ("" is null when nullable)."""

    def parse(value, name):
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise DomainError(f"{name} must be a string" + (" or null" if nullable else ""))
        value = value.strip()
        if not value:
            if nullable:
                return None
            raise DomainError(f"{name} must not be empty")
        if len(value) > max_len:
            raise DomainError(f"{name} must be at most {max_len} characters")
        return value

    return parse


def _integer(minimum: Optional[int] = None, nullable: bool = False):
    """A parser for a JSON integer (booleans are not integers)."""

    def parse(value, name):
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise DomainError(f"{name} must be an integer" + (" or null" if nullable else ""))
        if minimum is not None and value < minimum:
            raise DomainError(f"{name} must be at least {minimum}")
        if abs(value) > INT_MAX:
            raise DomainError(f"{name} is too large")
        return value

    return parse


def _boolean(value, name):
    if not isinstance(value, bool):
        raise DomainError(f"{name} must be true or false")
    return value


def _email(value, name):
    value = _text(255, nullable=True)(value, name)
    if value is not None and not is_email(value):
        raise DomainError(f"{name} is not an email address")
    return value


def _event_type(value, name):
    if value not in EVENT_TYPES:
        raise DomainError(f"{name} must be one of {', '.join(EVENT_TYPES)}")
    return value


def _page_args() -> tuple[int, int]:
    """`?page=` (1..2147483647, default 1) and `?per_page=` (1..500, default 50), else 422."""
    problems, result = [], []
    for name, default, high in (("page", 1, INT_MAX), ("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)):
        try:
            result.append(inputs.whole_number(request.args.get(name), name, default, high=high))
        except inputs.BadInput as exc:
            problems.append(exc.detail())
    if problems:
        raise _invalid(problems)
    return result[0], result[1]


def _page_json(model, order_by: tuple, *conditions):
    """A JSON page of `model` rows: {data, page, per_page, total}."""
    page, per_page = _page_args()
    listing = paginate(model, list(conditions), list(order_by), page, per_page)
    return jsonify({"data": [row.to_dict() for row in listing.items], "page": page,
                    "per_page": per_page, "total": listing.total})


def _page_of(model, order_by: tuple, *conditions):
    """One JSON page of live records."""
    return _page_json(model, order_by, model.deleted_at.is_(None), *conditions)


def _get_or_404(model, record_id: int):
    record = get_live(model, record_id)
    if record is None:
        raise ApiError(404, "not_found", f"no {model.__name__.lower()} with id {record_id}")
    return record


def _save(record, created: Optional[str] = None, recheck=None):
    """Mark a change, commit, ask for a push, answer the record (201 + Location when created).

    A unique index that refuses the commit means a race lost to a request committed
    meanwhile: `recheck()` runs the request's Python checks again, which now see the
    winner and raise the very 409 they give when there is no race.
    """
    from sqlalchemy.exc import IntegrityError

    record.mark_changed()
    db.session.add(record)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if recheck is not None:
            recheck()
        raise ApiError(409, "conflict", "another change got there first; reload and try again") from None
    notify_local_change()
    response = jsonify(record.to_dict())
    if created:
        response.status_code = 201
        response.headers["Location"] = url_for(f"api.get_{created}", **{f"{created}_id": record.id})
    return response


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
        raise _invalid([exc.detail()]) from None
    except ValueError:
        raise _invalid([{"field": name, "message": f"{name} must be a date as YYYY-MM-DD, got {value[:40]!r}"}]) from None


def _optional_arg(name: str) -> Optional[str]:
    """A query parameter that may be left out, but not given empty (422)."""
    value = request.args.get(name)
    if value is not None and not value.strip():
        raise _invalid([{"field": name, "message": f"{name} is empty: leave it out or give a value"}])
    return value.strip() if value is not None else None


# -- employees ---------------------------------------------------------------

@api.get("/employees")
@login_required
def list_employees():
    """Employees by name, a page at a time."""
    return _page_of(Employee, (Employee.name, Employee.id))


@api.post("/employees")
@login_required
def create_employee():
    """Add an employee: 201 with Location."""
    data = _json_object()
    employee = Employee(**_employee_fields(data))
    return _save(employee, created="employee", recheck=lambda: _employee_fields(data))


@api.get("/employees/<int:employee_id>")
@login_required
def get_employee(employee_id: int):
    """One employee."""
    return jsonify(_get_or_404(Employee, employee_id).to_dict())


@api.patch("/employees/<int:employee_id>")
@login_required
def update_employee(employee_id: int):
    """Change some of an employee's fields; deactivating one with future schedules is 409
    in_use unless `"unschedule_future": true` unschedules them in the same transaction."""
    employee = _get_or_404(Employee, employee_id)
    data = _json_object()
    values = _employee_fields(data, employee)
    flag = _Body(data, partial=True)
    flag.take("unschedule_future", _boolean)
    unschedule_future = flag.done().get("unschedule_future", False)  # 422 when not a boolean
    if values.get("active") is False:
        try:
            deactivate(employee, unschedule_future=unschedule_future)
        except DomainError as exc:
            raise exc.to_api_error() from None
    for name, value in values.items():
        setattr(employee, name, value)
    return _save(employee, recheck=lambda: _employee_fields(data, employee))


@api.delete("/employees/<int:employee_id>")
@login_required
def delete_employee(employee_id: int):
    """Delete an employee that has no live schedules (else 409 in_use)."""
    employee = _get_or_404(Employee, employee_id)
    _refuse_if_scheduled(Schedule.employee_id == employee.id, f"employee {employee.id}")
    return _delete(employee)


def _employee_fields(data: dict, employee: Optional[Employee] = None) -> dict:
    """Checked employee fields (422), with a live-unique code (409)."""
    body = _Body(data, partial=employee is not None)
    body.take("name", _text(120), required=True)
    body.take("code", _text(64, nullable=True))
    body.take("email", _email)
    body.take("active", _boolean)
    values = body.done()
    code = values.get("code")
    if code is not None and value_taken(Employee.code, code, employee):
        raise ApiError(409, "duplicate", f"another employee has the code {code}",
                       [{"field": "code", "message": "already used by another employee"}])
    return values


# -- events ------------------------------------------------------------------

@api.get("/events")
@login_required
def list_events():
    """Events by start, then due, a page at a time."""
    return _page_of(Event, (Event.start_datetime, Event.due_datetime, Event.id))


@api.post("/events")
@login_required
def create_event():
    """Add an event: 201 with Location."""
    data = _json_object()
    values = _event_fields(data)
    values.setdefault("event_type", event_type_for(values["project_name"]))
    event = Event(**values)
    return _save(event, created="event", recheck=lambda: _event_fields(data))


@api.get("/events/<int:event_id>")
@login_required
def get_event(event_id: int):
    """One event."""
    return jsonify(_get_or_404(Event, event_id).to_dict())


@api.patch("/events/<int:event_id>")
@login_required
def update_event(event_id: int):
    """Change exactly the fields named (a new project name keeps the event type)."""
    event = _get_or_404(Event, event_id)
    data = _json_object()
    for name, value in _event_fields(data, event).items():
        setattr(event, name, value)
    return _save(event, recheck=lambda: _event_fields(data, event))

@api.delete("/events/<int:event_id>")
@login_required
def delete_event(event_id: int):
    """Delete an event that is not scheduled (else 409 in_use)."""
    event = _get_or_404(Event, event_id)
    _refuse_if_scheduled(Schedule.event_id == event.id, f"event {event.id}")
    return _delete(event)


def _event_fields(data: dict, event: Optional[Event] = None) -> dict:
    """Checked event fields (422; PATCH checks the merged window), unique ref (409)."""
    body = _Body(data, partial=event is not None)
    body.take("project_ref_num", _integer(minimum=1), required=True)
    body.take("project_name", _text(200), required=True)
    body.take("event_type", _event_type)
    body.take("store_number", _integer(nullable=True))
    body.take("store_name", _text(200, nullable=True))
    body.take("location_mvid", _text(64, nullable=True))
    body.take("estimated_minutes", _integer(minimum=0, nullable=True))
    body.take("start_datetime", parse_api_datetime, required=True)
    body.take("due_datetime", parse_api_datetime, required=True)
    values = body.values
    start = values.get("start_datetime", event.start_datetime if event else None)
    due = values.get("due_datetime", event.due_datetime if event else None)
    if start is not None and due is not None and due < start:
        body.fail("due_datetime", "due_datetime must not be before start_datetime")
    elif event is not None and start is not None and due is not None:
        current = db.session.scalar(live(Schedule).where(Schedule.event_id == event.id))
        if current is not None and not (start <= current.start_datetime <= due):
            field = "start_datetime" if "start_datetime" in values else "due_datetime"
            body.fail(field, f"the event is scheduled at {iso(current.start_datetime)}, "
                             "which would fall outside the new window")
    values = body.done()
    ref = values.get("project_ref_num")
    if ref is not None and value_taken(Event.project_ref_num, ref, event):
        raise ApiError(409, "duplicate", f"another event has the reference number {ref}",
                       [{"field": "project_ref_num", "message": "already used by another event"}])
    return values


# -- schedules ---------------------------------------------------------------

@api.get("/schedules")
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
    return _page_of(Schedule, (Schedule.start_datetime, Schedule.id), *conditions)


@api.post("/schedules")
@login_required
def create_schedule():
    """Give an event to an employee at a time: 201, 422 (window, inactive), 409 (taken)."""
    data = _json_object()
    values = _schedule_fields(data)
    return _save(Schedule(**values), created="schedule", recheck=lambda: _schedule_fields(data))


@api.get("/schedules/<int:schedule_id>")
@login_required
def get_schedule(schedule_id: int):
    """One schedule."""
    return jsonify(_get_or_404(Schedule, schedule_id).to_dict())


@api.patch("/schedules/<int:schedule_id>")
@login_required
def update_schedule(schedule_id: int):
    """Reschedule: another time, employee or event, under the same rules."""
    schedule = _get_or_404(Schedule, schedule_id)
    data = _json_object()
    for name, value in _schedule_fields(data, schedule).items():
        setattr(schedule, name, value)
    return _save(schedule, recheck=lambda: _schedule_fields(data, schedule))


@api.delete("/schedules/<int:schedule_id>")
@login_required
def delete_schedule(schedule_id: int):
    """Unschedule: the event becomes unscheduled."""
    return _delete(_get_or_404(Schedule, schedule_id))


def _schedule_fields(data: dict, schedule: Optional[Schedule] = None) -> dict:
    """Checked schedule fields; the merged result must pass check_schedule."""
    body = _Body(data, partial=schedule is not None)
    body.take("event_id", _integer(minimum=1), required=True)
    body.take("employee_id", _integer(minimum=1), required=True)
    body.take("start_datetime", parse_api_datetime, required=True)
    values = body.done()
    event_id = values.get("event_id", schedule.event_id if schedule else None)
    employee_id = values.get("employee_id", schedule.employee_id if schedule else None)
    event, employee = get_live(Event, event_id), get_live(Employee, employee_id)
    missing = [{"field": f"{name}_id", "message": f"no {name} with id {rid}"}
               for name, rid, obj in (("event", event_id, event), ("employee", employee_id, employee))
               if obj is None]
    if missing:
        raise _invalid(missing)
    start = values.get("start_datetime", schedule.start_datetime if schedule else None)
    try:
        check_schedule(event, employee, start, schedule)
    except DomainError as exc:
        raise exc.to_api_error() from None
    return values


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
    page, per_page = _page_args()
    if db.session.get(SYNCED_MODELS[resource], record_id) is None:
        raise ApiError(404, "not_found", f"no {resource[:-1]} with id {record_id}")
    listing = history_page(resource, record_id, page, per_page)
    return jsonify({"data": [row.to_dict() for row in listing.items], "page": page,
                    "per_page": per_page, "total": listing.total})


for _resource in SYNCED_MODELS:  # GET /api/employees/<id>/history, events, schedules
    api.add_url_rule(f"/{_resource}/<int:record_id>/history", f"{_resource}_history",
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
        raise _invalid([{"field": name, "message": f"{name} must be YYYY-MM-DD or an RFC 3339 timestamp"
                                                  f" in the years 0002 to 9998 ({exc.message})"}]) from None


# -- scheduling helpers, CSV import and export -------------------------------

@api.get("/available_employees/<day>")
@login_required
def available_employees_on(day: str):
    """Active employees with no schedule that local day: [{id, name}]."""
    return jsonify([{"id": e.id, "name": e.name} for e in available_employees(_day_arg(day, "date"))])


@api.post("/import/events", endpoint="import_events")
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


@api.get("/export/schedule")
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


# ---------------------------------------------------------------------------
# Routes: sync API (/api/sync/*)
# ---------------------------------------------------------------------------

sync_api = Blueprint("sync_api", __name__, url_prefix="/api/sync")
security.throttle_signin(sync_api)


def _sync_error(exc: Exception) -> ApiError:
    """SyncDisabled / SyncInProgress as the API's 409 answers."""
    if isinstance(exc, sync_engine.SyncInProgress):
        run = db.session.get(SyncRun, exc.run_id) if exc.run_id else None
        return ApiError(409, "sync_in_progress", "a sync run is already in progress",
                        {"run_id": exc.run_id}, {"run": run.to_dict() if run else None})
    return ApiError(409, "sync_disabled", "sync is disabled (SYNC_ENABLED is false)")


def _sync_body() -> dict:
    """The optional JSON object body of a sync POST."""
    return _json_object(optional=True)


@sync_api.get("/health")
def sync_health():
    """Sync health: status for everyone, details for signed-in users."""
    status, body = sync_engine.health(current_app._get_current_object(),
                                      detailed=current_user.is_authenticated)
    return jsonify(body), status


@sync_api.get("/status")
@login_required
def sync_status():
    """Enabled, running, policy, last run, next run, counts per resource."""
    return jsonify(sync_engine.sync_status(current_app._get_current_object()))


@sync_api.post("/trigger")
@admin_required
def sync_trigger():
    """Start a run (202), or run it and answer when done (200 with wait)."""
    body = _sync_body()
    resources, direction = body.get("resources"), body.get("direction", "both")
    if resources is not None and (not isinstance(resources, list)
                                  or not all(isinstance(r, str) for r in resources)):
        raise ApiError(422, "validation_failed", "resources must be a list of resource names",
                       [{"field": "resources", "message": "must be a list of names"}])
    try:
        sync_engine.check_request(resources, direction)
    except ValueError as exc:
        field = "direction" if "direction" in str(exc) else "resources"
        raise ApiError(422, "validation_failed", str(exc), [{"field": field, "message": str(exc)}])
    flags = _Body(body, partial=True)
    flags.take("wait", _boolean)
    flags.take("full", _boolean)
    flags = flags.done()
    wait, full = flags.get("wait", False), flags.get("full", False)
    try:
        run = sync_engine.start_run(current_app._get_current_object(), trigger="manual",
                                    resources=resources, direction=direction, full=full,
                                    wait=wait)
    except (sync_engine.SyncDisabled, sync_engine.SyncInProgress) as exc:
        raise _sync_error(exc) from None
    return jsonify({"run": run.to_dict()}), (200 if wait else 202)


@sync_api.get("/runs")
@login_required
def sync_runs():
    """Run history, newest first, paged."""
    return _page_json(SyncRun, (SyncRun.id.desc(),))


@sync_api.get("/runs/<int:run_id>")
@login_required
def sync_run(run_id: int):
    """One run."""
    run = db.session.get(SyncRun, run_id)
    if run is None:
        raise ApiError(404, "not_found", f"no sync run {run_id}")
    return jsonify(run.to_dict())


@sync_api.get("/conflicts")
@login_required
def sync_conflicts():
    """Records in conflict, local and vendor versions side by side."""
    data = sync_engine.list_conflicts(current_app._get_current_object())
    return jsonify({"data": data, "total": len(data)})


@sync_api.post("/conflicts/<resource>/<int:record_id>/resolve")
@admin_required
def sync_resolve(resource: str, record_id: int):
    """Resolve a conflict: {"keep": "local" | "remote"}."""
    keep = _sync_body().get("keep")
    if keep not in ("local", "remote"):
        raise ApiError(422, "validation_failed", "keep must be 'local' or 'remote'",
                       [{"field": "keep", "message": "must be 'local' or 'remote'"}])
    try:
        row = sync_engine.resolve_conflict(current_app._get_current_object(), resource,
                                           record_id, keep)
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc).strip("'\"")) from None
    except sync_engine.DayTaken as exc:
        raise ApiError(409, "employee_busy", str(exc)) from None
    except RuntimeError as exc:
        raise ApiError(409, "not_in_conflict", str(exc)) from None
    return jsonify({"resource": resource, "keep": keep, "record": row.to_dict()})


@sync_api.post("/retry_failed")
@admin_required
def sync_retry_failed():
    """Every failed record back to pending (and a push soon)."""
    return jsonify({"retried": sync_engine.retry_failed(current_app._get_current_object())})


@sync_api.get("/held")
@login_required
def sync_held():
    """Deletions held by SYNC_DELETE_GUARD per resource (resources with none left out)."""
    return jsonify({resource: {"count": item["count"], "run_id": item["run_id"],
                               "sample": [record.to_dict() for record in item["sample"]]}
                    for resource, item in sync_engine.held_deletions().items()})


@sync_api.post("/held/<resource>")
@admin_required
def sync_resolve_held(resource: str):
    """Apply or restore one resource's held deletions: {"action": "apply" | "restore"}."""
    if resource not in SYNCED_MODELS:
        raise ApiError(404, "not_found", f"no resource {resource!r}; use "
                                         f"{', '.join(SYNCED_MODELS)}")
    action = _sync_body().get("action")
    if action not in sync_engine.HELD_ACTIONS:
        raise ApiError(422, "validation_failed", "action must be 'apply' or 'restore'",
                       [{"field": "action", "message": "must be 'apply' or 'restore'"}])
    try:
        result = sync_engine.resolve_held(current_app._get_current_object(), resource, action)
    except sync_engine.NothingHeld as exc:
        raise ApiError(409, "nothing_held", str(exc)) from None
    return jsonify(result)


# ---------------------------------------------------------------------------
# Routes: webhook (/api/webhook/schedule_update)
# ---------------------------------------------------------------------------

webhook = Blueprint("webhook", __name__, url_prefix="/api/webhook")


@webhook.post("/schedule_update")
def webhook_schedule_update():
    """The vendor's signed change message: verified, recorded once, applied.

    The body is read only up to WEBHOOK_MAX_BYTES: a larger Content-Length is
    refused unread, and a chunked body is cut off at the limit (413 either way).
    """
    limit = current_app.config["WEBHOOK_MAX_BYTES"]
    request.max_content_length = limit + 1  # a stream is cut there: one byte over tells
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raw = None
    if raw is None or len(raw) > limit:
        sync_engine.count_rejected("too_large", f"413: the body is over {limit} bytes")
        raise ApiError(413, "too_large", f"the body must be at most {limit} bytes")
    result = sync_engine.handle_webhook(current_app._get_current_object(), raw,
                                        dict(request.headers))
    return jsonify({"ok": True, **result}), 200


# ---------------------------------------------------------------------------
# Routes: sync admin pages (/sync/admin and the dashboard's sync section)
# ---------------------------------------------------------------------------
# Server-rendered first: every figure comes from the models (one GROUP BY per
# model for the counts, one query per resource for a page of records), and the
# vendor is never called inside a page request.  static/js/sync.js then adds
# live refresh and in-page actions through the /api/sync/* routes; every
# action also works as a plain form POST here (flash, redirect back).

SYNC_RESOURCE_LABELS = {"employees": "Employee", "events": "Event", "schedules": "Schedule"}
HEALTH_LABELS = {"ok": "OK", "degraded": "Degraded", "down": "Down", "disabled": "Sync off",
                 "unknown": "Not checked yet"}
# Webhook outcomes in words an admin reads (the detail, also in words, follows).
WEBHOOK_OUTCOMES = {"applied": "Applied", "duplicate": "Repeat delivery",
                    "stale": "Ignored", "skipped": "Ignored",
                    "conflict": "Conflict, waiting for an admin",
                    "local_wins": "Our newer change kept",
                    "deferred": "Waiting, applied after the next pull", "rejected": "Refused"}


def sync_health_view(last_run: Optional[SyncRun], counts: dict) -> dict:
    """Health for a page without calling the vendor: derived from the last run and the counts."""
    if not current_app.config.get("SYNC_ENABLED"):
        return {"status": "disabled", "label": HEALTH_LABELS["disabled"], "derived": False}
    status = sync_engine.health_status(last_run, counts)
    return {"status": status, "label": HEALTH_LABELS[status], "derived": True}


def sync_next_run_at() -> Optional[datetime]:
    """When the scheduler runs next (None when it is not running)."""
    return sync_engine.next_run_at(current_app._get_current_object())


def sync_overview() -> dict:
    """Everything the dashboard's sync section shows, from the database only."""
    last_run, counts = sync_engine.last_run_shown(), sync_engine.status_counts()
    return {
        "enabled": bool(current_app.config.get("SYNC_ENABLED")),
        "policy": current_app.config.get("SYNC_CONFLICT_POLICY"),
        "last_run": last_run,
        "running": last_run is not None and last_run.status == "running",
        "next_run_at": sync_next_run_at(),
        "scheduler_running": sync_engine.scheduler_running(current_app._get_current_object()),
        "health": sync_health_view(last_run, counts),
        "counts": counts,
    }


pages.add_app_template_global(sync_overview, "sync_overview")


def sync_record_label(resource: str, record) -> str:
    """A name a person recognises: employee name, event project + ref, schedule's event + employee."""
    if resource == "employees":
        return record.name
    if resource == "events":
        return f"{record.project_name} #{record.project_ref_num}"
    return (f"{record.event.project_name} #{record.event.project_ref_num} → "
            f"{record.employee.name}")


class SpanningPage(PageOf):
    """A page of (resource, record) rows in one sync status, across the three models."""


def records_in_status(status: str, counts: dict, page: int, per_page: int) -> SpanningPage:
    """Employees, then events, then schedules in `status`, one query per model on the page.

    The totals come from `counts` (the GROUP BY already run), so a page costs
    at most one query per resource however many records there are.
    """
    total = sum(counts[name][status] for name in SYNCED_MODELS)
    first, last = (page - 1) * per_page, page * per_page
    items, offset = [], 0
    for name, model in SYNCED_MODELS.items():
        size = counts[name][status]
        low, high = max(first, offset), min(last, offset + size)
        if low < high:
            query = (select(model).where(model.sync_status == status).order_by(model.id)
                     .offset(low - offset).limit(high - low))
            items += [(name, record) for record in db.session.scalars(query)]
        offset += size
    return SpanningPage(items, page, per_page, total)


def _shown_time(text: Optional[str]) -> Optional[str]:
    """An RFC 3339 timestamp as people read it (APP_TIMEZONE), or the text as it came."""
    try:
        return fmt_local(datetime.fromisoformat(str(text).replace("Z", "+00:00"))) if text else text
    except ValueError:
        return text


def _vendor_names(conflicts: list) -> dict:
    """{vendor id: readable name} for the events and employees the page's schedule conflicts name."""
    ids = {"events": set(), "employees": set()}
    for resource, record in conflicts:
        remote = record.conflict_remote or {}
        if resource == "schedules":
            ids["events"].add(remote.get("event_id"))
            ids["employees"].add(remote.get("employee_id"))
    names = {}
    for resource, wanted in ids.items():
        wanted.discard(None)
        if wanted:
            model = SYNCED_MODELS[resource]
            for record in db.session.scalars(select(model).where(model.external_id.in_(wanted))):
                names[record.external_id] = sync_record_label(resource, record)
    return names


def conflict_rows(resource: str, record, names: dict) -> list[dict]:
    """Field by field, the local and the vendor version of a record in conflict."""
    remote = record.conflict_remote or {}
    local = record.to_dict()
    if resource == "schedules":
        local["event_id"] = record.event.external_id
        local["employee_id"] = record.employee.external_id
    differing = (set(sync_engine.field_differences(resource, record, parse_object(remote)))
                 if remote else set())
    rows = []
    for field in sync_engine.FIELDS[resource]:
        mine, theirs = local.get(field), remote.get(field)
        shown_mine, shown_theirs = mine, theirs
        if resource == "schedules" and field != "start_datetime":
            owner = record.event if field == "event_id" else record.employee
            shown_mine = sync_record_label(field[:-3] + "s", owner)
            shown_theirs = names.get(theirs, theirs)
        if field in sync_engine.DATETIME_FIELDS:
            shown_mine, shown_theirs = _shown_time(mine), _shown_time(theirs)
        rows.append({"field": field, "local": shown_mine, "remote": shown_theirs,
                     "differs": field in differing})
    return rows


def sync_chart(hours: int = 24, limit: int = 500) -> dict:
    """Coordinates for the server-drawn SVG chart: records moved (pushed + pulled) and
    failures of each finished run of the last `hours`, placed by start time (at most
    the newest `limit` runs, so a busy day stays one bounded query)."""
    now = utcnow()
    since = now - timedelta(hours=hours)
    runs = list(db.session.scalars(select(SyncRun).where(SyncRun.status != "running",
                                                         SyncRun.started_at >= since)
                                   .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
                                   .limit(limit)))[::-1]
    width, height, left, right, bottom, top = 640, 200, 40, 10, 24, 12
    values = {"moved": [(run.pushed or 0) + (run.pulled or 0) for run in runs],
              "failed": [run.failed or 0 for run in runs]}
    peak = max([1] + values["moved"] + values["failed"])
    plot_w, plot_h = width - left - right, height - bottom - top
    span = (now - since).total_seconds()

    def x_at(moment) -> float:
        return round(left + plot_w * (moment - since).total_seconds() / span, 1)

    series = []
    for name, numbers in values.items():
        points = [(x_at(run.started_at), round(top + plot_h - plot_h * value / peak, 1))
                  for run, value in zip(runs, numbers)]
        series.append({"name": name, "points": points, "values": numbers,
                       "path": " ".join(f"{x},{y}" for x, y in points)})
    marks = [since + timedelta(hours=h) for h in range(0, hours + 1, 6)]
    return {"runs": runs, "series": series, "width": width, "height": height, "left": left,
            "right": width - right, "top": top, "bottom": height - bottom, "peak": peak,
            "hours": hours, "ticks": sorted({0, peak // 2, peak}),
            "times": [(x_at(m), to_local(m).strftime("%H:%M")) for m in marks],
            "markers": len(runs) <= 60}


def sync_config_view() -> dict:
    """The configuration in force, secrets reduced to set / not set."""
    config = current_app.config
    url = config.get("EXTERNAL_API_BASE_URL") or ""
    if "@" in url.split("//", 1)[-1].split("/", 1)[0]:  # never show credentials in a URL
        scheme, rest = url.split("//", 1) if "//" in url else ("", url)
        url = scheme + "//" + rest.split("@", 1)[1]
    return {
        "enabled": bool(config.get("SYNC_ENABLED")), "base_url": url or None,
        "interval": config.get("SYNC_INTERVAL_MINUTES"), "policy": config.get("SYNC_CONFLICT_POLICY"),
        "key_set": bool(config.get("EXTERNAL_API_KEY")), "webhook_secret_set": bool(config.get("WEBHOOK_SECRET")),
        "timeout": config.get("EXTERNAL_API_TIMEOUT_SECONDS"), "max_retries": config.get("EXTERNAL_API_MAX_RETRIES"),
        "rate_limit": config.get("EXTERNAL_API_RATE_LIMIT"),
        "scheduler_enabled": bool(config.get("SCHEDULER_ENABLED")),
        "delete_guard": config["SYNC_DELETE_GUARD"], "delete_guard_min": config["SYNC_DELETE_GUARD_MIN"],
    }


@pages.route("/sync/admin")
@admin_required
def sync_admin():
    """The sync admin page: config, health, actions, runs, failed records, conflicts, webhooks."""
    overview = sync_overview()
    counts, per_page = overview["counts"], 25
    failed = records_in_status("failed", counts, page_number("failed_page"), per_page)
    conflicts = records_in_status("conflict", counts, page_number("conflicts_page"), 10)
    names = _vendor_names(conflicts.items)
    conflict_views = [(resource, record, conflict_rows(resource, record, names))
                      for resource, record in conflicts.items]
    runs = paginate(SyncRun, [], [SyncRun.started_at.desc(), SyncRun.id.desc()],
                    page_number("runs_page"), 20)
    webhooks = paginate(WebhookMessage, [], [WebhookMessage.received_at.desc(),
                                             WebhookMessage.id.desc()],
                        page_number("webhooks_page"), 20)
    return render_template("sync_admin.html", sync=overview, sync_config=sync_config_view(),
                           failed=failed, conflicts=conflicts, conflict_views=conflict_views,
                           runs=runs, webhooks=webhooks, chart=sync_chart(),
                           resources=SYNCED_MODELS, labels=SYNC_RESOURCE_LABELS,
                           record_label=sync_record_label, outcomes=WEBHOOK_OUTCOMES,
                           page_args=_admin_page_args(), held=sync_engine.held_deletions())


def _admin_page_args() -> dict:
    """The admin page's current ?*_page= arguments, so one pager keeps the others."""
    names = ("runs_page", "failed_page", "conflicts_page", "webhooks_page")
    return {name: request.args.get(name, type=int) for name in names
            if request.args.get(name, type=int)}


@pages.route("/sync/admin/runs/<int:run_id>")
@admin_required
def sync_admin_run_detail(run_id: int):
    """One run: what it moved and every per-record error."""
    run = db.session.get(SyncRun, run_id) or abort(404)
    errors, page, per_page = run.errors or [], page_number(), 50
    listing = PageOf(errors[(page - 1) * per_page:page * per_page], page, per_page, len(errors))
    changed = paginate(RecordHistory, [RecordHistory.ref == str(run.id),
                                       RecordHistory.source.in_(("pull", "restore"))],
                       [RecordHistory.at.desc(), RecordHistory.id.desc()],
                       page_number("changed_page"), per_page)
    return render_template("sync_run.html", run=run, errors=listing, labels=SYNC_RESOURCE_LABELS,
                           names=_record_names(listing.items), changed=changed,
                           links=_record_links(changed.items))


def _record_links(entries: list) -> dict:
    """{(resource, id): (label, url of the page with its history)} for a page of history
    entries, one query per resource: an employee's edit page, an event's (or a schedule's
    event's) schedule page; a deleted employee's history in the JSON API."""
    wanted: dict = {}
    for entry in entries:
        wanted.setdefault(entry.resource, set()).add(entry.record_id)
    links = {}
    for resource, ids in wanted.items():
        model = SYNCED_MODELS[resource]
        for record in db.session.scalars(select(model).where(model.id.in_(ids))):
            if resource == "employees":
                url = (url_for("pages.edit_employee", employee_id=record.id)
                       if record.deleted_at is None else
                       url_for("api.employees_history", record_id=record.id))
            else:
                url = url_for("pages.schedule_event", event_id=record.id if resource == "events"
                              else record.event_id)
            links[(resource, record.id)] = (sync_record_label(resource, record), url + "#history")
    return links


def _record_names(errors: list) -> dict:
    """{(resource, id): readable name} for a page of run errors, one query per resource."""
    wanted: dict = {}
    for error in errors:
        if error.get("resource") in SYNCED_MODELS and isinstance(error.get("id"), int):
            wanted.setdefault(error["resource"], set()).add(error["id"])
    names = {}
    for resource, ids in wanted.items():
        model = SYNCED_MODELS[resource]
        for record in db.session.scalars(select(model).where(model.id.in_(ids))):
            names[(resource, record.id)] = sync_record_label(resource, record)
    return names


def _back(default_endpoint: str = "pages.sync_admin"):
    """Redirect to the form's `next` (a local path) or to the admin page."""
    target = request.form.get("next")
    return redirect(security.safe_next(target) or url_for(default_endpoint))


def _run_request(form) -> tuple[list, str, bool]:
    """Resources, direction and full flag from an action form."""
    resource = form.get("resource", "all")
    resources = [resource] if resource in SYNCED_MODELS else list(SYNCED_MODELS)
    direction = form.get("direction", "both")
    if direction not in ("both", "push", "pull"):
        direction = "both"
    return resources, direction, form.get("full") in ("1", "true", "on")


@pages.route("/sync/admin/run", methods=["POST"])
@admin_required
def sync_admin_start_run():
    """No-JS fallback of Sync now and the admin actions: start a run, flash, go back."""
    resources, direction, full = _run_request(request.form)
    try:
        run = sync_engine.start_run(current_app._get_current_object(), "manual", resources,
                                    direction, wait=False, full=full)
    except sync_engine.SyncDisabled:
        flash("Sync is off (SYNC_ENABLED is false): no run was started.", "warning")
    except sync_engine.SyncInProgress as exc:
        flash(f"Run #{exc.run_id} is already running; wait for it to finish.", "warning")
    except ValueError as exc:
        flash(f"No run started: {exc}", "error")
    else:
        run_id = getattr(run, "id", None)
        what = "everything" if len(resources) == len(SYNCED_MODELS) else ", ".join(resources)
        flash(f"Sync run #{run_id} started ({what}, {direction}{', full resync' if full else ''}). "
              "Its result appears under Recent runs.", "success")
    return _back()


def _synced_record(resource: str, record_id: int):
    """A synced model's row, or 404."""
    model = SYNCED_MODELS.get(resource) or abort(404)
    return db.session.get(model, record_id) or abort(404)


@pages.route("/sync/admin/retry/<resource>/<int:record_id>", methods=["POST"])
@admin_required
def sync_admin_retry(resource: str, record_id: int):
    """Retry one failed record (no-JS form)."""
    record = _synced_record(resource, record_id)
    label = sync_record_label(resource, record)
    if sync_engine.retry_record(current_app._get_current_object(), record):
        flash(f"{SYNC_RESOURCE_LABELS[resource]} {label} will be sent again.", "success")
    else:
        flash(f"{SYNC_RESOURCE_LABELS[resource]} {label} is not failed ({record.sync_status}).", "info")
    return _back()


@pages.route("/sync/admin/retry_failed", methods=["POST"])
@admin_required
def sync_admin_retry_failed():
    """Retry every failed record (no-JS form)."""
    count = sync_engine.retry_failed(current_app._get_current_object())
    flash(f"{count} failed record{'s' if count != 1 else ''} will be sent again.", "success")
    return _back()


@pages.route("/sync/admin/held/<resource>", methods=["POST"])
@admin_required
def sync_admin_held(resource: str):
    """Apply or restore one resource's held deletions (no-JS form of the banner)."""
    if resource not in SYNCED_MODELS:
        abort(404)
    action = request.form.get("action")
    if action not in sync_engine.HELD_ACTIONS:
        flash("Choose Apply the deletions or Restore them to the vendor.", "error")
        return _back()
    try:
        result = sync_engine.resolve_held(current_app._get_current_object(), resource, action)
    except sync_engine.NothingHeld as exc:
        flash(str(exc), "info")
    else:
        flash(result["message"], "success")
    return _back()


@pages.route("/sync/admin/conflicts/<resource>/<int:record_id>/resolve", methods=["POST"])
@admin_required
def sync_admin_resolve(resource: str, record_id: int):
    """Keep the local or the vendor version of a record in conflict (no-JS form)."""
    record = _synced_record(resource, record_id)
    keep = request.form.get("keep")
    if keep not in ("local", "remote"):
        flash("Choose Keep local or Keep vendor.", "error")
        return _back()
    label = sync_record_label(resource, record)
    try:
        sync_engine.resolve_conflict(current_app._get_current_object(), resource,
                                              record_id, keep)
    except (LookupError, RuntimeError, ValueError) as exc:
        db.session.rollback()
        log.warning("resolve %s/%s failed: %s", resource, record_id, exc)
        flash(f"Could not resolve {label}: {exc}", "error")
        return _back()
    kept = "local" if keep == "local" else "vendor"
    flash(f"{SYNC_RESOURCE_LABELS[resource]} {label}: kept the {kept} version.", "success")
    return _back()


@sync_api.route("/records/<resource>/<int:record_id>/retry", methods=["POST"])
@admin_required
def api_retry_record(resource: str, record_id: int):
    """Retry one failed record: {"retried": bool, "record": {...}}."""
    model = SYNCED_MODELS.get(resource)
    record = db.session.get(model, record_id) if model is not None else None
    if record is None:
        raise ApiError(404, "not_found", f"no {resource} record {record_id}")
    retried = sync_engine.retry_record(current_app._get_current_object(), record)
    return jsonify({"retried": retried, "record": record.to_dict()})


# ---------------------------------------------------------------------------
# Template filters and globals
# ---------------------------------------------------------------------------

def register_template_helpers(app: Flask) -> None:
    """Filters that show stored UTC times in APP_TIMEZONE."""
    app.add_template_filter(lambda dt, fmt="%Y-%m-%d %H:%M": fmt_local(dt, fmt), "localtime")
    app.add_template_global(history_words)
    app.add_template_global(history_value)
    app.add_template_filter(lambda dt: iso(dt) or "", "isoutc")

    @app.context_processor
    def inject_globals():
        return {
            "app_timezone": app.config["APP_TIMEZONE"],
            "sync_enabled": bool(app.config.get("SYNC_ENABLED")),
        }


# ---------------------------------------------------------------------------
# Application factory
# ---------------------------------------------------------------------------

def create_app(config_name: Optional[str] = None, overrides: Optional[dict] = None) -> Flask:
    """Build the app: config, extensions, routes, error pages, commands."""
    app = Flask(__name__, instance_relative_config=True)
    config_class = app_config.config_for(config_name)
    app.config.from_object(config_class)
    if overrides:
        app.config.update(overrides)
    try:
        config_class.validate(app.config)
    except app_config.ConfigError as exc:
        if click.get_current_context(silent=True) is not None:
            # a `flask` command: click prints "Error: <what is missing>", exit 1, no traceback
            raise click.ClickException(f"Not starting: {exc}") from None
        raise
    register_logging(app)
    register_request_ids(app)
    metrics.register_request_metrics(app)
    register_input_rules(app)
    register_extensions(app)
    register_history_source(app)
    register_routes(app)
    register_error_handlers(app)
    register_template_helpers(app)
    register_commands(app)
    with app.app_context():
        if app.config.get("AUTO_MIGRATE"):
            upgrade_database(app)
        bootstrap_admin(app)
    register_scheduler(app)
    return app


def register_logging(app: Flask) -> None:
    """Logging is configured in error_handlers.configure_logging (one place)."""
    from error_handlers import configure_logging

    configure_logging(app)


def register_extensions(app: Flask) -> None:
    """Bind db, migrations, CSRF and the login manager to the app."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite"):
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
        if ":///" in uri and uri != "sqlite://":
            from pathlib import Path

            Path(uri.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(app_config.BASE_DIR / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "pages.login"
    security.register_security(app)  # first: throttled sign-ins answer 429 before anything
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            sa_event.listen(db.engine, "connect", _sqlite_pragmas)

    @app.before_request
    def auth_then_csrf():
        """API writes: 401 unless signed in, then CSRF unless signed in by HTTP Basic.

        CSRF is skipped only for a request that authenticated with Basic
        (curl sends no cookie a forger could ride on); a session cookie with
        any other Authorization header still needs the token.  The vendor's
        webhook is authenticated by its signature.  Pages keep CSRF first.
        """
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        if request.path.startswith("/api/webhook/"):
            return None
        if request.path.startswith("/api/"):
            if request.routing_exception is not None:
                return None  # the 404/405 answers; no view runs
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if g.get("basic_auth"):
                return None
        csrf.protect()
        return None


# The history source of each blueprint's writes (history.py): pages, the JSON and sync
# APIs with the signed-in user as actor, the webhook with none.
HISTORY_SOURCES = {"pages": "page", "api": "api", "sync_api": "api", "webhook": "webhook"}


def register_history_source(app: Flask) -> None:
    """Every write request says where its changes come from, once, here (history.py)."""

    @app.before_request
    def history_source():
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None  # reads write nothing; a GET that wrote would fail loudly
        name = HISTORY_SOURCES.get(request.blueprint or "")
        if name is not None:
            actor = current_user.username if name != "webhook" and \
                current_user.is_authenticated else None
            history.set_source(name, actor=actor)
        return None

    @app.teardown_request
    def history_source_done(_exc=None):
        history.clear_source()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL and a busy timeout so requests and the sync thread share the file."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def register_input_rules(app: Flask) -> None:
    """inputs.py's rules: ids in paths, body limits, and clean text in queries and forms."""
    app.request_class = inputs.Request
    app.url_map.converters["int"] = inputs.IdConverter

    @app.before_request
    def refuse_unclean_text():
        """A NUL in a query parameter or form field is 422 naming it.

        Only once the caller is known (anonymous calls get their 401 or the
        login page first), except the login form's fields (its `next` is
        checked by security.safe_next); the webhook's body is the sync
        engine's to check.
        """
        if request.endpoint in (None, "static", "webhook.webhook_schedule_update"):
            return
        if request.endpoint == "pages.login":
            inputs.check_mapping(request.form.items(multi=True))  # `next` is security.safe_next's
            return
        if not current_user.is_authenticated:
            return
        inputs.check_mapping(request.args.items(multi=True))
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            inputs.check_mapping(request.form.items(multi=True))


def register_routes(app: Flask) -> None:
    """URL rules for the login, pages, JSON API, sync API and webhook."""
    for blueprint in (pages, api, sync_api, webhook, ops, account):
        app.register_blueprint(blueprint)
    # Browsers and bookmarks ask for /favicon.ico whatever the page links: answer it.
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.ico"))


def upgrade_database(app: Flask) -> None:
    """Bring the schema to the latest migration (development and testing)."""
    from flask_migrate import upgrade

    if app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite://":
        db.create_all()  # in-memory database: nothing to migrate
        return
    upgrade(directory=str(app_config.BASE_DIR / "migrations"))


def bootstrap_admin(app: Flask) -> None:
    """Make sure ADMIN_USERNAME/ADMIN_PASSWORD can sign in as an admin."""
    username, password = app.config.get("ADMIN_USERNAME"), app.config.get("ADMIN_PASSWORD")
    if not (username and password):
        return
    try:
        user = db.session.scalar(select(User).where(User.username == username))
    except Exception:  # noqa: BLE001 - schema not there yet (before `db upgrade`)
        db.session.rollback()
        log.warning("users table missing: run `flask --app app db upgrade`")
        return
    if user is None or not user.check_password(password) or user.role != "admin":
        create_user(username, password, role="admin")
        log.info("admin user %r ready", username)


def register_scheduler(app: Flask) -> None:
    """Soon-runs for every app; the interval sync job when sync is on (never under testing)."""
    sync_scheduler.init_app(app)


# ---------------------------------------------------------------------------
# CLI commands
# ---------------------------------------------------------------------------

users_cli = AppGroup("users", help="Manage who can sign in.")


@users_cli.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="scheduler", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(name: str, role: str, password_stdin: bool) -> None:
    """Create a user (or reset an existing user's password and role)."""
    import sys

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(name, password, role)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"user {user.username!r} ({user.role}) is ready")


@users_cli.command("token")
@click.argument("name")
@click.option("--label", default="", help="What the token is for (shown on the tokens page).")
def users_token(name: str, label: str) -> None:
    """Make an API token for a user and print it (shown this once)."""
    user = db.session.scalar(select(User).where(User.username == name))
    if user is None or not user.active:
        raise click.ClickException(f"no active user {name!r}")
    try:
        plain, token = tokens.issue(user, label, current_app.config["API_TOKEN_DAYS"])
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    until = fmt_local(token.expires_at) if token.expires_at else "revoked"
    click.echo(plain)
    click.echo(f"token for {user.username!r} ({user.role}), valid until {until}; "
               "it is shown only now", err=True)


demo_cli = AppGroup("demo", help="Demo data for a first run.")


@demo_cli.command("seed")
@click.option("--force", is_flag=True, help="Add the demo data even if events exist.")
def demo_seed(force: bool) -> None:
    """Add a few employees, events and schedules (only into an empty database)."""
    if not force and db.session.scalar(select(func.count()).select_from(Event)):
        click.echo("events exist already; demo data not added (use --force)")
        return
    employees = seed_demo_data()
    click.echo(f"demo data added: {employees} employees, events in the next two weeks")


def seed_demo_data() -> int:
    """A small, realistic data set in APP_TIMEZONE, pending for the vendor."""
    today = to_local(utcnow()).date()
    people = [("US100001", "Ana Lopez", "ana.lopez@example.com"),
              ("US100002", "Ben Okafor", "ben.okafor@example.com"),
              ("US100003", "Chloe Martin", "chloe.martin@example.com"),
              ("US100004", "Dev Patel", "dev.patel@example.com")]
    staff = []
    for code, name, email in people:
        if db.session.scalar(live(Employee).where(Employee.code == code)) is None:
            staff.append(Employee(code=code, name=name, email=email))
    db.session.add_all(staff)
    base_ref = 606100 + int(utcnow().timestamp()) % 1000 * 100
    events = []
    for n in range(12):
        _type, name = demo_data.PROJECTS[n % len(demo_data.PROJECTS)]
        store_number, store_name = demo_data.STORES[n % len(demo_data.STORES)]
        first = today + timedelta(days=n % 5)
        events.append(Event(
            project_ref_num=base_ref + n, project_name=name, event_type=event_type_for(name),
            store_number=store_number, store_name=store_name,
            location_mvid=f"MV-{store_number:05d}",
            start_datetime=local_to_utc(datetime.combine(first, time(demo_data.WORKDAY_START))),
            due_datetime=local_to_utc(datetime.combine(first + timedelta(days=1 + n % 4),
                                                       time(demo_data.WORKDAY_END))),
            estimated_minutes=60 * (1 + n % 4),
        ))
    db.session.add_all(events)
    db.session.flush()
    if len(staff) >= 2:
        for event, person in ((events[0], staff[0]), (events[1], staff[1])):
            db.session.add(Schedule(event_id=event.id, employee_id=person.id,
                                    start_datetime=event.start_datetime + timedelta(hours=1)))
    db.session.commit()
    notify_local_change()
    return len(staff)


sync_cli = AppGroup("sync", help="Two-way sync with the vendor.")


@sync_cli.command("run")
@click.option("--resources", default="", help="Comma-separated: employees,events,schedules.")
@click.option("--direction", type=click.Choice(("both", "push", "pull")), default="both",
              show_default=True)
@click.option("--full", is_flag=True, help="List everything instead of the changes since last time.")
def sync_run_command(resources: str, direction: str, full: bool) -> None:
    """Run one sync now and print its summary (exit 1 if it failed)."""
    chosen = [r.strip() for r in resources.split(",") if r.strip()] or None
    try:
        run = sync_engine.run_sync(current_app._get_current_object(), trigger="cli",
                                   resources=chosen, direction=direction, full=full)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except (sync_engine.SyncDisabled, sync_engine.SyncInProgress) as exc:
        click.echo(f"sync not run: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(f"run {run.id}: {run.status} — pushed {run.pushed}, pulled {run.pulled}, "
               f"failed {run.failed}, conflicts {run.conflicts}")
    if run.message:
        click.echo(run.message)
    for error in run.errors or []:
        click.echo(f"  {error['resource']} {error['id']}: {error['message']}")
    if run.status == "failed":
        raise SystemExit(1)


schedules_cli = AppGroup("schedules", help="Schedule upkeep.")


@schedules_cli.command("recompute-days")
def recompute_days_command() -> None:
    """Recompute every schedule's local day for APP_TIMEZONE (run after changing it).

    Refuses, changing nothing (exit 1), when the new zone puts two live schedules of an
    employee on one day, and names them.
    """
    import local_days

    tz = app_tz()
    try:
        with db.engine.begin() as conn:
            changed = local_days.recompute(conn, tz)
    except local_days.DayClashError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    click.echo(f"{changed} schedule{'s' if changed != 1 else ''} moved to their day in {tz.key}.")


def register_commands(app: Flask) -> None:
    """`flask --app app users ...`, `sync ...`, `demo ...`, `schedules ...`."""
    app.cli.add_command(users_cli)
    app.cli.add_command(sync_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(schedules_cli)
