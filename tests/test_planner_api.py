"""The planner's API: POST /api/plan (any signed-in user; writes nothing; 422 naming
fields; at most 31 days) and POST /api/plan/apply (each assignment created as POST
/api/schedules creates one, history source `planner`, pushed like any local change; a
refused one listed with its error)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.conftest import SCHEDULER
from tests.factories import make_employee, make_event, make_schedule, utc


def basic(user) -> dict:
    from tests.conftest import AuthActions

    return AuthActions.basic(*user)


def world(app) -> dict:
    with app.app_context():
        ana = make_employee("Ana", max_days_per_week=2)
        ben = make_employee("Ben", workdays=0b0000001)  # Mondays only
        events = [make_event(start_datetime=utc(2026, 11, 30, 8), due_datetime=utc(2026, 12, 6, 18)).id
                  for _ in range(4)]
        return {"ana": ana.id, "ben": ben.id, "events": events}


def count_schedules(app) -> int:
    from models import Schedule, db

    with app.app_context():
        return db.session.scalar(select(func.count(Schedule.id)).where(Schedule.deleted_at.is_(None)))


def test_plan_proposes_within_availability_and_writes_nothing(client, app):
    w = world(app)
    answer = client.post("/api/plan", headers=basic(SCHEDULER), json={"from": "2026-11-30", "to": "2026-12-06"})
    assert answer.status_code == 200
    body = answer.get_json()
    by_employee = {}
    for a in body["assignments"]:
        by_employee.setdefault(a["employee_id"], []).append(a)
    assert len(by_employee[w["ana"]]) == 2 and len(by_employee[w["ben"]]) == 1
    assert by_employee[w["ben"]][0]["start_datetime"].startswith("2026-11-30T")
    assert body["stats"]["events"] == 4 and body["stats"]["placed"] == 3
    assert [u["event_id"] for u in body["unplaced"]] and count_schedules(app) == 0


@pytest.mark.parametrize("body, field", [
    ({"to": "2026-12-06"}, "from"), ({"from": "2026-12-06"}, "to"),
    ({"from": "2026-12-06", "to": "2026-12-01"}, "to"), ({"from": "2026-11-01", "to": "2026-12-06"}, "to"),
    ({"from": "2026-11-30", "to": "2026-12-06", "store_number": "x"}, "store_number"),
    ({"from": "2026-11-30", "to": "2026-12-06", "event_type": "Nope"}, "event_type"),
    ({"from": "2026-11-30", "to": "2026-12-06", "employee_ids": 3}, "employee_ids"),
])
def test_a_bad_plan_request_is_422_naming_the_field(client, admin_headers, body, field):
    answer = client.post("/api/plan", headers=admin_headers, json=body)
    assert answer.status_code == 422
    assert [d["field"] for d in answer.get_json()["error"]["details"]] == [field]


def test_plan_needs_a_signed_in_user(client):
    assert client.post("/api/plan", json={"from": "2026-11-30", "to": "2026-12-06"}).status_code == 401


def test_apply_creates_them_with_history_source_planner_and_lists_the_refused(client, app, monkeypatch):
    import api
    from models import Event, Schedule, db

    pushes = []
    monkeypatch.setattr(api, "notify_local_change", lambda: pushes.append(1))
    world(app)
    headers = basic(SCHEDULER)
    plan = client.post("/api/plan", headers=headers, json={"from": "2026-11-30", "to": "2026-12-06"}).get_json()
    taken = plan["assignments"][0]
    with app.app_context():  # meanwhile someone else schedules the first event
        make_schedule(db.session.get(Event, taken["event_id"]), make_employee("Cy"),
                      utc(2026, 12, 1, 9))
    answer = client.post("/api/plan/apply", headers=headers,
                         json={"assignments": plan["assignments"] + ["junk"]})
    assert answer.status_code == 200
    body = answer.get_json()
    assert len(body["created"]) == len(plan["assignments"]) - 1
    assert body["refused"][0]["event_id"] == taken["event_id"]
    assert body["refused"][0]["employee_id"] == taken["employee_id"]
    assert body["refused"][0]["error"]["code"] == "already_scheduled"
    assert body["refused"][1]["error"]["code"] == "validation_failed"
    assert pushes == [1]
    history = client.get(f"/api/schedules/{body['created'][0]}/history", headers=headers).get_json()
    assert [(e["action"], e["source"], e["actor"]) for e in history["data"]] == [
        ("created", "planner", SCHEDULER[0])]
    with app.app_context():
        stored = db.session.get(Schedule, body["created"][0])
        assert stored.sync_status == "pending"


def test_apply_keeps_availability_like_post_schedules(client, admin_headers, app):
    w = world(app)
    answer = client.post("/api/plan/apply", headers=admin_headers, json={"assignments": [
        {"event_id": w["events"][0], "employee_id": w["ben"], "start_datetime": "2026-12-01T09:00:00Z"}]})
    refused = answer.get_json()["refused"]
    assert refused[0]["error"]["code"] == "employee_unavailable" and answer.get_json()["created"] == []


def test_apply_needs_a_list(client, admin_headers):
    answer = client.post("/api/plan/apply", headers=admin_headers, json={"assignments": {}})
    assert answer.status_code == 422
    assert answer.get_json()["error"]["details"][0]["field"] == "assignments"


def test_apply_that_loses_a_race_at_the_insert_still_creates_the_others(client, admin_headers, app,
                                                                        monkeypatch):
    """A schedule committed between the apply's reads and its insert by a writer that takes
    no employee lock (a pull): the database refuses the insert, the apply starts again one
    assignment at a time and reports that one as POST /api/schedules would."""
    import availability
    from models import Event, db

    w = world(app)
    with app.app_context():
        make_schedule(db.session.get(Event, w["events"][0]), make_employee("Cy"), utc(2026, 12, 1, 9))
    loaded = availability.Batch.__init__

    def missing_the_winner(self, wanted):  # as if read just before the other commit
        loaded(self, wanted)
        self.taken.clear()

    monkeypatch.setattr(availability.Batch, "__init__", missing_the_winner)
    answer = client.post("/api/plan/apply", headers=admin_headers, json={"assignments": [
        {"event_id": w["events"][0], "employee_id": w["ana"], "start_datetime": "2026-12-02T09:00:00Z"},
        {"event_id": w["events"][1], "employee_id": w["ana"], "start_datetime": "2026-12-03T09:00:00Z"},
        {"event_id": w["events"][2], "employee_id": w["ben"], "start_datetime": "2026-11-30T09:00:00Z"}]})
    body = answer.get_json()
    assert answer.status_code == 200 and len(body["created"]) == 2, body
    assert [(r["event_id"], r["error"]["code"]) for r in body["refused"]] == [
        (w["events"][0], "already_scheduled")]
    assert count_schedules(app) == 3
    history = client.get(f"/api/schedules/{body['created'][0]}/history", headers=admin_headers)
    assert [e["source"] for e in history.get_json()["data"]] == ["planner"]


class _Deadlock(Exception):
    sqlstate = "40P01"  # PostgreSQL's deadlock_detected, as psycopg reports it


def test_apply_that_loses_a_deadlock_runs_again_and_saves_once(client, admin_headers, app,
                                                                monkeypatch):
    """PostgreSQL ends one side of a deadlock (an apply against a pull inserting the same
    rows in another order): nothing of that attempt was saved, and the apply runs again."""
    import api
    from sqlalchemy.exc import OperationalError

    w = world(app)
    real = api._apply_together
    lost = []

    def deadlocked_once(wanted, items, outcomes):
        done = real(wanted, items, outcomes)
        if not lost:
            lost.append(1)
            raise OperationalError("INSERT ...", {}, _Deadlock("deadlock detected"))
        return done

    monkeypatch.setattr(api, "_apply_together", deadlocked_once)
    answer = client.post("/api/plan/apply", headers=admin_headers, json={"assignments": [
        {"event_id": w["events"][1], "employee_id": w["ana"], "start_datetime": "2026-12-03T09:00:00Z"},
        {"event_id": w["events"][2], "employee_id": w["ben"], "start_datetime": "2026-11-30T09:00:00Z"}]})
    body = answer.get_json()
    assert answer.status_code == 200 and len(body["created"]) == 2 and body["refused"] == [], body
    assert lost == [1] and count_schedules(app) == 2
    for schedule_id in body["created"]:
        history = client.get(f"/api/schedules/{schedule_id}/history", headers=admin_headers)
        assert [e["source"] for e in history.get_json()["data"]] == ["planner"]
