"""Availability: who may work which local day (workdays, time off, a weekly limit).

Local to this app: the vendor's contract has none of it, so nothing here is pushed
and a pull or webhook never changes it.  The rules (the messages name the reason):

* `employee_unavailable` (409): the day is not one of the employee's `workdays`, or
  falls in one of their time-off ranges (whole local days, inclusive);
* `over_weekly_limit` (409): the Monday–Sunday week already has `max_days_per_week`
  other scheduled days.

`availability_problem` checks one employee and day; `unavailable_employee_ids`,
`free_employees` and `week_counts` answer for many at once in one query each.  The
JSON readers (`max_days_value`, `parse_time_off`, `parse_json_day`) raise 422
naming the field.

Every local schedule path (page, API, CSV, roster drag, planner) calls `check_schedule`
here: the models' rules (window, active, one a day, event free) and then availability,
after `lock_employee` has serialized writers for that employee.  The database keeps the
weekly limit that way: two requests racing to give one employee a day of a week at its
limit queue on the employee's row lock (PostgreSQL) or the write lock (SQLite), and the
second one counts the first one's committed schedule.  The planner's apply checks many at
once with `Batch`: `lock_employees` (all of them, in id order), then one query each for
the events, the employees and their availability, and the same rules on those rows.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Optional

from sqlalchemy import Integer, String, func, literal, select, text, union

import inputs
import models
from models import (DomainError, Employee, Event, Schedule, TimeOff, busy_employee_ids, db, live,
                    to_local)

_WEEKDAY_PLURALS = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays",
                    "Saturdays", "Sundays")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def max_days_value(value: Any, field: str = "max_days_per_week") -> Optional[int]:
    """null (no limit) or a whole number 1..7; DomainError 422 naming `field`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 7:
        raise DomainError(f"{field} must be a whole number from 1 to 7, or null for no limit",
                          field=field)
    return value


def parse_json_day(body: dict, field: str) -> date:
    """A YYYY-MM-DD field of a JSON body; DomainError 422 naming it."""
    value = body.get(field)
    try:
        return inputs.check_day(date.fromisoformat(value), field)
    except (TypeError, ValueError):
        raise DomainError(f"{field} must be a date YYYY-MM-DD", field=field) from None


def parse_time_off(body: Any) -> dict:
    """A time-off JSON body {"start_date", "end_date", "note"?} → TimeOff's fields."""
    if not isinstance(body, dict):
        raise DomainError("send a JSON object with start_date and end_date")
    start, end = parse_json_day(body, "start_date"), parse_json_day(body, "end_date")
    if end < start:
        raise DomainError("end_date must be on or after start_date", field="end_date")
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 200):
        raise DomainError("note must be text of at most 200 characters", field="note")
    return {"start_date": start, "end_date": end, "note": (note or "").strip() or None}


def week_start(day: date) -> date:
    """The Monday of `day`'s Monday–Sunday week."""
    return day - timedelta(days=day.weekday())


def fmt_day(day: date) -> str:
    """A day as people read it in messages: "07 Dec"."""
    return f"{day.day:02d} {_MONTHS[day.month - 1]}"


def _week_count(employee_id: int, day: date, exclude_schedule_id: Optional[int]) -> int:
    """Days the employee is scheduled in `day`'s week, other than `day` itself."""
    monday = week_start(day)
    query = select(func.count(Schedule.id)).where(
        Schedule.employee_id == employee_id, Schedule.deleted_at.is_(None),
        Schedule.local_day.between(monday, monday + timedelta(days=6)), Schedule.local_day != day)
    if exclude_schedule_id is not None:
        query = query.where(Schedule.id != exclude_schedule_id)
    return db.session.scalar(query) or 0


def availability_problem(employee: Employee, day: date,
                         exclude_schedule_id: Optional[int] = None) -> Optional[DomainError]:
    """Why `employee` may not be scheduled on local `day` (409), or None.

    `employee_unavailable`: not a workday, or a day off; `over_weekly_limit`: the
    Monday–Sunday week already has max_days_per_week other scheduled days.
    `exclude_schedule_id` is the schedule being moved (it does not count).
    """
    if not employee.works_on(day):
        return _not_workday(employee, day)
    off = db.session.scalar(select(TimeOff).where(
        TimeOff.employee_id == employee.id, TimeOff.start_date <= day, TimeOff.end_date >= day)
        .order_by(TimeOff.start_date, TimeOff.id).limit(1))
    if off is not None:
        return _day_off(employee, off)
    limit = employee.max_days_per_week
    if limit is not None and _week_count(employee.id, day, exclude_schedule_id) >= limit:
        return _over_limit(employee, day)
    return None


def _not_workday(employee: Employee, day: date) -> DomainError:
    """409 employee_unavailable: `day` is not one of the employee's workdays."""
    return DomainError(f"{employee.name} does not work on {_WEEKDAY_PLURALS[day.weekday()]}",
                       field="employee_id", status=409, code="employee_unavailable")


def _day_off(employee: Employee, off: TimeOff) -> DomainError:
    """409 employee_unavailable: the employee is off (the range and its note)."""
    note = f" ({off.note})" if off.note else ""
    return DomainError(f"{employee.name} is off from {fmt_day(off.start_date)} to "
                       f"{fmt_day(off.end_date)}{note}",
                       field="employee_id", status=409, code="employee_unavailable")


def _over_limit(employee: Employee, day: date) -> DomainError:
    """409 over_weekly_limit: the week of `day` is already at max_days_per_week."""
    limit = employee.max_days_per_week
    return DomainError(f"{employee.name} already works {limit} day{'s' if limit != 1 else ''}"
                       f" in the week of {fmt_day(week_start(day))} (limit {limit})",
                       field="employee_id", status=409, code="over_weekly_limit")


def unavailable_employee_ids(day: date, exclude_schedule_id: Optional[int] = None):
    """A select of the ids of employees availability keeps off local `day` (one query, any
    number of employees): not a workday, a day off, or the week at its limit."""
    monday = week_start(day)
    not_workday = select(Employee.id).where(Employee.workdays.op("&")(1 << day.weekday()) == 0)
    off = select(TimeOff.employee_id).where(TimeOff.start_date <= day, TimeOff.end_date >= day)
    full = (select(Schedule.employee_id).join(Employee, Employee.id == Schedule.employee_id)
            .where(Schedule.deleted_at.is_(None), Employee.max_days_per_week.is_not(None),
                   Schedule.local_day.between(monday, monday + timedelta(days=6)),
                   Schedule.local_day != day)
            .group_by(Schedule.employee_id, Employee.max_days_per_week)
            .having(func.count(Schedule.id) >= Employee.max_days_per_week))
    if exclude_schedule_id is not None:
        full = full.where(Schedule.id != exclude_schedule_id)
    return select(union(not_workday, off, full).subquery().c[0])


def free_employees(day: date, exclude_schedule_id: Optional[int] = None) -> list[Employee]:
    """Active employees who may take work on local `day`: no schedule that day and
    available (workday, not off, week under its limit), by name."""
    query = live(Employee).where(
        Employee.active.is_(True),
        Employee.id.not_in(busy_employee_ids(day, exclude_schedule_id)),
        Employee.id.not_in(unavailable_employee_ids(day, exclude_schedule_id)))
    return list(db.session.scalars(query.order_by(Employee.name, Employee.id)))


def week_counts(employee_ids, monday: date) -> dict[int, int]:
    """Scheduled days per employee in the week starting `monday` (ids: a list or a select
    of them; one query; employees with none are left out)."""
    rows = db.session.execute(
        select(Schedule.employee_id, func.count(Schedule.id))
        .where(Schedule.deleted_at.is_(None), Schedule.employee_id.in_(employee_ids),
               Schedule.local_day.between(monday, monday + timedelta(days=6)))
        .group_by(Schedule.employee_id))
    return {employee_id: count for employee_id, count in rows}


def lock_employee(employee_id: int) -> None:
    """Serialize writers for one employee until the transaction ends: a no-op UPDATE takes
    the row's lock on PostgreSQL and the database's write lock on SQLite (the driver begins
    the transaction at this first write), so what is read next is what others committed."""
    db.session.execute(text("UPDATE employees SET workdays = workdays WHERE id = :id"),
                       {"id": employee_id})


def check_schedule(event: Optional[Event], employee: Optional[Employee], start: datetime,
                   schedule: Optional[Schedule] = None) -> None:
    """Raise DomainError unless `employee` may do `event` at `start`: the models' rules
    (models.check_schedule), then availability (409 employee_unavailable /
    over_weekly_limit) under the employee's lock (kept until the caller commits)."""
    models.check_schedule(event, employee, start, schedule)
    lock_employee(employee.id)
    problem = availability_problem(employee, to_local(start).date(),
                                   schedule.id if schedule is not None else None)
    if problem is not None:
        raise problem


def unavailable_reasons(employees: list[Employee], days: list[date],
                        held: Optional[dict] = None) -> dict[tuple, str]:
    """{(employee id, day): why, in words} for the employee-days availability keeps free
    (not a workday, a day off, the week at its limit), for a page of employees over some
    days (the roster's greyed cells); one query (time off and held days together).
    `held`: {(employee id, monday): {day: event id}} of these employees over the weeks of
    `days`, when the caller has loaded them already (then only time off is queried)."""
    if not employees or not days:
        return {}
    offs, loaded = load_availability([e.id for e in employees], min(days), max(days),
                                     held=held is None)
    held = loaded if held is None else held
    weeks = {day: week_start(day) for day in days}
    out = {}
    for employee in employees:
        taken_by_week = {}
        for day in days:
            week = weeks[day]
            if week not in taken_by_week:
                taken_by_week[week] = set(held.get((employee.id, week), {}))
            problem = problem_from(employee, day, offs.get(employee.id, ()), taken_by_week[week])
            if problem is not None:
                out[(employee.id, day)] = problem.message
    return out


def load_availability(employee_ids: list[int], first: date, last: date,
                      held: bool = True) -> tuple[dict, dict]:
    """What availability needs for these employees over the weeks of first..last, in one
    query: ({employee id: [TimeOff]}, {(employee id, monday): {held day: event id}});
    `held=False`: time off only (the second is then empty)."""
    low, high = week_start(first), week_start(last) + timedelta(days=6)
    offs = select(literal("off"), TimeOff.employee_id, TimeOff.start_date, TimeOff.end_date,
                  TimeOff.note, literal(None, Integer)).where(
        TimeOff.employee_id.in_(employee_ids), TimeOff.start_date <= high, TimeOff.end_date >= low)
    held_days = select(literal("held"), Schedule.employee_id, Schedule.local_day, Schedule.local_day,
                  literal(None, String), Schedule.event_id).where(
        Schedule.deleted_at.is_(None), Schedule.employee_id.in_(employee_ids),
        Schedule.local_day.between(low, high))
    offs_by: dict = {}
    held_by: dict = {}
    query = offs.union_all(held_days) if held else offs
    for kind, employee_id, start, end, note, event_id in db.session.execute(query):
        if kind == "off":
            offs_by.setdefault(employee_id, []).append(
                TimeOff(start_date=start, end_date=end, note=note))
        else:
            held_by.setdefault((employee_id, week_start(start)), {})[start] = event_id
    return offs_by, held_by


def problem_from(employee: Employee, day: date, offs, held_days: set) -> Optional[DomainError]:
    """availability_problem's answer from rows already loaded (load_availability):
    `held_days` are the employee's scheduled days in `day`'s week."""
    if not employee.works_on(day):
        return _not_workday(employee, day)
    off = next((o for o in sorted(offs, key=lambda o: o.start_date) if o.covers(day)), None)
    if off is not None:
        return _day_off(employee, off)
    limit = employee.max_days_per_week
    if limit is not None and len(held_days - {day}) >= limit:
        return _over_limit(employee, day)
    return None


def lock_employees(employee_ids) -> None:
    """lock_employee for many employees in one statement, in id order (two applies never
    deadlock): FOR NO KEY UPDATE (the lock a no-op UPDATE takes, so a writer for one of
    them waits as for lock_employee) on PostgreSQL; the write lock on SQLite."""
    ids = sorted(set(employee_ids))
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(Employee.id).where(Employee.id.in_(ids)).order_by(Employee.id)
                           .with_for_update(key_share=True))
    else:
        table = Employee.__table__
        db.session.execute(table.update().where(table.c.id.in_(ids))
                           .values(workdays=table.c.workdays))


class Batch:
    """check_schedule for many new schedules at once (the planner's apply), with what the
    checks read loaded in one query each after the employees' locks: the events, the
    employees, their time off and scheduled days over the weeks concerned.  `check`
    raises the very DomainError check_schedule would; `hold` counts an accepted one, so
    that the next checks see it (one a day, the event taken, the weekly limit)."""

    def __init__(self, wanted: list[tuple[int, int, datetime]]):
        """`wanted`: (event id, employee id, start) of each schedule to check."""
        employee_ids = sorted({employee_id for _, employee_id, _ in wanted})
        lock_employees(employee_ids)
        fresh = {"populate_existing": True}  # read after the locks, not an earlier copy
        self.events = {e.id: e for e in db.session.scalars(live(Event).where(
            Event.id.in_({event_id for event_id, _, _ in wanted})).execution_options(**fresh))}
        self.employees = {e.id: e for e in db.session.scalars(live(Employee).where(
            Employee.id.in_(employee_ids)).execution_options(**fresh))}
        self.taken = {e.id for e in self.events.values() if e.is_scheduled}
        days = [to_local(start).date() for _, _, start in wanted]
        self.offs, self.held = load_availability(employee_ids, min(days), max(days))

    def check(self, event: Event, employee: Employee, start: datetime) -> None:
        """Raise DomainError unless `employee` may do `event` at `start` (as check_schedule)."""
        day = to_local(start).date()
        held = self.held.get((employee.id, week_start(day)), {})
        models.check_schedule(event, employee, start, known=(event.id in self.taken, day in held))
        problem = problem_from(employee, day, self.offs.get(employee.id, ()), set(held))
        if problem is not None:
            raise problem

    def hold(self, event_id: int, employee_id: int, start: datetime) -> None:
        """An accepted schedule: its event and the employee's day are taken from now on."""
        day = to_local(start).date()
        self.taken.add(event_id)
        self.held.setdefault((employee_id, week_start(day)), {})[day] = event_id


def lock_limited(employees: list[Employee]) -> None:
    """lock_employee for each employee with a weekly limit, in id order (no deadlock)."""
    for employee_id in sorted({e.id for e in employees if e.max_days_per_week is not None}):
        lock_employee(employee_id)


def schedule_warnings(schedules: list[Schedule]) -> dict[int, list[str]]:
    """{schedule id: [why it breaks availability, in words]} for a page of schedules (the
    vendor's are applied as it says; a local one may break a rule set later): one query."""
    live_ones = [s for s in schedules if s.deleted_at is None and s.local_day is not None]
    if not live_ones:
        return {}
    days = [s.local_day for s in live_ones]
    offs, held = load_availability(sorted({s.employee_id for s in live_ones}), min(days), max(days))
    found = {}
    for schedule in live_ones:
        taken = set(held.get((schedule.employee_id, week_start(schedule.local_day)), {}))
        problem = problem_from(schedule.employee, schedule.local_day,
                               offs.get(schedule.employee_id, ()), taken)
        if problem is not None:
            found[schedule.id] = [problem.message]
    return found
