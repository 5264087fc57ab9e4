"""A local delete of an event the vendor meanwhile gave a schedule (409 in_use).

The vendor refuses to delete an event or employee that still has a live
schedule.  When the event was deleted here but a schedule for it appeared at
the vendor, the conflict rule decides instead of retrying forever.
"""
from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tests.helpers import START, delete_local, fmt, one, run, vendor_employee, vendor_event

pytestmark = pytest.mark.vendor_sync


def _synced_pair(app, sandbox):
    """A vendor event and employee, pulled here; their vendor and local ids."""
    evt, emp = vendor_event(sandbox, 910001), vendor_employee(sandbox, "Vendor Rep")
    assert run(app)["status"] == "succeeded"
    return evt, emp, one(app, "events", external_id=evt["id"])["id"]


def _vendor_schedule(sandbox, evt, emp) -> dict:
    return sandbox.vendor_create("schedules", {"event_id": evt["id"], "employee_id": emp["id"],
                                               "start_datetime": fmt(START + timedelta(hours=3))})


def test_a_vendor_schedule_newer_than_the_local_delete_undoes_it(app, sandbox):
    evt, emp, local_id = _synced_pair(app, sandbox)
    delete_local(app, "events", local_id)
    time.sleep(0.01)
    sched = _vendor_schedule(sandbox, evt, emp)
    result = run(app)
    assert result["conflicts"] == 1, result
    event = one(app, "events", id=local_id)
    assert event["deleted_at"] is None and event["sync_status"] == "synced"
    assert sandbox.object("events", evt["id"]) is not None
    assert one(app, "schedules", external_id=sched["id"])["deleted_at"] is None
    assert run(app)["status"] == "succeeded"  # nothing left to retry


def test_a_local_delete_newer_than_the_vendor_schedule_deletes_both(app, sandbox):
    evt, emp, local_id = _synced_pair(app, sandbox)
    sched = _vendor_schedule(sandbox, evt, emp)
    time.sleep(0.01)
    delete_local(app, "events", local_id)
    result = run(app)
    assert result["conflicts"] == 1, result
    assert sandbox.objects("events") == [] and sandbox.objects("schedules") == []
    event = one(app, "events", id=local_id)
    assert event["deleted_at"] is not None and event["sync_status"] == "synced"
    assert one(app, "schedules", external_id=sched["id"])["deleted_at"] is not None
    assert run(app)["status"] == "succeeded"


@pytest.mark.parametrize("sync_settings", [{"SYNC_CONFLICT_POLICY": "manual"}])
@pytest.mark.parametrize("keep", ["local", "remote"])
def test_manual_policy_waits_for_an_admin(app, client, sandbox, admin_headers, keep):
    evt, emp, local_id = _synced_pair(app, sandbox)
    delete_local(app, "events", local_id)
    _vendor_schedule(sandbox, evt, emp)
    result = run(app)
    assert result["status"] == "partial" and result["conflicts"] == 1
    assert one(app, "events", id=local_id)["sync_status"] == "conflict"
    answer = client.post(f"/api/sync/conflicts/events/{local_id}/resolve", json={"keep": keep},
                         headers=admin_headers)
    assert answer.status_code == 200, answer.get_json()
    run(app)
    event = one(app, "events", id=local_id)
    assert event["sync_status"] == "synced"
    if keep == "local":
        assert sandbox.objects("events") == [] and sandbox.objects("schedules") == []
        assert event["deleted_at"] is not None
    else:
        assert len(sandbox.objects("events")) == 1 and len(sandbox.objects("schedules")) == 1
        assert event["deleted_at"] is None
