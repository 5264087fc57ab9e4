"""The calendar's roster (/calendar): a row per employee, a column per local day; the
free-cell page (/calendar/free); the list view (?view=list); a fixed number of queries."""
from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import func, insert, select

from tests.factories import make_employee, make_event, make_schedule, utc
from tests.helpers import assert_error, statements
from tests.test_pages import html, ids, post

WEEK = "2026-12-07"  # a Monday


@pytest.fixture
def signed_in(client, auth):
    auth.login_scheduler()
    return auth


@pytest.fixture
def chicago() -> str:
    """Ask for it to run the test's app in America/Chicago (see app_overrides)."""
    return "America/Chicago"


@pytest.fixture
def app_overrides(request) -> dict:
    return {"APP_TIMEZONE": "America/Chicago"} if "chicago" in request.fixturenames else {}


def row_of(page: str, employee_id) -> str:
    """The <tr> of one employee in the roster."""
    match = re.search(rf'<tr data-employee-id="{employee_id}"[^>]*>(.*?)</tr>', page, re.DOTALL)
    assert match, f"no roster row for employee {employee_id}"
    return match.group(1)


CARD_MARKS = re.compile(r'<(?:span|abbr) class="(?:shift-end|type-chip|sync-icon)[^"]*"[^>]*>(?:<span[^>]*>[^<]*</span>|[^<])*</(?:span|abbr)>')


def cell(page: str, employee_id, day: str) -> str:
    """The text of one roster cell (employee × local day), tags removed; a card's end
    time, type label and sync mark left out (its start, event, store, then its menu)."""
    match = re.search(rf'<td class="roster-cell[^"]*" data-date="{day}" data-employee-id="{employee_id}"'
                      rf'[^>]*>(.*?)</td>', row_of(page, employee_id), re.DOTALL)
    assert match, f"no cell for employee {employee_id} on {day}"
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", CARD_MARKS.sub(" ", match.group(1)))).split())


def week_event(name: str, **fields):
    return make_event(project_name=name, start_datetime=fields.pop("start", utc(2026, 12, 7, 6)),
                      due_datetime=fields.pop("due", utc(2026, 12, 13, 23)), **fields)


# -- the grid --------------------------------------------------------------------------

def test_the_grid_puts_each_schedule_in_its_employees_row_and_local_day(app, client, signed_in):
    with app.app_context():
        ana, ben = make_employee("Ana Lopez"), make_employee("Ben Okafor")
        make_schedule(week_event("CORE - Snack Reset", store_number=1204, store_name="Springfield",
                                 estimated_minutes=90), ana, utc(2026, 12, 8, 14, 30))
        make_schedule(week_event("CORE - Juicer", estimated_minutes=60), ana, utc(2026, 12, 10, 9, 0))
        make_schedule(week_event("CORE - Cooler"), ben, utc(2026, 12, 13, 23, 30))
        make_schedule(week_event("CORE - Next week", due=utc(2026, 12, 20)), ben, utc(2026, 12, 14, 9))
        ana, ben = ids(ana, ben)
    page = html(client.get("/calendar?week=2026-12-10"))
    assert "Week of Mon 07 Dec 2026" in page
    assert cell(page, ana, "2026-12-08").startswith("14:30 CORE - Snack Reset 1204")
    assert "14:30–16:00 · Core Store 1204 Springfield" in cell(page, ana, "2026-12-08")  # its menu
    assert "Reschedule" in cell(page, ana, "2026-12-08") and "Unschedule" in cell(page, ana, "2026-12-08")
    assert "CORE - Juicer" in cell(page, ana, "2026-12-10")
    assert "23:30 CORE - Cooler" in cell(page, ben, "2026-12-13")
    assert "CORE - Next week" not in page
    assert re.search(r'data-count="2" data-hours="2.5">2', row_of(page, ana))  # 90 + 60 minutes
    assert 'data-count="1" data-hours="2">' in row_of(page, ben)
    assert page.index("Ana Lopez") < page.index("Ben Okafor")
    assert "sync-icon s-pending" in cell_html(page, ana, "2026-12-08") and ", sync pending" in cell_html(page, ana, "2026-12-08")  # its sync mark, in words too


def test_each_schedule_links_to_its_history(app, client, signed_in):
    with app.app_context():
        ana = make_employee("Ana Lopez")
        event = week_event("CORE - Snack Reset")
        make_schedule(event, ana, utc(2026, 12, 8, 14, 30))
        ana, event_id = ids(ana, event)
    page = html(client.get("/calendar?week=2026-12-10"))
    assert f'href="/schedule/{event_id}#history"' in cell_html(page, ana, "2026-12-08")
    history = client.get(f"/schedule/{event_id}").get_data(as_text=True)
    assert 'id="history"' in history


def cell_html(page: str, employee_id, day: str) -> str:
    match = re.search(rf'data-date="{day}" data-employee-id="{employee_id}"[^>]*>(.*?)</td>', page, re.DOTALL)
    return match.group(1)


def test_a_schedule_near_midnight_sits_on_its_local_day(app, client, signed_in, chicago):
    with app.app_context():
        ana = make_employee("Ana")
        # 05:30Z on Monday Dec 14 is 23:30 on Sunday Dec 13 in Chicago: this week, Sunday.
        make_schedule(week_event("CORE - Late Sunday", due=utc(2026, 12, 20)), ana, utc(2026, 12, 14, 5, 30))
        # 05:30Z on Monday Dec 7 is 23:30 on Sunday Dec 6: the week before.
        make_schedule(week_event("CORE - Last week", start=utc(2026, 12, 1)), ana, utc(2026, 12, 7, 5, 30))
        ana = ana.id
    page = html(client.get(f"/calendar?week={WEEK}"))
    assert cell(page, ana, "2026-12-13").startswith("23:30 CORE - Late Sunday")
    assert "CORE - Last week" not in page
    assert "CORE - Last week" in html(client.get("/calendar?week=2026-11-30"))


def test_the_grid_marks_today(app, client, signed_in):
    from shared import local_today

    with app.app_context():
        make_employee("Ana")
        today = local_today()
    page = html(client.get("/calendar"))
    assert re.search(rf'class="roster-day today" aria-current="date" data-day="{today.isoformat()}"', page)
    assert page.count('aria-current="date"') == 1


def test_inactive_employees_show_only_with_work_that_week(app, client, signed_in):
    with app.app_context():
        make_employee("Ida Inactive", active=False)
        worked = make_employee("Will Worked")
        make_schedule(week_event("CORE - Done before"), worked, utc(2026, 12, 9, 9))
        worked.active = False
        from models import db

        db.session.commit()
        worked = worked.id
    page = html(client.get(f"/calendar?week={WEEK}"))
    assert "Ida Inactive" not in page
    assert "Will Worked" in page and "(inactive)" in row_of(page, worked)
    assert "CORE - Done before" in cell(page, worked, "2026-12-09")
    assert "Schedule here" not in row_of(page, worked)  # an inactive employee cannot be scheduled


def test_free_cells_link_to_the_free_cell_page(app, client, signed_in):
    with app.app_context():
        ana = make_employee("Ana")
        make_schedule(week_event("CORE - Busy"), ana, utc(2026, 12, 8, 9))
        week_event("CORE - Open all week")  # unscheduled: every day has work to give
        ana = ana.id
    page = html(client.get(f"/calendar?week={WEEK}"))
    row = row_of(page, ana)
    assert row.count("Schedule here") == 6
    assert f'href="/calendar/free?employee_id={ana}&amp;date=2026-12-09"' in row
    assert "date=2026-12-08" not in row  # the busy day has no link


def test_name_and_store_filters(app, client, signed_in):
    with app.app_context():
        ana, anabel, ben = make_employee("Ana Lopez"), make_employee("Anabel Ruiz"), make_employee("Ben 100%")
        make_schedule(week_event("CORE - At 1204", store_number=1204), anabel, utc(2026, 12, 8, 9))
        make_schedule(week_event("CORE - At 77", store_number=77), ben, utc(2026, 12, 8, 9))
        week_event("CORE - Open at 1204", store_number=1204)
        ana, anabel, ben = ids(ana, anabel, ben)
    by_name = html(client.get(f"/calendar?week={WEEK}&name=ANA"))
    assert "Ana Lopez" in by_name and "Anabel Ruiz" in by_name and "Ben 100%" not in by_name
    assert "name=ANA" in by_name  # the week links keep the filter
    assert "Ben 100%" in html(client.get(f"/calendar?week={WEEK}&name=100%25"))
    assert "Ana Lopez" not in html(client.get(f"/calendar?week={WEEK}&name=100%25"))
    by_store = html(client.get(f"/calendar?week={WEEK}&store=1204"))
    assert "Anabel Ruiz" in by_store and "Ana Lopez" not in by_store and "Ben 100%" not in by_store
    assert f"employee_id={anabel}&amp;date=2026-12-09&amp;store=1204" in by_store  # free cells too
    nobody = html(client.get(f"/calendar?week={WEEK}&store=5"))
    assert "No employees match these filters this week." in nobody


def test_the_grid_pages_at_50_employees(app, client, signed_in):
    from models import Employee, db

    with app.app_context():
        db.session.execute(insert(Employee), [{"name": f"Emp {i:03d}", "active": True, "sync_status": "synced",
                                               "sync_attempts": 0} for i in range(120)])
        db.session.commit()
    first = html(client.get(f"/calendar?week={WEEK}"))
    assert first.count('<tr data-employee-id=') == 50 and "Emp 000" in first and "Emp 050" not in first
    assert "Page 1 of 3 (120 in all)" in first
    assert f'href="/calendar?page=2&amp;week={WEEK}"' in first
    last = html(client.get(f"/calendar?week={WEEK}&page=3"))
    assert last.count('<tr data-employee-id=') == 20 and "Emp 119" in last
    past = client.get(f"/calendar?week={WEEK}&page=9")
    assert past.status_code == 200 and "No employees on this page." in html(past)


@pytest.mark.parametrize("query,field", [
    ("week=next-tuesday", "week"), ("week=2026-13-01", "week"), ("week=9999-12-31", "week"),
    ("page=0", "page"), ("page=two", "page"), ("page=-1", "page"), (f"page={10**15}", "page"),
    ("view=month", "view"), ("name=a%00b", "name"), (f"store={10**15}", "store"),
])
def test_bad_week_page_and_filter_values_are_a_clear_422(app, client, signed_in, query, field):
    response = client.get(f"/calendar?{query}")
    assert response.status_code == 422
    assert field in html(response)
    api_style = client.get(f"/calendar?{query}", headers={"Accept": "application/json"})
    assert api_style.status_code == 422 and api_style.get_json()["error"]["details"][0]["field"] == field


def test_the_list_view_stays_with_aligned_columns(app, client, signed_in):
    with app.app_context():
        ana = make_employee("Ana")
        make_schedule(week_event("CORE - Listed"), ana, utc(2026, 12, 9, 9, 15))
    page = html(client.get(f"/calendar?week={WEEK}&view=list"))
    assert "Wednesday 09 December" in page and "CORE - Listed" in page and "09:15" in page
    assert page.count('<colgroup><col class="col-time">') == 1
    assert 'href="/calendar?week=2026-11-30&amp;view=list"' in page  # week links stay in the list
    assert "<tr data-employee-id=" not in page


# -- the free-cell page --------------------------------------------------------------------

@pytest.fixture
def free_day(app):
    """Ana free on Wed 2026-12-09; events around that day."""
    with app.app_context():
        ana = make_employee("Ana")
        covers = [week_event("CORE - Due Friday", due=utc(2026, 12, 11, 17)),
                  week_event("CORE - Due Wednesday", due=utc(2026, 12, 9, 18)),
                  week_event("CORE - Opens Wednesday", start=utc(2026, 12, 9, 13), store_number=77,
                             event_type="Supervisor")]
        make_event(project_name="CORE - Over Tuesday", start_datetime=utc(2026, 12, 7, 6),
                   due_datetime=utc(2026, 12, 8, 23, 59))
        make_event(project_name="CORE - From Thursday", start_datetime=utc(2026, 12, 10),
                   due_datetime=utc(2026, 12, 12))
        taken = week_event("CORE - Already scheduled")
        make_schedule(taken, make_employee("Ben"), utc(2026, 12, 9, 9))
        deleted = week_event("CORE - Deleted")
        deleted.soft_delete()
        from models import db

        db.session.commit()
        return {"ana": ana.id, **{e.project_name.removeprefix("CORE - ").lower().replace(" ", "_"): e.id
                                   for e in covers}}


def test_the_free_cell_page_lists_unscheduled_events_covering_that_day(app, client, signed_in, free_day):
    page = html(client.get(f"/calendar/free?employee_id={free_day['ana']}&date=2026-12-09"))
    assert "Schedule Ana on Wednesday 09 December 2026" in page
    names = re.findall(r"<td>(CORE - [^<]+?) <span", page)
    assert names == ["CORE - Due Wednesday", "CORE - Due Friday", "CORE - Opens Wednesday"]  # earliest due first
    link = re.search(rf'href="(/schedule/{free_day["opens_wednesday"]}\?[^"]+)"', page).group(1)
    assert f"employee_id={free_day['ana']}" in link and "date=2026-12-09" in link and "back=calendar" in link
    assert "time=13:00" in link  # the window opens that day: its start
    assert "time=09:00" in re.search(rf'href="(/schedule/{free_day["due_friday"]}\?[^"]+)"', page).group(1)


def test_the_free_cell_page_filters_by_store_and_type(app, client, signed_in, free_day):
    base = f"/calendar/free?employee_id={free_day['ana']}&date=2026-12-09"
    by_store = html(client.get(base + "&store=77"))
    assert "CORE - Opens Wednesday" in by_store and "CORE - Due Friday" not in by_store
    by_type = html(client.get(base + "&type=Supervisor"))
    assert "CORE - Opens Wednesday" in by_type and "CORE - Due Friday" not in by_type
    none = html(client.get(base + "&store=5"))
    assert "No unscheduled event can be done on this day with these filters." in none


def test_the_free_cell_page_pages(app, client, signed_in, free_day):
    app.config["PAGE_SIZE"] = 2
    base = f"/calendar/free?employee_id={free_day['ana']}&date=2026-12-09"
    first, second = html(client.get(base)), html(client.get(base + "&page=2"))
    assert "Page 1 of 2 (3 in all)" in first and "CORE - Opens Wednesday" not in first
    assert "CORE - Opens Wednesday" in second


def test_the_free_cell_page_refuses_busy_inactive_and_unknown(app, client, signed_in, free_day):
    with app.app_context():
        ben_id = select_employee("Ben")
        idle = make_employee("Ida", active=False).id
    busy = client.get(f"/calendar/free?employee_id={ben_id}&date=2026-12-09")
    assert busy.status_code == 409 and "Ben already has work on 2026-12-09." in html(busy)
    inactive = client.get(f"/calendar/free?employee_id={idle}&date=2026-12-09")
    assert inactive.status_code == 409 and "Ida is inactive" in html(inactive)
    assert client.get("/calendar/free?employee_id=999999&date=2026-12-09").status_code == 404
    for query in ("date=2026-12-09", "employee_id=x&date=2026-12-09", f"employee_id={ben_id}&date=soon",
                  f"employee_id={ben_id}", f"employee_id={ben_id}&date=0001-01-01"):
        assert client.get(f"/calendar/free?{query}").status_code == 422, query


def select_employee(name: str) -> int:
    from models import Employee, db

    return db.session.scalar(select(Employee.id).where(Employee.name == name))


def test_scheduling_from_a_free_cell_lands_on_that_employee_and_day(app, client, signed_in, free_day):
    from models import Schedule, db

    due_wed, ana = free_day["due_wednesday"], free_day["ana"]
    form = html(client.get(f"/schedule/{due_wed}?date=2026-12-09&employee_id={ana}&time=09:00&back=calendar"))
    assert 'value="2026-12-09"' in form and 'value="09:00"' in form
    assert re.search(rf'<option value="{ana}" selected>Ana</option>', form)
    assert '<input type="hidden" name="back" value="calendar">' in form
    response = post(client, signed_in, f"/schedule/{due_wed}",
                    {"date": "2026-12-09", "time": "10:30", "employee_id": str(ana), "back": "calendar"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/calendar?week=2026-12-09")
    page = html(client.get(response.headers["Location"]))
    assert "Scheduled “CORE - Due Wednesday” for Ana" in page
    assert cell(page, ana, "2026-12-09").startswith("10:30 CORE - Due Wednesday")
    with app.app_context():
        stored = db.session.scalar(select(Schedule).where(Schedule.event_id == due_wed))
        assert stored.employee_id == ana and stored.start_datetime == utc(2026, 12, 9, 10, 30)


def test_a_free_cell_schedule_keeps_every_rule_of_the_schedule_page(app, client, signed_in, free_day):
    due_wed = free_day["due_wednesday"]
    late = post(client, signed_in, f"/schedule/{due_wed}",
                {"date": "2026-12-09", "time": "19:00", "employee_id": str(free_day["ana"]), "back": "calendar"})
    assert late.status_code == 422 and "outside the event&#39;s window" in html(late)
    assert '<input type="hidden" name="back" value="calendar">' in html(late)


# -- a drop on the grid: the reschedule route answering JSON -------------------------------

def test_a_drop_moves_through_the_reschedule_rules_and_answers_json(app, client, signed_in):
    from models import Schedule, db

    with app.app_context():
        ana, ben = make_employee("Ana"), make_employee("Ben")
        moving = make_schedule(week_event("CORE - Move me", due=utc(2026, 12, 11, 18)), ana, utc(2026, 12, 8, 14, 0))
        make_schedule(week_event("CORE - Ben's"), ben, utc(2026, 12, 10, 9))
        ana, ben, moving = ids(ana, ben, moving)
    json_headers = {"Accept": "application/json"}
    url = f"/calendar/{moving}/reschedule"
    busy = post(client, signed_in, url, {"date": "2026-12-10", "time": "14:00", "employee_id": str(ben)},
                headers=json_headers)
    assert busy.status_code == 409
    assert busy.get_json()["error"]["message"] == "Ben already has work on 2026-12-10."
    assert busy.get_json()["error"]["error_id"]  # the one error path: logged with an id
    outside = post(client, signed_in, url, {"date": "2026-12-12", "time": "14:00", "employee_id": str(ben)},
                   headers=json_headers)
    assert outside.status_code == 422
    assert outside.get_json()["error"]["details"] == [{"field": "date", "message": "Pick a day between 2026-12-07 and 2026-12-11."}]
    with app.app_context():
        stored = db.session.get(Schedule, moving.id)
        assert (stored.employee_id, stored.start_datetime) == (ana.id, utc(2026, 12, 8, 14, 0))
    moved = post(client, signed_in, url, {"date": "2026-12-09", "time": "14:00", "employee_id": str(ben)},
                 headers=json_headers)
    assert moved.status_code == 200 and moved.get_json() == {"id": moving.id, "week": "2026-12-09"}
    page = html(client.get(f"/calendar?week={WEEK}"))
    assert "Rescheduled “CORE - Move me”: Ben" in page
    assert cell(page, ben, "2026-12-09").startswith("14:00 CORE - Move me")
    assert "CORE - Move me" not in cell(page, ana, "2026-12-08")


# -- cost ---------------------------------------------------------------------------------

def crowd(app, employees: int, schedules_each: int) -> None:
    """`employees` active employees (and one inactive with work), each with schedules on
    the first `schedules_each` days of the week, plus unscheduled events."""
    from models import Employee, Event, Schedule, db

    with app.app_context():
        start = db.session.scalar(select(Employee.id).order_by(Employee.id.desc()).limit(1)) or 0
        db.session.execute(insert(Employee), [
            {"name": f"Crowd {start + i:04d}", "active": i != 0, "sync_status": "synced", "sync_attempts": 0}
            for i in range(employees)])
        staff = db.session.scalars(select(Employee.id).where(Employee.name.like("Crowd %"))
                                   .order_by(Employee.id)).all()
        count = len(staff) * schedules_each
        db.session.execute(insert(Event), [
            {"project_ref_num": 800000 + start * 10 + i, "project_name": f"CORE - Crowd {i}", "event_type": "Core",
             "store_number": 1000 + i % 7, "start_datetime": utc(2026, 12, 7), "due_datetime": utc(2026, 12, 13, 23),
             "estimated_minutes": 45, "sync_status": "synced", "sync_attempts": 0} for i in range(count + 20)])
        events = db.session.scalars(select(Event.id).where(Event.project_name.like("CORE - Crowd %"))
                                    .order_by(Event.id)).all()
        db.session.execute(insert(Schedule), [
            {"event_id": events[i], "employee_id": staff[i % len(staff)],
             "start_datetime": utc(2026, 12, 7 + i // len(staff), 9 + i % 8), "sync_status": "synced",
             "sync_attempts": 0} for i in range(count)])
        db.session.commit()


@pytest.mark.parametrize("path", [f"/calendar?week={WEEK}", f"/calendar?week={WEEK}&store=1003",
                                  f"/calendar?week={WEEK}&name=crowd",
                                  "/calendar/free?employee_id={free}&date=2026-12-13"])
def test_the_roster_runs_the_same_statements_for_5_and_50_employees(app, client, signed_in, path):
    def measured(employees: int) -> int:
        from models import Employee, db

        crowd(app, employees, 5)
        with app.app_context():
            free = db.session.scalar(select(Employee.id).where(Employee.name.like("Crowd %"))
                                     .order_by(Employee.id.desc()).limit(1))
        url = path.format(free=free)
        client.get(url)
        with statements(app) as seen:
            response = client.get(url)
        assert response.status_code == 200, html(response)[:2000]
        return len(seen)

    small = measured(5)
    from auth import create_user
    from tests.conftest import SCHEDULER, _empty_tables

    _empty_tables(app)
    with app.app_context():
        create_user(*SCHEDULER, role="scheduler")
    signed_in.login_scheduler()
    large = measured(60)
    assert large == small


def test_plus_only_on_days_with_open_work_and_the_header_counts_it(app, client, signed_in):
    with app.app_context():
        ana, ben = make_employee("Ana"), make_employee("Ben")
        week_event("CORE - Mon to Wed", due=utc(2026, 12, 9, 18))
        week_event("CORE - Wednesday", start=utc(2026, 12, 9, 8), due=utc(2026, 12, 9, 12))
        make_schedule(week_event("CORE - Taken"), ben, utc(2026, 12, 8, 9))  # scheduled: not open
        ana = ana.id
    page = html(client.get(f"/calendar?week={WEEK}"))
    opened = re.findall(r'data-day="(\d{4}-\d\d-\d\d)" data-open="(\d+)"', page)
    assert [int(n) for _, n in opened] == [1, 1, 2, 0, 0, 0, 0]
    assert "2 to schedule" in page and "0 to schedule" in page
    row = row_of(page, ana)
    days = re.findall(r'href="/calendar/free\?employee_id=\d+&amp;date=([\d-]+)"', row)
    assert days == ["2026-12-07", "2026-12-08", "2026-12-09"]
    assert cell(page, ana, "2026-12-12") == ""  # no words in a cell where nothing can go
    empty_week = html(client.get("/calendar?week=2026-12-14"))
    assert "/calendar/free?" not in empty_week and "Schedule here" not in empty_week


def test_the_footer_totals_each_day(app, client, signed_in):
    with app.app_context():
        ana, ben, cy = make_employee("Ana"), make_employee("Ben"), make_employee("Cy")
        make_schedule(week_event("CORE - A", estimated_minutes=90), ana, utc(2026, 12, 8, 9))
        make_schedule(week_event("CORE - B", estimated_minutes=60), ben, utc(2026, 12, 8, 13))
        make_schedule(week_event("CORE - C", estimated_minutes=30), cy, utc(2026, 12, 10, 9))
    page = html(client.get(f"/calendar?week={WEEK}"))
    foot = page.split("<tfoot>", 1)[1].split("</tfoot>", 1)[0]
    totals = re.findall(r'data-count="(\d+)" data-hours="([\d.]+)" data-people="(\d+)"', foot)
    assert totals == [("0", "0", "0"), ("2", "2.5", "2"), ("0", "0", "0"), ("1", "0.5", "1"),
                      ("0", "0", "0"), ("0", "0", "0"), ("0", "0", "0")]
    assert "2 <span class=\"muted\">· 2.5 h · 2 people</span>" in foot


def test_repeated_names_show_the_employee_code(app, client, signed_in):
    with app.app_context():
        make_employee("Sam Lee", code="E1"), make_employee("Sam Lee", code="E2"), make_employee("Uma", code="E3")
    page = html(client.get(f"/calendar?week={WEEK}"))
    assert page.count('<span class="who-code">E1</span>') == 1 and '<span class="who-code">E2</span>' in page
    assert '<span class="who-code">E3</span>' not in page  # a name seen once needs no code


def test_the_schedule_page_reached_from_the_roster_highlights_calendar(app, client, signed_in):
    with app.app_context():
        event_id = week_event("CORE - From the roster").id
    current = re.compile(r'<a href="([^"]+)" aria-current="page">')
    assert current.findall(html(client.get(f"/schedule/{event_id}?back=calendar"))) == ["/calendar"]
    assert current.findall(html(client.get(f"/schedule/{event_id}"))) == ["/"]


def test_the_time_field_is_24_hour_text(app, client, signed_in):
    with app.app_context():
        event_id = week_event("CORE - Time").id
    page = html(client.get(f"/schedule/{event_id}?time=14:30"))
    field = re.search(r'<input id="time"[^>]*>', page, re.S).group(0)
    assert 'type="text"' in field and 'value="14:30"' in field and "pattern=" in field
    assert "24-hour HH:MM" in page


# -- "Plan this week": the proposal in words (static/js/roster_plan.js) -------------------

def describe(client, auth, body):
    return client.post("/calendar/plan/describe", json=body,
                       headers={"X-CSRFToken": auth.csrf_token, "Accept": "application/json"})


def test_the_roster_offers_plan_this_week_for_the_week_and_its_store(app, client, signed_in):
    with app.app_context():
        make_employee("Ana Lopez")
    page = html(client.get(f"/calendar?week={WEEK}"))
    bar = re.search(r'<div class="plan-bar" data-plan hidden([^>]*)>', page)
    assert bar, "the Plan button waits for the script (hidden without JavaScript)"
    assert 'data-from="2026-12-07"' in bar.group(1) and 'data-to="2026-12-13"' in bar.group(1)
    assert "data-store" not in bar.group(1)
    assert 'data-plan-url="/api/plan"' in bar.group(1) and 'data-apply-url="/api/plan/apply"' in bar.group(1)
    filtered = html(client.get("/calendar?week=2026-12-09&store=1204"))
    assert 'data-from="2026-12-07"' in filtered and 'data-store="1204"' in filtered


def test_describe_says_each_proposal_in_local_words_and_writes_nothing(app, client, signed_in, chicago):
    from models import Schedule, db

    with app.app_context():
        ana = make_employee("Ana Lopez")
        snack = make_event(project_name="CORE - Snack Reset", store_number=1204, estimated_minutes=90,
                           start_datetime=utc(2026, 12, 7, 12), due_datetime=utc(2026, 12, 12, 2))
        demo = make_event(project_name="JUICER - Demo", store_number=77, store_name="Shelbyville")
        ids_ = (ana.id, snack.id, demo.id)
    ana_id, snack_id, demo_id = ids_
    answer = describe(client, signed_in, {
        "assignments": [{"event_id": snack_id, "employee_id": ana_id, "start_datetime": "2026-12-08T03:00:00Z"},
                        {"event_id": 999999, "employee_id": ana_id, "start_datetime": "2026-12-08T15:00:00Z"}],
        "unplaced": [demo_id, 999998]})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    # 03:00 UTC is still Monday evening in Chicago
    assert body["assignments"][0] == {"name": "CORE - Snack Reset", "store": 1204, "store_name": "Springfield",
                                      "type": "Core", "type_label": "C", "type_class": "t-core",
                                      "employee": "Ana Lopez", "date": "2026-12-07", "time": "21:00", "end": "22:30"}
    assert body["assignments"][1] is None  # an event deleted meanwhile: the page leaves it out
    assert body["events"] == {str(demo_id): {"name": "JUICER - Demo", "store": 77, "store_name": "Shelbyville",
                                             "type": "Juicer", "type_label": "J", "type_class": "t-juicer"}}
    with app.app_context():
        assert db.session.scalar(select(func.count(Schedule.id))) == 0


@pytest.mark.parametrize("body, field", [
    ({}, "assignments"),
    ({"assignments": "all"}, "assignments"),
    ({"assignments": [{"event_id": 1, "employee_id": 2}]}, "assignments[0]"),
    ({"assignments": [{"event_id": 1, "employee_id": 2, "start_datetime": "tomorrow"}]}, "assignments[0]"),
    ({"assignments": [{"event_id": "1", "employee_id": 2, "start_datetime": "2026-12-08T15:00:00Z"}]}, "assignments[0]"),
    ({"assignments": [{"event_id": 1, "employee_id": 2**40, "start_datetime": "2026-12-08T15:00:00Z"}]}, "assignments[0]"),
    ({"assignments": [7]}, "assignments[0]"),
    ({"assignments": [], "unplaced": ["3"]}, "unplaced"),
    ({"assignments": [], "unplaced": 3}, "unplaced"),
    ({"assignments": [{}] * 10001}, "assignments"),
])
def test_describe_refuses_a_bad_body_with_the_field(client, signed_in, body, field):
    error = assert_error(describe(client, signed_in, body), 422)
    assert error["details"][0]["field"] == field


def test_describe_needs_a_session_and_its_csrf_token(client, auth):
    token = auth.refresh_csrf()  # signed out, with a valid token: sent to sign in
    answer = client.post("/calendar/plan/describe", json={"assignments": []}, headers={"X-CSRFToken": token})
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    auth.login_scheduler()
    assert_error(client.post("/calendar/plan/describe", json={"assignments": []},
                             headers={"Accept": "application/json"}), 400, "csrf_failed")
