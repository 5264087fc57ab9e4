"""The planner (app-api.md "Planner"): unscheduled events onto free employee-days.

Two halves.  A pure core (`Problem` in, `Plan` out, no database) that models the
problem as what it is, a min-cost maximum flow solved by OR-Tools:

    source → event (cap 1) → employee-day (cap 1: one schedule a day)
           → employee-week (cap: the week's remaining days) → employee → sink

It places as many events as any valid plan could (maximum flow) and, among those
plans, prefers lexicographically the events due first, then an employee who has
worked at that store before, then an even spread of days across employees (the
costs and why they are lexicographic: `_Weights`).  And a loader (`load_problem`,
`plan`) that builds the problem from the models in a constant number of queries.
Imports the models only; writes nothing.
"""
from __future__ import annotations

import time as clock
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Optional
from zoneinfo import ZoneInfo

from ortools.graph.python import min_cost_flow
from sqlalchemy import exists, select

import models
import availability
from availability import fmt_day
from models import EVENT_TYPES, DomainError, Employee, Event, Schedule, TimeOff, db

MAX_DAYS = 31  # the longest range one plan covers
DEFAULT_START = time(9, 0)  # local time of a planned schedule on a day its window does not open


# ---------------------------------------------------------------------------
# The problem and the plan (no database)
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanEvent:
    """An unscheduled event: the local days a start may fall on, and when it is due."""

    id: int
    first_day: date  # the local day the window opens (solve clips it to the range)
    last_day: date  # the last local day a start still fits in the window
    due: datetime
    store_number: Optional[int] = None
    start: Optional[datetime] = None  # the window's start (for the time of day; not the core's)


@dataclass
class PlanEmployee:
    """An active employee: the days they may take in the range and what limits them."""

    id: int
    days: frozenset[date]  # in the range: workdays − time off − days already scheduled
    week_capacity: dict[date, Optional[int]] = field(default_factory=dict)  # Monday → days left
    stores: frozenset[int] = frozenset()  # stores worked at before
    busy_days: int = 0  # days already scheduled in the range (the spread starts from them)


@dataclass
class Problem:
    """Events and employees over the local days day_from..day_to."""

    day_from: date
    day_to: date
    events: list[PlanEvent]
    employees: list[PlanEmployee]


@dataclass(frozen=True)
class Assignment:
    """One event given to one employee on one local day."""

    event_id: int
    employee_id: int
    day: date


@dataclass(frozen=True)
class Unplaced:
    """An event left out, and why in words."""

    event_id: int
    reason: str


@dataclass
class Plan:
    """What solve returns: the assignments, the events left out, and figures."""

    assignments: list[Assignment]
    unplaced: list[Unplaced]
    stats: dict[str, Any]


def week_of(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def usable_days(employee: PlanEmployee) -> list[date]:
    """The employee's days whose week still has room (sorted)."""
    return sorted(d for d in employee.days
                  if employee.week_capacity.get(week_of(d)) is None
                  or employee.week_capacity[week_of(d)] > 0)


def clipped(event: PlanEvent, problem: Problem) -> tuple[date, date]:
    """The event's first and last day inside the range (first > last: none)."""
    return max(event.first_day, problem.day_from), min(event.last_day, problem.day_to)


def days_between(first: date, last: date) -> list[date]:
    """Every day first..last (none when first > last)."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# ---------------------------------------------------------------------------
# The flow network
# ---------------------------------------------------------------------------

@dataclass
class _Weights:
    """Integer costs that make three preferences lexicographic (proof in `of`).

    spread: the k-th day of an employee's days in the range costs 2k − 1 (so d days cost
    d², convex: evening out lowers the total).  unfamiliar: an assignment to an employee
    who has not worked at the event's store.  due: per rank of the due time, on the
    source → event arc.
    """

    unfamiliar: int
    due: int

    @classmethod
    def of(cls, employees: list[PlanEmployee], placeable: int) -> "_Weights":
        """Let S exceed every plan's total spread cost: then, P placed events at most,
        unfamiliar = S makes one more familiar assignment worth more than any spread
        change, and due = S·P + S exceeds every familiarity-plus-spread total (≤ S·P +
        S − 1), so one unit of the due-rank sum outweighs all below it.  All maximum
        plans place the same number of events, and the event sets a flow can place form
        a matroid (a gammoid): the minimum due-rank sum is the greedy, earliest-due set."""
        spread = 1 + sum(sum(2 * (e.busy_days + k) - 1 for k in range(1, len(usable_days(e)) + 1))
                         for e in employees)
        return cls(unfamiliar=spread, due=spread * placeable + spread)


class _Network:
    """The min-cost-flow graph of a Problem, and the plan read back from its flow.

    Familiarity without an arc per (event, employee, day): an event with a store goes to
    a store-day node; from there to the employee-days of employees who know the store
    (cost 0) or, through the day's node, to any employee-day (cost `unfamiliar`).
    """

    SOURCE, SINK = 0, 1

    def __init__(self, problem: Problem):
        """An empty graph over `problem`, with each employee's usable days."""
        self.problem = problem
        self.flow = min_cost_flow.SimpleMinCostFlow()
        self.nodes: dict[tuple, int] = {}
        self.tails: list[int] = []
        self.heads: list[int] = []
        self.caps: list[int] = []
        self.costs: list[int] = []
        self.event_arcs: list[tuple[int, int, int]] = []  # (arc, event id, next node)
        self.to_employee_day: list[tuple[int, int, int, date]] = []  # (arc, from node, emp, day)
        self.store_day_to_day: list[tuple[int, int, int]] = []  # (arc, store-day node, day node)
        self.usable = {e.id: usable_days(e) for e in problem.employees}
        self.free_on: dict[date, list[int]] = defaultdict(list)  # day → employees usable
        for employee in problem.employees:
            for day in self.usable[employee.id]:
                self.free_on[day].append(employee.id)
        self.anyone_on = set().union(*(e.days for e in problem.employees))  # before limits

    def node(self, key: tuple) -> int:
        """The node id of `key`, made on first use."""
        found = self.nodes.get(key)
        if found is None:
            found = self.nodes[key] = len(self.nodes) + 2
        return found

    def arc(self, tail: int, head: int, capacity: int, cost: int) -> int:
        """Queue an arc; its index once added."""
        self.tails.append(tail)
        self.heads.append(head)
        self.caps.append(capacity)
        self.costs.append(cost)
        return len(self.tails) - 1

    def candidate_days(self, event: PlanEvent) -> list[date]:
        """The days in the event's clipped window on which some employee is usable."""
        first, last = clipped(event, self.problem)
        return [d for d in days_between(first, last) if self.free_on.get(d)]

    def build(self) -> None:
        """All arcs, costs and supplies."""
        events = [e for e in self.problem.events if self.candidate_days(e)]
        placeable = min(len(events), sum(len(days) for days in self.usable.values()))
        self.weights = _Weights.of(self.problem.employees, placeable)
        ranks = {due: rank for rank, due in enumerate(sorted({e.due for e in events}))}
        store_days: dict[tuple[int, date], int] = {}
        for event in events:
            self._event_arcs(event, ranks[event.due], store_days)
        for (store, day), count in sorted(store_days.items()):
            sd_node = self.node(("sd", store, day))
            arc = self.arc(sd_node, self.node(("d", day)), count, self.weights.unfamiliar)
            self.store_day_to_day.append((arc, sd_node, self.node(("d", day))))
        self._employee_arcs(store_days)
        self.flow.add_arcs_with_capacity_and_unit_cost(self.tails, self.heads, self.caps,
                                                       self.costs)
        self.flow.set_node_supply(self.SOURCE, len(events))
        self.flow.set_node_supply(self.SINK, -len(events))
        for node in self.nodes.values():
            self.flow.set_node_supply(node, 0)

    def _event_arcs(self, event: PlanEvent, rank: int,
                    store_days: dict[tuple[int, date], int]) -> None:
        """source → event (due-rank cost) → its store-days, or its days when it has no store."""
        node = self.node(("e", event.id))
        self.arc(self.SOURCE, node, 1, self.weights.due * rank)
        for day in self.candidate_days(event):
            if event.store_number is None:
                head, cost = self.node(("d", day)), self.weights.unfamiliar
            else:
                key = (event.store_number, day)
                store_days[key] = store_days.get(key, 0) + 1
                head, cost = self.node(("sd", event.store_number, day)), 0
            self.event_arcs.append((self.arc(node, head, 1, cost), event.id, head))

    def _employee_arcs(self, store_days: dict[tuple[int, date], int]) -> None:
        """day / store-day → employee-day → employee-week → employee → sink (spread costs)."""
        days_of_store: dict[int, set[date]] = defaultdict(set)
        for store, day in store_days:
            days_of_store[store].add(day)
        for employee in self.problem.employees:
            days = self.usable[employee.id]
            if not days:
                continue
            emp_node = self.node(("emp", employee.id))
            for day in days:
                self._employee_day_arcs(employee, day, emp_node, days_of_store)
            for week, left in sorted(employee.week_capacity.items()):
                if left is not None and ("w", employee.id, week) in self.nodes:
                    self.arc(self.nodes[("w", employee.id, week)], emp_node, left, 0)
            for k in range(1, len(days) + 1):
                self.arc(emp_node, self.SINK, 1, 2 * (employee.busy_days + k) - 1)

    def _employee_day_arcs(self, employee: PlanEmployee, day: date, emp_node: int,
                           days_of_store: dict[int, set[date]]) -> None:
        """Into one employee-day (from its day, from known stores' store-days) and out."""
        ed_node = self.node(("ed", employee.id, day))
        if ("d", day) in self.nodes:
            arc = self.arc(self.nodes[("d", day)], ed_node, 1, 0)
            self.to_employee_day.append((arc, self.nodes[("d", day)], employee.id, day))
        for store in sorted(employee.stores):
            if day in days_of_store.get(store, ()):
                sd_node = self.nodes[("sd", store, day)]
                arc = self.arc(sd_node, ed_node, 1, 0)
                self.to_employee_day.append((arc, sd_node, employee.id, day))
        if employee.week_capacity.get(week_of(day)) is None:
            self.arc(ed_node, emp_node, 1, 0)
        else:
            self.arc(ed_node, self.node(("w", employee.id, week_of(day))), 1, 0)

    def solve(self) -> None:
        """Maximum flow at minimum cost; RuntimeError if OR-Tools cannot."""
        status = self.flow.solve_max_flow_with_min_cost()
        if status != self.flow.OPTIMAL:
            raise RuntimeError(f"the planner's flow solver failed (status {status})")

    def assignments(self) -> list[Assignment]:
        """Read the plan from the flow: the events that reached each node, paired with the
        employee-days leaving it (any pairing has the flow's cost: see the class note)."""
        flows = self.flow.flows(list(range(len(self.tails)))) if self.tails else []
        arrived: dict[int, list[int]] = defaultdict(list)
        for arc, event_id, head in self.event_arcs:
            if flows[arc]:
                arrived[head].append(event_id)
        placed: list[Assignment] = []
        day_nodes = {n for key, n in self.nodes.items() if key[0] == "d"}
        direct = [t for t in self.to_employee_day if t[1] not in day_nodes]
        via_day = [t for t in self.to_employee_day if t[1] in day_nodes]
        for group in (direct, via_day):
            for arc, tail, employee_id, day in group:
                if flows[arc]:
                    placed.append(Assignment(arrived[tail].pop(), employee_id, day))
            if group is direct:
                for arc, sd_node, day_node in self.store_day_to_day:
                    arrived[day_node].extend(arrived.pop(sd_node, []))
        return sorted(placed, key=lambda a: (a.day, a.employee_id, a.event_id))


# ---------------------------------------------------------------------------
# Solve, and why an event was left out
# ---------------------------------------------------------------------------

def solve(problem: Problem) -> Plan:
    """Place as many events as any valid plan could, preferring due first, then a known
    store, then an even spread; the rest unplaced with a reason."""
    started = clock.perf_counter()
    network = _Network(problem)
    network.build()
    solving = clock.perf_counter()
    if network.tails:
        network.solve()
    solver_seconds = clock.perf_counter() - solving
    placed = network.assignments()
    done = {a.event_id for a in placed}
    unplaced = unplaced_reasons(problem, network, placed,
                                [e for e in problem.events if e.id not in done])
    stats = {"events": len(problem.events), "placed": len(placed),
             "employees": len(problem.employees), "solver_seconds": round(solver_seconds, 4),
             "seconds": round(clock.perf_counter() - started, 4)}
    return Plan(placed, unplaced, stats)


def unplaced_reasons(problem: Problem, network: _Network, placed: list[Assignment],
                     events: list[PlanEvent]) -> list[Unplaced]:
    """A reason in words for each event left out."""
    due_of = {e.id: e.due for e in problem.events}
    used: dict[date, int] = defaultdict(int)
    latest: dict[date, datetime] = {}
    for a in placed:
        used[a.day] += 1
        latest[a.day] = max(latest.get(a.day, due_of[a.event_id]), due_of[a.event_id])
    return [Unplaced(e.id, _reason(problem, network, e, used, latest)) for e in events]


def _reason(problem: Problem, network: _Network, event: PlanEvent,
            used: dict[date, int], latest: dict[date, datetime]) -> str:
    """Why this one event is not in the plan."""
    first, last = clipped(event, problem)
    if first > last:
        return (f"its window ({fmt_day(event.first_day)} – {fmt_day(event.last_day)}) lies "
                f"outside the range {fmt_day(problem.day_from)} – {fmt_day(problem.day_to)}")
    window = f"{fmt_day(first)} – {fmt_day(last)}"
    days = days_between(first, last)
    if not any(d in network.anyone_on for d in days):
        return f"no active employee works and is free on any day of its window ({window})"
    candidates = network.candidate_days(event)
    if not candidates:
        return f"every employee free in its window ({window}) is at their weekly limit"
    if all(used[d] == len(network.free_on[d]) and latest[d] <= event.due for d in candidates):
        return f"every free employee-day in its window ({window}) went to an event due sooner"
    return (f"placing it would leave out an event due no later: the free employee-days in its "
            f"window ({window}) went to other events or are past a weekly limit")


# ---------------------------------------------------------------------------
# From the database: the problem, and the answer of POST /api/plan
# ---------------------------------------------------------------------------

def check_range(day_from: date, day_to: date) -> None:
    """DomainError 422 naming `to` unless from ≤ to and the range is at most 31 days."""
    if day_to < day_from:
        raise DomainError("to must be on or after from", field="to")
    length = (day_to - day_from).days + 1
    if length > MAX_DAYS:
        raise DomainError(f"a plan covers at most {MAX_DAYS} days; {day_from.isoformat()} to "
                          f"{day_to.isoformat()} is {length}", field="to")


def _whole(value: Any, field_name: str) -> int:
    """A whole number of a JSON body (not a bool), else DomainError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31 - 1:
        raise DomainError(f"{field_name} must be a whole number", field=field_name)
    return value


def parse_plan_request(body: Any) -> dict[str, Any]:
    """POST /api/plan's JSON body → the keyword arguments of `plan` (DomainError 422)."""
    if not isinstance(body, dict):
        raise DomainError("send a JSON object with from and to")
    found: dict[str, Any] = {"day_from": availability.parse_json_day(body, "from"),
                             "day_to": availability.parse_json_day(body, "to")}
    check_range(found["day_from"], found["day_to"])
    if body.get("store_number") is not None:
        found["store_number"] = _whole(body["store_number"], "store_number")
    if body.get("event_type") is not None:
        if body["event_type"] not in EVENT_TYPES:
            raise DomainError(f"event_type must be one of {', '.join(EVENT_TYPES)}",
                              field="event_type")
        found["event_type"] = body["event_type"]
    if body.get("employee_ids") is not None:
        ids = body["employee_ids"]
        if not isinstance(ids, list):
            raise DomainError("employee_ids must be a list of ids", field="employee_ids")
        found["employee_ids"] = [_whole(i, "employee_ids") for i in ids]
    return found


def start_on(event: PlanEvent, day: date, tz: ZoneInfo) -> datetime:
    """The planned start (UTC): the window's start on the day it opens, else 09:00 local."""
    if event.start is not None and event.start.astimezone(tz).date() == day:
        return event.start
    return datetime.combine(day, DEFAULT_START, tzinfo=tz).astimezone(timezone.utc)


def _plan_events(day_from: date, day_to: date, store_number: Optional[int],
                 event_type: Optional[str], tz: ZoneInfo) -> list[PlanEvent]:
    """Live unscheduled events whose window meets the range (one query), earliest due first."""
    begin, end = models.local_day_bounds(day_from)[0], models.local_day_bounds(day_to)[1]
    scheduled = exists().where(Schedule.event_id == Event.id, Schedule.deleted_at.is_(None))
    query = (select(Event.id, Event.start_datetime, Event.due_datetime, Event.store_number)
             .where(Event.deleted_at.is_(None), ~scheduled, Event.start_datetime < end,
                    Event.due_datetime >= begin).order_by(Event.due_datetime, Event.id))
    if store_number is not None:
        query = query.where(Event.store_number == store_number)
    if event_type is not None:
        query = query.where(Event.event_type == event_type)
    events = []
    for event_id, start, due, store in db.session.execute(query):
        probe = PlanEvent(event_id, start.astimezone(tz).date(), due.astimezone(tz).date(),
                          due, store, start)
        last = probe.last_day if start_on(probe, probe.last_day, tz) <= due \
            else probe.last_day - timedelta(days=1)
        events.append(PlanEvent(event_id, probe.first_day, last, due, store, start))
    return events


def _employee_query(employee_ids: Optional[list[int]]):
    """A select of (id, workdays, max_days_per_week) of the active live employees."""
    query = select(Employee.id, Employee.workdays, Employee.max_days_per_week).where(
        Employee.deleted_at.is_(None), Employee.active.is_(True))
    if employee_ids is not None:
        query = query.where(Employee.id.in_(list(employee_ids)))
    return query.order_by(Employee.id)


def scheduled_days(employee_ids, day_from: date, day_to: date) -> dict[int, set[date]]:
    """The local days each employee has a live schedule on, day_from..day_to (ids: a list
    or a select of them; one query)."""
    days: dict[int, set[date]] = defaultdict(set)
    rows = db.session.execute(
        select(Schedule.employee_id, Schedule.local_day)
        .where(Schedule.deleted_at.is_(None), Schedule.employee_id.in_(employee_ids),
               Schedule.local_day.between(day_from, day_to)))
    for employee_id, day in rows:
        days[employee_id].add(day)
    return dict(days)


def time_off_between(employee_ids, day_from: date, day_to: date) -> dict[int, list[TimeOff]]:
    """Each employee's time off that meets day_from..day_to, earliest first (one query)."""
    found: dict[int, list[TimeOff]] = defaultdict(list)
    rows = db.session.scalars(
        select(TimeOff).where(TimeOff.employee_id.in_(employee_ids),
                              TimeOff.start_date <= day_to, TimeOff.end_date >= day_from)
        .order_by(TimeOff.employee_id, TimeOff.start_date, TimeOff.id))
    for row in rows:
        found[row.employee_id].append(row)
    return dict(found)


def _known_stores(ids, before: datetime) -> dict[int, set[int]]:
    """The stores each employee worked at (live schedules starting before `before`)."""
    rows = db.session.execute(
        select(Schedule.employee_id, Event.store_number).distinct()
        .join(Event, Event.id == Schedule.event_id)
        .where(Schedule.deleted_at.is_(None), Schedule.employee_id.in_(ids),
               Schedule.start_datetime < before, Event.store_number.is_not(None)))
    stores: dict[int, set[int]] = defaultdict(set)
    for employee_id, store in rows:
        stores[employee_id].add(store)
    return stores


def _plan_employees(day_from: date, day_to: date,
                    employee_ids: Optional[list[int]]) -> list[PlanEmployee]:
    """The active employees with their free days, week room and known stores (4 queries)."""
    query = _employee_query(employee_ids)
    rows = db.session.execute(query).all()
    ids = select(query.subquery().c.id)
    monday, sunday = week_of(day_from), week_of(day_to) + timedelta(days=6)
    busy = scheduled_days(ids, monday, sunday)
    off = time_off_between(ids, day_from, day_to)
    stores = _known_stores(ids, models.local_day_bounds(day_from)[0])
    range_days = days_between(day_from, day_to)
    weeks = sorted({week_of(d) for d in range_days})
    employees = []
    for employee_id, mask, limit in rows:
        taken = busy.get(employee_id, set())
        offs = off.get(employee_id, [])
        days = frozenset(d for d in range_days if mask & (1 << d.weekday()) and d not in taken
                         and not any(o.covers(d) for o in offs))
        capacity = {w: None if limit is None else max(0, limit - sum(
            1 for d in taken if week_of(d) == w)) for w in weeks}
        employees.append(PlanEmployee(employee_id, days, capacity,
                                      frozenset(stores.get(employee_id, ())),
                                      sum(1 for d in taken if day_from <= d <= day_to)))
    return employees


def load_problem(day_from: date, day_to: date, store_number: Optional[int] = None,
                 event_type: Optional[str] = None,
                 employee_ids: Optional[list[int]] = None) -> Problem:
    """The planning problem from the database (5 queries, whatever the size); local days
    in APP_TIMEZONE; DomainError 422 for a bad range."""
    check_range(day_from, day_to)
    tz = models.app_tz()
    events = _plan_events(day_from, day_to, store_number, event_type, tz)
    return Problem(day_from, day_to, events, _plan_employees(day_from, day_to, employee_ids))


def plan(day_from: date, day_to: date, store_number: Optional[int] = None,
         event_type: Optional[str] = None, employee_ids: Optional[list[int]] = None) -> dict:
    """POST /api/plan's answer: assignments (UTC RFC 3339 starts), unplaced with reasons,
    stats (events, placed, employees, seconds).  Writes nothing."""
    started = clock.perf_counter()
    problem = load_problem(day_from, day_to, store_number, event_type, employee_ids)
    result = solve(problem)
    tz = models.app_tz()
    events = {e.id: e for e in problem.events}
    return {
        "assignments": [{"event_id": a.event_id, "employee_id": a.employee_id,
                         "start_datetime": models.iso(start_on(events[a.event_id], a.day, tz))}
                        for a in result.assignments],
        "unplaced": [{"event_id": u.event_id, "reason": u.reason} for u in result.unplaced],
        "stats": {"events": result.stats["events"], "placed": result.stats["placed"],
                  "employees": result.stats["employees"],
                  "seconds": round(clock.perf_counter() - started, 3)},
    }
