"""The employees' pages (employees.py): the list, add, edit, deactivate and reactivate; and
deactivating an employee who still has future schedules: refused (API) or asked (pages),
with unschedule_future the schedules go in the same transaction.  /api/employees is in
test_api.py."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.factories import make_employee, make_event, make_schedule, utc
from tests.test_pages import count, field_error, html, ids, post


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


# ---------------------------------------------------------------------------
# the pages
# ---------------------------------------------------------------------------

@pytest.fixture
def signed_in(client, auth):
    auth.login_scheduler()
    return auth


def test_employees_list_active_first_then_by_name_without_deleted(app, client, signed_in):
    with app.app_context():
        make_employee("Zed Active")
        make_employee("Amy Inactive", active=False)
        make_employee("Bob Active")
        make_employee("Del Deleted", deleted_at=utc(2026, 11, 1))
    page = html(client.get("/employees"))
    positions = [page.index(n) for n in ("Bob Active", "Zed Active", "Amy Inactive")]
    assert positions == sorted(positions)
    assert "Del Deleted" not in page


def test_employees_paginate(app, client, signed_in):
    app.config["PAGE_SIZE"] = 2
    with app.app_context():
        for name in ("A1", "A2", "A3"):
            make_employee(f"Emp {name}")
    assert "Emp A3" not in html(client.get("/employees"))
    assert "Emp A3" in html(client.get("/employees?page=2"))


def test_add_an_employee(app, client, signed_in):
    from models import Employee, db

    response = post(client, signed_in, "/employees",
                    {"name": "  Ana Lopez ", "code": "US100001", "email": "ana@example.com", "active": "1"})
    assert response.status_code == 302
    assert "Added Ana Lopez" in html(client.get("/employees"))
    with app.app_context():
        ana = db.session.scalar(select(Employee).where(Employee.code == "US100001"))
        assert ana.name == "Ana Lopez" and ana.active and ana.sync_status == "pending"


EMPLOYEE_INVALID = [
    ("empty name", {"name": "   "}, "name", "1–120"),
    ("long name", {"name": "x" * 121}, "name", "1–120"),
    ("bad email", {"name": "Ana", "email": "ana-at-example"}, "email", "email address"),
    ("taken code", {"name": "Ana", "code": "US999999"}, "code", "belongs to someone else"),
]


@pytest.mark.parametrize("case, data, field, message", EMPLOYEE_INVALID, ids=[c[0] for c in EMPLOYEE_INVALID])
def test_add_employee_validation(app, client, signed_in, case, data, field, message):
    from models import Employee

    with app.app_context():
        make_employee("Holder", code="US999999")
    response = post(client, signed_in, "/employees", data)
    assert response.status_code == 422
    assert message in field_error(html(response), field)
    assert count(app, Employee) == 1


def test_a_deleted_employees_code_can_be_reused(app, client, signed_in):
    with app.app_context():
        make_employee("Old", code="US555555", deleted_at=utc(2026, 1, 1))
    response = post(client, signed_in, "/employees", {"name": "New", "code": "US555555", "active": "1"})
    assert response.status_code == 302


def test_edit_an_employee(app, client, signed_in):
    from models import Employee, db

    with app.app_context():
        emp = make_employee("Ana", code="US1", sync_status="synced")
        make_employee("Ben", code="US2")
        emp, = ids(emp)
    form = html(client.get(f"/employees/{emp.id}/edit"))
    assert 'value="Ana"' in form and 'value="US1"' in form
    bad = post(client, signed_in, f"/employees/{emp.id}/edit", {"name": "Ana", "code": "US2", "active": "1"})
    assert bad.status_code == 422 and "belongs to someone else" in field_error(html(bad), "code")
    same_code = post(client, signed_in, f"/employees/{emp.id}/edit",
                     {"name": "Ana Lopez", "code": "US1", "email": "a@b.co", "active": "1"})
    assert same_code.status_code == 302
    with app.app_context():
        stored = db.session.get(Employee, emp.id)
        assert (stored.name, stored.email, stored.sync_status) == ("Ana Lopez", "a@b.co", "pending")


def test_deactivate_and_reactivate(app, client, signed_in):
    from models import Employee, db

    with app.app_context():
        emp, = ids(make_employee("Ana", sync_status="synced"))
    assert post(client, signed_in, f"/employees/{emp.id}/active", {"active": "0"}).status_code == 302
    with app.app_context():
        stored = db.session.get(Employee, emp.id)
        assert not stored.active and stored.sync_status == "pending"
    assert "Reactivate" in html(client.get("/employees"))
    post(client, signed_in, f"/employees/{emp.id}/active", {"active": "1"})
    with app.app_context():
        assert db.session.get(Employee, emp.id).active
    assert client.post(f"/employees/{emp.id}/active", data={"active": "0"}).status_code == 400


def test_an_inactive_employee_is_not_offered(app, client, signed_in):
    with app.app_context():
        event, emp = ids(make_event(), make_employee("Ana Gone"))
    post(client, signed_in, f"/employees/{emp.id}/active", {"active": "0"})
    assert "Ana Gone is now inactive" in html(client.get("/employees"))
    assert "Ana Gone" not in html(client.get(f"/schedule/{event.id}?date=2026-12-02"))
