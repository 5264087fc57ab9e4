"""A quick benchmark of the planner (not a timed test): `python -m tests.bench_planner`.

2,000 events and 300 employees over one week, with mixed workdays, time off, weekly
limits and known stores: the solver's seconds and the whole solve's (build, solve, read
back, reasons).  `--db` also runs `planner.plan` on a fresh SQLite file (APP_TIMEZONE
America/Chicago) holding the same shape of data, for the loader's share.
"""
from __future__ import annotations

import random
import sys
import tempfile
import time as clock
from datetime import date, datetime, timedelta, timezone

from planner import PlanEmployee, PlanEvent, Problem, solve

MON = date(2026, 12, 7)
EVENTS, EMPLOYEES, STORES = 2000, 300, 150


def bench_problem(seed: int = 1) -> Problem:
    """The benchmark's week: events over 1–7 day windows, employees with 3–7 workdays,
    a day or two off for one in five, a limit for half, a few known stores each."""
    rng = random.Random(seed)
    days = [MON + timedelta(days=i) for i in range(7)]
    events = []
    for event_id in range(1, EVENTS + 1):
        first = rng.randrange(7)
        last = min(6, first + rng.randrange(7))
        due = datetime.combine(days[last], datetime.min.time(), tzinfo=timezone.utc) \
            + timedelta(hours=rng.choice([17, 23]))
        events.append(PlanEvent(event_id, days[first], days[last], due, rng.randrange(STORES)))
    employees = []
    for employee_id in range(1, EMPLOYEES + 1):
        free = set(rng.sample(days, rng.randint(3, 7)))
        if rng.random() < 0.2:
            free -= set(rng.sample(days, 2))
        limit = rng.choice([None, 3, 4, 5])
        employees.append(PlanEmployee(employee_id, frozenset(free), {MON: limit},
                                      frozenset(rng.sample(range(STORES), 4)), rng.randint(0, 1)))
    return Problem(days[0], days[-1], events, employees)


def bench_core() -> dict:
    """Solve the benchmark problem; print and return its figures."""
    problem = bench_problem()
    started = clock.perf_counter()
    plan = solve(problem)
    total = clock.perf_counter() - started
    figures = {"events": plan.stats["events"], "placed": plan.stats["placed"],
               "employees": plan.stats["employees"], "solver_seconds": plan.stats["solver_seconds"],
               "total_seconds": round(total, 3)}
    print("core:", figures)
    return figures


def _seed_database(problem: Problem) -> None:
    """The benchmark problem as rows (inside an app context)."""
    from models import Employee, Event, TimeOff, db

    mask_of = {e.id: sum(1 << d.weekday() for d in e.days) for e in problem.employees}
    db.session.execute(db.insert(Employee), [
        {"id": e.id, "name": f"Bench {e.id:03d}", "active": True, "sync_status": "synced",
         "workdays": mask_of[e.id] | (1 if e.id % 5 == 0 else 0),
         "max_days_per_week": e.week_capacity.get(MON)} for e in problem.employees])
    db.session.add_all(TimeOff(employee_id=e.id, start_date=MON, end_date=MON, note="bench")
                       for e in problem.employees if e.id % 5 == 0)
    db.session.execute(db.insert(Event), [
        {"id": e.id, "project_ref_num": 900000 + e.id, "project_name": f"CORE bench {e.id}",
         "event_type": "Core", "store_number": e.store_number, "sync_status": "synced",
         "start_datetime": datetime.combine(e.first_day, datetime.min.time(),
                                            tzinfo=timezone.utc) + timedelta(hours=13),
         "due_datetime": e.due + timedelta(hours=5)} for e in problem.events])
    db.session.commit()


def bench_db() -> dict:
    """planner.plan over the benchmark's data in a fresh SQLite file; print its figures."""
    from tests.conftest import make_app

    import planner

    folder = tempfile.mkdtemp(prefix="bench-planner-")
    app = make_app(f"sqlite:///{folder}/bench.sqlite", APP_TIMEZONE="America/Chicago")
    with app.app_context():
        _seed_database(bench_problem())
        started = clock.perf_counter()
        answer = planner.plan(MON, MON + timedelta(days=6))
        figures = {**answer["stats"], "total_seconds": round(clock.perf_counter() - started, 3)}
    print("plan() on SQLite:", figures)
    return figures


if __name__ == "__main__":
    bench_core()
    if "--db" in sys.argv:
        bench_db()
