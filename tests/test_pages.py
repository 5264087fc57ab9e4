"""The server-rendered pages (pages.py): dashboard, schedule, calendar, import.  The employees'
pages are in test_employees.py, the roster in test_roster.py."""
from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import func, select

from tests.factories import make_employee, make_event, make_schedule, utc
from tests.helpers import statements


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def post(client, auth, url, data=None, **kwargs):
    """A form post carrying the session's CSRF token."""
    return client.post(url, data={"csrf_token": auth.csrf_token, **(data or {})}, **kwargs)


def html(response) -> str:
    return response.get_data(as_text=True)


def count(app, model) -> int:
    from models import db

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def live_schedules(app):
    from models import Schedule, db, live

    with app.app_context():
        return list(db.session.scalars(live(Schedule)))


class Ref:
    """A record's id, usable after its session has gone (`.id`, str(), f-strings)."""

    def __init__(self, record_id: int):
        self.id = record_id

    def __str__(self) -> str:
        return str(self.id)

    __format__ = lambda self, spec: format(self.id, spec)  # noqa: E731


def ids(*records) -> list[Ref]:
    """Refs to records, taken while their session is still open."""
    return [Ref(r.id) for r in records]


def field_error(page: str, field: str) -> str:
    """The text of the error shown next to `field` (and that the field points at it)."""
    assert f'aria-describedby="{field}-error"' in page, f"{field} does not point at its error"
    match = re.search(rf'id="{field}-error" role="alert">([^<]*)<', page)
    assert match, f"no error next to {field}"
    return unescape(match.group(1))


@pytest.fixture
def signed_in(client, auth):
    auth.login_scheduler()
    return auth


# ---------------------------------------------------------------------------
# dashboard
# ---------------------------------------------------------------------------

def test_dashboard_lists_unscheduled_events_in_order(app, client, signed_in):
    with app.app_context():
        emp = make_employee()
        make_event(project_name="CORE - Late", start_datetime=utc(2026, 12, 3))
        make_event(project_name="CORE - Early due later", start_datetime=utc(2026, 12, 1),
                   due_datetime=utc(2026, 12, 9))
        make_event(project_name="CORE - Early due sooner", start_datetime=utc(2026, 12, 1),
                   due_datetime=utc(2026, 12, 5))
        taken = make_event(project_name="CORE - Taken", start_datetime=utc(2026, 11, 1))
        make_schedule(taken, emp)
        make_event(project_name="CORE - Gone", start_datetime=utc(2026, 11, 1), deleted_at=utc(2026, 11, 2))
        back = make_event(project_name="CORE - Unscheduled again", start_datetime=utc(2026, 12, 2))
        make_schedule(back, emp, deleted_at=utc(2026, 11, 3))
    page = html(client.get("/"))
    names = re.findall(r"(CORE - [A-Za-z ]+?) <span", page)
    assert names == ["CORE - Early due sooner", "CORE - Early due later",
                     "CORE - Unscheduled again", "CORE - Late"]
    assert "CORE - Taken" not in page and "CORE - Gone" not in page


def test_dashboard_row_shows_window_store_type_project_and_schedule_link(app, client, signed_in):
    with app.app_context():
        event = make_event(project_name="Juicer Production", project_ref_num=606002, store_number=4321,
                           store_name="Shelbyville", start_datetime=utc(2026, 12, 1, 6, 0),
                           due_datetime=utc(2026, 12, 2, 23, 59), estimated_minutes=240).id
    page = html(client.get("/"))
    for text in ("2026-12-01 06:00", "2026-12-02 23:59", "4321", "Shelbyville", "Juicer",
                 "Juicer Production", "#606002", "240 min", f'href="/schedule/{event}"'):
        assert text in page
    assert 'href="/api/export/schedule"' in page
    assert 'enctype="multipart/form-data"' in page and 'name="file"' in page


def test_dashboard_shows_sync_badges_with_their_error(app, client, signed_in):
    with app.app_context():
        make_event(project_name="CORE - Failing", sync_status="failed", sync_error="vendor said 422: bad store")
        make_event(project_name="CORE - Fine", sync_status="synced")
    page = html(client.get("/"))
    assert 'class="badge badge-failed"' in page
    assert 'title="vendor said 422: bad store"' in page
    assert re.search(r'class="visually-hidden tip">: vendor said 422: bad store', page)
    fine_row = re.search(r"CORE - Fine.*?</tr>", page, re.S).group(0)
    assert "badge" not in fine_row


def test_dashboard_filters_by_type_and_store(app, client, signed_in):
    with app.app_context():
        make_event(project_name="CORE - A", store_number=1)
        make_event(project_name="Juicer Production B", store_number=1)
        make_event(project_name="CORE - C", store_number=2)
    by_type = html(client.get("/?type=Core"))
    assert "CORE - A" in by_type and "CORE - C" in by_type and "Juicer Production B" not in by_type
    assert '<option value="Core" selected>' in by_type
    both = html(client.get("/?type=Core&store=1"))
    assert "CORE - A" in both and "CORE - C" not in both and "Juicer Production B" not in both
    ignored = html(client.get("/?type=Nonsense"))
    assert "CORE - A" in ignored and "Juicer Production B" in ignored


def test_dashboard_paginates_and_keeps_filters(app, client, signed_in):
    app.config["PAGE_SIZE"] = 3
    with app.app_context():
        for day in range(1, 6):
            make_event(project_name=f"CORE - Day {day}", start_datetime=utc(2026, 12, day))
        make_event(project_name="Juicer Other", start_datetime=utc(2026, 12, 1))
    first = html(client.get("/?type=Core"))
    assert [f"CORE - Day {d}" in first for d in range(1, 6)] == [True, True, True, False, False]
    assert "Page 1 of 2" in first
    next_link = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert "type=Core" in next_link and "page=2" in next_link
    second = html(client.get(next_link))
    assert "CORE - Day 4" in second and "CORE - Day 5" in second and "CORE - Day 1" not in second
    assert "Juicer Other" not in second


def test_dashboard_runs_a_constant_number_of_queries(app, client, signed_in):
    def queries_with(n):
        with app.app_context():
            for i in range(n):
                make_event(project_name=f"CORE - Bulk {i}", sync_status="failed" if i % 2 else "pending")
        with statements(app) as seen:
            assert client.get("/").status_code == 200
        return len(seen)

    assert queries_with(10) == queries_with(190)


def test_dashboard_needs_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# ---------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------

HEADER = ("Project Name,Project Reference Number,Location MVID,Store Number,Store Name,"
          "Start Date/Time,Due Date/Time,Estimated Time,Employee ID,Rep Name,Schedule Date/Time\n")


def upload(client, auth, text: str, name="WorkBankVisits.csv"):
    import io

    data = {"csrf_token": auth.csrf_token, "file": (io.BytesIO(text.encode()), name)}
    return client.post("/import", data=data, content_type="multipart/form-data")


def test_import_adds_events_and_says_so(app, client, signed_in):
    from models import Event

    text = HEADER + ("CORE - Snack Reset,606001,9f2c1a7e,1234,Springfield,"
                     "12/01/2026 12:00:00 AM,12/07/2026 11:59:00 PM,120,,,\n")
    response = upload(client, signed_in, text)
    assert response.status_code == 302 and response.headers["Location"].endswith("/")
    page = html(client.get("/"))
    assert "Imported: 1 new" in page and "CORE - Snack Reset" in page
    assert count(app, Event) == 1


def test_import_errors_are_all_shown_and_nothing_is_imported(app, client, signed_in):
    from models import Event

    text = HEADER + ("CORE - Good,606001,,1234,S,12/01/2026 12:00:00 AM,12/07/2026 11:59:00 PM,120,,,\n"
                     "CORE - Bad number,abc,,1234,S,12/01/2026 12:00:00 AM,12/07/2026 11:59:00 PM,120,,,\n"
                     "CORE - Bad date,606003,,1234,S,2026-12-01,12/07/2026 11:59:00 PM,120,,,\n")
    response = upload(client, signed_in, text)
    assert response.status_code == 422
    page = html(response)
    assert "Nothing was imported" in page and 'role="alert"' in page
    assert "Line 3" in page and "Line 4" in page
    assert count(app, Event) == 0


def test_import_without_a_file_explains(client, signed_in):
    response = client.post("/import", data={"csrf_token": signed_in.csrf_token})
    assert response.status_code == 422 and "Choose a CSV file" in html(response)


def test_import_needs_csrf(app, client, signed_in):
    import io

    from models import Event

    text = HEADER + "CORE - X,606001,,1,S,12/01/2026 12:00:00 AM,12/07/2026 11:59:00 PM,120,,,\n"
    response = client.post("/import", data={"file": (io.BytesIO(text.encode()), "w.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 400 and count(app, Event) == 0


# ---------------------------------------------------------------------------
# schedule page
# ---------------------------------------------------------------------------

@pytest.fixture
def world(app):
    """An event (Dec 1–7, 2026 UTC), a free, a busy, an inactive and a deleted employee."""
    with app.app_context():
        event = make_event(project_name="CORE - Snack Reset", start_datetime=utc(2026, 12, 1, 0, 0),
                           due_datetime=utc(2026, 12, 7, 23, 59))
        free = make_employee("Ana Free")
        busy = make_employee("Ben Busy")
        inactive = make_employee("Cai Inactive", active=False)
        make_employee("Dee Deleted", deleted_at=utc(2026, 11, 1))
        other = make_event(project_name="CORE - Other", start_datetime=utc(2026, 12, 1))
        make_schedule(other, busy, utc(2026, 12, 2, 15, 0))
        taken = make_event(project_name="CORE - Taken")
        make_schedule(taken, free, utc(2026, 12, 5, 9, 0))
        return {"event": event.id, "free": free.id, "busy": busy.id, "inactive": inactive.id,
                "other": other.id, "taken": taken.id}


def test_schedule_page_limits_the_date_to_the_window(client, signed_in, world):
    page = html(client.get(f"/schedule/{world['event']}"))
    assert re.search(r'<input id="date" name="date" type="date" required min="2026-12-01" max="2026-12-07"', page)
    assert "CORE - Snack Reset" in page and '<input id="time" name="time" type="text"' in page  # 24-hour text, not the locale's picker
    assert '<label for="employee_id">' in page and '<label for="date">' in page and '<label for="time">' in page
    assert "js/schedule.js" in page


def test_schedule_page_lists_only_employees_free_that_day(client, signed_in, world):
    page = html(client.get(f"/schedule/{world['event']}?date=2026-12-02"))
    assert "Ana Free" in page
    assert "Ben Busy" not in page and "Cai Inactive" not in page and "Dee Deleted" not in page
    other_day = html(client.get(f"/schedule/{world['event']}?date=2026-12-03"))
    assert "Ana Free" in other_day and "Ben Busy" in other_day
    ana_busy_day = html(client.get(f"/schedule/{world['event']}?date=2026-12-05"))
    assert "Ana Free" not in ana_busy_day


def test_show_who_is_free_button_works_without_js(client, signed_in, world):
    response = post(client, signed_in, f"/schedule/{world['event']}",
                    {"date": "2026-12-02", "time": "10:00", "action": "refresh"})
    assert response.status_code == 302
    assert "date=2026-12-02" in response.headers["Location"]
    assert "time=10:00" in response.headers["Location"]


def test_scheduling_an_event_takes_it_off_the_dashboard_and_onto_the_calendar(app, client, signed_in, world):
    from models import Schedule, db, live

    response = post(client, signed_in, f"/schedule/{world['event']}",
                    {"date": "2026-12-02", "time": "09:30", "employee_id": str(world["free"])})
    assert response.status_code == 302 and response.headers["Location"].endswith("/")
    dashboard = html(client.get("/"))
    assert "Scheduled “CORE - Snack Reset” for Ana Free on 2026-12-02 09:30" in dashboard
    assert f'href="/schedule/{world["event"]}"' not in dashboard
    with app.app_context():
        schedule = db.session.scalar(live(Schedule).where(Schedule.event_id == world["event"]))
        assert schedule.start_datetime == utc(2026, 12, 2, 9, 30)
        assert schedule.employee_id == world["free"] and schedule.sync_status == "pending"
    calendar = html(client.get("/calendar?week=2026-12-02"))
    assert "CORE - Snack Reset" in calendar and "09:30" in calendar and "Ana Free" in calendar


INVALID = [
    ("outside window", {"date": "2026-12-08", "time": "09:00"}, "free", "date", 422, "between 2026-12-01 and 2026-12-07"),
    ("before window", {"date": "2026-11-30", "time": "09:00"}, "free", "date", 422, "between"),
    ("inactive employee", {"date": "2026-12-02", "time": "09:00"}, "inactive", "employee_id", 422, "inactive"),
    ("busy employee", {"date": "2026-12-02", "time": "09:00"}, "busy", "employee_id", 409, "already has work"),
    ("bad date", {"date": "12/02/2026", "time": "09:00"}, "free", "date", 422, "YYYY-MM-DD"),
    ("empty date", {"date": "", "time": "09:00"}, "free", "date", 422, "YYYY-MM-DD"),
    ("bad time", {"date": "2026-12-02", "time": "25:00"}, "free", "time", 422, "HH:MM"),
    ("missing employee", {"date": "2026-12-02", "time": "09:00"}, None, "employee_id", 422, "Choose an employee"),
    ("unknown employee", {"date": "2026-12-02", "time": "09:00"}, "nobody", "employee_id", 422, "does not exist"),
]


@pytest.mark.parametrize("case, data, who, field, status, message", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_schedule_posts_show_the_error_by_the_field(app, client, signed_in, world,
                                                            case, data, who, field, status, message):
    before = len(live_schedules(app))
    employee_id = {None: "", "nobody": "99999"}.get(who, str(world.get(who)))
    response = post(client, signed_in, f"/schedule/{world['event']}", {**data, "employee_id": employee_id})
    assert response.status_code == status
    assert message in field_error(html(response), field)
    assert len(live_schedules(app)) == before


def test_a_time_before_the_window_opens_is_refused_on_the_time(app, client, signed_in):
    with app.app_context():
        event = make_event(start_datetime=utc(2026, 12, 1, 10, 0), due_datetime=utc(2026, 12, 3, 18, 0)).id
        emp = make_employee().id
    response = post(client, signed_in, f"/schedule/{event}",
                    {"date": "2026-12-01", "time": "09:00", "employee_id": str(emp)})
    assert response.status_code == 422
    assert "outside the event's window" in field_error(html(response), "time")
    assert live_schedules(app) == []


def test_an_already_scheduled_event_says_so(app, client, signed_in, world):
    page = client.get(f"/schedule/{world['taken']}")
    assert page.status_code == 200
    assert "already scheduled" in html(page) and 'name="employee_id"' not in html(page)
    response = post(client, signed_in, f"/schedule/{world['taken']}",
                    {"date": "2026-12-03", "time": "09:00", "employee_id": str(world["busy"])})
    assert response.status_code == 409 and "already scheduled" in html(response)
    assert len(live_schedules(app)) == 2


def test_deleted_and_unknown_events(app, client, signed_in):
    with app.app_context():
        gone = make_event(deleted_at=utc(2026, 11, 1)).id
    response = client.get(f"/schedule/{gone}")
    assert response.status_code == 410 and "was deleted" in html(response)
    assert client.get("/schedule/999999").status_code == 404


def test_schedule_post_without_csrf_is_refused(app, client, signed_in, world):
    response = client.post(f"/schedule/{world['event']}",
                           data={"date": "2026-12-02", "time": "09:00", "employee_id": str(world["free"])})
    assert response.status_code == 400
    assert len(live_schedules(app)) == 2


# ---------------------------------------------------------------------------
# calendar
# ---------------------------------------------------------------------------

def test_calendar_shows_one_week_by_day_from_monday(app, client, signed_in):
    with app.app_context():
        emp = make_employee("Ana Lopez")
        # 2026-12-07 is a Monday.
        for name, when in (("CORE - Monday", utc(2026, 12, 7, 8, 0)), ("CORE - Sunday", utc(2026, 12, 13, 17, 45)),
                           ("CORE - Prev Sunday", utc(2026, 12, 6, 9, 0)), ("CORE - Next Monday", utc(2026, 12, 14, 9, 0))):
            make_schedule(make_event(project_name=name, start_datetime=utc(2026, 12, 1),
                                     due_datetime=utc(2026, 12, 20), store_name="Springfield"), emp, when)
    page = html(client.get("/calendar?week=2026-12-10&view=list"))
    assert "Week of Mon 07 Dec 2026" in page
    assert "CORE - Monday" in page and "CORE - Sunday" in page
    assert "CORE - Prev Sunday" not in page and "CORE - Next Monday" not in page
    assert page.index("Monday 07 December") < page.index("CORE - Monday") < page.index("Sunday 13 December") < page.index("CORE - Sunday")
    assert "08:00" in page and "17:45" in page and "Ana Lopez" in page and "Springfield" in page
    assert 'href="/calendar?week=2026-11-30&amp;view=list"' in page and 'href="/calendar?week=2026-12-14&amp;view=list"' in page
    assert ">This week</a>" in page


def test_calendar_runs_a_constant_number_of_queries(app, client, signed_in):
    def queries_with(n):
        with app.app_context():
            for i in range(n):
                make_schedule(make_event(), make_employee(), utc(2026, 12, 1 + i % 7, 9, 0))
        with statements(app) as seen:
            assert client.get("/calendar?week=2026-12-01").status_code == 200
        return len(seen)

    assert queries_with(3) == queries_with(40)


def test_unschedule_puts_the_event_back_on_the_dashboard(app, client, signed_in):
    from models import Schedule, db

    with app.app_context():
        event = make_event(project_name="CORE - Undo me")
        schedule = make_schedule(event, make_employee(), sync_status="synced").id
    response = post(client, signed_in, f"/calendar/{schedule}/unschedule")
    assert response.status_code == 302 and "week=2026-12-01" in response.headers["Location"]
    assert "Unscheduled" in html(client.get(response.headers["Location"]))
    with app.app_context():
        stored = db.session.get(Schedule, schedule)
        assert stored.deleted_at is not None and stored.sync_status == "pending"
    assert "CORE - Undo me" in html(client.get("/"))
    assert post(client, signed_in, f"/calendar/{schedule}/unschedule").status_code == 404


def test_unschedule_needs_csrf(app, client, signed_in):
    with app.app_context():
        schedule = make_schedule(make_event(), make_employee()).id
    assert client.post(f"/calendar/{schedule}/unschedule").status_code == 400
    assert len(live_schedules(app)) == 1


def test_reschedule_changes_day_time_and_employee(app, client, signed_in):
    from models import Schedule, db

    with app.app_context():
        ana, ben = make_employee("Ana"), make_employee("Ben")
        schedule = make_schedule(make_event(project_name="CORE - Move me"), ana, utc(2026, 12, 2, 9, 0),
                                 sync_status="synced")
        ana, ben, schedule = ids(ana, ben, schedule)
    form = html(client.get(f"/calendar/{schedule.id}/reschedule"))
    assert 'value="2026-12-02"' in form and 'value="09:00"' in form
    assert re.search(rf'<option value="{ana.id}" selected>Ana</option>', form)  # its own day is not "busy"
    response = post(client, signed_in, f"/calendar/{schedule.id}/reschedule",
                    {"date": "2026-12-04", "time": "13:15", "employee_id": str(ben.id)})
    assert response.status_code == 302 and "week=2026-12-04" in response.headers["Location"]
    with app.app_context():
        stored = db.session.get(Schedule, schedule.id)
        assert stored.start_datetime == utc(2026, 12, 4, 13, 15) and stored.employee_id == ben.id
        assert stored.sync_status == "pending"
    assert "Ben" in html(client.get("/calendar?week=2026-12-04"))


def test_reschedule_keeps_the_rules(app, client, signed_in):
    from models import Schedule, db

    with app.app_context():
        ana, ben = make_employee("Ana"), make_employee("Ben")
        schedule = make_schedule(make_event(), ana, utc(2026, 12, 2, 9, 0))
        make_schedule(make_event(), ben, utc(2026, 12, 3, 9, 0))
        ana, ben, schedule = ids(ana, ben, schedule)
    busy = post(client, signed_in, f"/calendar/{schedule.id}/reschedule",
                {"date": "2026-12-03", "time": "10:00", "employee_id": str(ben.id)})
    assert busy.status_code == 409 and "already has work" in field_error(html(busy), "employee_id")
    outside = post(client, signed_in, f"/calendar/{schedule.id}/reschedule",
                   {"date": "2027-01-03", "time": "10:00", "employee_id": str(ana.id)})
    assert outside.status_code == 422 and "between" in field_error(html(outside), "date")
    with app.app_context():
        stored = db.session.get(Schedule, schedule.id)
        assert stored.start_datetime == utc(2026, 12, 2, 9, 0) and stored.employee_id == ana.id
