"""An event unscheduled and scheduled again: the old schedule's delete reaches the vendor
before the new create, and a create refused because of our own delete is sent again with a
new idempotency key (the old key replays the refusal, as the contract says)."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from tests.helpers import db_call, delete_local, one, run, vendor_employee, vendor_event

pytestmark = pytest.mark.vendor_sync


def _scheduled_event(app, sandbox) -> dict:
    """An event and an employee from the vendor, scheduled here and pushed: their ids."""
    from models import Employee, Event, Schedule, db

    event, employee = vendor_event(sandbox, 7070), vendor_employee(sandbox, "Una Unschedule")
    run(app)

    def make():
        ev = db.session.scalar(db.select(Event).where(Event.external_id == event["id"]))
        emp = db.session.scalar(db.select(Employee).where(Employee.external_id == employee["id"]))
        row = Schedule(event_id=ev.id, employee_id=emp.id, start_datetime=ev.start_datetime)
        db.session.add(row)
        db.session.commit()
        return {"event": ev.id, "employee": emp.id, "start": ev.start_datetime, "old": row.id}
    ids = db_call(app, make)
    run(app)
    ids["old_ext"] = one(app, "schedules", id=ids["old"])["external_id"]
    assert ids["old_ext"]
    return ids


def _reschedule(app, ids: dict, delete_backed_off: bool) -> int:
    """Unschedule (a pending delete, maybe waiting out a backoff) and schedule again."""
    from models import Schedule, db, utcnow

    delete_local(app, "schedules", ids["old"])

    def make():
        if delete_backed_off:  # its first attempt failed for a moment
            db.session.get(Schedule, ids["old"]).next_attempt_at = utcnow() + timedelta(hours=1)
        row = Schedule(event_id=ids["event"], employee_id=ids["employee"],
                       start_datetime=ids["start"] + timedelta(hours=1))
        db.session.add(row)
        db.session.commit()
        return row.id
    return db_call(app, make)


def _refused_before(app, new_id: int) -> str:
    """Send the new schedule's create while the old one is live at the vendor (refused as a
    duplicate, remembered under its key) and give the row that key."""
    import sync_engine
    from models import Schedule, db

    key = str(uuid.uuid4())

    def send():
        row = db.session.get(Schedule, new_id)
        with sync_engine.make_client(app) as client:
            with pytest.raises(Exception) as refused:
                client.create("schedules", sync_engine.local_payload("schedules", row),
                              idempotency_key=key)
        assert getattr(refused.value, "code", None) == "duplicate"
        row.idempotency_key = key
        db.session.commit()
    db_call(app, send)
    return key


def _assert_rescheduled(app, sandbox, ids: dict, new_id: int) -> None:
    new = one(app, "schedules", id=new_id)
    assert new["sync_status"] == "synced" and new["external_id"], new
    live = [o for o in sandbox.objects("schedules") if o["event_id"] == new["external_id"]
            or o["id"] in (new["external_id"], ids["old_ext"])]
    assert [o["id"] for o in live] == [new["external_id"]]
    old = one(app, "schedules", id=ids["old"])
    assert old["deleted_at"] is not None and old["sync_status"] == "synced"


@pytest.mark.parametrize("backed_off", [False, True])
def test_the_old_schedules_delete_goes_before_the_new_create(app, sandbox, backed_off):
    ids = _scheduled_event(app, sandbox)
    new_id = _reschedule(app, ids, backed_off)
    result = run(app, direction="push", trigger="change")  # a push-soon: backoffs hold
    assert result["failed"] == 0, result
    _assert_rescheduled(app, sandbox, ids, new_id)


@pytest.mark.parametrize("delete_sent", [False, True])
def test_a_create_refused_because_of_our_delete_is_sent_again_with_a_new_key(app, sandbox,
                                                                            delete_sent):
    ids = _scheduled_event(app, sandbox)
    new_id = _reschedule(app, ids, delete_backed_off=True)
    key = _refused_before(app, new_id)
    if delete_sent:  # the delete went through since: the old key only replays the refusal
        sandbox.vendor_delete("schedules", ids["old_ext"])
        run(app, direction="pull")
    for _ in range(2):
        result = run(app, direction="push", trigger="change")
        assert result["failed"] == 0, result
    _assert_rescheduled(app, sandbox, ids, new_id)
    assert one(app, "schedules", id=new_id)["idempotency_key"] in (None, "") or \
        one(app, "schedules", id=new_id)["idempotency_key"] != key
