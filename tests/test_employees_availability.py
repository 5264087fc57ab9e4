"""An employee's availability through the API and the pages: `workdays` and
`max_days_per_week` (PATCH; local, so never marked for the vendor; history source api),
time off (GET|POST /api/employees/<id>/time_off, DELETE .../<tid>), and the employee
pages (edit form, time off forms, feed, list column)."""
from __future__ import annotations

import re

import pytest

from tests.factories import make_employee


@pytest.fixture
def ana(app) -> int:
    from models import db

    with app.app_context():
        employee = make_employee("Ana")
        employee.sync_status = "synced"
        db.session.commit()
        return employee.id


def test_patch_changes_workdays_and_the_limit_without_a_push(client, admin_headers, app, ana):
    answer = client.patch(f"/api/employees/{ana}", headers=admin_headers,
                          json={"workdays": ["fri", "Mon"], "max_days_per_week": 2})
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["workdays"], body["max_days_per_week"], body["sync_status"]) == (["mon", "fri"], 2, "synced")
    history = client.get(f"/api/employees/{ana}/history", headers=admin_headers).get_json()["data"][0]
    assert history["source"] == "api" and history["changes"]["max_days_per_week"] == [None, 2]
    cleared = client.patch(f"/api/employees/{ana}", headers=admin_headers, json={"max_days_per_week": None})
    assert cleared.get_json()["max_days_per_week"] is None
    renamed = client.patch(f"/api/employees/{ana}", headers=admin_headers, json={"name": "Ana B"})
    assert renamed.get_json()["sync_status"] == "pending"


@pytest.mark.parametrize("body, field", [
    ({"workdays": "mon"}, "workdays"), ({"workdays": ["monday"]}, "workdays"),
    ({"workdays": ["mon", "mon"]}, "workdays"), ({"max_days_per_week": 0}, "max_days_per_week"),
    ({"max_days_per_week": 8}, "max_days_per_week"), ({"max_days_per_week": "2"}, "max_days_per_week"),
    ({"max_days_per_week": True}, "max_days_per_week"),
])
def test_bad_availability_values_are_422_naming_the_field(client, admin_headers, ana, body, field):
    answer = client.patch(f"/api/employees/{ana}", headers=admin_headers, json=body)
    assert answer.status_code == 422
    assert [d["field"] for d in answer.get_json()["error"]["details"]] == [field]


def test_time_off_is_listed_added_and_removed(client, admin_headers, ana):
    url = f"/api/employees/{ana}/time_off"
    made = client.post(url, headers=admin_headers,
                       json={"start_date": "2026-12-24", "end_date": "2026-12-26", "note": "holiday"})
    assert made.status_code == 201
    off = made.get_json()
    assert (off["start_date"], off["end_date"], off["note"]) == ("2026-12-24", "2026-12-26", "holiday")
    listing = client.get(url, headers=admin_headers).get_json()
    assert (listing["total"], listing["page"], [o["id"] for o in listing["data"]]) == (1, 1, [off["id"]])
    assert client.delete(f"{url}/{off['id']}", headers=admin_headers).status_code == 204
    assert client.delete(f"{url}/{off['id']}", headers=admin_headers).status_code == 404
    assert client.get(url, headers=admin_headers).get_json()["total"] == 0


@pytest.mark.parametrize("body, field", [
    ({"end_date": "2026-12-24"}, "start_date"), ({"start_date": "2026-12-24"}, "end_date"),
    ({"start_date": "2026-12-24", "end_date": "2026-12-23"}, "end_date"),
    ({"start_date": "24/12/2026", "end_date": "2026-12-24"}, "start_date"),
    ({"start_date": "2026-12-24", "end_date": "2026-12-24", "note": 5}, "note"),
])
def test_bad_time_off_is_422_naming_the_field(client, admin_headers, ana, body, field):
    answer = client.post(f"/api/employees/{ana}/time_off", headers=admin_headers, json=body)
    assert answer.status_code == 422
    assert answer.get_json()["error"]["details"][0]["field"] == field


def test_time_off_of_an_unknown_employee_is_404(client, admin_headers):
    assert client.get("/api/employees/999999/time_off", headers=admin_headers).status_code == 404


# -- the pages -------------------------------------------------------------------------

def csrf(client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def test_the_edit_page_changes_availability_and_lists_adds_and_removes_time_off(client, auth, app, ana):
    from models import Employee, TimeOff, db

    auth.login()
    edit = f"/employees/{ana}/edit"
    with app.app_context():
        code = db.session.get(Employee, ana).code
    page = client.get(edit).get_data(as_text=True)
    assert 'name="workdays" type="checkbox" value="sat"' in page and 'name="max_days_per_week"' in page
    saved = client.post(edit, data={"csrf_token": csrf(client, edit), "name": "Ana", "active": "1",
                                    "code": code, "availability": "1", "workdays": ["mon", "tue"],
                                    "max_days_per_week": "2"})
    assert saved.status_code == 302
    with app.app_context():
        employee = db.session.get(Employee, ana)
        assert (employee.workday_names, employee.max_days_per_week, employee.sync_status) == (
            ["mon", "tue"], 2, "synced")
    bad = client.post(edit, data={"csrf_token": csrf(client, edit), "name": "Ana", "active": "1",
                                  "availability": "1", "max_days_per_week": "9"})
    assert bad.status_code == 422 and "from 1 to 7" in bad.get_data(as_text=True)
    added = client.post(f"/employees/{ana}/time_off", data={
        "csrf_token": csrf(client, edit), "start_date": "2026-12-24", "end_date": "2026-12-26",
        "note": "holiday"})
    assert added.status_code == 302
    page = client.get(edit).get_data(as_text=True)
    assert "2026-12-24" in page and "holiday" in page
    with app.app_context():
        off_id = db.session.scalar(db.select(TimeOff.id))
    removed = client.post(f"/employees/{ana}/time_off/{off_id}/delete",
                          data={"csrf_token": csrf(client, edit)})
    assert removed.status_code == 302
    with app.app_context():
        assert db.session.scalar(db.select(TimeOff.id)) is None
    employees = client.get("/employees").get_data(as_text=True)
    assert "Mon, Tue" in employees and "max 2" in employees


def test_the_edit_page_makes_shows_once_and_revokes_the_feed(client, auth, app, ana):
    auth.login()
    edit = f"/employees/{ana}/edit"
    made = client.post(f"/employees/{ana}/feed", data={"csrf_token": csrf(client, edit)})
    assert made.status_code == 200
    url = re.search(r'(/feeds/[A-Za-z0-9_\-]+\.ics)', made.get_data(as_text=True)).group(1)
    assert app.test_client().get(url).status_code == 200
    assert url not in client.get(edit).get_data(as_text=True)  # shown once
    revoked = client.post(f"/employees/{ana}/feed/revoke", data={"csrf_token": csrf(client, edit)})
    assert revoked.status_code == 302
    assert app.test_client().get(url).status_code == 404
