"""The weekly limit holds under a race (app-api.md: the database enforces each rule).

Requests released at once by a threading.Barrier against the real app served
(tests.live_server.LiveServer), on the suite's database (SQLite, or PostgreSQL with
TEST_DATABASE_URL): each gives one employee, whose Monday–Sunday week is one day under
`max_days_per_week`, a *different* day (so the one-a-day index cannot decide): exactly
one wins, the others are 409 over_weekly_limit, never a 5xx.  availability.lock_employee
serializes them (the employee's row lock, or SQLite's write lock).
"""
from __future__ import annotations

import os
from collections import Counter

import pytest
from sqlalchemy import func, select

from tests.conftest import ADMIN
from tests.factories import make_employee, make_event, make_schedule, utc
from tests.live_server import LiveServer
from tests.test_races import race

THREADS = int(os.environ.get("RACE_THREADS", "6"))  # Tue..Sun of one week
ROUNDS = int(os.environ.get("RACE_ROUNDS", "3"))


@pytest.fixture
def base_url(app):
    """The app served for real; the admin's password hashed cheaply (one pbkdf2 round)."""
    from werkzeug.security import generate_password_hash

    from models import User, db

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == ADMIN[0]))
        user.password_hash = generate_password_hash(ADMIN[1], method="pbkdf2:sha256:1")
        db.session.commit()
    with LiveServer(app) as server:
        yield server.base_url


def week_total(app, employee_id: int) -> int:
    from models import Schedule, db

    with app.app_context():
        return db.session.scalar(select(func.count(Schedule.id)).where(
            Schedule.employee_id == employee_id, Schedule.deleted_at.is_(None)))


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_week_one_day_under_its_limit_gets_one_more_day_whatever_the_race(app, base_url, method):
    for _round in range(ROUNDS):
        with app.app_context():
            worker = make_employee(max_days_per_week=2)
            week_event = dict(start_datetime=utc(2026, 11, 30), due_datetime=utc(2026, 12, 6, 23))
            make_schedule(make_event(**week_event), worker, utc(2026, 11, 30, 9))  # Monday
            events = [make_event(**week_event).id for _ in range(THREADS)]
            moving = [make_schedule(make_event(**week_event), make_employee(),
                                    utc(2026, 12, 1 + i, 9)).id for i in range(THREADS)]
            worker_id = worker.id
        if method == "POST":
            calls = [("POST", "/api/schedules", {"json": {
                "event_id": ev, "employee_id": worker_id,
                "start_datetime": f"2026-12-{1 + i:02d}T09:00:00Z"}}) for i, ev in enumerate(events)]
        else:
            calls = [("PATCH", f"/api/schedules/{sid}", {"json": {"employee_id": worker_id}})
                     for sid in moving]
        results = race(base_url, calls)
        statuses = Counter(status for status, _ in results)
        assert statuses == Counter({201 if method == "POST" else 200: 1, 409: THREADS - 1}), results
        assert {body["error"]["code"] for status, body in results if status == 409} == {"over_weekly_limit"}
        assert week_total(app, worker_id) == 2
