"""Deactivating an employee who still has future schedules: refused (API) or asked (pages),
and with unschedule_future the schedules go in the same transaction."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.factories import make_employee, make_event, make_schedule


@pytest.fixture
def booked(app):
    """An employee with two future schedules and one past one: (employee id, future ids,
    past id, future event names)."""
    from models import utcnow

    now = utcnow().replace(microsecond=0)
    with app.app_context():
        employee = make_employee("Fay Future")
        future, names = [], []
        for days in (2, 3):
            event = make_event(start_datetime=now - timedelta(days=1),
                               due_datetime=now + timedelta(days=10),
                               project_name=f"CORE - Future Reset {days}")
            future.append(make_schedule(event, employee, now + timedelta(days=days)).id)
            names.append(event.project_name)
        past_event = make_event(start_datetime=now - timedelta(days=5),
                                due_datetime=now + timedelta(days=10))
        past = make_schedule(past_event, employee, now - timedelta(days=2)).id
        return employee.id, future, past, names


def state(app, employee_id: int) -> tuple[bool, list[int]]:
    """(active, ids of the employee's live schedules)."""
    from models import Employee, Schedule, db

    with app.app_context():
        active = db.session.get(Employee, employee_id).active
        ids = db.session.scalars(select(Schedule.id).where(
            Schedule.employee_id == employee_id, Schedule.deleted_at.is_(None))
            .order_by(Schedule.id)).all()
        return active, list(ids)


def test_api_refuses_to_deactivate_with_future_schedules(app, client, admin_headers, booked):
    employee, future, past, _names = booked
    answer = client.patch(f"/api/employees/{employee}", json={"active": False},
                          headers=admin_headers)
    assert answer.status_code == 409
    error = answer.get_json()["error"]
    assert error["code"] == "in_use"
    assert [d["id"] for d in error["details"]] == future
    assert all(d["resource"] == "schedule" and d["start_datetime"] for d in error["details"])
    assert "unschedule_future" in error["message"]
    assert state(app, employee) == (True, sorted(future + [past]))


def test_api_deactivates_and_unschedules_the_future_in_one_go(app, client, admin_headers, booked):
    employee, future, past, names = booked
    answer = client.patch(f"/api/employees/{employee}",
                          json={"active": False, "unschedule_future": True}, headers=admin_headers)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["active"] is False
    assert state(app, employee) == (False, [past])
    for sid in future:
        assert client.get(f"/api/schedules/{sid}", headers=admin_headers).status_code == 404
    auth_page = client.get("/", headers=admin_headers).get_data(as_text=True)
    assert all(name in auth_page for name in names)


def test_api_unschedule_future_must_be_a_boolean(app, client, admin_headers, booked):
    employee, future, past, _names = booked
    answer = client.patch(f"/api/employees/{employee}",
                          json={"active": False, "unschedule_future": "yes"}, headers=admin_headers)
    assert answer.status_code == 422
    assert answer.get_json()["error"]["details"][0]["field"] == "unschedule_future"
    assert state(app, employee) == (True, sorted(future + [past]))


def test_api_deactivates_at_once_without_future_schedules(app, client, admin_headers):
    with app.app_context():
        employee = make_employee().id
    answer = client.patch(f"/api/employees/{employee}", json={"active": False},
                          headers=admin_headers)
    assert answer.status_code == 200 and answer.get_json()["active"] is False


def test_page_asks_then_unschedules_when_ticked(app, client, auth, booked):
    employee, future, past, names = booked
    auth.login()
    token = auth.refresh_csrf("/employees")
    asked = client.post(f"/employees/{employee}/active", data={"active": "0", "csrf_token": token})
    assert asked.status_code == 409
    page = asked.get_data(as_text=True)
    assert 'id="future-schedules"' in page and all(name in page for name in names)
    assert 'name="unschedule_future"' in page
    assert state(app, employee) == (True, sorted(future + [past]))
    done = client.post(f"/employees/{employee}/active",
                       data={"active": "0", "unschedule_future": "1", "csrf_token": token})
    assert done.status_code == 302
    assert state(app, employee) == (False, [past])
    dashboard = client.get("/").get_data(as_text=True)
    assert all(name in dashboard for name in names)


def test_edit_page_asks_before_unticking_active(app, client, auth, booked):
    employee, future, past, names = booked
    auth.login()
    token = auth.refresh_csrf(f"/employees/{employee}/edit")
    form = {"name": "Fay Future", "code": "", "email": "", "csrf_token": token}
    asked = client.post(f"/employees/{employee}/edit", data=form)
    assert asked.status_code == 409
    page = asked.get_data(as_text=True)
    assert all(name in page for name in names) and 'name="unschedule_future"' in page
    assert state(app, employee) == (True, sorted(future + [past]))
    done = client.post(f"/employees/{employee}/edit", data={**form, "unschedule_future": "1"})
    assert done.status_code == 302
    assert state(app, employee) == (False, [past])
