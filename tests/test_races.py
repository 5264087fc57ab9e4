"""Races for one thing end with exactly one winner and a 409 for the others, never a 5xx.

Each test serves the real app (tests.live_server.LiveServer, threaded) and releases
RACE_THREADS requests at once with a threading.Barrier, RACE_ROUNDS rounds each, on the
suite's database (SQLite, or PostgreSQL with TEST_DATABASE_URL).  The database enforces
each rule (partial unique indexes), so the figures hold whatever the timing:

- one live schedule per employee per local day (POST, PATCH, page form, CSV vs API)
- one live schedule per event
- one live event per reference number
- one live employee per code (two or more CSV imports creating the same new code)

The figures (trials, winners, 409s, 5xx per rule and database) are printed at the end of
the module and appended as JSON lines to the file named by RACE_FIGURES, when set.
"""
from __future__ import annotations

import io
import json
import os
import threading
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
import requests
from sqlalchemy import event as sa_event, func, select

from tests.conftest import ADMIN
from tests.factories import make_employee, make_event, make_schedule, utc
from tests.live_server import LiveServer

THREADS = int(os.environ.get("RACE_THREADS", "20"))
ROUNDS = int(os.environ.get("RACE_ROUNDS", "4"))
DAY = utc(2026, 12, 2, 9, 0)  # inside make_event's default window (Dec 1-7)
FIGURES: dict = defaultdict(Counter)
CSV_HEADER = ("Project Name,Project Reference Number,Start Date/Time,Due Date/Time,"
              "Employee ID,Rep Name,Schedule Date/Time\n")


@pytest.fixture(scope="module", autouse=True)
def race_figures():
    """Print (and append to $RACE_FIGURES) what the module's races gave."""
    yield
    lines = [json.dumps({"rule": rule, "database": db, **counts})
             for (rule, db), counts in sorted(FIGURES.items())]
    print("\nrace figures:\n" + "\n".join(lines))
    target = os.environ.get("RACE_FIGURES")
    if target and lines:
        with open(target, "a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")


@pytest.fixture
def base_url(app):
    """The app served for real; the admin's password hashed cheaply (one pbkdf2 round), so
    that twenty signed-in requests at once race in the database, not in scrypt."""
    from werkzeug.security import generate_password_hash

    from models import User, db

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == ADMIN[0]))
        user.password_hash = generate_password_hash(ADMIN[1], method="pbkdf2:sha256:1")
        db.session.commit()
        engine = db.engine
    sa_event.listen(engine, "handle_error", _count_refusal)
    try:
        with LiveServer(app) as server:
            yield server.base_url
    finally:
        sa_event.remove(engine, "handle_error", _count_refusal)


REFUSALS = Counter()  # unique-index refusals seen by the database, for the figures


def _count_refusal(context) -> None:
    if "unique" in str(context.original_exception).lower():
        REFUSALS["now"] += 1


def dialect(app) -> str:
    from models import db

    with app.app_context():
        return db.engine.dialect.name


def race(base_url: str, calls: list[tuple]) -> list[tuple[int, dict]]:
    """Send every (method, path, kwargs) at once from its own thread; (status, JSON) each."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def worker(i, method, path, kwargs):
        with requests.Session() as session:
            session.auth = ADMIN
            session.get(base_url + "/api/employees?per_page=1", timeout=60)  # connect first
            barrier.wait(timeout=60)
            response = session.request(method, base_url + path, timeout=120, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = {"text": response.text[:500]}
        results[i] = (response.status_code, body)

    threads = [threading.Thread(target=worker, args=(i, *call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert all(r is not None for r in results), "a request never answered"
    return results


def refusals() -> int:
    """Unique-index refusals since the last call (losers the database stopped)."""
    seen, REFUSALS["now"] = REFUSALS["now"], 0
    return seen


def tally(app, rule: str, results: list, win: int) -> list[dict]:
    """Record the round's figures; assert one winner, the others 409, no 5xx; the losers' errors."""
    statuses = Counter(status for status, _ in results)
    counts = FIGURES[(rule, dialect(app))]
    counts["index refusals"] += refusals()
    counts["trials"] += 1
    counts["requests"] += len(results)
    counts["winners"] += statuses[win]
    counts["409"] += statuses[409]
    counts["5xx"] += sum(n for status, n in statuses.items() if status >= 500)
    counts["other"] += sum(n for status, n in statuses.items() if status not in (win, 409)
                           and status < 500)
    assert statuses == Counter({win: 1, 409: len(results) - 1}), (statuses, results)
    return [body.get("error") for status, body in results if status == 409]


def without_id(error: dict) -> dict:
    return {k: v for k, v in error.items() if k != "error_id"}


def live_count(app, model, *conditions) -> int:
    from models import db

    with app.app_context():
        return db.session.scalar(select(func.count(model.id))
                                 .where(model.deleted_at.is_(None), *conditions))


def replay(base_url: str, method: str, path: str, **kwargs) -> dict:
    """What the Python check answers for the same request now (sequentially)."""
    response = requests.request(method, base_url + path, auth=ADMIN, timeout=60, **kwargs)
    assert response.status_code == 409, response.text
    return without_id(response.json()["error"])


def schedule_body(event_id: int, employee_id: int, hour: int = 9) -> dict:
    return {"event_id": event_id, "employee_id": employee_id,
            "start_datetime": (DAY + timedelta(hours=hour - 9)).strftime("%Y-%m-%dT%H:%M:%SZ")}


# -- one live schedule per employee per local day -----------------------------------------

def test_post_schedules_for_one_employee_day(app, base_url):
    from models import Schedule

    for _round in range(ROUNDS):
        with app.app_context():
            worker = make_employee()
            events = [make_event().id for _ in range(THREADS)]
            worker_id = worker.id
        calls = [("POST", "/api/schedules", {"json": schedule_body(ev, worker_id, 8 + i % 8)})
                 for i, ev in enumerate(events)]
        errors = tally(app, "employee-day (POST)", race(base_url, calls), 201)
        assert live_count(app, Schedule, Schedule.employee_id == worker_id) == 1
        assert {e["code"] for e in errors} == {"employee_busy"}
        lost = next(i for i, ev in enumerate(events)
                    if live_count(app, Schedule, Schedule.event_id == ev) == 0)
        again = replay(base_url, "POST", "/api/schedules", json=calls[lost][2]["json"])
        assert all(without_id(e) == again for e in errors), (errors, again)


def test_patch_schedules_onto_one_employee_day(app, base_url):
    from models import Schedule

    for _round in range(ROUNDS):
        with app.app_context():
            target = make_employee()
            schedules = [make_schedule(make_event(), make_employee(), DAY).id
                         for _ in range(THREADS)]
            target_id = target.id
        calls = [("PATCH", f"/api/schedules/{sid}", {"json": {"employee_id": target_id}})
                 for sid in schedules]
        errors = tally(app, "employee-day (PATCH)", race(base_url, calls), 200)
        assert live_count(app, Schedule, Schedule.employee_id == target_id) == 1
        assert live_count(app, Schedule, Schedule.id.in_(schedules)) == THREADS
        assert {e["code"] for e in errors} == {"employee_busy"}
        lost = next(s for s in schedules
                    if live_count(app, Schedule, Schedule.id == s,
                                  Schedule.employee_id == target_id) == 0)
        again = replay(base_url, "PATCH", f"/api/schedules/{lost}", json={"employee_id": target_id})
        assert all(without_id(e) == again for e in errors), (errors, again)


def test_page_forms_for_one_employee_day(app, base_url):
    """Schedulers using the page form: one succeeds, the others see today's message (409)."""
    from models import Schedule

    for _round in range(max(1, ROUNDS // 2)):
        with app.app_context():
            worker = make_employee()
            events = [make_event().id for _ in range(THREADS)]
            worker_id, name = worker.id, worker.name
        barrier = threading.Barrier(THREADS)
        results: list = [None] * THREADS

        def post(i):
            with requests.Session() as session:
                page = session.get(base_url + "/login", timeout=60).text
                token = _csrf(page)
                session.post(base_url + "/login", timeout=60, data={
                    "username": ADMIN[0], "password": ADMIN[1], "csrf_token": token})
                token = _csrf(session.get(base_url + f"/schedule/{events[i]}", timeout=60).text)
                barrier.wait(timeout=60)
                response = session.post(base_url + f"/schedule/{events[i]}", timeout=120,
                                        allow_redirects=False, data={
                                            "date": "2026-12-02", "time": "09:00",
                                            "employee_id": str(worker_id), "csrf_token": token})
                results[i] = (response.status_code, {"text": response.text})

        threads = [threading.Thread(target=post, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        tally(app, "employee-day (page form)", results, 302)
        assert live_count(app, Schedule, Schedule.employee_id == worker_id) == 1
        message = f"{name} already has work on 2026-12-02."
        assert all(message in body["text"] for status, body in results if status == 409)


def _csrf(html: str) -> str:
    from tests.conftest import csrf_from

    return csrf_from(html)


def csv_row(ref: int, code: str, rep: str, schedule: str = "") -> str:
    return (f"CORE - Race {ref},{ref},12/01/2026 08:00:00 AM,12/07/2026 05:00:00 PM,"
            f"{code},{rep},{schedule}\n")


def upload(text: str) -> dict:
    return {"files": {"file": ("WorkBankVisits.csv", io.BytesIO(text.encode()), "text/csv")}}


def test_csv_import_against_api_creates_for_one_employee_day(app, base_url):
    """One CSV import scheduling an employee's day races API creates for the same day."""
    from models import Event, Schedule

    for n in range(ROUNDS):
        with app.app_context():
            worker = make_employee(code=f"RACEDAY{n}")
            events = [make_event().id for _ in range(THREADS - 1)]
            worker_id, name = worker.id, worker.name
        ref = 880000 + n
        text = CSV_HEADER + csv_row(ref, f"RACEDAY{n}", name, "12/02/2026 10:00:00 AM")
        calls = [("POST", "/api/import/events", upload(text))]
        calls += [("POST", "/api/schedules", {"json": schedule_body(ev, worker_id)}) for ev in events]
        results = race(base_url, calls)
        csv_status, csv_body = results[0]
        statuses = Counter(status for status, _ in results[1:])
        counts = FIGURES[("employee-day (CSV vs API)", dialect(app))]
        counts["index refusals"] += refusals()
        counts["trials"] += 1
        counts["requests"] += len(results)
        counts["winners"] += statuses[201] + (csv_status == 200)
        counts["409"] += statuses[409] + (csv_status == 409)
        counts["csv 422 (lost before writing)"] += csv_status == 422
        counts["5xx"] += sum(1 for status, _ in results if status >= 500)
        assert live_count(app, Schedule, Schedule.employee_id == worker_id) == 1
        assert statuses[201] + (csv_status == 200) == 1, results
        assert statuses[409] == THREADS - 1 - statuses[201], results
        if csv_status == 200:
            assert live_count(app, Event, Event.project_ref_num == ref) == 1
        else:  # all or nothing: the file's event is not there either
            assert csv_status in (409, 422), csv_body
            assert live_count(app, Event, Event.project_ref_num == ref) == 0
            assert [d["line"] for d in csv_body["error"]["details"]] == [2]
            assert "2026-12-02" in csv_body["error"]["details"][0]["message"]


def test_plan_apply_against_post_schedules_for_one_employee_day(app, base_url):
    """An apply (the employee-day among others) and POSTs for that employee-day at once:
    one winner; the apply reports its loss in `refused`, a POST that loses is 409; the
    apply's other assignments are all created."""
    from models import Schedule

    for _round in range(ROUNDS):
        with app.app_context():
            worker = make_employee().id
            events = [make_event().id for _ in range(THREADS)]
            others = [(make_event().id, make_employee().id) for _ in range(20)]
        mine = schedule_body(events[0], worker)
        apply = {"assignments": [mine] + [schedule_body(ev, who) for ev, who in others]}
        calls = [("POST", "/api/plan/apply", {"json": apply})] + [
            ("POST", "/api/schedules", {"json": schedule_body(ev, worker, 8 + i % 8)})
            for i, ev in enumerate(events[1:])]
        results = race(base_url, calls)
        (status, body), posts = results[0], results[1:]
        assert status == 200, body
        counts = FIGURES[("employee-day (apply vs POST)", dialect(app))]
        counts["index refusals"] += refusals()
        counts["trials"] += 1
        statuses = Counter(s for s, _ in posts)
        apply_won = len(body["created"]) == 1 + len(others)
        assert len(body["created"]) + len(body["refused"]) == 1 + len(others)
        assert statuses[201] + apply_won == 1, (body, posts)
        assert statuses[409] == len(posts) - statuses[201], posts
        assert {b["error"]["code"] for s, b in posts if s == 409} == {"employee_busy"}
        if not apply_won:
            assert [(r["event_id"], r["error"]["code"]) for r in body["refused"]] == [
                (events[0], "employee_busy")]
        counts["winners"] += 1
        counts["apply won"] += apply_won
        assert live_count(app, Schedule, Schedule.employee_id == worker) == 1


def test_plan_applies_sharing_employees_in_opposite_orders_never_deadlock(app, base_url):
    """Applies giving the same employees other days, listed in opposite orders, at once:
    each employee lock is taken in id order, so all finish; every day is booked once."""
    from models import Schedule

    with app.app_context():
        staff = [make_employee().id for _ in range(10)]
        events = [[make_event().id for _ in staff] for _ in range(4)]
    calls = []
    for n, batch in enumerate(events):
        order = staff if n % 2 == 0 else staff[::-1]
        calls.append(("POST", "/api/plan/apply", {"json": {"assignments": [
            {"event_id": ev, "employee_id": who, "start_datetime": f"2026-12-0{2 + n}T09:00:00Z"}
            for ev, who in zip(batch, order)]}}))
    results = race(base_url, calls)
    assert [status for status, _ in results] == [200] * len(calls), results
    assert all(len(body["created"]) == len(staff) for _, body in results), results
    assert live_count(app, Schedule, Schedule.employee_id.in_(staff)) == len(staff) * len(events)


# -- one live schedule per event -------------------------------------------------------------

def test_post_schedules_for_one_event(app, base_url):
    from models import Schedule

    for _round in range(ROUNDS):
        with app.app_context():
            event_id = make_event().id
            workers = [make_employee().id for _ in range(THREADS)]
        calls = [("POST", "/api/schedules", {"json": schedule_body(event_id, w)}) for w in workers]
        errors = tally(app, "event", race(base_url, calls), 201)
        assert live_count(app, Schedule, Schedule.event_id == event_id) == 1
        assert {e["code"] for e in errors} == {"already_scheduled"}
        again = replay(base_url, "POST", "/api/schedules", json=calls[0][2]["json"])
        assert all(without_id(e) == again for e in errors)


# -- one live event per reference number ---------------------------------------------------

def test_post_events_with_one_reference_number(app, base_url):
    from models import Event

    for n in range(ROUNDS):
        ref = 770000 + n
        body = {"project_ref_num": ref, "project_name": "CORE - Race",
                "start_datetime": "2026-12-01T08:00:00Z", "due_datetime": "2026-12-05T17:00:00Z"}
        calls = [("POST", "/api/events", {"json": {**body, "store_number": i}})
                 for i in range(THREADS)]
        errors = tally(app, "reference number", race(base_url, calls), 201)
        assert live_count(app, Event, Event.project_ref_num == ref) == 1
        assert {e["code"] for e in errors} == {"duplicate"}
        again = replay(base_url, "POST", "/api/events", json=body)
        assert all(without_id(e) == again for e in errors)


@pytest.mark.parametrize("resource, field, value", [
    ("events", "project_ref_num", lambda n: 780000 + n),
    ("employees", "code", lambda n: f"RACE-{n}"),
], ids=["reference number", "employee code"])
def test_patches_onto_one_unique_value(app, base_url, resource, field, value):
    """PATCHes giving different records one free unique value (an event's reference number,
    an employee's code): one wins, the others get the same 409 the check gives without a
    race (the lost commit re-runs the check)."""
    from models import SYNCED_MODELS

    model = SYNCED_MODELS[resource]
    make = make_event if resource == "events" else make_employee
    column = getattr(model, field)
    for n in range(ROUNDS):
        taken = value(n)
        with app.app_context():
            records = [make().id for _ in range(THREADS)]
        calls = [("PATCH", f"/api/{resource}/{rid}", {"json": {field: taken}}) for rid in records]
        label = "reference number (PATCH)" if resource == "events" else "employee code (PATCH)"
        errors = tally(app, label, race(base_url, calls), 200)
        assert live_count(app, model, column == taken) == 1
        assert live_count(app, model, model.id.in_(records)) == THREADS
        assert {e["code"] for e in errors} == {"duplicate"}
        lost = next(r for r in records
                    if live_count(app, model, model.id == r, column == taken) == 0)
        again = replay(base_url, "PATCH", f"/api/{resource}/{lost}", json={field: taken})
        assert all(without_id(e) == again for e in errors), (errors, again)


# -- one live employee per code, created by concurrent CSV imports -------------------------

def test_csv_imports_creating_one_new_employee_code(app, base_url):
    """Twenty imports each bring a new event and the same new employee code.  Exactly one
    creates the employee; an import that lost the race to it answers 409 naming its row and
    imports nothing; one that starts after the winner committed finds the employee and
    imports normally (no race: it creates no employee)."""
    from models import Employee, Event

    for n in range(ROUNDS):
        code = f"RACE{n:04d}"
        refs = [990000 + n * 100 + i for i in range(THREADS)]
        calls = [("POST", "/api/import/events", upload(CSV_HEADER + csv_row(refs[i] - 50, "", "")
                                                     + csv_row(refs[i], code, "Rae Race")))
                 for i in range(THREADS)]
        results = race(base_url, calls)
        counts = FIGURES[("new employee code (CSV x CSV)", dialect(app))]
        counts["index refusals"] += refusals()
        creators = [i for i, (status, body) in enumerate(results)
                    if status == 200 and body["employees_created"] == 1]
        later = [i for i, (status, body) in enumerate(results)
                 if status == 200 and body["employees_created"] == 0]
        lost = [i for i, (status, _body) in enumerate(results) if status == 409]
        counts["trials"] += 1
        counts["requests"] += len(results)
        counts["winners"] += len(creators)
        counts["409"] += len(lost)
        counts["200 after the winner (no race)"] += len(later)
        counts["5xx"] += sum(1 for status, _ in results if status >= 500)
        assert len(creators) == 1 and len(creators) + len(later) + len(lost) == THREADS, results
        assert live_count(app, Employee, Employee.code == code) == 1
        imported = sorted(creators + later)
        # all or nothing: the events of the imports that answered 200, and no others
        assert live_count(app, Event, Event.project_ref_num.in_(refs)) == len(imported)
        assert live_count(app, Event, Event.project_ref_num.in_([r - 50 for r in refs])) == len(imported)
        assert live_count(app, Event, Event.project_ref_num.in_([refs[i] for i in imported])) == len(imported)
        for i in lost:
            error = results[i][1]["error"]
            assert error["code"] == "conflict"
            assert [d["line"] for d in error["details"]] == [3]
            assert code in error["details"][0]["message"]
