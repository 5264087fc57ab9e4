"""The planner (planner.py) and employee availability (models.py): the solver on
hand-made and random cases against an independent exact maximum, the availability
rules and bulk helpers on the database (SQLite, or PostgreSQL with TEST_DATABASE_URL),
the loader and POST /api/plan's answer, and the migration's way down and up."""
from __future__ import annotations

import random
from collections import Counter, deque
from datetime import date, datetime, timedelta, timezone
from itertools import combinations

import pytest
from sqlalchemy import event as sa_event, inspect

import availability
import models
import planner
from models import DomainError, Employee, Schedule, TimeOff, db
from planner import PlanEmployee, PlanEvent, Problem, solve
from tests.factories import make_employee, make_event, make_schedule

MON = date(2026, 12, 7)  # a Monday


def day(n: int) -> date:
    """MON + n days."""
    return MON + timedelta(days=n)


def due(n: int, hour: int = 12) -> datetime:
    """An instant on day n."""
    return datetime.combine(day(n), datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=hour)


def ev(event_id: int, first: int, last: int, due_day: int | None = None, store=None,
       hour: int = 12) -> PlanEvent:
    """A PlanEvent over days first..last (offsets from MON)."""
    return PlanEvent(event_id, day(first), day(last), due(last if due_day is None else due_day, hour),
                     store)


def emp(employee_id: int, days, limit=None, stores=(), busy=0) -> PlanEmployee:
    """A PlanEmployee free on the given day offsets, with a weekly limit on MON's week."""
    return PlanEmployee(employee_id, frozenset(day(d) for d in days),
                        {MON: limit} if limit is not None else {}, frozenset(stores), busy)


def week(events, employees, length: int = 7) -> Problem:
    """A problem over MON's week (or `length` days from MON)."""
    return Problem(MON, day(length - 1), events, employees)


def check_rules(problem: Problem, plan) -> None:
    """Every assignment keeps every rule: window, a free day, one a day, one per event,
    the weekly room."""
    events = {e.id: e for e in problem.events}
    employees = {e.id: e for e in problem.employees}
    seen_days, seen_events, per_week = set(), set(), Counter()
    for a in plan.assignments:
        first, last = planner.clipped(events[a.event_id], problem)
        assert first <= a.day <= last
        assert a.day in employees[a.employee_id].days
        assert (a.employee_id, a.day) not in seen_days and a.event_id not in seen_events
        seen_days.add((a.employee_id, a.day))
        seen_events.add(a.event_id)
        per_week[(a.employee_id, planner.week_of(a.day))] += 1
    for (employee_id, monday), count in per_week.items():
        left = employees[employee_id].week_capacity.get(monday)
        assert left is None or count <= left
    assert seen_events | {u.event_id for u in plan.unplaced} == set(events)
    assert not seen_events & {u.event_id for u in plan.unplaced}


# ---------------------------------------------------------------------------
# The solver on hand-made cases
# ---------------------------------------------------------------------------

def test_one_schedule_a_day_per_employee():
    problem = week([ev(1, 0, 0), ev(2, 0, 0, due_day=1)], [emp(10, [0])])
    plan = solve(problem)
    check_rules(problem, plan)
    assert [(a.event_id, a.employee_id, a.day) for a in plan.assignments] == [(1, 10, day(0))]
    assert plan.unplaced[0].event_id == 2
    assert "went to an event due sooner" in plan.unplaced[0].reason
    assert plan.stats["events"] == 2 and plan.stats["placed"] == 1 and plan.stats["employees"] == 1


def test_weekly_limit_caps_the_days():
    problem = week([ev(i, 0, 6) for i in range(1, 6)], [emp(10, range(7), limit=2)])
    plan = solve(problem)
    check_rules(problem, plan)
    assert plan.stats["placed"] == 2
    assert {a.event_id for a in plan.assignments} == {1, 2}  # due first (ids break no tie here)


def test_a_week_at_its_limit_is_named():
    problem = week([ev(1, 0, 2)], [emp(10, [0, 1, 2], limit=0)])
    plan = solve(problem)
    assert plan.assignments == [] and "weekly limit" in plan.unplaced[0].reason


def test_workdays_and_time_off_come_in_as_missing_days():
    # The loader leaves non-workdays and days off out of `days`: Sunday (6) is not there.
    problem = week([ev(1, 6, 6), ev(2, 5, 6)], [emp(10, [0, 1, 2, 3, 4, 5])])
    plan = solve(problem)
    check_rules(problem, plan)
    assert [(a.event_id, a.day) for a in plan.assignments] == [(2, day(5))]
    assert plan.unplaced[0].reason == ("no active employee works and is free on any day of its "
                                       "window (13 Dec – 13 Dec)")


def test_the_window_is_clipped_to_the_range():
    problem = Problem(day(2), day(4), [ev(1, -5, 2), ev(2, 4, 20), ev(3, -9, -1), ev(4, 5, 6)],
                      [emp(10, range(-9, 21)), emp(11, range(-9, 21))])
    plan = solve(problem)
    check_rules(problem, plan)
    assert {(a.event_id, a.day) for a in plan.assignments} == {(1, day(2)), (2, day(4))}
    reasons = {u.event_id: u.reason for u in plan.unplaced}
    assert reasons[3] == "its window (28 Nov – 06 Dec) lies outside the range 09 Dec – 11 Dec"
    assert "lies outside the range" in reasons[4]


def test_as_many_as_possible_beats_due_first():
    # Event 1 is due first and could take either day; event 2 fits only day 0: both go.
    problem = week([ev(1, 0, 1, due_day=0, hour=1), ev(2, 0, 0, hour=23)], [emp(10, [0, 1])])
    plan = solve(problem)
    assert {(a.event_id, a.day) for a in plan.assignments} == {(1, day(1)), (2, day(0))}


def test_due_first_when_capacity_is_short():
    events = [ev(i, 0, 2, due_day=2 + (i % 4)) for i in range(1, 9)]  # dues on days 2..5
    problem = week(events, [emp(10, [0, 1, 2]), emp(11, [1])])
    plan = solve(problem)
    check_rules(problem, plan)
    placed = sorted(e.due for e in events if e.id in {a.event_id for a in plan.assignments})
    assert placed == sorted(e.due for e in events)[:4]
    assert all("due sooner" in u.reason for u in plan.unplaced)


def test_due_first_outweighs_a_known_store():
    # One employee-day: the later event is at the store they know, the earlier one is not.
    problem = week([ev(1, 0, 0, due_day=3, store=5), ev(2, 0, 0, due_day=2, store=6)],
                   [emp(10, [0], stores=[5])])
    assert [a.event_id for a in solve(problem).assignments] == [2]


def test_a_known_store_is_preferred():
    problem = week([ev(1, 0, 0, store=5)], [emp(10, [0]), emp(11, [0], stores=[5]), emp(12, [0])])
    assert solve(problem).assignments[0].employee_id == 11


def test_a_known_store_outweighs_the_spread():
    problem = week([ev(1, 0, 0, store=5)], [emp(10, [0]), emp(11, [0], stores=[5], busy=5)])
    assert solve(problem).assignments[0].employee_id == 11


def test_known_stores_pair_up_across_a_day():
    # Two stores, two employees each knowing one: both events to the employee who knows it.
    problem = week([ev(1, 0, 0, store=5), ev(2, 0, 0, store=6)],
                   [emp(10, [0], stores=[6]), emp(11, [0], stores=[5])])
    plan = solve(problem)
    assert {(a.event_id, a.employee_id) for a in plan.assignments} == {(1, 11), (2, 10)}


def test_days_are_spread_evenly():
    problem = week([ev(i, 0, 6) for i in range(1, 9)],
                   [emp(10, range(7)), emp(11, range(7)), emp(12, range(7)), emp(13, range(7))])
    plan = solve(problem)
    check_rules(problem, plan)
    assert sorted(Counter(a.employee_id for a in plan.assignments).values()) == [2, 2, 2, 2]


def test_the_spread_counts_days_already_scheduled():
    problem = week([ev(i, 0, 6) for i in range(1, 5)], [emp(10, range(7), busy=4), emp(11, range(7))])
    counts = Counter(a.employee_id for a in solve(problem).assignments)
    assert counts == {11: 4}


def test_no_events_or_no_employees():
    assert solve(week([], [emp(10, [0])])).assignments == []
    plan = solve(week([ev(1, 0, 1)], []))
    assert plan.assignments == [] and "no active employee" in plan.unplaced[0].reason


# ---------------------------------------------------------------------------
# Random small cases against an exact maximum computed here (no OR-Tools)
# ---------------------------------------------------------------------------

def _flow_graph(problem: Problem, events: list[PlanEvent]) -> tuple[dict, dict]:
    """Adjacency and capacities of event → (emp, day) → (emp, week) → sink, built here
    independently of planner.py."""
    cap: dict = {}
    graph: dict = {}

    def add(u, v, c):
        graph.setdefault(u, []).append(v)
        graph.setdefault(v, []).append(u)
        cap[(u, v)] = cap.get((u, v), 0) + c
        cap.setdefault((v, u), 0)

    for e in events:
        add("s", ("e", e.id), 1)
        first, last = max(e.first_day, problem.day_from), min(e.last_day, problem.day_to)
        for employee in problem.employees:
            for d in employee.days:
                if first <= d <= last:
                    add(("e", e.id), ("ed", employee.id, d), 1)
    for employee in problem.employees:
        for d in employee.days:
            monday = d - timedelta(days=d.weekday())
            add(("ed", employee.id, d), ("w", employee.id, monday), 1)
        for monday in {d - timedelta(days=d.weekday()) for d in employee.days}:
            left = employee.week_capacity.get(monday)
            add(("w", employee.id, monday), "t", 99 if left is None else left)
    return graph, cap


def _max_flow(problem: Problem, events: list[PlanEvent]) -> int:
    """How many of `events` fit at once: Edmonds–Karp (BFS augmenting paths)."""
    graph, cap = _flow_graph(problem, events)
    total = 0
    while True:
        parent = {"s": None}
        queue = deque(["s"])
        while queue and "t" not in parent:
            u = queue.popleft()
            for v in graph.get(u, ()):
                if v not in parent and cap[(u, v)] > 0:
                    parent[v] = u
                    queue.append(v)
        if "t" not in parent:
            return total
        v = "t"
        while parent[v] is not None:
            cap[(parent[v], v)] -= 1
            cap[(v, parent[v])] += 1
            v = parent[v]
        total += 1


def _best_by_brute_force(problem: Problem) -> tuple[int, list[datetime]]:
    """The maximum number placed, and the earliest-due sorted due list among maximum sets."""
    events = problem.events
    for size in range(len(events), -1, -1):
        fitting = [sorted(e.due for e in subset) for subset in combinations(events, size)
                   if _max_flow(problem, list(subset)) == size]
        if fitting:
            return size, min(fitting)
    raise AssertionError("unreachable")


def _random_problem(rng: random.Random) -> Problem:
    """Up to 7 events, 4 employees and 7 days, with random limits and known stores."""
    length = rng.randint(1, 7)
    start = MON - timedelta(days=rng.randint(0, 3))  # ranges across two weeks too
    days = [start + timedelta(days=i) for i in range(length)]
    events = []
    for event_id in range(1, rng.randint(0, 7) + 1):
        first = start + timedelta(days=rng.randint(-2, length))
        last = first + timedelta(days=rng.randint(0, 4))
        due_at = datetime.combine(last, datetime.min.time(), tzinfo=timezone.utc) \
            + timedelta(hours=rng.choice([9, 12, 17]))
        events.append(PlanEvent(event_id, first, last, due_at, rng.choice([None, 1, 2, 3])))
    employees = []
    for employee_id in range(1, rng.randint(0, 4) + 1):
        free = frozenset(d for d in days if rng.random() < 0.6)
        weeks = {d - timedelta(days=d.weekday()) for d in days}
        capacity = {w: rng.choice([None, 0, 1, 2, 3]) for w in weeks}
        employees.append(PlanEmployee(employee_id, free, capacity,
                                      frozenset(rng.sample([1, 2, 3], rng.randint(0, 2))),
                                      rng.randint(0, 2)))
    return Problem(days[0], days[-1], events, employees)


def test_random_cases_place_the_exact_maximum_due_first():
    rng = random.Random(20261207)
    for _ in range(200):
        problem = _random_problem(rng)
        plan = solve(problem)
        check_rules(problem, plan)
        size, dues = _best_by_brute_force(problem)
        assert plan.stats["placed"] == size, problem
        placed = {a.event_id for a in plan.assignments}
        assert sorted(e.due for e in problem.events if e.id in placed) == dues, problem
        assert all(u.reason for u in plan.unplaced)


def _plan_key(problem: Problem, assignments) -> tuple:
    """The planner's order of preference, as a key (smaller is better): more placed, then
    the earliest-due sorted dues, then fewer unknown stores, then the sum of squares of
    each employee's days in the range (already scheduled ones included)."""
    events = {e.id: e for e in problem.events}
    employees = {e.id: e for e in problem.employees}
    unfamiliar = sum(1 for event_id, employee_id, _ in assignments
                     if events[event_id].store_number not in employees[employee_id].stores)
    days = Counter(employee_id for _, employee_id, _ in assignments)
    spread = sum((employees[i].busy_days + n) ** 2 - employees[i].busy_days ** 2
                 for i, n in days.items())
    return (-len(assignments), sorted(events[i].due for i, _, _ in assignments), unfamiliar, spread)


def _best_key_by_enumeration(problem: Problem) -> tuple:
    """The best key over every valid plan, by trying them all (tiny problems only)."""
    options = {e.id: [(employee.id, d) for employee in problem.employees
                      for d in sorted(employee.days)
                      if planner.clipped(e, problem)[0] <= d <= planner.clipped(e, problem)[1]]
               for e in problem.events}
    best = [None]

    def walk(index: int, chosen: list, used: set, weeks: Counter) -> None:
        if index == len(problem.events):
            key = _plan_key(problem, chosen)
            best[0] = key if best[0] is None or key < best[0] else best[0]
            return
        event = problem.events[index]
        walk(index + 1, chosen, used, weeks)
        for employee_id, d in options[event.id]:
            week_key = (employee_id, planner.week_of(d))
            left = next(e for e in problem.employees if e.id == employee_id) \
                .week_capacity.get(week_key[1])
            if (employee_id, d) in used or (left is not None and weeks[week_key] >= left):
                continue
            used.add((employee_id, d))
            weeks[week_key] += 1
            walk(index + 1, chosen + [(event.id, employee_id, d)], used, weeks)
            used.discard((employee_id, d))
            weeks[week_key] -= 1

    walk(0, [], set(), Counter())
    return best[0]


def test_random_tiny_cases_follow_every_preference_in_order():
    """Due first, then known stores, then the spread: the solver's plan is as good as the
    best of all plans, key by key (this checks that the cost scaling is lexicographic)."""
    rng = random.Random(7)
    for _ in range(150):
        problem = _random_problem(rng)
        problem.events = problem.events[:4]
        problem.employees = problem.employees[:3]
        problem.day_to = min(problem.day_to, problem.day_from + timedelta(days=3))
        plan = solve(problem)
        check_rules(problem, plan)
        found = [(a.event_id, a.employee_id, a.day) for a in plan.assignments]
        assert _plan_key(problem, found) == _best_key_by_enumeration(problem), problem


# ---------------------------------------------------------------------------
# Availability in the models, on the database
# ---------------------------------------------------------------------------

@pytest.fixture
def app_overrides():
    return {"APP_TIMEZONE": "America/Chicago"}


def test_workdays_parse_show_and_refuse(app):
    with app.app_context():
        ana = make_employee("Ana Lopez")
        assert ana.workdays == 127 and ana.workday_names == list(models.WEEKDAY_NAMES)
        assert ana.max_days_per_week is None
        ana.workday_names = ["FRI", "mon", "tue"]
        assert ana.workdays == 0b10011 and ana.workday_names == ["mon", "tue", "fri"]
        db.session.commit()
        data = ana.to_dict()
        assert data["workdays"] == ["mon", "tue", "fri"] and data["max_days_per_week"] is None
        assert models.workdays_mask([]) == 0
        for bad in ("mon", ["mon", "mon"], ["monday"], [1], None):
            with pytest.raises(DomainError) as info:
                models.workdays_mask(bad)
            assert info.value.status == 422 and info.value.field == "workdays"
        assert availability.max_days_value(None) is None and availability.max_days_value(7) == 7
        for bad in (0, 8, True, "5", 2.5):
            with pytest.raises(DomainError, match="max_days_per_week"):
                availability.max_days_value(bad)


def test_the_database_checks_availability_values(app):
    from sqlalchemy.exc import IntegrityError

    with app.app_context():
        ana = make_employee("Ana Lopez")
        for column, value in (("workdays", 128), ("workdays", -1), ("max_days_per_week", 0),
                              ("max_days_per_week", 8)):
            with pytest.raises(IntegrityError):
                db.session.execute(db.update(Employee).where(Employee.id == ana.id)
                                   .values({column: value}))
            db.session.rollback()
        db.session.add(TimeOff(employee_id=ana.id, start_date=day(3), end_date=day(2)))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_parse_time_off(app):
    with app.app_context():
        assert availability.parse_time_off({"start_date": "2026-12-07", "end_date": "2026-12-11",
                                      "note": " holiday "}) == {
            "start_date": day(0), "end_date": day(4), "note": "holiday"}
        for body, field in (({"start_date": "2026-12-07"}, "end_date"),
                            ({"start_date": "x", "end_date": "2026-12-07"}, "start_date"),
                            ({"start_date": "2026-12-08", "end_date": "2026-12-07"}, "end_date"),
                            ({"start_date": "2026-12-07", "end_date": "2026-12-07",
                              "note": "n" * 201}, "note")):
            with pytest.raises(DomainError) as info:
                availability.parse_time_off(body)
            assert info.value.field == field


def _local(n: int, hour: int = 10) -> datetime:
    """Day n at `hour` in America/Chicago, as UTC (CST is UTC−6 in December)."""
    return due(n, hour + 6)


def test_availability_problem_says_why(app):
    with app.app_context():
        ana = make_employee("Ana Lopez")
        ana.workday_names = ["mon", "tue", "wed", "thu", "fri", "sat"]
        ana.max_days_per_week = 2
        db.session.add(TimeOff(employee_id=ana.id, start_date=day(14), end_date=day(18),
                               note="holiday"))
        db.session.commit()
        assert availability.availability_problem(ana, day(0)) is None
        sunday = availability.availability_problem(ana, day(6))
        assert (sunday.status, sunday.code, sunday.message) == (
            409, "employee_unavailable", "Ana Lopez does not work on Sundays")
        off = availability.availability_problem(ana, day(16))
        assert off.code == "employee_unavailable"
        assert off.message == "Ana Lopez is off from 21 Dec to 25 Dec (holiday)"
        first = make_schedule(make_event(start_datetime=_local(0, 0)), ana, _local(0))
        make_schedule(make_event(start_datetime=_local(1, 0)), ana, _local(1))
        full = availability.availability_problem(ana, day(3))
        assert (full.status, full.code) == (409, "over_weekly_limit")
        assert full.message == "Ana Lopez already works 2 days in the week of 07 Dec (limit 2)"
        assert availability.availability_problem(ana, day(3), exclude_schedule_id=first.id) is None
        assert availability.availability_problem(ana, day(0)) is None  # its own day: the clash rule's
        assert availability.availability_problem(ana, day(7)) is None  # next week


def test_bulk_helpers_match_the_one_by_one_rule(app):
    with app.app_context():
        people = [make_employee(f"P{i}") for i in range(6)]
        people[0].workday_names = ["mon"]  # not on Tuesday
        people[1].max_days_per_week = 1
        people[2].max_days_per_week = 3
        db.session.add(TimeOff(employee_id=people[3].id, start_date=day(1), end_date=day(1)))
        people[5].active = False
        db.session.commit()
        make_schedule(make_event(start_datetime=_local(0, 0)), people[1], _local(0))
        make_schedule(make_event(start_datetime=_local(0, 0)), people[2], _local(0))
        make_schedule(make_event(start_datetime=_local(1, 0)), people[4], _local(1))
        tuesday = day(1)
        unavailable = set(db.session.scalars(availability.unavailable_employee_ids(tuesday)))
        assert unavailable == {people[0].id, people[1].id, people[3].id}
        one_by_one = {p.id for p in people if availability.availability_problem(p, tuesday)}
        assert unavailable == one_by_one
        assert [e.id for e in availability.free_employees(tuesday)] == [people[2].id]
        ids = [p.id for p in people]
        assert availability.week_counts(ids, MON) == {people[1].id: 1, people[2].id: 1, people[4].id: 1}
        assert planner.scheduled_days(ids, MON, day(6)) == {
            people[1].id: {day(0)}, people[2].id: {day(0)}, people[4].id: {day(1)}}
        off = planner.time_off_between(ids, MON, day(6))
        assert list(off) == [people[3].id] and off[people[3].id][0].covers(tuesday)
        assert planner.time_off_between(ids, day(2), day(6)) == {}


# ---------------------------------------------------------------------------
# The loader and the answer of POST /api/plan
# ---------------------------------------------------------------------------

def _count_queries(app):
    """A list that grows by one per statement sent to the database."""
    sent: list[str] = []
    with app.app_context():
        engine = db.engine
    sa_event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    return sent


def _seed_plan_data(n: int):
    """n employees of varied availability and 3n events over MON's week."""
    people = []
    for i in range(n):
        person = make_employee(f"Planner {i}")
        person.workday_names = ["mon", "tue", "wed", "thu", "fri"] if i % 2 else ["sat", "sun"]
        person.max_days_per_week = 3 if i % 3 == 0 else None
        db.session.add(TimeOff(employee_id=person.id, start_date=day(2), end_date=day(3)))
        people.append(person)
    db.session.commit()
    events = [make_event(start_datetime=_local(i % 7, 7), due_datetime=_local(i % 7 + 2, 18),
                         store_number=100 + i % 4) for i in range(3 * n)]
    past = make_event(start_datetime=_local(-7, 7), store_number=100)
    make_schedule(past, people[0], _local(-7))
    return people, events


def test_load_problem_uses_a_constant_number_of_queries(app):
    with app.app_context():
        _seed_plan_data(2)
        sent = _count_queries(app)
        small = planner.load_problem(MON, day(6))
        few = len(sent)
        _seed_plan_data(8)
        sent.clear()
        big = planner.load_problem(MON, day(6))
        assert len(sent) == few <= 6
        assert len(big.employees) > len(small.employees) and len(big.events) > len(small.events)


def test_plan_keeps_every_rule_and_times_the_starts(app):
    with app.app_context():
        people, events = _seed_plan_data(6)
        answer = planner.plan(MON, day(6))
        assert set(answer) == {"assignments", "unplaced", "stats"}
        assert set(answer["stats"]) == {"events", "placed", "employees", "seconds"}
        assert answer["stats"]["placed"] == len(answer["assignments"]) > 0
        by_id = {e.id: e for e in events}
        per_week = Counter()
        for item in answer["assignments"]:
            start = models.parse_api_datetime(item["start_datetime"], "start_datetime")
            event, person = by_id[item["event_id"]], db.session.get(Employee, item["employee_id"])
            models.check_schedule(event, person, start)  # window, active, no clash
            local = models.to_local(start)
            assert availability.availability_problem(person, local.date()) is None
            opens = models.to_local(event.start_datetime).date() == local.date()
            assert (start == event.start_datetime) if opens else (local.hour, local.minute) == (9, 0)
            per_week[person.id] += 1
        for person in people:
            assert person.max_days_per_week is None or per_week[person.id] <= 3
        assert db.session.scalar(db.select(db.func.count(Schedule.id))) == 1  # wrote nothing


def test_plan_filters_and_its_range(app):
    with app.app_context():
        _seed_plan_data(3)
        only = planner.plan(MON, day(6), store_number=101, employee_ids=[])
        assert only["stats"]["employees"] == 0 and only["stats"]["events"] == 2  # events 1 and 5 of 9
        assert all("no active employee" in u["reason"] for u in only["unplaced"])
        assert planner.plan(MON, day(6), event_type="Juicer")["stats"]["events"] == 0
        with pytest.raises(DomainError) as info:
            planner.plan(MON, MON + timedelta(days=31))
        assert info.value.field == "to" and info.value.status == 422
        with pytest.raises(DomainError):
            planner.plan(day(3), day(2))


def test_parse_plan_request():
    assert planner.parse_plan_request({"from": "2026-12-07", "to": "2026-12-13",
                                       "employee_ids": [3, 4], "event_type": "Core"}) == {
        "day_from": day(0), "day_to": day(6), "employee_ids": [3, 4], "event_type": "Core"}
    for body, field in (({"from": "2026-12-07"}, "to"), ({"from": "2026-12-07", "to": "2027-01-07"}, "to"),
                        ({"from": "2026-12-07", "to": "2026-12-08", "store_number": "1"}, "store_number"),
                        ({"from": "2026-12-07", "to": "2026-12-08", "event_type": "x"}, "event_type"),
                        ({"from": "2026-12-07", "to": "2026-12-08", "employee_ids": [True]},
                         "employee_ids")):
        with pytest.raises(DomainError) as info:
            planner.parse_plan_request(body)
        assert info.value.field == field


# ---------------------------------------------------------------------------
# The migration
# ---------------------------------------------------------------------------

def test_the_availability_migration_goes_down_and_up(app):
    from flask_migrate import downgrade, upgrade

    directory = str(models.__file__).rsplit("/", 1)[0] + "/migrations"
    with app.app_context():
        make_employee("Kept Through")
        db.session.remove()
        try:
            downgrade(directory=directory, revision="a9d3e6f1c2b4")
            db.engine.dispose()
            found = inspect(db.engine)
            assert "time_off" not in found.get_table_names()
            assert {"workdays", "max_days_per_week"}.isdisjoint(
                c["name"] for c in found.get_columns("employees"))
        finally:
            upgrade(directory=directory)
        db.engine.dispose()
        found = inspect(db.engine)
        assert "time_off" in found.get_table_names()
        kept = db.session.scalar(db.select(Employee).where(Employee.name == "Kept Through"))
        assert kept.workdays == 127 and kept.max_days_per_week is None
