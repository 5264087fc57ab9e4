"""Times are stored in UTC and shown and typed in APP_TIMEZONE (America/Chicago here)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.factories import make_employee, make_event, make_schedule, utc


@pytest.fixture
def app_overrides():
    return {"APP_TIMEZONE": "America/Chicago"}


@pytest.fixture
def signed_in(auth):
    auth.login_scheduler()
    return auth


def post(client, auth, url, data):
    return client.post(url, data={"csrf_token": auth.csrf_token, **data})


def stored_start(app, event_id):
    from models import Schedule, db, live

    with app.app_context():
        schedule = db.session.scalar(live(Schedule).where(Schedule.event_id == event_id))
        return schedule.start_datetime if schedule else None


@pytest.fixture
def autumn(app):
    """An event over the November 2026 change (Sunday Nov 1, 02:00 CDT → 01:00 CST)."""
    with app.app_context():
        first = make_event(start_datetime=utc(2026, 10, 30, 5, 0), due_datetime=utc(2026, 11, 4, 5, 0)).id
        second = make_event(start_datetime=utc(2026, 10, 30, 5, 0), due_datetime=utc(2026, 11, 4, 5, 0)).id
        employee = make_employee("Ana").id
    return first, second, employee


@pytest.mark.parametrize("day, expected", [("2026-10-31", utc(2026, 10, 31, 14, 0)),
                                           ("2026-11-02", utc(2026, 11, 2, 15, 0))])
def test_nine_local_is_stored_as_the_right_utc_instant_around_dst(app, client, signed_in, autumn,
                                                                 day, expected):
    event, _, employee = autumn
    response = post(client, signed_in, f"/schedule/{event}",
                    {"date": day, "time": "09:00", "employee_id": str(employee)})
    assert response.status_code == 302
    assert stored_start(app, event) == expected


def test_the_date_limits_are_local_dates(client, signed_in, autumn):
    # The window is 2026-10-30 05:00Z (00:00 CDT) to 2026-11-04 05:00Z (23:00 CST on Nov 3).
    page = client.get(f"/schedule/{autumn[0]}").get_data(as_text=True)
    assert 'min="2026-10-30" max="2026-11-03"' in page
    assert "2026-10-30 00:00 – 2026-11-03 23:00" in page


def test_that_day_follows_local_midnight(app, client, signed_in):
    with app.app_context():
        late = make_event(start_datetime=utc(2026, 12, 1, 6, 0), due_datetime=utc(2026, 12, 8, 5, 59))
        event = make_event(start_datetime=utc(2026, 12, 1, 6, 0), due_datetime=utc(2026, 12, 8, 5, 59)).id
        ana = make_employee("Ana Late")
        employee = ana.id
        # 23:30 on Dec 2 in Chicago is 05:30 UTC on Dec 3.
        make_schedule(late, ana, utc(2026, 12, 3, 5, 30))
    busy_day = client.get(f"/schedule/{event}?date=2026-12-02").get_data(as_text=True)
    next_day = client.get(f"/schedule/{event}?date=2026-12-03").get_data(as_text=True)
    assert "Ana Late" not in busy_day
    assert "Ana Late" in next_day
    refused = post(client, signed_in, f"/schedule/{event}",
                   {"date": "2026-12-02", "time": "08:00", "employee_id": str(employee)})
    assert refused.status_code == 409 and "already has work on 2026-12-02" in refused.get_data(as_text=True)
    accepted = post(client, signed_in, f"/schedule/{event}",
                    {"date": "2026-12-03", "time": "08:00", "employee_id": str(employee)})
    assert accepted.status_code == 302
    assert stored_start(app, event) == utc(2026, 12, 3, 14, 0)


def test_a_time_in_the_spring_forward_gap_is_refused(app, client, signed_in):
    with app.app_context():
        event = make_event(start_datetime=utc(2026, 3, 7, 6, 0), due_datetime=utc(2026, 3, 10, 5, 0)).id
        employee = make_employee().id
    response = post(client, signed_in, f"/schedule/{event}",
                    {"date": "2026-03-08", "time": "02:30", "employee_id": str(employee)})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    error = re.search(r'id="time-error" role="alert">([^<]*)<', page).group(1)
    assert "2026-03-08 02:30 does not exist in America/Chicago" in error
    assert stored_start(app, event) is None


def test_the_calendar_shows_local_times_on_local_days(app, client, signed_in):
    with app.app_context():
        employee = make_employee("Ana")
        make_schedule(make_event(project_name="CORE - After change", start_datetime=utc(2026, 10, 30),
                                 due_datetime=utc(2026, 11, 6)), employee, utc(2026, 11, 2, 15, 0))
        make_schedule(make_event(project_name="CORE - Late Sunday", start_datetime=utc(2026, 10, 30),
                                 due_datetime=utc(2026, 11, 10)), make_employee("Ben"), utc(2026, 11, 9, 5, 30))
    page = client.get("/calendar?week=2026-11-04&view=list").get_data(as_text=True)
    assert "Week of Mon 02 Nov 2026" in page
    assert re.search(r">09:00</time></td>\s*<td>CORE - After change", page)
    # 05:30Z on Monday Nov 9 is 23:30 on Sunday Nov 8 in Chicago: still this week, on Sunday.
    assert re.search(r">23:30</time></td>\s*<td>CORE - Late Sunday", page)
    assert page.index("Sunday 08 November") < page.index("CORE - Late Sunday")


def test_the_dashboard_shows_the_window_in_local_time(app, client, signed_in):
    with app.app_context():
        make_event(start_datetime=utc(2026, 7, 1, 5, 0), due_datetime=utc(2026, 7, 3, 4, 59))
    page = client.get("/").get_data(as_text=True)
    assert "2026-07-01 00:00" in page and "2026-07-02 23:59" in page


def test_unschedule_and_reschedule_keep_local_time(app, client, signed_in):
    from models import Schedule, db

    with app.app_context():
        employee = make_employee("Ana")
        schedule = make_schedule(make_event(start_datetime=utc(2026, 10, 30, 5), due_datetime=utc(2026, 11, 4, 5)),
                                 employee, utc(2026, 10, 31, 14, 0)).id
    form = client.get(f"/calendar/{schedule}/reschedule").get_data(as_text=True)
    assert 'value="2026-10-31"' in form and 'value="09:00"' in form
    response = post(client, signed_in, f"/calendar/{schedule}/reschedule",
                    {"date": "2026-11-02", "time": "09:00", "employee_id": str(employee_id(app, schedule))})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Schedule, schedule).start_datetime == utc(2026, 11, 2, 15, 0)


def employee_id(app, schedule_id):
    from models import Schedule, db

    with app.app_context():
        return db.session.scalar(select(Schedule.employee_id).where(Schedule.id == schedule_id))
