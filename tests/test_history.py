"""Per-record history (docs/openapi.yaml, History): every write path leaves exactly the
entries it should, with its source, actor, ref and the changed fields' old and new values."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest

from tests.conftest import ADMIN, SCHEDULER
from tests.factories import make_employee, make_event, make_schedule, utc
from tests.helpers import assert_error, db_call, statements

EVENT_BODY = {
    "project_ref_num": 606001, "project_name": "CORE - Snack Reset", "store_number": 1234,
    "store_name": "Springfield Supercenter", "location_mvid": "9f2c1a7e",
    "start_datetime": "2026-12-01T00:00:00Z", "due_datetime": "2026-12-07T23:59:00Z",
    "estimated_minutes": 120,
}
HEADER = ("Project Reference Number,Project Name,Location MVID,Store Number,Store Name,"
          "Start Date/Time,Due Date/Time,Estimated Time,Employee ID,Rep Name,Schedule Date/Time")


def entries(app, resource: str, record_id: int) -> list[dict]:
    """The record's history, oldest first, as the API shows each entry."""
    from models import RecordHistory, db

    def load():
        query = db.select(RecordHistory).where(RecordHistory.resource == resource,
                                               RecordHistory.record_id == record_id)
        return [row.to_dict() for row in db.session.scalars(query.order_by(RecordHistory.id))]

    return db_call(app, load)


def all_entries(app) -> list[dict]:
    from models import RecordHistory, db

    return db_call(app, lambda: [{**r.to_dict(), "resource": r.resource, "record_id": r.record_id}
                                 for r in db.session.scalars(
                                     db.select(RecordHistory).order_by(RecordHistory.id))])


def brief(items: list[dict]) -> list[tuple]:
    return [(e["action"], e["source"], e["actor"], e["changes"]) for e in items]


@pytest.fixture
def world(app):
    """An event (a week from 2026-12-01 UTC) and two active employees."""
    with app.app_context():
        event = make_event(project_ref_num=606100, start_datetime=utc(2026, 12, 1))
        ana = make_employee("Ana Lopez", code="US100001")
        ben = make_employee("Ben Okafor", code="US100002")
        return {"event": event.id, "ana": ana.id, "ben": ben.id}


# ---------------------------------------------------------------------------
# JSON API writes
# ---------------------------------------------------------------------------

def test_api_employee_create_change_noop_and_delete(app, client, admin_headers):
    created = client.post("/api/employees", json={"name": "Ana", "code": "A1"},
                          headers=admin_headers).get_json()
    emp = created["id"]
    client.patch(f"/api/employees/{emp}", json={"name": "Ana Lopez", "email": "a@example.com"},
                 headers=admin_headers)
    client.patch(f"/api/employees/{emp}", json={"name": "Ana Lopez"}, headers=admin_headers)
    assert client.delete(f"/api/employees/{emp}", headers=admin_headers).status_code == 204
    assert brief(entries(app, "employees", emp)) == [
        ("created", "api", ADMIN[0], {"name": [None, "Ana"], "code": [None, "A1"],
                                      "active": [None, True]}),
        ("changed", "api", ADMIN[0], {"name": ["Ana", "Ana Lopez"],
                                      "email": [None, "a@example.com"]}),
        ("deleted", "api", ADMIN[0], {}),
    ]  # the PATCH that changed nothing left nothing
    assert {e["ref"] for e in entries(app, "employees", emp)} == {None}


def test_api_event_and_schedule_writes(app, client, scheduler_headers, world):
    event = client.post("/api/events", json=EVENT_BODY, headers=scheduler_headers).get_json()
    client.patch(f"/api/events/{event['id']}", json={"start_datetime": "2026-12-02T08:00:00Z"},
                 headers=scheduler_headers)
    assert brief(entries(app, "events", event["id"]))[1] == (
        "changed", "api", SCHEDULER[0],
        {"start_datetime": ["2026-12-01T00:00:00Z", "2026-12-02T08:00:00Z"]})
    assert client.delete(f"/api/events/{event['id']}", headers=scheduler_headers).status_code == 204
    assert brief(entries(app, "events", event["id"]))[2] == ("deleted", "api", SCHEDULER[0], {})
    body = {"event_id": world["event"], "employee_id": world["ana"],
            "start_datetime": "2026-12-02T09:00:00Z"}
    sched = client.post("/api/schedules", json=body, headers=scheduler_headers).get_json()["id"]
    client.patch(f"/api/schedules/{sched}", json={"employee_id": world["ben"],
                                                  "start_datetime": "2026-12-03T10:00:00Z"},
                 headers=scheduler_headers)
    client.delete(f"/api/schedules/{sched}", headers=scheduler_headers)
    assert brief(entries(app, "schedules", sched)) == [
        ("created", "api", SCHEDULER[0], {"event_id": [None, world["event"]],
                                          "employee_id": [None, world["ana"]],
                                          "start_datetime": [None, "2026-12-02T09:00:00Z"]}),
        ("changed", "api", SCHEDULER[0], {"employee_id": [world["ana"], world["ben"]],
                                          "start_datetime": ["2026-12-02T09:00:00Z",
                                                             "2026-12-03T10:00:00Z"]}),
        ("deleted", "api", SCHEDULER[0], {}),
    ]


def test_a_refused_write_leaves_no_history(app, client, admin_headers, world):
    before = len(all_entries(app))
    assert client.patch(f"/api/employees/{world['ana']}", json={"email": "nope"},
                        headers=admin_headers).status_code == 422
    assert client.post("/api/schedules", json={"event_id": world["event"],
                                               "employee_id": world["ana"],
                                               "start_datetime": "2030-01-01T00:00:00Z"},
                       headers=admin_headers).status_code == 422
    assert len(all_entries(app)) == before


def test_deactivating_with_unschedule_future_records_both(app, client, admin_headers):
    with app.app_context():
        soon = utc(2031, 3, 3)
        emp = make_employee("Fay Future")
        sched = make_schedule(make_event(start_datetime=soon), emp, soon + timedelta(hours=9)).id
        emp = emp.id
    answer = client.patch(f"/api/employees/{emp}", json={"active": False,
                                                         "unschedule_future": True},
                          headers=admin_headers)
    assert answer.status_code == 200
    assert brief(entries(app, "employees", emp))[-1] == (
        "changed", "api", ADMIN[0], {"active": [True, False]})
    assert brief(entries(app, "schedules", sched))[-1] == ("deleted", "api", ADMIN[0], {})


# ---------------------------------------------------------------------------
# Reading it: GET /api/<resource>/<id>/history
# ---------------------------------------------------------------------------

def test_history_is_newest_first_paged_and_readable_by_a_scheduler(app, client, admin_headers,
                                                                   scheduler_headers):
    emp = client.post("/api/employees", json={"name": "V0"}, headers=admin_headers).get_json()["id"]
    for n in range(1, 5):
        client.patch(f"/api/employees/{emp}", json={"name": f"V{n}"}, headers=admin_headers)
    url = f"/api/employees/{emp}/history"
    first = client.get(url + "?per_page=2", headers=scheduler_headers)
    assert first.status_code == 200
    body = first.get_json()
    assert (body["page"], body["per_page"], body["total"]) == (1, 2, 5)
    assert [e["changes"]["name"] for e in body["data"]] == [["V3", "V4"], ["V2", "V3"]]
    assert set(body["data"][0]) == {"at", "action", "source", "actor", "ref", "changes"}
    assert body["data"][0]["at"].endswith("Z")
    last = client.get(url + "?per_page=2&page=3", headers=scheduler_headers).get_json()
    assert [e["action"] for e in last["data"]] == ["created"]


def test_history_outlives_the_record(app, client, admin_headers):
    emp = client.post("/api/employees", json={"name": "Gone"}, headers=admin_headers).get_json()["id"]
    client.delete(f"/api/employees/{emp}", headers=admin_headers)
    assert client.get(f"/api/employees/{emp}", headers=admin_headers).status_code == 404
    body = client.get(f"/api/employees/{emp}/history", headers=admin_headers).get_json()
    assert [e["action"] for e in body["data"]] == ["deleted", "created"]


def test_history_404_422_and_401(client, admin_headers, world):
    assert_error(client.get("/api/events/999999/history", headers=admin_headers), 404, "not_found")
    assert client.get("/api/widgets/1/history", headers=admin_headers).status_code == 404
    for bad in ("page=0", "per_page=501", "page=x", "per_page=-1"):
        assert_error(client.get(f"/api/events/{world['event']}/history?{bad}",
                                headers=admin_headers), 422)
    assert_error(client.get(f"/api/events/{world['event']}/history"), 401, "unauthorized")


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------

def form(client, auth, url, data):
    return client.post(url, data={"csrf_token": auth.csrf_token, **data})


def test_page_writes_and_the_history_sections(app, client, auth, world):
    auth.login_scheduler()
    event = world["event"]
    answer = form(client, auth, f"/schedule/{event}",
                  {"date": "2026-12-02", "time": "09:00", "employee_id": str(world["ana"])})
    assert answer.status_code == 302
    sched = db_call(app, _schedule_of(event))
    answer = form(client, auth, f"/calendar/{sched}/reschedule",
                  {"date": "2026-12-03", "time": "10:30", "employee_id": str(world["ben"])})
    assert answer.status_code == 302
    form(client, auth, f"/calendar/{sched}/unschedule", {})
    assert brief(entries(app, "schedules", sched)) == [
        ("created", "page", SCHEDULER[0], {"event_id": [None, event],
                                           "employee_id": [None, world["ana"]],
                                           "start_datetime": [None, "2026-12-02T09:00:00Z"]}),
        ("changed", "page", SCHEDULER[0], {"employee_id": [world["ana"], world["ben"]],
                                           "start_datetime": ["2026-12-02T09:00:00Z",
                                                              "2026-12-03T10:30:00Z"]}),
        ("deleted", "page", SCHEDULER[0], {}),
    ]
    page = client.get(f"/schedule/{event}").get_data(as_text=True)
    assert 'id="history"' in page and f"unscheduled by {SCHEDULER[0]}" in page
    assert "2026-12-03 10:30" in page  # times in APP_TIMEZONE (UTC in tests)

    auth.refresh_csrf("/employees")
    form(client, auth, "/employees", {"name": "Cy New", "code": "C9", "active": "1"})
    cy = db_call(app, _employee_named("Cy New"))
    form(client, auth, f"/employees/{cy}/edit", {"name": "Cy Newer", "code": "C9", "active": "1"})
    form(client, auth, f"/employees/{cy}/active", {"active": "0"})
    form(client, auth, f"/employees/{cy}/active", {"active": "1"})
    assert [(e["action"], e["source"], e["changes"]) for e in entries(app, "employees", cy)] == [
        ("created", "page", {"name": [None, "Cy New"], "code": [None, "C9"],
                             "active": [None, True]}),
        ("changed", "page", {"name": ["Cy New", "Cy Newer"]}),
        ("changed", "page", {"active": [True, False]}),
        ("changed", "page", {"active": [False, True]}),
    ]
    page = client.get(f"/employees/{cy}/edit").get_data(as_text=True)
    assert 'id="history"' in page and "Cy Newer" in page and f"by {SCHEDULER[0]}" in page


def _schedule_of(event_id):
    def find():
        from models import Schedule, db

        return db.session.scalar(db.select(Schedule.id).where(Schedule.event_id == event_id))
    return find


def _employee_named(name):
    def find():
        from models import Employee, db

        return db.session.scalar(db.select(Employee.id).where(Employee.name == name))
    return find


def test_the_history_section_is_bounded_and_pages(app, client, auth, admin_headers):
    emp = client.post("/api/employees", json={"name": "N0"}, headers=admin_headers).get_json()["id"]
    for n in range(1, 25):
        client.patch(f"/api/employees/{emp}", json={"name": f"N{n}"}, headers=admin_headers)
    auth.login()
    page = client.get(f"/employees/{emp}/edit").get_data(as_text=True)
    assert page.count('class="history-entry"') == 20 and "N23 → N24" in page
    assert "history_page=2" in page
    older = client.get(f"/employees/{emp}/edit?history_page=2").get_data(as_text=True)
    assert older.count('class="history-entry"') == 5 and f"added by {ADMIN[0]} (API)" in older


# ---------------------------------------------------------------------------
# CSV import and the CLI
# ---------------------------------------------------------------------------

def test_csv_import_records_creates_changes_and_nothing_for_unchanged(app, client, auth,
                                                                      admin_headers):
    def send(text, name="WorkBankVisits.csv"):
        data = {"file": (io.BytesIO(text.encode()), name)}
        answer = client.post("/api/import/events", data=data, headers=admin_headers,
                             content_type="multipart/form-data")
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()

    row = ("606001,CORE - Snack Reset,9f2c1a7e,1234,Springfield,12/01/2026 08:00:00 AM,"
           "12/07/2026 05:00:00 PM,120,US200001,Ana Lopez,12/02/2026 09:00:00 AM")
    send(HEADER + "\n" + row + "\n")
    found = all_entries(app)
    by_resource = {e["resource"]: e for e in found}
    assert sorted(by_resource) == ["employees", "events", "schedules"] and len(found) == 3
    event = by_resource["events"]
    assert (event["action"], event["source"], event["actor"]) == ("created", "csv", ADMIN[0])
    assert event["ref"].endswith(":WorkBankVisits.csv")
    assert event["changes"]["project_name"] == [None, "CORE - Snack Reset"]
    assert event["changes"]["start_datetime"] == [None, "2026-12-01T08:00:00Z"]
    assert {e["ref"] for e in found} == {event["ref"]}  # one import, one ref
    send(HEADER + "\n" + row + "\n")
    assert len(all_entries(app)) == 3  # the same file again changed nothing
    send(HEADER + "\n" + row.replace("CORE - Snack Reset", "CORE - Snack Reset II") + "\n",
         "again.csv")
    last = all_entries(app)[-1]
    assert (last["action"], last["resource"], last["ref"].split(":", 1)[1]) == (
        "changed", "events", "again.csv")
    assert last["changes"]["project_name"] == ["CORE - Snack Reset", "CORE - Snack Reset II"]
    auth.login()
    page = client.get(f"/schedule/{event['record_id']}").get_data(as_text=True)
    assert f"imported from again.csv by {ADMIN[0]}" in page


def test_cli_writes_are_source_cli(app, runner):
    result = runner.invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    found = all_entries(app)
    assert found and {(e["source"], e["actor"], e["action"]) for e in found} == {
        ("cli", None, "created")}


def test_a_request_that_writes_without_a_source_fails_loudly(app):
    import history
    from models import Employee, db

    with app.test_request_context("/"):
        db.session.add(Employee(name="Nobody Said"))
        with pytest.raises(history.NoSource):
            db.session.flush()
        db.session.rollback()


# ---------------------------------------------------------------------------
# Bulk paths' cost, retention
# ---------------------------------------------------------------------------

def test_a_pulled_page_writes_its_history_in_a_constant_number_of_statements(app):
    import history
    import sync_engine
    from models import db
    from tests.helpers import API_KEY
    from tests.vendor_sandbox import VendorSandbox

    sandbox = VendorSandbox(api_key=API_KEY)
    sandbox.bulk_seed(employees=110, events=0, schedules=0)
    objects = sandbox.objects("employees")

    def page(items):
        with app.app_context(), statements(app) as seen, history.source("pull", ref=7):
            sync_engine.apply_items("employees", items, None, source="pull")
            db.session.commit()
        return seen, [s for s in seen if "record_history" in s]

    def same_cost(small, large, most):
        assert len(small[0]) == len(large[0]), "\n".join(large[0])
        assert len(small[1]) == len(large[1]) <= most  # one executemany (PostgreSQL: COPY)

    same_cost(page(objects[:10]), page(objects[10:110]), 1)
    renamed = [{**o, "version": o["version"] + 1, "name": o["name"] + " Jr"} for o in objects]
    same_cost(page(renamed[:10]), page(renamed[10:110]), 1)
    found = all_entries(app)
    assert len(found) == 220 and {(e["source"], e["ref"]) for e in found} == {("pull", "7")}
    assert sorted({e["action"] for e in found}) == ["changed", "created"]


def test_history_is_pruned_after_history_days_in_batches(app, monkeypatch):
    import sync_engine
    from models import RecordHistory, db, utcnow

    now = utcnow()
    with app.app_context():
        db.session.execute(db.insert(RecordHistory), [
            {"resource": "events", "record_id": n, "at": now - timedelta(days=days),
             "action": "changed", "source": "api", "actor": None, "ref": None, "changes": {}}
            for n, days in enumerate([401] * 7 + [399] * 2)])
        db.session.commit()
    monkeypatch.setattr(sync_engine.status, "PRUNE_BATCH", 3)
    with app.app_context(), statements(app) as seen:
        result = sync_engine.prune_history(app, now=now)
    assert result["record_history"] == 7
    assert len([s for s in seen if s.lstrip().upper().startswith("DELETE FROM RECORD_HISTORY")]) == 3
    assert len(all_entries(app)) == 2


# ---------------------------------------------------------------------------
# The vendor's paths: pull, webhook, conflicts, held deletions
# ---------------------------------------------------------------------------

def _vendor_entries(app, resource: str, external_id: str) -> list[dict]:
    from models import SYNCED_MODELS, db

    model = SYNCED_MODELS[resource]
    record_id = db_call(app, lambda: db.session.scalar(
        db.select(model.id).where(model.external_id == external_id)))
    return entries(app, resource, record_id)


@pytest.mark.vendor_sync
def test_pull_records_the_vendors_changes_with_the_run_id_and_a_push_records_nothing(
        app, client, sandbox, admin_headers, auth):
    from tests.helpers import run, vendor_employee

    mine = client.post("/api/employees", json={"name": "Made Here"},
                       headers=admin_headers).get_json()["id"]
    vendor = vendor_employee(sandbox, "Vera Vendor")
    first = run(app)
    assert first["status"] == "succeeded", first
    assert len(entries(app, "employees", mine)) == 1  # linked to its vendor id: no entry
    [created] = _vendor_entries(app, "employees", vendor["id"])
    assert (created["action"], created["source"], created["actor"], created["ref"]) == (
        "created", "pull", None, str(first["id"]))
    assert created["changes"]["name"] == [None, "Vera Vendor"]
    sandbox.vendor_update("employees", vendor["id"], {"name": "Vera Renamed"})
    second = run(app)
    sandbox.vendor_delete("employees", vendor["id"])
    third = run(app)
    assert brief(_vendor_entries(app, "employees", vendor["id"]))[1:] == [
        ("changed", "pull", None, {"name": ["Vera Vendor", "Vera Renamed"]}),
        ("deleted", "pull", None, {}),
    ]
    assert [e["ref"] for e in _vendor_entries(app, "employees", vendor["id"])][1:] == [
        str(second["id"]), str(third["id"])]
    auth.login()
    page = client.get(f"/sync/admin/runs/{second['id']}").get_data(as_text=True)
    assert 'id="changed-records"' in page and "Vera Renamed" in page
    assert "changed by the vendor (sync run" in page


@pytest.mark.vendor_sync
def test_a_webhook_records_its_message_id(app, client, webhook_secret):
    from tests.helpers import START, fmt
    from tests.helpers import signed

    message = {"type": "employee.created", "timestamp": fmt(START),
               "data": {"id": "emp_hook", "name": "Hook Person", "email": None, "active": True,
                        "version": 1, "updated_at": fmt(START)}}
    raw, headers = signed(webhook_secret, message, msg_id="msg_history_1")
    assert client.post("/api/webhook/schedule_update", data=raw, headers=headers).status_code == 200
    moved = {**message, "type": "employee.updated",
             "data": {**message["data"], "name": "Hook Moved", "version": 2}}
    raw, headers = signed(webhook_secret, moved, msg_id="msg_history_2")
    client.post("/api/webhook/schedule_update", data=raw, headers=headers)
    client.post("/api/webhook/schedule_update", data=raw, headers=headers)  # a repeat: nothing
    found = _vendor_entries(app, "employees", "emp_hook")
    assert [(e["action"], e["source"], e["actor"], e["ref"]) for e in found] == [
        ("created", "webhook", None, "msg_history_1"),
        ("changed", "webhook", None, "msg_history_2")]
    assert found[1]["changes"] == {"name": ["Hook Person", "Hook Moved"]}


@pytest.mark.vendor_sync
@pytest.mark.parametrize("sync_settings", [{"SYNC_CONFLICT_POLICY": "manual"}])
@pytest.mark.parametrize("keep", ["local", "remote"])
def test_a_conflict_choice_is_recorded_with_the_admin(app, client, sandbox, admin_headers,
                                                      auth, keep):
    from tests.helpers import run

    emp = client.post("/api/employees", json={"name": "Both Sides"},
                      headers=admin_headers).get_json()["id"]
    run(app)
    ext = db_call(app, lambda: __import__("models").db.session.get(
        __import__("models").Employee, emp).external_id)
    client.patch(f"/api/employees/{emp}", json={"name": "Local Edit"}, headers=admin_headers)
    sandbox.vendor_update("employees", ext, {"name": "Vendor Edit"})
    assert run(app)["conflicts"] == 1
    before = len(entries(app, "employees", emp))
    answer = client.post(f"/api/sync/conflicts/employees/{emp}/resolve", json={"keep": keep},
                         headers=admin_headers)
    assert answer.status_code == 200
    [last] = entries(app, "employees", emp)[before:]
    assert (last["action"], last["source"], last["actor"], last["ref"]) == (
        "changed", "conflict", ADMIN[0], keep)
    if keep == "local":  # the vendor's value turned down, the local one kept
        assert last["changes"] == {"name": ["Vendor Edit", "Local Edit"]}
        words = f"kept local by {ADMIN[0]} in a conflict"
    else:
        assert last["changes"] == {"name": ["Local Edit", "Vendor Edit"]}
        words = f"the vendor's version kept by {ADMIN[0]} in a conflict"
    auth.login()
    assert words in client.get(f"/employees/{emp}/edit").get_data(as_text=True).replace(
        "&#39;", "'")


@pytest.mark.vendor_sync
@pytest.mark.parametrize("action,source,what", [("apply", "pull", "deleted"),
                                                ("restore", "restore", "restored")])
def test_held_deletions_applied_or_restored_are_recorded(app, client, sandbox, admin_headers,
                                                         action, source, what):
    from tests.helpers import run

    sandbox.bulk_seed(employees=12, events=0, schedules=0)
    assert run(app)["status"] == "succeeded"
    sandbox.reset()
    wiped = run(app)
    assert wiped["held"] == 12
    before = len(all_entries(app))
    answer = client.post("/api/sync/held/employees", json={"action": action},
                         headers=admin_headers)
    assert answer.status_code == 200, answer.get_json()
    added = all_entries(app)[before:]
    assert len(added) == 12
    assert {(e["action"], e["source"], e["actor"], e["ref"], e["resource"]) for e in added} == {
        (what, source, ADMIN[0], str(wiped["id"]), "employees")}


@pytest.mark.vendor_sync
def test_a_push_that_meets_the_vendors_copy_records_what_it_took(app, sandbox):
    """A create answered 409 duplicate links to the vendor's object; when the vendor's copy
    is the newer one its fields are taken here, and that change is history from the run's
    push (source "push", the run as ref)."""
    from models import Event, db
    from tests.helpers import run, vendor_event

    def older_local():
        event = make_event(project_ref_num=700310, project_name="CORE - Local Name")
        db.session.execute(db.update(Event).where(Event.id == event.id).values(
            updated_at=utc(2026, 1, 1)))  # older than the vendor's copy below
        db.session.commit()
        return event.id

    evt = db_call(app, older_local)
    vendor_event(sandbox, 700310, project_name="CORE - Vendor Name")
    result = run(app, direction="push")
    assert result["status"] in ("succeeded", "partial"), result
    created, took = entries(app, "events", evt)
    assert (created["action"], created["source"]) == ("created", "cli")
    assert (took["action"], took["source"], took["actor"], took["ref"]) == (
        "changed", "push", None, str(result["id"]))  # the run's push took them, not a pull
    assert took["changes"]["project_name"] == ["CORE - Local Name", "CORE - Vendor Name"]
    assert took["changes"]["store_number"] == [1234, 1204]  # every field the vendor's differs in
    assert [o["project_name"] for o in sandbox.objects("events")] == ["CORE - Vendor Name"]


def test_the_history_sources_are_the_documented_ones():
    """history.SOURCES (which `push` joined: a run's push that changes a record here) is the
    enum of docs/openapi.yaml's history entry, and the README names `push`."""
    import re
    from pathlib import Path

    import history

    root = Path(__file__).resolve().parent.parent
    spec = (root / "docs" / "openapi.yaml").read_text(encoding="utf-8")
    enum = re.search(r"source:\s+type: string\s+enum: \[([^\]]+)\]", spec)
    assert tuple(s.strip() for s in enum.group(1).split(",")) == history.SOURCES
    assert "source `push`" in (root / "README.md").read_text(encoding="utf-8")


def test_history_uses_field_labels_and_one_line_for_a_created_record(app, client, auth):
    from tests.factories import make_event

    with app.app_context():
        from models import db
        event = make_event(project_name="CORE - Labels", store_number=1204, location_mvid="MV-01204")
        event.store_number = 77
        db.session.commit()
        event_id = event.id
    auth.login()
    page = client.get(f"/schedule/{event_id}").get_data(as_text=True)
    section = page.split('id="history"', 1)[1]
    assert '<span class="history-field">Store number</span>: 1204 → 77' in section
    assert "location mvid" not in section and "store number</span>" not in section
    created = section.split('class="history-created"', 1)[1].split("</p>", 1)[0]
    assert '<span class="history-field">Location MVID</span> MV-01204' in created
    assert "—" not in created and "→" not in created
