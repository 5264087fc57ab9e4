"""The JSON API (docs/openapi.yaml): what a curl user sees."""
from __future__ import annotations

import pytest
from sqlalchemy import event as sa_event, func, select

from tests.factories import make_employee, make_event, make_schedule, utc
from tests.helpers import assert_error, fields_of

EVENT_BODY = {
    "project_ref_num": 606001, "project_name": "CORE - Snack Reset", "store_number": 1234,
    "store_name": "Springfield Supercenter", "location_mvid": "9f2c1a7e",
    "start_datetime": "2025-09-27T00:00:00Z", "due_datetime": "2025-10-03T23:59:00Z",
    "estimated_minutes": 120,
}


def count(app, model_name: str) -> int:
    """Live rows of a model."""
    import models

    model = getattr(models, model_name)
    with app.app_context():
        return models.db.session.scalar(
            select(func.count()).select_from(model).where(model.deleted_at.is_(None)))


@pytest.fixture
def seeded(app):
    """An event in a week-long window and two active employees (ids)."""
    with app.app_context():
        event = make_event(start_datetime=utc(2025, 9, 27, 0, 0), due_datetime=utc(2025, 10, 3, 23, 59))
        ana = make_employee("Ana Lopez", code="US100001")
        ben = make_employee("Ben Okafor", code="US100002")
        return {"event": event.id, "ana": ana.id, "ben": ben.id}


# -- authentication ----------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/employees", "/api/events", "/api/schedules",
                                  "/api/available_employees/2025-09-28", "/api/export/schedule"])
def test_unauthenticated_calls_get_401_json(client, path):
    assert_error(client.get(path), 401, "unauthorized")


def test_unauthenticated_post_gets_401(client):
    response = client.post("/api/employees", json={"name": "X"},
                           headers={"Authorization": "Basic d3Jvbmc6d3Jvbmc="})
    assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize("who", ["admin_headers", "scheduler_headers"])
def test_basic_auth_works_for_both_roles(client, request, who):
    headers = request.getfixturevalue(who)
    assert client.get("/api/employees", headers=headers).status_code == 200
    response = client.post("/api/employees", json={"name": "Ana"}, headers=headers)
    assert response.status_code == 201


def test_session_api_post_needs_the_csrf_header(client, auth, app):
    auth.login_scheduler()
    assert client.get("/api/employees").status_code == 200
    assert_error(client.post("/api/employees", json={"name": "Ana"}), 400, "csrf_failed")
    assert count(app, "Employee") == 0
    response = client.post("/api/employees", json={"name": "Ana"},
                           headers={"X-CSRFToken": auth.csrf_token})
    assert response.status_code == 201


def test_basic_auth_needs_no_csrf(client, admin_headers):
    response = client.post("/api/employees", json={"name": "Ana"}, headers=admin_headers)
    assert response.status_code == 201


# -- lists -------------------------------------------------------------------

def test_list_shape_order_and_pagination(client, admin_headers, app):
    for name in ("Cleo", "Ana", "Ben"):
        client.post("/api/employees", json={"name": name}, headers=admin_headers)
    body = client.get("/api/employees", headers=admin_headers).get_json()
    assert set(body) == {"data", "page", "per_page", "total"}
    assert (body["page"], body["per_page"], body["total"]) == (1, 50, 3)
    assert [e["name"] for e in body["data"]] == ["Ana", "Ben", "Cleo"]
    page2 = client.get("/api/employees?page=2&per_page=2", headers=admin_headers).get_json()
    assert [e["name"] for e in page2["data"]] == ["Cleo"]
    assert (page2["page"], page2["per_page"], page2["total"]) == (2, 2, 3)
    assert client.get("/api/employees?page=9", headers=admin_headers).get_json()["data"] == []


@pytest.mark.parametrize("query, field", [
    ("per_page=501", "per_page"), ("per_page=0", "per_page"), ("per_page=abc", "per_page"),
    ("page=0", "page"), ("page=-1", "page"), ("page=x", "page"),
])
def test_bad_paging_is_422(client, admin_headers, query, field):
    error = assert_error(client.get(f"/api/events?{query}", headers=admin_headers), 422,
                         "validation_failed")
    assert fields_of(error) == {field}


def test_per_page_500_is_allowed(client, admin_headers):
    assert client.get("/api/events?per_page=500", headers=admin_headers).get_json()["per_page"] == 500


@pytest.mark.parametrize("path", ["/api/employees", "/api/schedules", "/api/sync/runs"])
def test_every_list_refuses_a_per_page_over_the_maximum(client, admin_headers, path):
    error = assert_error(client.get(f"{path}?per_page=501", headers=admin_headers), 422,
                         "validation_failed")
    assert fields_of(error) == {"per_page"}
    assert client.get(f"{path}?per_page=500", headers=admin_headers).get_json()["per_page"] == 500


def test_events_listed_by_start_then_due(client, admin_headers, app):
    with app.app_context():
        late = make_event(start_datetime=utc(2025, 10, 1), due_datetime=utc(2025, 10, 2)).id
        early_long = make_event(start_datetime=utc(2025, 9, 1), due_datetime=utc(2025, 9, 30)).id
        early_short = make_event(start_datetime=utc(2025, 9, 1), due_datetime=utc(2025, 9, 2)).id
    data = client.get("/api/events", headers=admin_headers).get_json()["data"]
    assert [e["id"] for e in data] == [early_short, early_long, late]


def test_a_list_is_one_count_and_one_page_query(client, admin_headers, app):
    with app.app_context():
        employee = make_employee()
        for day in range(1, 21):
            event = make_event(start_datetime=utc(2025, 9, day), due_datetime=utc(2025, 9, day, 23))
            make_schedule(event, make_employee() if day % 2 else employee,
                          start=utc(2025, 9, day, 12))
        from models import db

        statements = []

        def record(conn, cursor, statement, *args):
            if "FROM users" not in statement:
                statements.append(statement)

        sa_event.listen(db.engine, "before_cursor_execute", record)
    try:
        for path in ("/api/events?per_page=50", "/api/schedules", "/api/employees"):
            statements.clear()
            body = client.get(path, headers=admin_headers).get_json()
            assert body["total"] >= 10
            # schedules: + one look-up for the page's availability warnings (availability.py)
            wanted = 3 if path == "/api/schedules" else 2
            assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == wanted, path
    finally:
        with app.app_context():
            sa_event.remove(db.engine, "before_cursor_execute", record)


# -- employees ---------------------------------------------------------------

def test_employee_create_get_patch_delete(client, admin_headers, app):
    response = client.post("/api/employees", headers=admin_headers,
                           json={"name": " Ana Lopez ", "code": "US100001", "email": "ana@example.com"})
    assert response.status_code == 201
    employee = response.get_json()
    assert response.headers["Location"].endswith(f"/api/employees/{employee['id']}")
    assert employee["name"] == "Ana Lopez" and employee["active"] is True
    assert employee["sync_status"] == "pending" and employee["external_id"] is None
    assert {"last_synced", "sync_error", "updated_at"} <= set(employee)
    url = f"/api/employees/{employee['id']}"
    assert client.get(url, headers=admin_headers).get_json()["code"] == "US100001"
    patched = client.patch(url, json={"active": False, "id": 999, "sync_status": "synced"},
                           headers=admin_headers)
    assert patched.status_code == 200
    assert patched.get_json()["active"] is False and patched.get_json()["id"] == employee["id"]
    assert patched.get_json()["sync_status"] == "pending"
    response = client.delete(url, headers=admin_headers)
    assert response.status_code == 204 and response.get_data() == b""
    assert_error(client.get(url, headers=admin_headers), 404, "not_found")
    assert_error(client.patch(url, json={"name": "x"}, headers=admin_headers), 404)
    assert_error(client.delete(url, headers=admin_headers), 404)
    assert client.get("/api/employees", headers=admin_headers).get_json()["total"] == 0


def test_patch_makes_a_synced_record_pending(client, admin_headers, app):
    with app.app_context():
        employee_id = make_employee("Ana", sync_status="synced", external_id="emp_1").id
    body = client.patch(f"/api/employees/{employee_id}", json={"name": "Ana L."},
                        headers=admin_headers).get_json()
    assert body["sync_status"] == "pending" and body["external_id"] == "emp_1"


def test_changes_ask_for_a_push(client, admin_headers, monkeypatch):
    import api as api_module

    calls = []
    monkeypatch.setattr(api_module, "notify_local_change", lambda: calls.append(1))
    employee = client.post("/api/employees", json={"name": "Ana"}, headers=admin_headers).get_json()
    client.patch(f"/api/employees/{employee['id']}", json={"name": "Ann"}, headers=admin_headers)
    client.delete(f"/api/employees/{employee['id']}", headers=admin_headers)
    assert len(calls) == 3


@pytest.mark.parametrize("body, field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 121}, "name"),
    ({"name": 5}, "name"),
    ({"name": "Ana", "email": "not-an-email"}, "email"),
    ({"name": "Ana", "email": 3}, "email"),
    ({"name": "Ana", "code": "x" * 65}, "code"),
    ({"name": "Ana", "code": 7}, "code"),
    ({"name": "Ana", "active": "yes"}, "active"),
    ({"name": "Ana", "active": None}, "active"),
])
def test_employee_validation(client, admin_headers, app, body, field):
    error = assert_error(client.post("/api/employees", json=body, headers=admin_headers), 422,
                         "validation_failed")
    assert fields_of(error) == {field}
    assert count(app, "Employee") == 0


def test_every_bad_field_is_listed(client, admin_headers):
    error = assert_error(client.post("/api/employees", headers=admin_headers,
                                     json={"name": "", "email": "x", "active": 1}), 422)
    assert fields_of(error) == {"name", "email", "active"}


def test_patch_validates_too(client, admin_headers, app):
    with app.app_context():
        employee_id = make_employee("Ana").id
    error = assert_error(client.patch(f"/api/employees/{employee_id}", json={"name": ""},
                                      headers=admin_headers), 422)
    assert fields_of(error) == {"name"}
    assert client.get(f"/api/employees/{employee_id}", headers=admin_headers).get_json()["name"] == "Ana"


@pytest.mark.parametrize("data, content_type", [
    ("{not json", "application/json"), ("[1, 2]", "application/json"), ("", "application/json"),
    ("name=Ana", "application/x-www-form-urlencoded"),
])
def test_a_body_that_is_not_a_json_object_is_400(client, admin_headers, data, content_type):
    response = client.post("/api/employees", data=data, content_type=content_type,
                           headers=admin_headers)
    assert_error(response, 400, "bad_request")


def test_duplicate_employee_code_is_409_until_the_other_is_deleted(client, admin_headers, app):
    first = client.post("/api/employees", json={"name": "Ana", "code": "US1"}, headers=admin_headers)
    error = assert_error(client.post("/api/employees", json={"name": "Ann", "code": "US1"},
                                     headers=admin_headers), 409, "duplicate")
    assert fields_of(error) == {"code"}
    other = client.post("/api/employees", json={"name": "Ann"}, headers=admin_headers).get_json()
    assert_error(client.patch(f"/api/employees/{other['id']}", json={"code": "US1"},
                              headers=admin_headers), 409, "duplicate")
    client.delete(f"/api/employees/{first.get_json()['id']}", headers=admin_headers)
    assert client.post("/api/employees", json={"name": "Ann", "code": "US1"},
                       headers=admin_headers).status_code == 201


def test_unknown_ids_are_404_json(client, admin_headers):
    for path in ("/api/employees/999", "/api/events/999", "/api/schedules/999"):
        assert_error(client.get(path, headers=admin_headers), 404, "not_found")
    assert client.get("/api/employees/abc", headers=admin_headers).status_code == 404


# -- events ------------------------------------------------------------------

def test_event_create_get_patch_delete(client, admin_headers):
    response = client.post("/api/events", json=EVENT_BODY, headers=admin_headers)
    assert response.status_code == 201
    event = response.get_json()
    assert response.headers["Location"].endswith(f"/api/events/{event['id']}")
    assert event["event_type"] == "Core" and event["is_scheduled"] is False
    assert event["start_datetime"] == "2025-09-27T00:00:00Z"
    assert event["sync_status"] == "pending"
    url = f"/api/events/{event['id']}"
    assert client.get(url, headers=admin_headers).get_json()["project_ref_num"] == 606001
    patched = client.patch(url, json={"project_name": "Juicer Production", "store_number": None},
                           headers=admin_headers).get_json()
    # PATCH changes only what it names: the type stays (docs/openapi.yaml; only a CSV row re-derives it)
    assert patched["project_name"] == "Juicer Production" and patched["event_type"] == "Core"
    assert patched["store_number"] is None
    assert client.delete(url, headers=admin_headers).status_code == 204
    assert_error(client.get(url, headers=admin_headers), 404)


def test_event_times_with_an_offset_are_stored_in_utc(client, admin_headers):
    body = dict(EVENT_BODY, start_datetime="2025-09-27T00:00:00-05:00",
                due_datetime="2025-09-28T00:00:00+02:00")
    event = client.post("/api/events", json=body, headers=admin_headers).get_json()
    assert event["start_datetime"] == "2025-09-27T05:00:00Z"
    assert event["due_datetime"] == "2025-09-27T22:00:00Z"


def test_explicit_event_type_wins_and_survives_other_changes(client, admin_headers):
    event = client.post("/api/events", json=dict(EVENT_BODY, event_type="Supervisor"),
                        headers=admin_headers).get_json()
    assert event["event_type"] == "Supervisor"
    patched = client.patch(f"/api/events/{event['id']}", json={"store_name": "Other store"},
                           headers=admin_headers).get_json()
    assert patched["event_type"] == "Supervisor"


@pytest.mark.parametrize("change, field", [
    ({"project_ref_num": None}, "project_ref_num"),
    ({"project_ref_num": "606001"}, "project_ref_num"),
    ({"project_ref_num": True}, "project_ref_num"),
    ({"project_ref_num": 0}, "project_ref_num"),
    ({"project_ref_num": -5}, "project_ref_num"),
    ({"project_ref_num": 1.5}, "project_ref_num"),
    ({"project_ref_num": 2**40}, "project_ref_num"),
    ({"project_name": ""}, "project_name"),
    ({"project_name": "x" * 201}, "project_name"),
    ({"event_type": "Bogus"}, "event_type"),
    ({"store_number": "1234"}, "store_number"),
    ({"store_number": False}, "store_number"),
    ({"estimated_minutes": -1}, "estimated_minutes"),
    ({"estimated_minutes": "120"}, "estimated_minutes"),
    ({"location_mvid": "x" * 65}, "location_mvid"),
    ({"start_datetime": "2025-09-27T00:00:00"}, "start_datetime"),
    ({"start_datetime": "09/27/2025"}, "start_datetime"),
    ({"start_datetime": None}, "start_datetime"),
    ({"due_datetime": "2025-09-26T00:00:00Z"}, "due_datetime"),
])
def test_event_validation(client, admin_headers, app, change, field):
    error = assert_error(client.post("/api/events", json=dict(EVENT_BODY, **change),
                                     headers=admin_headers), 422, "validation_failed")
    assert fields_of(error) == {field}
    assert count(app, "Event") == 0


@pytest.mark.parametrize("missing", ["project_ref_num", "project_name", "start_datetime", "due_datetime"])
def test_event_required_fields(client, admin_headers, missing):
    body = {k: v for k, v in EVENT_BODY.items() if k != missing}
    error = assert_error(client.post("/api/events", json=body, headers=admin_headers), 422)
    assert fields_of(error) == {missing}


def test_event_patch_checks_the_merged_window(client, admin_headers):
    event = client.post("/api/events", json=EVENT_BODY, headers=admin_headers).get_json()
    error = assert_error(client.patch(f"/api/events/{event['id']}", headers=admin_headers,
                                      json={"due_datetime": "2025-09-01T00:00:00Z"}), 422)
    assert fields_of(error) == {"due_datetime"}


def test_event_window_cannot_leave_its_schedule_outside(client, admin_headers, app, seeded):
    with app.app_context():
        from models import Employee, Event, db

        make_schedule(db.session.get(Event, seeded["event"]), db.session.get(Employee, seeded["ana"]),
                      start=utc(2025, 9, 30, 14))
    error = assert_error(client.patch(f"/api/events/{seeded['event']}", headers=admin_headers,
                                      json={"start_datetime": "2025-10-01T00:00:00Z"}), 422)
    assert fields_of(error) == {"start_datetime"}


def test_duplicate_ref_is_409_until_the_other_is_deleted(client, admin_headers):
    first = client.post("/api/events", json=EVENT_BODY, headers=admin_headers).get_json()
    error = assert_error(client.post("/api/events", json=EVENT_BODY, headers=admin_headers), 409,
                         "duplicate")
    assert fields_of(error) == {"project_ref_num"}
    client.delete(f"/api/events/{first['id']}", headers=admin_headers)
    assert client.post("/api/events", json=EVENT_BODY, headers=admin_headers).status_code == 201


# -- schedules ---------------------------------------------------------------

def schedule_body(seeded, **change):
    body = {"event_id": seeded["event"], "employee_id": seeded["ana"],
            "start_datetime": "2025-09-28T14:00:00Z"}
    body.update(change)
    return body


def test_schedule_create_get_patch_delete(client, admin_headers, seeded):
    response = client.post("/api/schedules", json=schedule_body(seeded), headers=admin_headers)
    assert response.status_code == 201, response.get_json()
    schedule = response.get_json()
    assert response.headers["Location"].endswith(f"/api/schedules/{schedule['id']}")
    assert schedule["start_datetime"] == "2025-09-28T14:00:00Z"
    assert schedule["sync_status"] == "pending"
    event_url = f"/api/events/{seeded['event']}"
    assert client.get(event_url, headers=admin_headers).get_json()["is_scheduled"] is True
    url = f"/api/schedules/{schedule['id']}"
    moved = client.patch(url, json={"employee_id": seeded["ben"], "start_datetime": "2025-09-29T15:00:00Z"},
                         headers=admin_headers)
    assert moved.status_code == 200
    assert moved.get_json()["employee_id"] == seeded["ben"]
    assert client.get(url, headers=admin_headers).get_json()["start_datetime"] == "2025-09-29T15:00:00Z"
    assert client.delete(url, headers=admin_headers).status_code == 204
    assert_error(client.get(url, headers=admin_headers), 404)
    assert client.get(event_url, headers=admin_headers).get_json()["is_scheduled"] is False


def test_schedule_outside_the_window_is_422(client, admin_headers, app, seeded):
    error = assert_error(client.post("/api/schedules", headers=admin_headers,
                                     json=schedule_body(seeded, start_datetime="2025-10-04T10:00:00Z")), 422)
    assert fields_of(error) == {"start_datetime"}
    assert count(app, "Schedule") == 0


def test_schedule_for_an_inactive_employee_is_422(client, admin_headers, app, seeded):
    client.patch(f"/api/employees/{seeded['ana']}", json={"active": False}, headers=admin_headers)
    error = assert_error(client.post("/api/schedules", json=schedule_body(seeded),
                                     headers=admin_headers), 422)
    assert fields_of(error) == {"employee_id"}


@pytest.mark.parametrize("change, field", [
    ({"event_id": 99999}, "event_id"), ({"employee_id": 99999}, "employee_id"),
    ({"event_id": "1"}, "event_id"), ({"employee_id": True}, "employee_id"),
    ({"start_datetime": "2025-09-28 14:00"}, "start_datetime"),
    ({"start_datetime": "2025-09-28T14:00:00"}, "start_datetime"),
])
def test_schedule_validation(client, admin_headers, app, seeded, change, field):
    error = assert_error(client.post("/api/schedules", json=schedule_body(seeded, **change),
                                     headers=admin_headers), 422)
    assert fields_of(error) == {field}
    assert count(app, "Schedule") == 0


def test_a_deleted_employee_cannot_be_scheduled(client, admin_headers, seeded):
    client.delete(f"/api/employees/{seeded['ben']}", headers=admin_headers)
    error = assert_error(client.post("/api/schedules", headers=admin_headers,
                                     json=schedule_body(seeded, employee_id=seeded["ben"])), 422)
    assert fields_of(error) == {"employee_id"}


def test_an_event_already_scheduled_is_409(client, admin_headers, app, seeded):
    client.post("/api/schedules", json=schedule_body(seeded), headers=admin_headers)
    error = assert_error(client.post("/api/schedules", headers=admin_headers,
                                     json=schedule_body(seeded, employee_id=seeded["ben"])), 409,
                         "already_scheduled")
    assert fields_of(error) == {"event_id"}
    assert count(app, "Schedule") == 1


def test_an_employee_busy_that_day_is_409(client, admin_headers, app, seeded):
    with app.app_context():
        other = make_event(start_datetime=utc(2025, 9, 27), due_datetime=utc(2025, 10, 3)).id
    client.post("/api/schedules", json=schedule_body(seeded), headers=admin_headers)
    error = assert_error(client.post("/api/schedules", headers=admin_headers, json=schedule_body(
        seeded, event_id=other, start_datetime="2025-09-28T20:00:00Z")), 409, "employee_busy")
    assert fields_of(error) == {"employee_id"}
    response = client.post("/api/schedules", headers=admin_headers, json=schedule_body(
        seeded, event_id=other, start_datetime="2025-09-29T08:00:00Z"))
    assert response.status_code == 201


def test_rescheduling_within_the_same_day_is_not_a_conflict(client, admin_headers, seeded):
    schedule = client.post("/api/schedules", json=schedule_body(seeded), headers=admin_headers).get_json()
    response = client.patch(f"/api/schedules/{schedule['id']}", headers=admin_headers,
                            json={"start_datetime": "2025-09-28T18:00:00Z"})
    assert response.status_code == 200


@pytest.mark.parametrize("app_overrides", [{"APP_TIMEZONE": "America/Chicago"}])
def test_that_day_is_the_local_day(client, admin_headers, app, seeded):
    with app.app_context():
        other = make_event(start_datetime=utc(2025, 9, 27), due_datetime=utc(2025, 10, 3)).id
    # 04:00Z on the 28th is 23:00 on the 27th in Chicago: another day than 14:00Z.
    first = client.post("/api/schedules", headers=admin_headers,
                        json=schedule_body(seeded, start_datetime="2025-09-28T04:00:00Z"))
    assert first.status_code == 201
    second = client.post("/api/schedules", headers=admin_headers,
                         json=schedule_body(seeded, event_id=other))
    assert second.status_code == 201
    names = client.get("/api/available_employees/2025-09-27", headers=admin_headers).get_json()
    assert [e["name"] for e in names] == ["Ben Okafor"]
    local = client.get("/api/schedules?from=2025-09-27&to=2025-09-27", headers=admin_headers).get_json()
    assert [s["start_datetime"] for s in local["data"]] == ["2025-09-28T04:00:00Z"]


def test_schedule_list_from_to(client, admin_headers, app, seeded):
    with app.app_context():
        from models import Employee, db

        ana = db.session.get(Employee, seeded["ana"])
        for day in (1, 2, 3):
            event = make_event(start_datetime=utc(2025, 11, 1), due_datetime=utc(2025, 11, 30))
            make_schedule(event, ana, start=utc(2025, 11, day, 12))
    def starts(query):
        body = client.get(f"/api/schedules?{query}", headers=admin_headers)
        assert body.status_code == 200, body.get_json()
        return [s["start_datetime"][:10] for s in body.get_json()["data"]]
    assert starts("") == ["2025-11-01", "2025-11-02", "2025-11-03"]
    assert starts("from=2025-11-02") == ["2025-11-02", "2025-11-03"]
    assert starts("to=2025-11-02") == ["2025-11-01", "2025-11-02"]
    assert starts("from=2025-11-02&to=2025-11-02") == ["2025-11-02"]
    assert starts("from=2025-11-02T12:00:00Z&to=2025-11-03T11:00:00Z") == ["2025-11-02"]
    error = assert_error(client.get("/api/schedules?from=11/02/2025", headers=admin_headers), 422)
    assert fields_of(error) == {"from"}


def test_deleting_what_a_schedule_uses_is_409_in_use(client, admin_headers, app, seeded):
    schedule = client.post("/api/schedules", json=schedule_body(seeded), headers=admin_headers).get_json()
    for path in (f"/api/employees/{seeded['ana']}", f"/api/events/{seeded['event']}"):
        error = assert_error(client.delete(path, headers=admin_headers), 409, "in_use")
        assert error["details"] == [{"resource": "schedule", "id": schedule["id"]}]
        assert client.get(path, headers=admin_headers).status_code == 200
    client.delete(f"/api/schedules/{schedule['id']}", headers=admin_headers)
    assert client.delete(f"/api/employees/{seeded['ana']}", headers=admin_headers).status_code == 204
    assert client.delete(f"/api/events/{seeded['event']}", headers=admin_headers).status_code == 204


# -- helpers -----------------------------------------------------------------

def test_available_employees(client, admin_headers, app, seeded):
    with app.app_context():
        make_employee("Zed Inactive", active=False)
    client.post("/api/schedules", json=schedule_body(seeded), headers=admin_headers)
    body = client.get("/api/available_employees/2025-09-28", headers=admin_headers).get_json()
    assert body == [{"id": seeded["ben"], "name": "Ben Okafor"}]
    everyone = client.get("/api/available_employees/2025-09-29", headers=admin_headers).get_json()
    assert [e["name"] for e in everyone] == ["Ana Lopez", "Ben Okafor"]


@pytest.mark.parametrize("day", ["2025-13-01", "2025-02-30", "tomorrow", "20250928", "09-28-2025"])
def test_available_employees_bad_date(client, admin_headers, day):
    error = assert_error(client.get(f"/api/available_employees/{day}", headers=admin_headers), 422)
    assert "YYYY-MM-DD" in error["message"] + str(error["details"])


def test_import_route_needs_a_file(client, admin_headers):
    assert_error(client.post("/api/import/events", data={}, headers=admin_headers), 400, "bad_request")


def test_export_route_is_a_csv_attachment(client, admin_headers):
    response = client.get("/api/export/schedule", headers=admin_headers)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="CalendarSchedule.csv"'
    assert response.get_data(as_text=True).startswith("Project Name,Project Reference Number,")
    assert_error(client.get("/api/export/schedule?from=soon", headers=admin_headers), 422)


def test_openapi_documents_every_json_api_route(app):
    """docs/openapi.yaml stays in step with every /api/ route (JSON API, sync, webhook)."""
    import re
    from pathlib import Path

    import yaml

    spec = yaml.safe_load((Path(__file__).parent.parent / "docs" / "openapi.yaml").read_text())
    assert spec["openapi"].startswith("3.1")
    refs = re.findall(r'"#/components/(\w+)/(\w+)"', (Path(__file__).parent.parent / "docs" / "openapi.yaml").read_text())
    for section, name in refs:
        assert name in spec["components"][section], f"dangling $ref {section}/{name}"
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in spec["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][path], (method, path)
