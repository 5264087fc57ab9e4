"""A vendor schedule that would give an employee a second schedule on a local day.

The vendor does not know the one-schedule-per-employee-per-day rule, so a pull or a
webhook may bring such a clash.  It neither crashes the run nor is dropped: the incoming
schedule becomes a conflict for an admin, under both conflict policies, with the vendor's
version as the conflict's remote side and a message naming the local schedule that holds
the day.  The local schedule stays as it is.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import make_employee, make_event, make_schedule
from tests.helpers import START, db_call, fmt, one, rows, run, vendor_event, wait_for

pytestmark = pytest.mark.vendor_sync


@pytest.fixture(params=["last_write_wins", "manual"])
def sync_settings(request) -> dict:
    return {"SYNC_CONFLICT_POLICY": request.param}


def synced_day(app, sandbox):
    """A local employee with one schedule on START's day, both at the vendor; their ids."""
    def make():
        employee = make_employee("Dee Day")
        event = make_event(project_ref_num=710001, start_datetime=START)
        return employee.id, make_schedule(event, employee, START + timedelta(hours=1)).id

    emp, sched = db_call(app, make)
    assert run(app)["status"] == "succeeded"
    return emp, sched, one(app, "employees", id=emp)["external_id"]


def assert_clash_conflict(app, vendor_sched: dict, holder: int):
    row = one(app, "schedules", external_id=vendor_sched["id"])
    assert row is not None, "the vendor's schedule was dropped"
    assert row["sync_status"] == "conflict"
    assert row["conflict_remote"]["id"] == vendor_sched["id"]
    assert row["conflict_remote"]["start_datetime"] == vendor_sched["start_datetime"]
    assert f"#{holder}" in row["sync_error"] and START.date().isoformat() in row["sync_error"]
    assert "Dee Day" in row["sync_error"]
    kept = one(app, "schedules", id=holder)
    assert kept["deleted_at"] is None and kept["sync_status"] == "synced"
    that_day = [r["id"] for r in rows(app, "schedules") if r["employee_id"] == kept["employee_id"]
                and r["start_datetime"].startswith(START.date().isoformat())]  # APP_TIMEZONE UTC
    assert that_day == [holder]
    return row


def test_a_pulled_new_schedule_on_a_taken_day_becomes_a_conflict(app, client, sandbox,
                                                                 admin_headers):
    emp, holder, ext_emp = synced_day(app, sandbox)
    other = vendor_event(sandbox, 710002)
    vendor_sched = sandbox.vendor_create("schedules", {
        "event_id": other["id"], "employee_id": ext_emp,
        "start_datetime": fmt(START + timedelta(hours=5))})
    result = run(app)
    assert result["status"] == "partial" and result["conflicts"] == 1, result
    row = assert_clash_conflict(app, vendor_sched, holder)
    [item] = client.get("/api/sync/conflicts", headers=admin_headers).get_json()["data"]
    assert item["id"] == row["id"] and item["remote"]["id"] == vendor_sched["id"]
    assert f"#{holder}" in item["message"]
    page = client.get("/sync/admin", headers=admin_headers).get_data(as_text=True)
    assert f"#{holder}" in page
    # keeping the vendor's version while the day is still taken is refused, nothing changes
    url = f"/api/sync/conflicts/schedules/{row['id']}/resolve"
    refused = client.post(url, json={"keep": "remote"}, headers=admin_headers)
    assert refused.status_code == 409 and f"#{holder}" in refused.get_json()["error"]["message"]
    assert one(app, "schedules", id=row["id"])["sync_status"] == "conflict"
    # keeping the local side: the day stays with the local schedule, the vendor's goes
    assert client.post(url, json={"keep": "local"}, headers=admin_headers).status_code == 200
    assert run(app)["status"] == "succeeded"
    assert vendor_sched["id"] not in [o["id"] for o in sandbox.objects("schedules")]
    assert [r["id"] for r in rows(app, "schedules")] == [holder]


def test_a_vendor_move_onto_a_taken_day_becomes_a_conflict(app, sandbox):
    emp, holder, ext_emp = synced_day(app, sandbox)

    def second():  # the same employee, the next day: allowed
        from models import Employee, db

        event = make_event(project_ref_num=710003, start_datetime=START)
        return make_schedule(event, db.session.get(Employee, emp), START + timedelta(days=1)).id

    moved = db_call(app, second)
    assert run(app)["status"] == "succeeded"
    ext = one(app, "schedules", id=moved)["external_id"]
    vendor = sandbox.vendor_update("schedules", ext, {"start_datetime": fmt(START + timedelta(hours=6))})
    result = run(app)
    assert result["status"] == "partial" and result["conflicts"] == 1, result
    row = assert_clash_conflict(app, vendor, holder)
    assert row["id"] == moved and row["start_datetime"] == fmt(START + timedelta(days=1))


def test_a_webhook_bringing_a_clash_becomes_a_conflict(app, sandbox, live):
    emp, holder, ext_emp = synced_day(app, sandbox)
    other = vendor_event(sandbox, 710004)
    wait_for(lambda: one(app, "events", external_id=other["id"]), message="event by webhook")
    vendor_sched = sandbox.vendor_create("schedules", {
        "event_id": other["id"], "employee_id": ext_emp,
        "start_datetime": fmt(START + timedelta(hours=7))})
    wait_for(lambda: one(app, "schedules", external_id=vendor_sched["id"]), message="webhook")
    assert_clash_conflict(app, vendor_sched, holder)
    from models import WebhookMessage, db

    outcome = db_call(app, lambda: db.session.scalar(
        db.select(WebhookMessage.outcome).where(WebhookMessage.object_id == vendor_sched["id"])))
    assert outcome == "conflict"


def test_two_vendor_schedules_for_one_day_in_one_page(app, sandbox):
    """Both new here: the first takes the day, the second waits for an admin."""
    def make():
        return make_employee("Dee Day").id

    emp = db_call(app, make)
    run(app)
    ext_emp = one(app, "employees", id=emp)["external_id"]
    first_event, second_event = vendor_event(sandbox, 710005), vendor_event(sandbox, 710006)
    first = sandbox.vendor_create("schedules", {"event_id": first_event["id"], "employee_id": ext_emp,
                                                "start_datetime": fmt(START + timedelta(hours=1))})
    second = sandbox.vendor_create("schedules", {"event_id": second_event["id"],
                                                 "employee_id": ext_emp,
                                                 "start_datetime": fmt(START + timedelta(hours=2))})
    result = run(app)
    assert result["conflicts"] == 1, result
    # The contract leaves a listing's order to the vendor (the strict sandbox uses that):
    # whichever of the two the page brings first takes the day, the other waits.
    winner, waiting = (first, second) if one(app, "schedules", external_id=first["id"])[
        "sync_status"] == "synced" else (second, first)
    holder = one(app, "schedules", external_id=winner["id"])
    assert holder["deleted_at"] is None and holder["sync_status"] == "synced"
    assert_clash_conflict(app, waiting, holder["id"])
