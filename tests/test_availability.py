"""Availability on every local schedule path (app-api.md, Availability): the JSON API,
the schedule page, the free cell, the roster's drop, the CSV import and
/api/available_employees refuse a day the employee does not work or is off (409
employee_unavailable) and a week at its limit (409 over_weekly_limit); the roster's
helper (availability.unavailable_reasons) says which cells are kept free and why."""
from __future__ import annotations

import io
from datetime import date, timedelta

import pytest

from tests.factories import make_employee, make_event, make_schedule, utc

WED, SAT = date(2026, 12, 2), date(2026, 12, 5)  # inside make_event's window (Dec 1–7)


@pytest.fixture
def signed_in(client, auth):
    auth.login_scheduler()
    return auth


def at(day: date, hour: int = 9) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00Z"


def post_form(client, auth, url: str, data: dict, **kwargs):
    """A page form POST with the session's CSRF token."""
    return client.post(url, data={**data, "csrf_token": auth.refresh_csrf()}, **kwargs)


def world(app, **employee_fields) -> dict:
    """One employee (with `employee_fields`) and two unscheduled events (Dec 1–7)."""
    from models import TimeOff, db

    with app.app_context():
        off = employee_fields.pop("off", None)
        worker = make_employee("Ana", **employee_fields)
        if off:
            db.session.add(TimeOff(employee_id=worker.id, start_date=off[0], end_date=off[1],
                                   note="dentist"))
            db.session.commit()
        return {"ana": worker.id, "events": [make_event().id, make_event().id]}


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_json()["error"]


def test_api_refuses_a_day_that_is_not_a_workday(client, admin_headers, app):
    w = world(app, workdays=0b0011111)  # Monday to Friday
    answer = client.post("/api/schedules", headers=admin_headers,
                         json={"event_id": w["events"][0], "employee_id": w["ana"], "start_datetime": at(SAT)})
    error = error_of(answer, 409)
    assert error["code"] == "employee_unavailable" and error["message"] == "Ana does not work on Saturdays"
    ok = client.post("/api/schedules", headers=admin_headers,
                     json={"event_id": w["events"][0], "employee_id": w["ana"], "start_datetime": at(WED)})
    assert ok.status_code == 201
    moved = client.patch(f"/api/schedules/{ok.get_json()['id']}", headers=admin_headers,
                         json={"start_datetime": at(SAT)})
    assert error_of(moved, 409)["code"] == "employee_unavailable"


def test_api_refuses_a_day_off_and_names_it(client, admin_headers, app):
    w = world(app, off=(WED, WED + timedelta(days=1)))
    answer = client.post("/api/schedules", headers=admin_headers,
                         json={"event_id": w["events"][0], "employee_id": w["ana"], "start_datetime": at(WED)})
    error = error_of(answer, 409)
    assert error["code"] == "employee_unavailable"
    assert error["message"] == "Ana is off from 02 Dec to 03 Dec (dentist)"


def test_api_refuses_a_week_at_its_limit_but_a_move_inside_it_is_fine(client, admin_headers, app):
    w = world(app, max_days_per_week=1)
    first = client.post("/api/schedules", headers=admin_headers,
                        json={"event_id": w["events"][0], "employee_id": w["ana"], "start_datetime": at(WED)})
    assert first.status_code == 201
    second = client.post("/api/schedules", headers=admin_headers,
                         json={"event_id": w["events"][1], "employee_id": w["ana"], "start_datetime": at(SAT)})
    error = error_of(second, 409)
    assert error["code"] == "over_weekly_limit"
    assert error["message"] == "Ana already works 1 day in the week of 30 Nov (limit 1)"
    moved = client.patch(f"/api/schedules/{first.get_json()['id']}", headers=admin_headers,
                         json={"start_datetime": at(SAT)})
    assert moved.status_code == 200


def test_available_employees_leaves_out_the_unavailable(client, admin_headers, app):
    w = world(app, workdays=0b0011111)
    with app.app_context():
        ben = make_employee("Ben").id

    def ids(day):
        return [e["id"] for e in client.get(f"/api/available_employees/{day}", headers=admin_headers).get_json()]

    assert ids(WED) == [w["ana"], ben]
    assert ids(SAT) == [ben]


def test_the_schedule_page_lists_only_available_employees_and_refuses_the_others(app, client, signed_in):
    w = world(app, off=(SAT, SAT))
    with app.app_context():
        make_employee("Ben")
    page = client.get(f"/schedule/{w['events'][0]}?date={SAT}").get_data(as_text=True)
    assert "Ben" in page and f'value="{w["ana"]}"' not in page
    refused = post_form(client, signed_in, f"/schedule/{w['events'][0]}",
                        {"date": SAT.isoformat(), "time": "09:00", "employee_id": str(w["ana"])})
    assert refused.status_code == 409
    assert "Ana is off from 05 Dec to 05 Dec (dentist)." in refused.get_data(as_text=True)


def test_the_free_cell_says_why_an_unavailable_day_is_not_free(app, client, signed_in):
    w = world(app, workdays=0b0011111)
    page = client.get(f"/calendar/free?employee_id={w['ana']}&date={SAT}")
    assert page.status_code == 409 and "Ana does not work on Saturdays." in page.get_data(as_text=True)


def test_the_roster_drop_answers_the_rule_code_in_json(app, client, signed_in):
    with app.app_context():
        ben = make_employee("Ben", max_days_per_week=1)
        make_schedule(make_event(), ben, utc(2026, 12, 3, 9))
        moving = make_schedule(make_event(), make_employee("Cy"), utc(2026, 12, 2, 9)).id
        ben = ben.id
    answer = post_form(client, signed_in, f"/calendar/{moving}/reschedule",
                       {"date": SAT.isoformat(), "time": "09:00", "employee_id": str(ben)},
                       headers={"Accept": "application/json"})
    error = error_of(answer, 409)
    assert error["code"] == "over_weekly_limit"
    assert error["message"] == "Ben already works 1 day in the week of 30 Nov (limit 1)."


CSV_HEADER = ("Project Name,Project Reference Number,Start Date/Time,Due Date/Time,"
              "Employee ID,Rep Name,Schedule Date/Time\n")


def test_a_csv_row_for_an_unavailable_day_is_a_line_problem_and_nothing_is_imported(client, admin_headers, app):
    from models import Schedule, db

    with app.app_context():
        make_employee("Ana", code="US1", workdays=0b0011111, max_days_per_week=1)
    rows = ["CORE - A,707001,12/01/2026 12:00:00 AM,12/07/2026 11:59:00 PM,US1,Ana,12/05/2026 09:00:00 AM",
            "CORE - B,707002,12/01/2026 12:00:00 AM,12/07/2026 11:59:00 PM,US1,Ana,12/02/2026 09:00:00 AM",
            "CORE - C,707003,12/01/2026 12:00:00 AM,12/07/2026 11:59:00 PM,US1,Ana,12/03/2026 09:00:00 AM"]
    text = CSV_HEADER + "\n".join(rows) + "\n"
    answer = client.post("/api/import/events", headers=admin_headers, content_type="multipart/form-data",
                         data={"file": (io.BytesIO(text.encode()), "WorkBankVisits.csv")})
    details = error_of(answer, 422)["details"]
    assert [(d["line"], d["column"], d["message"]) for d in details] == [
        (2, "Schedule Date/Time", "Ana does not work on Saturdays"),
        (4, "Schedule Date/Time", "Ana already works 1 day in the week of 30 Nov (limit 1)")]
    with app.app_context():
        assert db.session.query(Schedule).count() == 0


def test_unavailable_reasons_for_a_page_of_employees_in_one_query(app):
    import availability
    from models import Employee, TimeOff, db
    from tests.helpers import statements

    with app.app_context():
        ana = make_employee("Ana", workdays=0b0011111)
        ben = make_employee("Ben", max_days_per_week=1)
        make_schedule(make_event(), ben, utc(2026, 12, 1, 9))
        db.session.add(TimeOff(employee_id=ana.id, start_date=WED, end_date=WED))
        db.session.commit()
        employees = list(db.session.scalars(db.select(Employee).order_by(Employee.id)))
        days = [date(2026, 11, 30) + timedelta(days=i) for i in range(7)]
        with statements(app) as seen:
            reasons = availability.unavailable_reasons(employees, days)
        assert len(seen) == 1
        assert reasons[(ana.id, WED)] == "Ana is off from 02 Dec to 02 Dec"
        assert reasons[(ana.id, SAT)] == "Ana does not work on Saturdays"
        assert (ben.id, date(2026, 12, 1)) not in reasons  # the day already held is his
        assert reasons[(ben.id, WED)].startswith("Ben already works 1 day")
        assert (ana.id, date(2026, 12, 1)) not in reasons


# -- schedules that break availability (the vendor's are applied as it says) -------------

def test_a_schedule_that_breaks_availability_carries_warnings_in_its_json(client, admin_headers, app):
    from models import TimeOff, db
    from tests.helpers import statements

    with app.app_context():
        ana = make_employee("Ana", workdays=0b0011111)
        ben = make_employee("Ben")
        weekend = make_schedule(make_event(), ana, utc(2026, 12, 5, 9))  # as a pull would write it
        fine = make_schedule(make_event(), ben, utc(2026, 12, 2, 9))
        db.session.add(TimeOff(employee_id=ben.id, start_date=date(2026, 12, 7), end_date=date(2026, 12, 7)))
        off = make_schedule(make_event(), ben, utc(2026, 12, 7, 9))
        weekend, fine, off = weekend.id, fine.id, off.id
    one = client.get(f"/api/schedules/{weekend}", headers=admin_headers).get_json()
    assert one["warnings"] == ["Ana does not work on Saturdays"]
    with statements(app) as seen:
        listing = client.get("/api/schedules", headers=admin_headers).get_json()
    warnings = {s["id"]: s["warnings"] for s in listing["data"]}
    assert warnings == {weekend: ["Ana does not work on Saturdays"], fine: [],
                        off: ["Ben is off from 07 Dec to 07 Dec"]}
    assert len([s for s in seen if "time_off" in s.lower()]) == 1  # one look-up per page


def test_the_roster_page_gets_its_unavailable_cells(app, client, signed_in):
    from flask import template_rendered

    with app.app_context():
        ana = make_employee("Ana", workdays=0b0011111).id
    seen = []

    def record(sender, template, context, **extra):
        seen.append(context)

    with template_rendered.connected_to(record, app):
        assert client.get("/calendar?week=2026-12-07").status_code == 200
    cells = seen[-1]["unavailable"]
    assert cells[(ana, date(2026, 12, 12))] == "Ana does not work on Saturdays"
    assert (ana, date(2026, 12, 11)) not in cells


def test_the_roster_greys_an_unavailable_day_and_says_why(app, client, signed_in):
    import re

    with app.app_context():
        ana = make_employee("Ana", workdays=0b0011111).id  # Monday to Friday
    html = client.get("/calendar?week=2026-12-07").get_data(as_text=True)
    saturday = re.search(rf'<td class="roster-cell[^"]*" data-date="2026-12-12" data-employee-id="{ana}"'
                         r'[^>]*>(.*?)</td>', html, re.S)
    friday = re.search(rf'<td class="roster-cell[^"]*" data-date="2026-12-11" data-employee-id="{ana}"'
                       r'[^>]*>(.*?)</td>', html, re.S)
    assert 'unavailable' in saturday.group(0).split(">", 1)[0]
    assert 'title="Ana does not work on Saturdays"' in saturday.group(0)
    assert "Ana does not work on Saturdays" in saturday.group(1) and "add-here" not in saturday.group(1)
    assert "unavailable" not in friday.group(0).split(">", 1)[0]
