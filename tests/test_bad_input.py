"""No input a client can send makes the app answer 5xx (docs/openapi.yaml).

One table of bad inputs, each with the status it must get and the proof that
nothing was saved (every employee, event and schedule row is as it was); then
the limits (413), the bounded CSV error list, 405 with Allow, and the PATCH
rule that keeps an event's type.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.factories import make_employee, make_event, make_schedule, utc

ROOT = Path(__file__).resolve().parent.parent
BIG = 2**31  # one past the INTEGER columns' range (32-bit on PostgreSQL)
HUGE = 99999999999999999999  # past 64-bit too
TOP = "9999-12-31T23:59:59-01:00"  # 10000-01-01 in UTC
BOTTOM = "0001-01-01T00:00:00+01:00"  # year 0 in UTC
HEADER = ("Project Name,Project Reference Number,Location MVID,Store Number,Store Name,"
          "Start Date/Time,Due Date/Time,Estimated Time,Employee ID,Rep Name,Schedule Date/Time")
ROW = ("CORE - Snack Reset,707001,9f2c1a7e,1234,Springfield,09/27/2025 12:00:00 AM,"
       "10/03/2025 11:59:00 PM,120,,,")


def csv_file(*rows: str, filename: str | None = "WorkBankVisits.csv") -> dict:
    """A multipart body with the CSV in the `file` part."""
    data = ("\n".join([HEADER, *rows]) + "\n").encode()
    return {"file": (data, filename) if filename else data.decode()}


def fresh_csv(*rows: str) -> dict:
    """A multipart body with a fresh file object, ready to send."""
    return materialize({"data": csv_file(*rows)}, {})["data"]


def materialize(kwargs: dict, ids: dict) -> dict:
    """Fresh file objects for the multipart parts, seeded ids in form values."""
    kwargs = dict(kwargs)
    if isinstance(kwargs.get("data"), dict):
        kwargs["data"] = {k: (io.BytesIO(v[0]), v[1]) if isinstance(v, tuple) else fill(v, ids)
                          for k, v in kwargs["data"].items()}
    return kwargs


EVENT = {"project_ref_num": 707002, "project_name": "CORE - Reset", "start_datetime": "2026-12-01T00:00:00Z",
         "due_datetime": "2026-12-07T23:59:00Z"}

# (id, method, path, keyword arguments for the test client, status, field named in details)
# Paths use {employee}, {event}, {schedule} for the ids of the seeded records.
API_CASES = [
    # integers beyond the columns' range: paths are 404, query parameters and fields 422
    ("employee id 2^31", "GET", f"/api/employees/{BIG}", {}, 404, None),
    ("employee id 2^63", "GET", f"/api/employees/{2**63}", {}, 404, None),
    ("patch event id huge", "PATCH", f"/api/events/{HUGE}", {"json": {"project_name": "x"}}, 404, None),
    ("delete schedule id 2^31", "DELETE", f"/api/schedules/{BIG}", {}, 404, None),
    ("sync run id 2^63", "GET", f"/api/sync/runs/{2**63}", {}, 404, None),
    ("retry record id 2^31", "POST", f"/api/sync/records/events/{BIG}/retry", {}, 404, None),
    ("resolve id huge", "POST", f"/api/sync/conflicts/events/{HUGE}/resolve", {"json": {"keep": "local"}}, 404, None),
    ("page 2^31", "GET", f"/api/employees?page={BIG}", {}, 422, "page"),
    ("page huge", "GET", f"/api/events?page={HUGE}", {}, 422, "page"),
    ("schedules per_page 501", "GET", "/api/schedules?per_page=501", {}, 422, "per_page"),
    ("runs per_page 501", "GET", "/api/sync/runs?per_page=501", {}, 422, "per_page"),
    ("runs page huge", "GET", f"/api/sync/runs?page={HUGE}", {}, 422, "page"),
    ("runs page zero", "GET", "/api/sync/runs?page=0", {}, 422, "page"),
    ("ref num 2^31", "POST", "/api/events", {"json": {**EVENT, "project_ref_num": BIG}}, 422, "project_ref_num"),
    ("store number 2^40", "PATCH", "/api/events/{event}", {"json": {"store_number": 2**40}}, 422, "store_number"),
    ("minutes 2^63", "POST", "/api/events", {"json": {**EVENT, "estimated_minutes": 2**63}}, 422,
     "estimated_minutes"),
    ("schedule event_id 2^63", "PATCH", "/api/schedules/{schedule}", {"json": {"event_id": 2**63}}, 422, "event_id"),
    # dates at the ends of the calendar
    ("event start at the top", "POST", "/api/events", {"json": {**EVENT, "start_datetime": TOP}}, 422,
     "start_datetime"),
    ("event due at the bottom", "PATCH", "/api/events/{event}", {"json": {"due_datetime": BOTTOM}}, 422,
     "due_datetime"),
    ("schedule start at the top", "PATCH", "/api/schedules/{schedule}", {"json": {"start_datetime": TOP}}, 422,
     "start_datetime"),
    ("schedules from at the bottom", "GET", "/api/schedules", {"query_string": {"from": BOTTOM}}, 422, "from"),
    ("schedules to at the top", "GET", "/api/schedules", {"query_string": {"to": TOP}}, 422, "to"),
    ("schedules to the last day", "GET", "/api/schedules?to=9999-12-31", {}, 422, "to"),
    ("schedules to empty", "GET", "/api/schedules?to=", {}, 422, "to"),
    ("schedules from empty", "GET", "/api/schedules?from=", {}, 422, "from"),
    ("available on the last day", "GET", "/api/available_employees/9999-12-31", {}, 422, "date"),
    ("available on the first day", "GET", "/api/available_employees/0001-01-01", {}, 422, "date"),
    ("export from the last day", "GET", "/api/export/schedule?from=9999-12-31", {}, 422, "from"),
    ("export to the first day", "GET", "/api/export/schedule?to=0001-01-01", {}, 422, "to"),
    ("export to empty", "GET", "/api/export/schedule?to=", {}, 422, "to"),
    # NUL and unpaired surrogates, refused alike on SQLite and PostgreSQL
    ("NUL in a new name", "POST", "/api/employees", {"json": {"name": "Ana\x00Lopez"}}, 422, "name"),
    ("surrogate in a new name", "POST", "/api/employees",
     {"data": '{"name": "Ana\\ud800Lopez"}', "content_type": "application/json"}, 422, "name"),
    ("NUL in a changed project name", "PATCH", "/api/events/{event}",
     {"json": {"project_name": "CORE\x00"}}, 422, "project_name"),
    ("surrogate in an email", "PATCH", "/api/employees/{employee}",
     {"data": '{"email": "a\\udfffb@example.com"}', "content_type": "application/json"}, 422, "email"),
    ("NUL in a field name", "POST", "/api/employees", {"json": {"name": "Ana", "x\x00": 1}}, 422, "x\x00"),
    ("NUL in trigger resources", "POST", "/api/sync/trigger", {"json": {"resources": ["events\x00"]}}, 422,
     "resources[0]"),
    ("NUL in a query parameter", "GET", "/api/schedules?from=2025-01-01%00", {}, 422, "from"),
    ("NUL in a CSV cell", "POST", "/api/import/events",
     {"data": csv_file(ROW.replace("Springfield", "Spring\x00field")), "content_type": "multipart/form-data"},
     422, None),
    # JSON nesting and shape
    ("JSON 100,000 deep", "POST", "/api/employees", {"data": "[" * 100_000, "content_type": "application/json"},
     400, None),
    ("JSON 40 deep in a field", "PATCH", "/api/employees/{employee}",
     {"data": '{"name": ' + "[" * 40 + "]" * 40 + "}", "content_type": "application/json"}, 400, None),
    ("not JSON", "POST", "/api/schedules", {"data": "{", "content_type": "application/json"}, 400, None),
    # sync trigger flags are booleans
    ("trigger wait a string", "POST", "/api/sync/trigger", {"json": {"wait": "yes"}}, 422, "wait"),
    ("trigger full a number", "POST", "/api/sync/trigger", {"json": {"full": 1}}, 422, "full"),
    # CSV dates at the ends of the calendar, and a number past the column
    ("CSV start in year 1", "POST", "/api/import/events",
     {"data": csv_file(ROW.replace("09/27/2025 12:00:00 AM", "01/01/0001 12:00:00 AM")),
      "content_type": "multipart/form-data"}, 422, None),
    ("CSV due in year 9999", "POST", "/api/import/events",
     {"data": csv_file(ROW.replace("10/03/2025 11:59:00 PM", "12/31/9999 11:59:59 PM")),
      "content_type": "multipart/form-data"}, 422, None),
    ("CSV file part without a filename, bad row", "POST", "/api/import/events",
     {"data": csv_file(ROW.replace("707001", str(BIG)), filename=None), "content_type": "multipart/form-data"},
     422, None),
    ("no file part", "POST", "/api/import/events", {"data": {"other": "x"}, "content_type": "multipart/form-data"},
     400, None),
]

# Page requests, signed in through the form; {csrf} is the session's token.
PAGE_CASES = [
    ("dashboard store huge", "GET", f"/?store={HUGE}", {}, 422),
    ("dashboard page huge", "GET", f"/?page={HUGE}", {}, 422),
    ("employees page 2^31", "GET", f"/employees?page={BIG}", {}, 422),
    ("calendar week at the end", "GET", "/calendar?week=9999-12-31", {}, 422),
    ("calendar week at the start", "GET", "/calendar?week=0001-01-01", {}, 422),
    ("calendar page huge", "GET", f"/calendar?page={HUGE}", {}, 422),
    ("schedule page id 2^31", "GET", f"/schedule/{BIG}", {}, 404),
    ("schedule form on the last day", "POST", "/schedule/{event}",
     {"data": {"date": "9999-12-31", "time": "23:59", "employee_id": "{employee}"}}, 422),
    ("schedule form employee 2^63", "POST", "/schedule/{event}",
     {"data": {"date": "2026-12-02", "time": "09:00", "employee_id": str(2**63)}}, 422),
    ("schedule form picker on the last day", "GET", "/schedule/{event}?date=9999-12-31", {}, 422),
    ("reschedule id huge", "GET", f"/calendar/{HUGE}/reschedule", {}, 404),
    ("NUL in an employee name", "POST", "/employees", {"data": {"name": "Ana\x00"}}, 422),
    ("NUL in an edited name", "POST", "/employees/{employee}/edit", {"data": {"name": "Ana\x00"}}, 422),
    ("NUL in an imported cell", "POST", "/import",
     {"data": csv_file(ROW.replace("Springfield", "Spring\x00field")), "content_type": "multipart/form-data"}, 422),
    ("NUL in the sign-in name", "POST", "/login", {"data": {"username": "admin\x00", "password": "x"}}, 422),
    ("sync run id 2^63", "GET", f"/sync/admin/runs/{2**63}", {}, 404),
    ("sync admin runs page huge", "GET", f"/sync/admin?runs_page={HUGE}", {}, 422),
]


@pytest.fixture
def seeded(app):
    """One employee, one event (a week in December 2026) and its schedule."""
    with app.app_context():
        employee = make_employee("Ana Lopez")
        event = make_event(start_datetime=utc(2026, 12, 1), due_datetime=utc(2026, 12, 7, 23, 59))
        schedule = make_schedule(event, employee, utc(2026, 12, 2, 9, 0))
        other = make_event(start_datetime=utc(2026, 12, 1), due_datetime=utc(2026, 12, 7, 23, 59))
        return {"employee": employee.id, "event": other.id, "schedule": schedule.id}


def snapshot(app) -> dict:
    """Every row of the synced tables and the run history, as stored."""
    from models import SYNCED_MODELS, SyncRun, db

    with app.app_context():
        db.session.expire_all()
        tables = {name: sorted(repr(sorted(row._asdict().items())) for row in db.session.execute(
            select(*model.__table__.columns))) for name, model in SYNCED_MODELS.items()}
        tables["sync_runs"] = db.session.scalars(select(SyncRun.id)).all()
        return tables


def fill(value: str, ids: dict) -> str:
    """Put the seeded ids into a path or a form value."""
    for name, record_id in ids.items():
        value = value.replace("{" + name + "}", str(record_id))
    return value


@pytest.mark.parametrize("method, path, kwargs, status, field", [c[1:] for c in API_CASES],
                         ids=[c[0] for c in API_CASES])
def test_bad_api_input_is_a_4xx_and_saves_nothing(app, client, admin_headers, seeded, method, path, kwargs,
                                                 status, field):
    before = snapshot(app)
    response = client.open(fill(path, seeded), method=method, headers=admin_headers,
                           **materialize(kwargs, seeded))
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    error = response.get_json()["error"]
    assert error["message"] and error["error_id"] and error["code"]
    if field is not None:
        assert field in [d.get("field") for d in error.get("details") or []], error
    assert snapshot(app) == before


@pytest.mark.parametrize("method, path, kwargs, status", [c[1:] for c in PAGE_CASES],
                         ids=[c[0] for c in PAGE_CASES])
def test_bad_page_input_is_a_4xx_and_saves_nothing(app, client, auth, seeded, method, path, kwargs, status):
    auth.login()
    before = snapshot(app)
    kwargs = materialize(kwargs, seeded)
    if method == "POST":
        kwargs["data"]["csrf_token"] = auth.refresh_csrf("/employees")
    response = client.open(fill(path, seeded), method=method, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert "text/html" in response.content_type
    assert snapshot(app) == before


# -- limits: 413 with the error body -----------------------------------------------

@pytest.mark.parametrize("app_overrides", [{"MAX_CONTENT_LENGTH": 4096, "MAX_CSV_UPLOAD_LENGTH": 65536}])
def test_a_json_body_over_the_limit_is_413(app, client, admin_headers, seeded):
    before = snapshot(app)
    response = client.post("/api/employees", headers=admin_headers,
                           data=json.dumps({"name": "A", "pad": "x" * 5000}), content_type="application/json")
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "too_large" and error["error_id"] and "4096" in error["message"]
    assert snapshot(app) == before


def chunked(client, path: str, body: bytes, headers: dict):
    """POST `body` as a chunked request: with Transfer-Encoding: chunked werkzeug ignores any
    Content-Length (the request's content_length is None) and reads the stream the server
    terminates, as the development server and gunicorn hand a chunked body over."""
    return client.post(path, headers={**headers, "Transfer-Encoding": "chunked"},
                       input_stream=io.BytesIO(body), content_type="application/json",
                       environ_overrides={"wsgi.input_terminated": True})


@pytest.mark.parametrize("app_overrides", [{"MAX_CONTENT_LENGTH": 4096, "MAX_CSV_UPLOAD_LENGTH": 65536}])
def test_a_chunked_json_body_over_the_limit_is_413_not_cut(app, client, admin_headers, seeded):
    """Cut at the limit, this body would still be a valid JSON object: it must not be parsed."""
    before = snapshot(app)
    body = json.dumps({"name": "Chunked"}).encode() + b" " * 5000
    response = chunked(client, "/api/employees", body, admin_headers)
    assert response.status_code == 413, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"]["code"] == "too_large"
    assert snapshot(app) == before


@pytest.mark.parametrize("app_overrides", [{"MAX_CONTENT_LENGTH": 4096, "MAX_CSV_UPLOAD_LENGTH": 65536}])
def test_a_chunked_json_body_up_to_the_limit_is_read_whole(app, client, admin_headers):
    body = json.dumps({"name": "Chunked"}).encode()
    body += b" " * (4096 - len(body))
    response = chunked(client, "/api/employees", body, admin_headers)
    assert response.status_code == 201, response.get_data(as_text=True)[:300]


@pytest.mark.parametrize("app_overrides", [{"MAX_CONTENT_LENGTH": 4096, "MAX_CSV_UPLOAD_LENGTH": 65536}])
def test_a_csv_may_be_larger_than_json_but_not_past_its_own_limit(app, client, admin_headers):
    rows = [ROW.replace("707001", str(707100 + i)) for i in range(60)]  # about 6 KB: over the JSON limit
    response = client.post("/api/import/events", headers=admin_headers, data=fresh_csv(*rows),
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["created"] == 60
    rows = [ROW.replace("707001", str(708000 + i)) for i in range(700)]  # about 70 KB
    response = client.post("/api/import/events", headers=admin_headers, data=fresh_csv(*rows),
                           content_type="multipart/form-data")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_large"


def test_the_limits_are_settings(app):
    assert app.config["MAX_CONTENT_LENGTH"] < app.config["MAX_CSV_UPLOAD_LENGTH"]
    assert app.config["MAX_CSV_UPLOAD_LENGTH"] >= 50 * 2**20


# -- CSV: a bounded error list, a part without a filename ---------------------------

def test_a_csv_error_list_holds_the_first_100_problems_and_counts_all(app, client, admin_headers):
    rows = [ROW.replace("707001", f"bad{i}") for i in range(250)]
    response = client.post("/api/import/events", headers=admin_headers, data=fresh_csv(*rows),
                           content_type="multipart/form-data")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_csv"
    assert len(error["details"]) == 100 and error["total"] == 250
    assert [d["line"] for d in error["details"]] == list(range(2, 102))
    assert "250 problems" in error["message"]


def test_a_file_part_without_a_filename_is_imported(app, client, admin_headers):
    response = client.post("/api/import/events", headers=admin_headers, data=csv_file(ROW, filename=None),
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["created"] == 1


# -- 405 names the allowed methods ----------------------------------------------------

@pytest.mark.parametrize("method, path, allowed", [
    ("PUT", "/api/employees", {"GET", "POST"}),
    ("POST", "/api/employees/1", {"GET", "PATCH", "DELETE"}),
    ("DELETE", "/api/sync/health", {"GET"}),
    ("GET", "/api/webhook/schedule_update", {"POST"}),
    ("TRACE", "/api/sync/runs", {"GET"}),
])
def test_405_names_the_allowed_methods(client, admin_headers, method, path, allowed):
    response = client.open(path, method=method, headers=admin_headers)
    assert response.status_code == 405
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}
    assert response.get_json()["error"]["code"] == "method_not_allowed"


# -- PATCH changes only what it names -------------------------------------------------

def test_patching_the_project_name_keeps_the_event_type(app, client, admin_headers):
    created = client.post("/api/events", headers=admin_headers,
                          json={**EVENT, "project_name": "Digital refresh", "event_type": "Supervisor"})
    assert created.status_code == 201 and created.get_json()["event_type"] == "Supervisor"
    event_id = created.get_json()["id"]
    changed = client.patch(f"/api/events/{event_id}", headers=admin_headers,
                           json={"project_name": "CORE - Snack Reset"})
    assert changed.status_code == 200
    assert changed.get_json()["project_name"] == "CORE - Snack Reset"
    assert changed.get_json()["event_type"] == "Supervisor"


def test_an_event_created_without_a_type_derives_it(client, admin_headers):
    created = client.post("/api/events", headers=admin_headers, json={**EVENT, "project_name": "Juicer demo"})
    assert created.get_json()["event_type"] == "Juicer"


# -- the export checks its arguments before the first byte ---------------------------

def test_a_bad_export_argument_is_a_json_422_not_a_broken_stream(client, admin_headers):
    response = client.get("/api/export/schedule?from=9999-12-31", headers=admin_headers)
    assert response.status_code == 422
    assert response.content_type.startswith("application/json")
    assert response.get_json()["error"]["details"][0]["field"] == "from"



# -- fuzzer edges: whole numbers, the INTEGER range, empty page arguments, null lists -----

@pytest.mark.parametrize("value, status", [(7.0, 201), (7.5, 422), ("7", 422), (True, 422)])
def test_a_whole_number_written_with_a_point_is_an_integer(client, admin_headers, value, status):
    """OpenAPI 3.1 counts 7.0 as an integer; 7.5 is not one."""
    response = client.post("/api/events", headers=admin_headers,
                           json={**EVENT, "project_ref_num": 880001, "estimated_minutes": value})
    assert response.status_code == status, response.get_json()
    if status == 201:
        assert response.get_json()["estimated_minutes"] == 7
    else:
        assert [d["field"] for d in response.get_json()["error"]["details"]] == ["estimated_minutes"]


@pytest.mark.parametrize("store, status", [(-2**31, 201), (2**31 - 1, 201), (-2**31 - 1, 422),
                                           (2**31, 422)])
def test_store_numbers_span_exactly_the_integer_range(client, admin_headers, store, status):
    """The bounds are the 32-bit INTEGER column's, as docs/openapi.yaml says."""
    response = client.post("/api/events", headers=admin_headers,
                           json={**EVENT, "project_ref_num": 880002, "store_number": store})
    assert response.status_code == status, response.get_json()
    if status == 201:
        assert response.get_json()["store_number"] == store


def test_the_spec_and_the_code_agree_on_the_integer_bounds():
    import fields

    spec = (ROOT / "docs" / "openapi.yaml").read_text(encoding="utf-8")
    rule = fields.limit("events", "store_number")
    assert (rule.minimum, rule.maximum) == (-2**31, 2**31 - 1)
    assert f"store_number: {{type: [integer, \"null\"], minimum: {rule.minimum}, maximum: {rule.maximum}}}" in spec


@pytest.mark.parametrize("path", ["/api/employees", "/api/events", "/api/schedules", "/api/sync/runs",
                                  "/api/sync/conflicts", "/api/employees/1/history"])
@pytest.mark.parametrize("arg", ["page", "per_page"])
def test_an_empty_page_argument_is_422_naming_it(client, admin_headers, seeded, path, arg):
    response = client.get(f"{path}?{arg}=", headers=admin_headers)
    assert response.status_code == 422, response.get_json()
    assert [d["field"] for d in response.get_json()["error"]["details"]] == [arg]


@pytest.mark.parametrize("path", ["/", "/employees", "/calendar", "/sync/admin?runs_page="])
def test_an_empty_page_argument_on_a_page_is_422(client, auth, path):
    auth.login()
    response = client.get(path if "?" in path else f"{path}?page=")
    assert response.status_code == 422


def test_the_conflicts_list_answers_its_page(client, admin_headers):
    body = client.get("/api/sync/conflicts?per_page=5", headers=admin_headers).get_json()
    assert body == {"data": [], "page": 1, "per_page": 5, "total": 0}


@pytest.mark.parametrize("body, field", [({"resources": None}, "resources"),
                                         ({"resources": "events"}, "resources"),
                                         ({"resources": ["nope"]}, "resources"),
                                         ({"direction": None}, "direction"),
                                         ({"direction": "sideways"}, "direction"),
                                         ({"wait": "yes"}, "wait")])
def test_a_bad_trigger_field_is_422_naming_it(app, client, admin_headers, body, field):
    app.config["SYNC_ENABLED"] = True
    response = client.post("/api/sync/trigger", headers=admin_headers, json=body)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["error_id"] and [d["field"] for d in error["details"]] == [field]


def test_an_absent_trigger_field_keeps_its_default(app, client, admin_headers):
    app.config["SYNC_ENABLED"] = False  # checked, then refused as off: the body itself was fine
    for body in ({}, {"resources": [], "direction": "push"}):
        response = client.post("/api/sync/trigger", headers=admin_headers, json=body)
        assert response.status_code == 409 and response.get_json()["error"]["code"] == "sync_disabled"
