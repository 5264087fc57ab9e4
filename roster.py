"""The calendar's week as a roster: a row per employee, a column per local day.

Queries and the view model behind `/calendar` (the grid) and `/calendar/free` (the
unscheduled events a free cell can take).  A page of the grid costs a fixed number
of queries whatever the data: one COUNT and one page of employees, then one query for
those employees' live schedules that week with their events joined.  A row holds at
most seven schedules (one per employee per local day, held by the database), so its
count and estimated hours add up what that query brought.

Days are local days in APP_TIMEZONE: a schedule sits in the column of its stored
`local_day` (the day the one-per-day rule uses).  Imports only models (no Flask
request, nothing of app.py): the routes in app.py read the query string.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Optional

from markupsafe import Markup, escape
from sqlalchemy import and_, exists, func, or_, select

import availability
from models import Employee, Event, Schedule, app_tz, db, iso, local_day_bounds, to_local

DEFAULT_TIME = time(9, 0)
DAYS = 7


def monday_of(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def week_days(monday: date) -> list[date]:
    """Monday to Sunday."""
    return [monday + timedelta(days=i) for i in range(DAYS)]


def _like(text: str) -> str:
    """A LIKE pattern that finds `text` anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass
class RosterRow:
    """One employee's week: for each of the seven days, its schedules (SHIFT_COLUMNS rows)."""

    employee: Employee
    days: list = field(default_factory=lambda: [[] for _ in range(DAYS)])

    @property
    def count(self) -> int:
        return sum(len(day) for day in self.days)

    @property
    def minutes(self) -> int:
        return sum(s.estimated_minutes or 0 for day in self.days for s in day)

    @property
    def hours(self) -> str:
        """Estimated hours, e.g. "7.5"; "0" for none."""
        return f"{self.minutes / 60:.1f}".removesuffix(".0")


# What a roster cell shows of a schedule and its event.
SHIFT_COLUMNS = (Schedule.id, Schedule.event_id, Schedule.employee_id, Schedule.start_datetime, Schedule.local_day,
                 Schedule.sync_status, Schedule.sync_error, Event.project_name, Event.store_number,
                 Event.store_name, Event.estimated_minutes, Event.event_type)

# A card's event type: its colour class and the short label that says it without colour.
TYPE_LABELS = {"Core": "C", "Juicer": "J", "Supervisor": "S", "Digital": "D", "Freeosk": "F", "Other": "O"}
TYPE_CLASSES = {name: f"t-{name.lower()}" for name in TYPE_LABELS}
DEFAULT_MINUTES = 60  # a card's length when its event has no estimate

# A card's sync mark, made once (a macro call per card costs more than the rest of the card):
# a small sign, its words for screen readers, the state in a tooltip.
_SIGNS = {"synced": "✓", "pending": "…", "failed": "!", "conflict": "⇄"}
SYNC_MARKS = {state: Markup(
    f'<span class="sync-icon s-{state}" title="{state}" data-sync-icon><span aria-hidden="true">{sign}</span>'
    f'<span class="visually-hidden">, {"synced" if state == "synced" else "sync " + state}</span></span>')
    for state, sign in _SIGNS.items()}


def _week_work(monday: date, store: Optional[int] = None):
    """EXISTS: the outer employee has a live schedule this week (at `store`, if given)."""
    condition = and_(Schedule.employee_id == Employee.id, Schedule.deleted_at.is_(None),
                     Schedule.local_day >= monday, Schedule.local_day <= monday + timedelta(days=6))
    query = exists().where(condition)
    if store is not None:
        query = exists().where(condition, Schedule.event_id == Event.id, Event.store_number == store)
    return query


def employee_conditions(monday: date, name: str = "", store: Optional[int] = None) -> list:
    """Who has a row: active employees and those with work that week; filtered by name
    (anywhere in it, any case) and by store (work at that store that week)."""
    conditions = [Employee.deleted_at.is_(None)]
    if store is None:
        conditions.append(or_(Employee.active.is_(True), _week_work(monday)))
    else:
        conditions.append(_week_work(monday, store))
    if name:
        conditions.append(Employee.name.ilike(_like(name), escape="\\"))
    return conditions


def week_rows(monday: date, name: str, store: Optional[int], page: int,
              per_page: int) -> tuple[list[RosterRow], int]:
    """One page of roster rows (employees by name) and how many employees match."""
    conditions = employee_conditions(monday, name, store)
    # the page and how many match in one query (a window count); a page past the end
    # has no row to carry the count, so it is counted on its own then
    found = db.session.execute(
        select(Employee, func.count().over()).where(*conditions).order_by(Employee.name, Employee.id)
        .limit(per_page).offset((page - 1) * per_page)).all()
    employees = [employee for employee, _ in found]
    if found:
        total = found[0][1]
    else:
        total = db.session.scalar(select(func.count(Employee.id)).where(*conditions)) or 0
    rows = {e.id: RosterRow(e) for e in employees}
    if rows:
        # plain rows, not ORM objects: a page holds up to 350 schedules, and the grid
        # needs only these columns (a row reads like a schedule: s.id, s.sync_status, …)
        schedules = db.session.execute(
            select(*SHIFT_COLUMNS).join(Event, Event.id == Schedule.event_id)
            .where(Schedule.employee_id.in_(list(rows)), Schedule.deleted_at.is_(None),
                   Schedule.local_day >= monday, Schedule.local_day <= monday + timedelta(days=6))
            .order_by(Schedule.start_datetime, Schedule.id))
        for schedule in schedules:
            rows[schedule.employee_id].days[(schedule.local_day - monday).days].append(schedule)
    return list(rows.values()), total


def sync_mark(state: str) -> Markup:
    """A card's sync mark (SYNC_MARKS, or one made for a state it does not know)."""
    return SYNC_MARKS.get(state) or Markup(
        '<span class="sync-icon s-{0}" title="{0}" data-sync-icon><span aria-hidden="true">?</span>'
        '<span class="visually-hidden">, sync {0}</span></span>').format(state)


@lru_cache(maxsize=64)
def _type_parts(kind: str) -> tuple[str, Markup, Markup]:
    """A card's type: its colour class, its chip, its name escaped (made once a type)."""
    tclass = TYPE_CLASSES.get(kind, "t-other")
    chip = Markup(f'<abbr class="type-chip {tclass}" title="{escape(kind)}">'
                  f'{escape(TYPE_LABELS.get(kind, kind))}</abbr>')
    return tclass, chip, escape(kind)


def card_html(s, links: dict, token: str, event_page: str, tz=None) -> Markup:
    """One roster card (templates/calendar.html puts it in its cell): a <details> whose
    summary is the card's two lines and whose body is its menu.  Made here with one
    format string, not in Jinja: a page holds hundreds of cards, and the template's
    per-value escaping and lookups cost several times more.  `tz`: APP_TIMEZONE, looked
    up once by the caller of many."""
    tz = tz or app_tz()
    at = s.start_datetime.astimezone(tz).strftime("%H:%M")
    kind = s.event_type or "Other"
    tclass, chip, kind = _type_parts(kind)
    name = escape(s.project_name)
    store = "—" if s.store_number is None else str(s.store_number)
    store_name = escape(s.store_name or "")
    state = escape(s.sync_status)
    sync = ""
    if s.sync_status != "synced":
        sync = f"<br>Sync: {state}" + (f" ({escape(s.sync_error)})" if s.sync_error else "")
    reschedule = links["reschedule"](s.id)
    # its end: the start plus the event's estimate (else an hour), local
    ends = (s.start_datetime + timedelta(minutes=s.estimated_minutes or DEFAULT_MINUTES)).astimezone(tz).strftime("%H:%M")
    return Markup(
        f'<details class="shift {tclass}" draggable="true" data-schedule-id="{s.id}" data-event-id="{s.event_id}" '
        f'data-time="{at}" data-name="{name}" data-state="{state}" data-reschedule-url="{reschedule}">'
        f'<summary class="shift-line" title="{name}"><span class="shift-top"><span class="shift-when">'
        f'<time class="shift-time" datetime="{iso(s.start_datetime)}">{at}</time><span class="shift-end">–{ends}</span></span> '
        f'{chip}{sync_mark(s.sync_status)}</span>\n'
        f'<span class="shift-bottom"><span class="shift-event">{name}</span> <span class="shift-store">{store}</span></span></summary>'
        f'<div class="shift-menu"><p class="shift-detail">{name}<br>{at}–{ends} · {kind}<br>Store {store} {store_name}{sync}</p>\n'
        f'<a href="{reschedule}">Reschedule<span class="visually-hidden"> {name}</span></a>\n'
        f'<form method="post" action="{links["unschedule"](s.id)}" data-unschedule><input type="hidden" name="csrf_token" value="{token}">'
        f'<button type="submit" class="link danger">Unschedule<span class="visually-hidden"> {name}</span></button></form>\n'
        f'<a href="{event_page}{s.event_id}#history">History<span class="visually-hidden"> of {name}</span></a></div></details>')


def row_cells(row: RosterRow, day_labels: list[dict], unavailable: dict, links: dict,
              token: str, event_page: str, store_q: str) -> Markup:
    """A roster row's seven cells (templates/calendar.html puts them after the name): its
    cards, else "Off" with the reason or the "+" of a free cell, and the warning mark of
    work on a day the employee is not available.  Made here, as card_html: 350 cells a
    page cost several times more as template loops and per-value escaping."""
    e = row.employee
    tz = app_tz()
    name = escape(e.name)
    add = f'<a class="add-here" href="{links["free"]}?employee_id={e.id}&amp;date='
    store_q = escape(store_q)
    cells = []
    for day, cell in zip(day_labels, row.days):
        why = unavailable.get((e.id, day["date"]))
        why = escape(why) if why else None
        classes = "roster-cell" + (" today" if day["today"] else "")
        if not cell:
            classes += " free unavailable" if why else " free"
        head = (f'<td class="{classes}" data-date="{day["iso"]}" data-employee-id="{e.id}" '
                f'data-employee-name="{name}"' + (f' title="{why}">' if why else '>'))
        if cell:
            body = "\n".join([card_html(s, links, token, event_page, tz) for s in cell])
            if why:
                body += f'\n<span class="avail-warning" data-warning>⚠<span class="visually-hidden"> {why}</span></span>'
        elif why:
            body = f'<span class="off-note" aria-hidden="true">Off</span><span class="visually-hidden">{why}</span>'
        elif e.active and day["open"]:
            body = (f'{add}{day["iso"]}{store_q}"><span aria-hidden="true">+</span><span class="visually-hidden">'
                    f'Schedule here for {name} on {day["long"]}</span></a>')
        else:
            body = ""
        cells.append(f"{head}\n{body}\n</td>")
    return Markup("\n".join(cells))


@dataclass
class DayTotal:
    """A column's footer on the page shown: schedules, their estimated hours, who works."""

    count: int = 0
    minutes: int = 0
    people: int = 0

    @property
    def hours(self) -> str:
        return f"{self.minutes / 60:.1f}".removesuffix(".0")


def day_totals(rows: list[RosterRow]) -> list[DayTotal]:
    """Per day of the page's rows (no query: the rows hold the week)."""
    totals = [DayTotal() for _ in range(DAYS)]
    for row in rows:
        for total, day in zip(totals, row.days):
            if day:
                total.people += 1
                total.count += len(day)
                total.minutes += sum(s.estimated_minutes or 0 for s in day)
    return totals


def repeated_names(rows: list[RosterRow]) -> set[str]:
    """Names that more than one row of the page carries (those rows also show the code)."""
    seen: set[str] = set()
    twice: set[str] = set()
    for row in rows:
        (twice if row.employee.name in seen else seen).add(row.employee.name)
    return twice


def open_counts(monday: date, store: Optional[int] = None) -> list[int]:
    """For each day of the week, how many live unscheduled events could be done that day
    (their window covers some of it): one query, a filtered COUNT per day."""
    counts = [func.count(Event.id).filter(and_(*free_event_conditions(day)[2:4]))
              for day in week_days(monday)]
    first, last = local_day_bounds(monday)[0], local_day_bounds(monday + timedelta(days=6))[1]
    where = [Event.deleted_at.is_(None), ~Event.is_scheduled, Event.start_datetime < last,
             Event.due_datetime >= first]
    if store is not None:
        where.append(Event.store_number == store)
    return list(db.session.execute(select(*counts).where(*where)).one())


def unavailable_cells(monday: date, rows: list[RosterRow]) -> dict[tuple[int, date], str]:
    """{(employee id, day): why, in words} for a page of roster rows: the free cells to
    grey out (not a workday, time off, the week at its limit) and, where a cell holds
    work (the vendor's, or a rule set later), what that work breaks.  One query."""
    held = {}
    for row in rows:  # the week's live schedules of these employees: the rows hold them
        days = {s.local_day: s.event_id for day in row.days for s in day}
        if days:
            held[(row.employee.id, monday)] = days
    return availability.unavailable_reasons([row.employee for row in rows], week_days(monday), held)


# -- a free cell: the events that can go there ---------------------------------------

def free_event_conditions(day: date, store: Optional[int] = None, event_type: str = "") -> list:
    """Live unscheduled events whose window covers some of local `day`."""
    start, end = local_day_bounds(day)
    conditions = [Event.deleted_at.is_(None), ~Event.is_scheduled,
                  Event.start_datetime < end, Event.due_datetime >= start]
    if store is not None:
        conditions.append(Event.store_number == store)
    if event_type:
        conditions.append(Event.event_type == event_type)
    return conditions


FREE_EVENT_ORDER = (Event.due_datetime, Event.start_datetime, Event.id)  # earliest due first


def default_time(event: Event, day: date) -> time:
    """The time a free cell's schedule starts with: the window's start when the window
    opens that day, else 09:00; never after the window's end on its last day."""
    start, due = to_local(event.start_datetime), to_local(event.due_datetime)
    at = start.time().replace(second=0, microsecond=0) if start.date() == day else DEFAULT_TIME
    if due.date() == day and at > due.time():
        at = due.time().replace(second=0, microsecond=0)
    return at



# -- the planner's proposal on the grid ("Plan this week", static/js/roster.js) -------

def describe_plan(starts: list[tuple[int, int, datetime]], event_ids: list[int]) -> dict:
    """What the roster shows of a proposal of POST /api/plan, in two queries: for each
    (event id, employee id, start) its local day, time and end, the event's name, type
    and store, the employee's name (None for an id that is gone); for each other event id
    (the unplaced) its name and store."""
    wanted = {e for e, _, _ in starts} | set(event_ids)
    columns = (Event.id, Event.project_name, Event.store_number, Event.store_name,
               Event.event_type, Event.estimated_minutes)
    events = {row.id: row for row in db.session.execute(
        select(*columns).where(Event.id.in_(wanted)))} if wanted else {}
    people_ids = {p for _, p, _ in starts}
    people = dict(db.session.execute(select(Employee.id, Employee.name).where(
        Employee.id.in_(people_ids))).all()) if people_ids else {}

    def event_words(row) -> dict:
        kind = row.event_type or "Other"
        return {"name": row.project_name, "store": row.store_number, "store_name": row.store_name or "",
                "type": kind, "type_label": TYPE_LABELS.get(kind, kind[:1]),
                "type_class": TYPE_CLASSES.get(kind, "t-other")}

    assignments = []
    for event_id, employee_id, start in starts:
        row = events.get(event_id)
        if row is None or employee_id not in people:
            assignments.append(None)
            continue
        local = to_local(start)
        ends = to_local(start + timedelta(minutes=row.estimated_minutes or DEFAULT_MINUTES))
        assignments.append({**event_words(row), "employee": people[employee_id],
                            "date": local.date().isoformat(), "time": local.strftime("%H:%M"),
                            "end": ends.strftime("%H:%M")})
    return {"assignments": assignments,
            "events": {str(i): event_words(events[i]) for i in event_ids if i in events}}
