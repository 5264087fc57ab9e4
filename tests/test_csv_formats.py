"""CSV import and export (csv-formats.md), through the API and the module."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.factories import make_employee, make_event, make_schedule, utc

HEADER = ("Project Name,Project Reference Number,Location MVID,Store Number,Store Name,"
          "Start Date/Time,Due Date/Time,Estimated Time,Employee ID,Rep Name,Schedule Date/Time")
ROW1 = ("CORE - Snack Reset,606001,9f2c1a7e,1234,Springfield Supercenter,09/27/2025 12:00:00 AM,"
        "10/03/2025 11:59:00 PM,120,US100001,Ana Lopez,")
ROW2 = ("Juicer Production,606002,77ab03d1,1234,Springfield Supercenter,09/28/2025 12:00:00 AM,"
        "09/28/2025 11:59:00 PM,240,US100002,Ben Okafor,09/28/2025 09:00:00 AM")
SAMPLE = "\n".join([HEADER, ROW1, ROW2]) + "\n"
EXPORT_HEADER = ["Project Name", "Project Reference Number", "Location MVID", "Store Number",
                 "Store Name", "Start Date/Time", "Due Date/Time", "Estimated Time", "Rep Name",
                 "Employee ID", "Schedule Date/Time"]


def upload(client, headers, content, name="WorkBankVisits.csv"):
    """POST a file to the import route, as a browser or curl -F does."""
    data = content.encode() if isinstance(content, str) else content
    return client.post("/api/import/events", headers=headers,
                       data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def counts(app) -> dict:
    """Live events, employees and schedules."""
    from models import Employee, Event, Schedule, db

    with app.app_context():
        return {m.__tablename__: db.session.scalar(
            select(func.count()).select_from(m).where(m.deleted_at.is_(None)))
            for m in (Event, Employee, Schedule)}


def export_rows(client, headers, query="") -> list[list[str]]:
    response = client.get(f"/api/export/schedule{query}", headers=headers)
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def mark_all_synced(app) -> None:
    from models import SYNCED_MODELS, db

    with app.app_context():
        for model in SYNCED_MODELS.values():
            db.session.execute(model.__table__.update().values(sync_status="synced"))
        db.session.commit()


def pending(app) -> int:
    from models import SYNCED_MODELS, db

    with app.app_context():
        return sum(db.session.scalar(select(func.count()).select_from(m).where(m.sync_status == "pending"))
                   for m in SYNCED_MODELS.values())


def replace_cell(text: str, line: int, column: str, value: str) -> str:
    lines = text.splitlines()
    cells = lines[line - 1].split(",")
    cells[HEADER.split(",").index(column)] = value
    lines[line - 1] = ",".join(cells)
    return "\n".join(lines) + "\n"


# -- the sample --------------------------------------------------------------

def test_the_sample_imports(client, admin_headers, app):
    response = upload(client, admin_headers, SAMPLE)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"created": 2, "updated": 0, "unchanged": 0, "scheduled": 1,
                                   "employees_created": 2}
    assert counts(app) == {"events": 2, "employees": 2, "schedules": 1}
    events = {e["project_ref_num"]: e for e in
              client.get("/api/events", headers=admin_headers).get_json()["data"]}
    core, juicer = events[606001], events[606002]
    assert (core["event_type"], juicer["event_type"]) == ("Core", "Juicer")
    assert core["start_datetime"] == "2025-09-27T00:00:00Z"
    assert core["due_datetime"] == "2025-10-03T23:59:00Z"
    assert (core["store_number"], core["estimated_minutes"], core["location_mvid"]) == (1234, 120, "9f2c1a7e")
    assert core["is_scheduled"] is False and juicer["is_scheduled"] is True
    assert {e["sync_status"] for e in events.values()} == {"pending"}
    employees = client.get("/api/employees", headers=admin_headers).get_json()["data"]
    assert [(e["code"], e["name"], e["active"]) for e in employees] == [
        ("US100001", "Ana Lopez", True), ("US100002", "Ben Okafor", True)]
    [schedule] = client.get("/api/schedules", headers=admin_headers).get_json()["data"]
    assert schedule["event_id"] == juicer["id"] and schedule["employee_id"] == employees[1]["id"]
    assert schedule["start_datetime"] == "2025-09-28T09:00:00Z"


def test_the_module_takes_bytes_text_and_file_objects(app):
    from csv_formats import import_events_csv

    with app.app_context():
        assert import_events_csv(SAMPLE.encode())["created"] == 2
        assert import_events_csv(SAMPLE)["unchanged"] == 2
        assert import_events_csv(io.BytesIO(SAMPLE.encode()))["unchanged"] == 2


def test_a_byte_order_mark_is_accepted(client, admin_headers, app):
    response = upload(client, admin_headers, b"\xef\xbb\xbf" + SAMPLE.encode())
    assert response.status_code == 200, response.get_json()
    assert counts(app)["events"] == 2


def test_headers_match_ignoring_case_spaces_and_order_and_extra_columns_are_ignored(client, admin_headers, app):
    rows = list(csv.reader(io.StringIO(SAMPLE)))
    order = [10, 3, 0, 1, 2, 4, 5, 6, 7, 8, 9]
    header = ["  " + rows[0][i].upper() + " " if i % 2 else rows[0][i].lower() for i in order]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header + ["Notes"])
    for row in rows[1:]:
        writer.writerow([row[i] for i in order] + ["ignore me"])
    response = upload(client, admin_headers, out.getvalue())
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["created"] == 2 and response.get_json()["scheduled"] == 1


def test_crlf_quoted_fields_and_blank_lines(client, admin_headers, app):
    text = (HEADER + "\r\n" + '"CORE - Reset, aisle 5",606001,,,"Store ""A""",09/27/2025 12:00:00 AM,'
            "10/03/2025 11:59:00 PM,,,,\r\n\r\n,,,,,,,,,,\r\n")
    response = upload(client, admin_headers, text)
    assert response.status_code == 200, response.get_json()
    event = client.get("/api/events", headers=admin_headers).get_json()["data"][0]
    assert event["project_name"] == "CORE - Reset, aisle 5" and event["store_name"] == 'Store "A"'
    assert event["store_number"] is None and event["location_mvid"] is None


# -- bad files: 422 with line and column, nothing imported -------------------

BAD_FILES = {
    "missing column": ("\n".join([HEADER.replace(",Due Date/Time", ""),
                                  ROW1.replace(",10/03/2025 11:59:00 PM", "")]) + "\n",
                       1, "Due Date/Time"),
    "missing value": (replace_cell(SAMPLE, 3, "Project Name", ""), 3, "Project Name"),
    "missing ref": (replace_cell(SAMPLE, 2, "Project Reference Number", " "), 2, "Project Reference Number"),
    "bad ref": (replace_cell(SAMPLE, 3, "Project Reference Number", "60600X"), 3, "Project Reference Number"),
    "zero ref": (replace_cell(SAMPLE, 3, "Project Reference Number", "0"), 3, "Project Reference Number"),
    "bad store number": (replace_cell(SAMPLE, 2, "Store Number", "12.5"), 2, "Store Number"),
    "bad estimated time": (replace_cell(SAMPLE, 3, "Estimated Time", "2h"), 3, "Estimated Time"),
    "negative estimated time": (replace_cell(SAMPLE, 3, "Estimated Time", "-5"), 3, "Estimated Time"),
    "iso date": (replace_cell(SAMPLE, 2, "Start Date/Time", "2025-09-27 00:00"), 2, "Start Date/Time"),
    "24h date": (replace_cell(SAMPLE, 3, "Due Date/Time", "09/28/2025 23:59:00"), 3, "Due Date/Time"),
    "bad schedule date": (replace_cell(SAMPLE, 3, "Schedule Date/Time", "tomorrow"), 3, "Schedule Date/Time"),
    "due before start": (replace_cell(SAMPLE, 3, "Due Date/Time", "09/27/2025 11:00:00 PM"), 3, "Due Date/Time"),
    "schedule outside window": (replace_cell(SAMPLE, 3, "Schedule Date/Time", "09/29/2025 09:00:00 AM"),
                                3, "Schedule Date/Time"),
    "duplicate ref": (replace_cell(SAMPLE, 3, "Project Reference Number", "606001"), 3,
                      "Project Reference Number"),
    "schedule without employee": (replace_cell(SAMPLE, 3, "Employee ID", ""), 3, "Employee ID"),
    "new employee without name": (replace_cell(SAMPLE, 2, "Rep Name", ""), 2, "Rep Name"),
    "name too long": (replace_cell(SAMPLE, 2, "Project Name", "x" * 201), 2, "Project Name"),
    "non-UTF-8": (SAMPLE.replace("Ana Lopez", "Ana López").encode("latin-1"), 1, ""),
    "empty file": (b"", 1, ""),
}


@pytest.mark.parametrize("content, line, column", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_files_are_refused_whole(client, admin_headers, app, content, line, column):
    response = upload(client, admin_headers, content)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid_csv" and error["error_id"]
    assert {"line": line, "column": column} in [
        {"line": d["line"], "column": d["column"]} for d in error["details"]], error["details"]
    assert all(d["message"] for d in error["details"])
    assert counts(app) == {"events": 0, "employees": 0, "schedules": 0}


def test_every_bad_row_is_listed(client, admin_headers, app):
    text = replace_cell(replace_cell(SAMPLE, 2, "Store Number", "x"), 3, "Start Date/Time", "soon")
    details = upload(client, admin_headers, text).get_json()["error"]["details"]
    assert [(d["line"], d["column"]) for d in details] == [(2, "Store Number"), (3, "Start Date/Time")]


def test_line_numbers_count_physical_lines(client, admin_headers):
    text = (HEADER + "\n" + '"CORE\nmultiline",606001,,,,09/27/2025 12:00:00 AM,10/03/2025 11:59:00 PM,,,,\n'
            + "Juicer,606002,,,,bad,09/28/2025 11:59:00 PM,,,,\n")
    details = upload(client, admin_headers, text).get_json()["error"]["details"]
    assert [(d["line"], d["column"]) for d in details] == [(4, "Start Date/Time")]


def test_an_employee_busy_that_day_is_a_row_error(client, admin_headers, app):
    with app.app_context():
        ben = make_employee("Ben Okafor", code="US100002")
        other = make_event(start_datetime=utc(2025, 9, 28), due_datetime=utc(2025, 9, 28, 23))
        make_schedule(other, ben, start=utc(2025, 9, 28, 15))
    details = upload(client, admin_headers, SAMPLE).get_json()["error"]["details"]
    assert [(d["line"], d["column"]) for d in details] == [(3, "Schedule Date/Time")]
    assert counts(app) == {"events": 1, "employees": 1, "schedules": 1}


def test_two_rows_for_one_employee_on_one_day_conflict(client, admin_headers, app):
    row3 = ("Digital Demo,606003,,,,09/28/2025 12:00:00 AM,09/28/2025 11:59:00 PM,,US100002,"
            "Ben Okafor,09/28/2025 02:00:00 PM")
    details = upload(client, admin_headers, SAMPLE + row3 + "\n").get_json()["error"]["details"]
    assert [(d["line"], d["column"]) for d in details] == [(4, "Schedule Date/Time")]


def test_an_inactive_employee_cannot_be_scheduled_by_import(client, admin_headers, app):
    with app.app_context():
        make_employee("Ben Okafor", code="US100002", active=False)
    details = upload(client, admin_headers, SAMPLE).get_json()["error"]["details"]
    assert [(d["line"], d["column"]) for d in details] == [(3, "Employee ID")]


@pytest.mark.parametrize("app_overrides", [{"APP_TIMEZONE": "America/Chicago"}])
def test_a_time_that_does_not_exist_locally_is_a_row_error(client, admin_headers, app):
    text = replace_cell(SAMPLE, 2, "Start Date/Time", "03/08/2026 02:30:00 AM")
    details = upload(client, admin_headers, text).get_json()["error"]["details"]
    assert [(d["line"], d["column"]) for d in details] == [(2, "Start Date/Time")]
    assert "does not exist" in details[0]["message"]


# -- upsert --------------------------------------------------------------------

def test_upsert_counts_and_leaves_unchanged_rows_alone(client, admin_headers, app):
    upload(client, admin_headers, SAMPLE)
    mark_all_synced(app)
    changed = replace_cell(SAMPLE, 2, "Store Name", "Springfield North")
    new_row = "Freeosk Sampling,606003,,,,09/29/2025 12:00:00 AM,09/30/2025 11:59:00 PM,30,,,"
    result = upload(client, admin_headers, changed + new_row + "\n").get_json()
    assert result == {"created": 1, "updated": 1, "unchanged": 1, "scheduled": 0, "employees_created": 0}
    events = {e["project_ref_num"]: e for e in
              client.get("/api/events", headers=admin_headers).get_json()["data"]}
    assert events[606001]["store_name"] == "Springfield North"
    assert events[606001]["sync_status"] == "pending"
    assert events[606002]["sync_status"] == "synced"
    assert events[606003]["event_type"] == "Freeosk"
    assert pending(app) == 2


def test_event_type_is_rederived_only_when_the_name_changes(client, admin_headers, app):
    upload(client, admin_headers, SAMPLE)
    core = client.get("/api/events", headers=admin_headers).get_json()["data"][0]
    client.patch(f"/api/events/{core['id']}", json={"event_type": "Supervisor"}, headers=admin_headers)
    upload(client, admin_headers, replace_cell(SAMPLE, 2, "Estimated Time", "90"))
    assert client.get(f"/api/events/{core['id']}", headers=admin_headers).get_json()["event_type"] == "Supervisor"
    upload(client, admin_headers, replace_cell(SAMPLE, 2, "Project Name", "Digital Refresh"))
    assert client.get(f"/api/events/{core['id']}", headers=admin_headers).get_json()["event_type"] == "Digital"


def test_a_row_reschedules_in_place_and_an_empty_time_leaves_the_schedule(client, admin_headers, app):
    upload(client, admin_headers, SAMPLE)
    [before] = client.get("/api/schedules", headers=admin_headers).get_json()["data"]
    mark_all_synced(app)
    result = upload(client, admin_headers, replace_cell(SAMPLE, 3, "Schedule Date/Time",
                                                        "09/28/2025 01:30:00 PM")).get_json()
    assert (result["updated"], result["unchanged"], result["scheduled"]) == (0, 2, 1)
    [after] = client.get("/api/schedules", headers=admin_headers).get_json()["data"]
    assert after["id"] == before["id"] and after["start_datetime"] == "2025-09-28T13:30:00Z"
    assert after["sync_status"] == "pending"
    result = upload(client, admin_headers, replace_cell(SAMPLE, 3, "Schedule Date/Time", "")).get_json()
    assert result["scheduled"] == 0
    assert client.get("/api/schedules", headers=admin_headers).get_json()["data"] == [after]


def test_a_row_can_move_work_to_another_employee(client, admin_headers, app):
    upload(client, admin_headers, SAMPLE)
    moved = replace_cell(replace_cell(SAMPLE, 3, "Employee ID", "US100001"), 3, "Rep Name", "Ana Lopez")
    assert upload(client, admin_headers, moved).get_json()["scheduled"] == 1
    [schedule] = client.get("/api/schedules", headers=admin_headers).get_json()["data"]
    ana = client.get("/api/employees", headers=admin_headers).get_json()["data"][0]
    assert schedule["employee_id"] == ana["id"]


def test_a_deleted_event_is_not_existing(client, admin_headers, app):
    upload(client, admin_headers, SAMPLE)
    [schedule] = client.get("/api/schedules", headers=admin_headers).get_json()["data"]
    client.delete(f"/api/schedules/{schedule['id']}", headers=admin_headers)
    client.delete(f"/api/events/{schedule['event_id']}", headers=admin_headers)
    result = upload(client, admin_headers, SAMPLE).get_json()
    assert (result["created"], result["unchanged"], result["scheduled"]) == (1, 1, 1)
    assert counts(app) == {"events": 2, "employees": 2, "schedules": 1}


def test_the_import_asks_for_one_push(app, monkeypatch):
    import csv_formats
    from csv_formats import import_events_csv

    calls = []
    monkeypatch.setattr(csv_formats, "notify_local_change", lambda: calls.append(1))
    with app.app_context():
        import_events_csv(SAMPLE)
        import_events_csv(SAMPLE)
    assert calls == [1]


# -- export ------------------------------------------------------------------

def test_export_columns_format_and_order(client, admin_headers, app):
    with app.app_context():
        ana = make_employee("Ana Lopez", code="US100001")
        nocode = make_employee("Cleo Nocode", code=None)
        late = make_event(project_name="CORE - Late", project_ref_num=700002, store_number=None,
                          estimated_minutes=None, location_mvid=None, store_name=None,
                          start_datetime=utc(2025, 10, 1), due_datetime=utc(2025, 10, 2, 23, 59))
        early = make_event(project_name="Juicer, Early", project_ref_num=700001,
                           start_datetime=utc(2025, 9, 28), due_datetime=utc(2025, 9, 28, 23, 59))
        make_schedule(late, nocode, start=utc(2025, 10, 1, 15, 30))
        make_schedule(early, ana, start=utc(2025, 9, 28, 9))
        unscheduled = make_event(project_ref_num=700003)
        assert unscheduled.id
    rows = export_rows(client, admin_headers)
    assert rows[0] == EXPORT_HEADER
    assert rows[1:] == [
        ["Juicer, Early", "700001", "9f2c1a7e", "1234", "Springfield", "09/28/2025 12:00:00 AM",
         "09/28/2025 11:59:00 PM", "120", "Ana Lopez", "US100001", "09/28/2025 09:00:00 AM"],
        ["CORE - Late", "700002", "", "", "", "10/01/2025 12:00:00 AM", "10/02/2025 11:59:00 PM",
         "", "Cleo Nocode", "", "10/01/2025 03:30:00 PM"],
    ]
    raw = client.get("/api/export/schedule", headers=admin_headers).get_data(as_text=True)
    assert '"Juicer, Early"' in raw and "#" not in raw


def test_export_from_to_and_deleted_schedules(client, admin_headers, app):
    with app.app_context():
        ana = make_employee("Ana", code="A1")
        for day in (1, 2, 3):
            event = make_event(project_ref_num=800000 + day, start_datetime=utc(2025, 11, 1),
                               due_datetime=utc(2025, 11, 30))
            schedule = make_schedule(event, ana, start=utc(2025, 11, day, 23, 30))
        from models import db

        schedule.soft_delete()
        db.session.commit()
    refs = lambda q: [r[1] for r in export_rows(client, admin_headers, q)[1:]]  # noqa: E731
    assert refs("") == ["800001", "800002"]
    assert refs("?from=2025-11-02") == ["800002"]
    assert refs("?to=2025-11-01") == ["800001"]
    assert refs("?from=2025-11-02&to=2025-11-02") == ["800002"]


def test_export_then_import_changes_nothing(client, admin_headers, app):
    upload(client, admin_headers, SAMPLE)
    with app.app_context():
        from models import Employee, Event, db

        nocode = make_employee("Dee Nocode", code=None)
        event = make_event(project_ref_num=606009, start_datetime=utc(2025, 9, 27, 0, 0, 0) + timedelta(
            microseconds=123456), due_datetime=utc(2025, 10, 3, 23, 59, 59, 999999))
        make_schedule(event, nocode, start=utc(2025, 9, 30, 10, 15, 30, 500000))
        ana = db.session.scalar(select(Employee).where(Employee.code == "US100001"))
        core = db.session.scalar(select(Event).where(Event.project_ref_num == 606001))
        make_schedule(core, ana, start=utc(2025, 9, 29, 8))
    mark_all_synced(app)
    exported = client.get("/api/export/schedule", headers=admin_headers).get_data()
    result = upload(client, admin_headers, exported).get_json()
    assert result == {"created": 0, "updated": 0, "unchanged": 3, "scheduled": 0, "employees_created": 0}
    assert pending(app) == 0
    assert client.get("/api/export/schedule", headers=admin_headers).get_data() == exported


@pytest.mark.parametrize("app_overrides", [{"APP_TIMEZONE": "America/Chicago"}])
def test_times_are_app_timezone_wall_clock(client, admin_headers, app):
    assert upload(client, admin_headers, SAMPLE).status_code == 200
    [schedule] = client.get("/api/schedules", headers=admin_headers).get_json()["data"]
    assert schedule["start_datetime"] == "2025-09-28T14:00:00Z"
    events = {e["project_ref_num"]: e for e in client.get("/api/events", headers=admin_headers).get_json()["data"]}
    assert events[606001]["start_datetime"] == "2025-09-27T05:00:00Z"
    [row] = export_rows(client, admin_headers)[1:]
    assert row[5:7] == ["09/28/2025 12:00:00 AM", "09/28/2025 11:59:00 PM"]
    assert row[10] == "09/28/2025 09:00:00 AM"
    assert [r[1] for r in export_rows(client, admin_headers, "?from=2025-09-28&to=2025-09-28")[1:]] == ["606002"]


# -- scale ---------------------------------------------------------------------

def big_file(n: int) -> str:
    lines = [HEADER]
    for i in range(n):
        employee = f"US{300000 + i % 50}"
        day = 1 + (i // 50) % 28
        scheduled = f"02/{day:02d}/2026 10:00:00 AM" if i < 50 * 28 and (i // 50) < 28 else ""
        lines.append(f"CORE - Item {i},{900000 + i},m{i},{i % 900},Store {i % 900},"
                     f"02/01/2026 12:00:00 AM,02/28/2026 11:59:00 PM,{i % 240},{employee},"
                     f"Rep {i % 50},{scheduled}")
    return "\n".join(lines) + "\n"


def test_twenty_thousand_rows_import_quickly_with_bulk_queries(app):
    from models import db
    from csv_formats import export_schedule_csv, import_events_csv
    from sqlalchemy import event as sa_event

    text = big_file(20_000)
    statements = []
    with app.app_context():
        sa_event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        result = import_events_csv(text)  # its time: `python -m tests.bench --only csv`
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert result["created"] == 20_000 and result["scheduled"] == 1400
        assert result["employees_created"] == 50
        # chunked IN look-ups (and, on PostgreSQL, one look-up of the new events' ids per
        # 1000-row insert, for their history): no query per row
        assert len(selects) <= 20_000 // 500 + 20_000 // 1000 + 10
        again = import_events_csv(text)
        assert again["unchanged"] == 20_000 and again["scheduled"] == 0
        assert export_schedule_csv().count("\n") == 1401
