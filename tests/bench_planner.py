"""A quick benchmark of the planner (not a timed test): `python -m tests.bench_planner`.

Each figure is printed with issue 21's target beside it ("target: ... met").  2,000 events
and 300 employees over one week, with mixed workdays, time off, weekly limits and known
stores: the solver's seconds and the whole solve's (build, solve, read back, reasons),
and `placed` against the exact maximum (OR-Tools' max-flow over the same graph as
tests/test_planner.py's Edmonds–Karp).  `--db` also runs `planner.plan` over the same
shape of data in the database (APP_TIMEZONE America/Chicago), for the loader's share, the
solver timed apart.  `--apply` then POSTs 1,000 of that plan's assignments to
/api/plan/apply (one transaction: the employees' locks, the checks on rows loaded once,
one insert, one commit, history in one write); `--feed` times /feeds/<token>.ics of an
employee with 500 schedules (one a day: the feed shows the 210 of them from 30 days back
to 180 ahead): a poll that renders every VEVENT (an empty cache), the steady polls, the
polls sending the ETag back (304), and counts its queries.  Runs on a fresh SQLite file,
or set TEST_DATABASE_URL to a PostgreSQL database (emptied!) for `--db`, `--apply` and
`--feed` there.
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


def exact_maximum(problem: Problem) -> int:
    """How many events fit at once, by OR-Tools' max-flow (not the planner's min-cost flow):
    event → (employee, day) → (employee, week) → sink, the same graph as tests/test_planner.py's
    Edmonds–Karp, too slow in Python at this size."""
    from ortools.graph.python import max_flow

    flow, node_of = max_flow.SimpleMaxFlow(), {}

    def node(key) -> int:
        return node_of.setdefault(key, len(node_of))

    for e in problem.events:
        flow.add_arc_with_capacity(node("s"), node(("e", e.id)), 1)
        first, last = max(e.first_day, problem.day_from), min(e.last_day, problem.day_to)
        for employee in problem.employees:
            for d in employee.days:
                if first <= d <= last:
                    flow.add_arc_with_capacity(node(("e", e.id)), node(("ed", employee.id, d)), 1)
    for employee in problem.employees:
        mondays = {d - timedelta(days=d.weekday()) for d in employee.days}
        for d in employee.days:
            monday = d - timedelta(days=d.weekday())
            flow.add_arc_with_capacity(node(("ed", employee.id, d)), node(("w", employee.id, monday)), 1)
        for monday in mondays:
            left = employee.week_capacity.get(monday)
            flow.add_arc_with_capacity(node(("w", employee.id, monday)), node("t"),
                                       99 if left is None else left)
    assert flow.solve(node("s"), node("t")) == flow.OPTIMAL
    return flow.optimal_flow()


def bench_core() -> dict:
    """Solve the benchmark problem; print and return its figures."""
    problem = bench_problem()
    started = clock.perf_counter()
    plan = solve(problem)
    total = clock.perf_counter() - started
    figures = {"events": plan.stats["events"], "placed": plan.stats["placed"],
               "employees": plan.stats["employees"], "solver_seconds": plan.stats["solver_seconds"],
               "total_seconds": round(total, 3), "exact_maximum": exact_maximum(problem)}
    print("core:", figures)
    target("solve (build, solve, read back)", figures["total_seconds"], 2.0, "s",
           f"solver {figures['solver_seconds']} s; {placed_words(figures)}")
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
    """planner.plan over the benchmark's data in a fresh SQLite file (or TEST_DATABASE_URL,
    emptied); print its figures against the target."""
    import planner

    app = _bench_app()
    with app.app_context():
        _seed_database(bench_problem())
        started = clock.perf_counter()
        answer = planner.plan(MON, MON + timedelta(days=6))
        total = clock.perf_counter() - started
        problem = planner.load_problem(MON, MON + timedelta(days=6), None, None, None)
        solver = planner.solve(problem).stats["solver_seconds"]  # the same solve again, timed apart
        figures = {"database": _database(app), **answer["stats"], "solver_seconds": solver,
                   "total_seconds": round(total, 3), "exact_maximum": exact_maximum(problem)}
    print("plan():", figures)
    target("plan() of 2,000 events x 300 employees", figures["total_seconds"], 2.0, "s",
           f"solver {solver} s apart; {placed_words(figures)}")
    return figures


def target(what: str, value: float, limit: float, unit: str, note: str = "") -> None:
    """One line: a figure against issue 21's target."""
    verdict = "met" if value < limit else "MISSED"
    print(f"  target: {what}: {value} {unit} (< {limit} {unit}) {verdict}" + (f"; {note}" if note else ""))


def placed_words(figures: dict) -> str:
    """The placed count against the exact maximum, with its verdict."""
    verdict = "met" if figures["placed"] == figures["exact_maximum"] else "MISSED"
    return f"placed {figures['placed']} of the exact maximum {figures['exact_maximum']}: {verdict}"


def _database(app) -> str:
    return app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0]


def _bench_app():
    """A testing app on a fresh SQLite file (or TEST_DATABASE_URL, emptied), with an admin."""
    import os

    from sqlalchemy import text
    from werkzeug.security import generate_password_hash

    from models import User, db
    from tests.conftest import make_app

    from config import normalize_database_url

    url = normalize_database_url(os.environ.get("TEST_DATABASE_URL") or "") or \
        f"sqlite:///{tempfile.mkdtemp(prefix='bench-planner-')}/bench.sqlite"
    if url.startswith("postgresql"):
        from sqlalchemy import create_engine

        with create_engine(url).begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    app = make_app(url)
    with app.app_context():
        user = User(username="bench", role="admin")
        user.password_hash = generate_password_hash("bench-pass-123", method="pbkdf2:sha256:1")
        db.session.add(user)
        db.session.commit()
    return app


BENCH_AUTH = {"Authorization": "Basic YmVuY2g6YmVuY2gtcGFzcy0xMjM="}  # bench:bench-pass-123


def bench_apply(count: int = 1000) -> dict:
    """POST /api/plan/apply of `count` assignments of the benchmark's plan; print figures."""
    import planner

    app = _bench_app()
    with app.app_context():
        _seed_database(bench_problem())
        assignments = planner.plan(MON, MON + timedelta(days=6))["assignments"][:count]
    client = app.test_client()
    started = clock.perf_counter()
    answer = client.post("/api/plan/apply", headers=BENCH_AUTH, json={"assignments": assignments})
    seconds = clock.perf_counter() - started
    body = answer.get_json()
    figures = {"database": _database(app), "assignments": len(assignments), "created": len(body["created"]),
               "refused": len(body["refused"]), "seconds": round(seconds, 3),
               "ms_per_assignment": round(1000 * seconds / max(1, len(assignments)), 2)}
    print("apply:", figures)
    target(f"apply of {len(assignments):,} assignments", figures["seconds"], 3.0, "s",
           f"{figures['created']} created")
    return figures


def bench_feed(count: int = 500) -> dict:
    """/feeds/<token>.ics of an employee with `count` schedules (one a day); print figures."""
    import feeds
    from feeds import make_feed
    from models import Employee, Event, Schedule, db, utcnow
    from tests.helpers import statements

    app = _bench_app()
    with app.app_context():
        db.session.add(Employee(id=1, name="Feed bench", active=True))
        first = utcnow().replace(hour=14, minute=0, second=0, microsecond=0) - timedelta(days=30)
        starts = [first + timedelta(days=i) for i in range(count)]
        db.session.execute(db.insert(Event), [
            {"id": i + 1, "project_ref_num": 800000 + i, "project_name": f"CORE feed {i}",
             "event_type": "Core", "store_number": i % 50, "store_name": "Bench",
             "start_datetime": start - timedelta(hours=4), "due_datetime": start + timedelta(hours=4),
             "estimated_minutes": 90} for i, start in enumerate(starts)])
        db.session.add_all(Schedule(event_id=i + 1, employee_id=1, start_datetime=start)
                           for i, start in enumerate(starts))
        token = make_feed(db.session.get(Employee, 1))
        db.session.commit()
    client, url = app.test_client(), f"/feeds/{token}.ics"
    client.get(url)  # the app's first request (its own warm-up), then an empty VEVENT cache:
    feeds._vevent_ical.cache_clear()
    started = clock.perf_counter()
    tag = client.get(url).headers["ETag"]  # this poll renders every VEVENT
    cold = 1000 * (clock.perf_counter() - started)
    runs, started = 20, clock.perf_counter()
    with statements(app) as seen:
        for _ in range(runs):
            body = client.get(url).data
    warm = 1000 * (clock.perf_counter() - started) / runs
    started = clock.perf_counter()
    for _ in range(runs):
        assert client.get(url, headers={"If-None-Match": tag}).status_code == 304
    figures = {"database": _database(app), "schedules": count,
               "vevents": body.count(b"BEGIN:VEVENT"), "ms_first_poll": round(cold, 1),
               "ms_per_feed": round(warm, 1),
               "ms_per_304": round(1000 * (clock.perf_counter() - started) / runs, 1),
               "queries_per_feed": len(seen) / runs, "bytes": len(body)}
    print("feed:", figures)
    target(f"feed of an employee with {count} schedules", figures["ms_per_feed"], 50, "ms",
           f"a poll rendering every VEVENT {figures['ms_first_poll']} ms, with its ETag "
           f"{figures['ms_per_304']} ms (304)")
    return figures


if __name__ == "__main__":
    bench_core()
    if "--db" in sys.argv:
        bench_db()
    if "--apply" in sys.argv:
        bench_apply()
    if "--feed" in sys.argv:
        bench_feed()
