"""A push in flight never undoes a newer decision; a full listing repairs the invariant.

The sequences are made deterministic with the sandbox's scripted faults: a
fault hits the next matching request once, after a callback that changes the
vendor (and waits for its webhook to be applied here) while the push waits.
"""
from __future__ import annotations

import pytest

from tests.factories import make_employee
from tests.helpers import db_call, invariant_breaks, one, rows, run, signed, vendor_employee

pytestmark = pytest.mark.vendor_sync


def change(app, record_id: int, **fields) -> None:
    """A local user change of an employee (pending for the vendor)."""
    from models import Employee, db

    def do():
        row = db.session.get(Employee, record_id)
        for name, value in fields.items():
            setattr(row, name, value)
        row.mark_changed()
        db.session.commit()

    db_call(app, do)


def settle(app, sandbox, runs: int = 5) -> dict:
    """Run until a run moves nothing (and its webhooks are in); the last run."""
    for _ in range(runs):
        result = run(app)
        assert sandbox.wait_webhooks_idle(15)
        if result["pushed"] == 0 and result["pulled"] == 0 and result["status"] == "succeeded":
            return result
    raise AssertionError(f"did not settle: {result}")


def synced_employee(app, name: str = "Ana Local") -> tuple[int, str]:
    """A local employee pushed to the vendor: (local id, vendor id)."""
    emp = db_call(app, lambda: make_employee(name).id)
    assert run(app)["status"] == "succeeded"
    return emp, one(app, "employees", id=emp)["external_id"]


def test_a_vendor_delete_during_a_retried_rename_stands(app, sandbox, live):
    """The issue's sequence: PATCH 503; the vendor deletes the employee and its webhook is
    applied while the retry waits; the retry gets 404; a create would be answered 500 after
    being stored.  The newer delete stands and nothing is created at the vendor."""
    emp, ext = synced_employee(app)
    change(app, emp, name="Ana Renamed")

    def vendor_deletes_it():
        sandbox.vendor_delete("employees", ext)
        assert sandbox.wait_webhooks_idle(10)  # applied here before the PATCH is answered

    sandbox.script_fault("PATCH", f"/employees/{ext}", "503", before=vendor_deletes_it)
    sandbox.script_fault("POST", "/employees", "apply_then_500")
    result = run(app)
    assert result["status"] == "succeeded", result
    row = one(app, "employees", id=emp)
    assert row["deleted_at"] is not None and row["sync_status"] == "synced"
    assert sandbox.objects("employees") == []  # no stray re-created employee
    settle(app, sandbox)
    assert invariant_breaks(app, sandbox) == []
    assert one(app, "employees", id=emp)["deleted_at"] is not None


def test_a_vendor_delete_whose_webhook_never_comes_loses_to_the_rename(app, sandbox, live):
    """The same faults, but the delete's webhook is lost: the 404 is all the push knows, so
    the local change is kept (the reading that loses no data): the employee is created
    again (500 after it was stored, then the replay), linked once, the invariant holds."""
    emp, ext = synced_employee(app)
    change(app, emp, name="Ana Renamed")

    def vendor_deletes_it_quietly():
        sandbox.configure_webhooks(mode="drop")
        sandbox.vendor_delete("employees", ext)
        sandbox.configure_webhooks(mode="normal")

    sandbox.script_fault("PATCH", f"/employees/{ext}", "503", before=vendor_deletes_it_quietly)
    sandbox.script_fault("POST", "/employees", "apply_then_500")
    result = run(app)
    assert result["conflicts"] == 1, result  # the local change won over the vendor's delete
    assert sandbox.scripted_faults() == []
    settle(app, sandbox)
    [vendor] = sandbox.objects("employees")
    assert vendor["name"] == "Ana Renamed"
    row = one(app, "employees", id=emp)
    assert row["deleted_at"] is None and row["external_id"] == vendor["id"] != ext
    assert invariant_breaks(app, sandbox) == []


def test_a_create_answered_after_its_record_was_deleted_here_is_deleted_there(app, sandbox,
                                                                              live):
    """A create in flight whose record a vendor rule deleted meanwhile: the stray object the
    create made is deleted at the vendor instead of being linked as synced."""
    import sync_engine
    from models import Employee, db

    emp = db_call(app, lambda: make_employee("Short Lived").id)

    def deleted_by_the_vendor_rules():
        def do():
            row = db.session.get(Employee, emp)
            sync_engine.apply.soft_delete_from_vendor("employees", row, None)
            db.session.commit()

        db_call(app, do)

    sandbox.script_fault("POST", "/employees", "apply_then_500", before=deleted_by_the_vendor_rules)
    result = run(app)
    assert result["status"] in ("succeeded", "partial"), result
    settle(app, sandbox)
    assert sandbox.objects("employees") == []
    [tomb] = sandbox.objects("employees", include_deleted=True)
    row = one(app, "employees", id=emp)
    assert row["deleted_at"] is not None and row["external_id"] == tomb["id"]
    assert row["sync_status"] == "synced"
    assert invariant_breaks(app, sandbox) == []


def test_a_late_webhook_about_a_re_created_records_old_id_makes_no_ghost(app, client, sandbox,
                                                                        webhook_secret):
    """The vendor deleted an employee (its webhook not yet here); a rename's PATCH got 404,
    so the record was created again under a new id.  Then the old id's messages arrive
    late, a live version first: the vendor has deleted that object, so nothing is created
    here for it; each message is recorded with the reason."""
    emp, ext = synced_employee(app)
    [old] = sandbox.objects("employees")
    change(app, emp, name="Ana Renamed")
    sandbox.script_fault("PATCH", f"/employees/{ext}", "503",  # no webhook URL: untold
                         before=lambda: sandbox.vendor_delete("employees", ext))
    result = run(app)
    assert result["conflicts"] == 1, result  # the retry's 404: the local change re-created it
    assert sandbox.scripted_faults() == []
    [vendor] = sandbox.objects("employees")
    assert one(app, "employees", id=emp)["external_id"] == vendor["id"] != ext

    def deliver(kind: str, data: dict) -> dict:
        raw, headers = signed(webhook_secret, {"type": f"employee.{kind}",
                                               "timestamp": old["updated_at"], "data": data})
        answer = client.post("/api/webhook/schedule_update", data=raw, headers=headers)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.get_json()

    tomb = {"id": ext, "deleted": True, "version": old["version"] + 1,
            "updated_at": old["updated_at"]}
    assert deliver("created", old)["outcome"] == "stale"
    assert deliver("updated", dict(old, name="Ana Late"))["outcome"] == "stale"
    assert deliver("deleted", tomb)["outcome"] == "stale"
    assert [r["id"] for r in rows(app, "employees")] == [emp]
    assert invariant_breaks(app, sandbox) == []
    messages = db_call(app, _webhook_details)
    assert all(outcome == "stale" and ext in detail for outcome, detail in messages), messages


def _webhook_details() -> list:
    from models import WebhookMessage, db

    return db.session.execute(db.select(WebhookMessage.outcome, WebhookMessage.detail)
                              .order_by(WebhookMessage.id)).all()


@pytest.fixture(autouse=True)
def scripted_sequences_only(sandbox):
    """These tests script exact fault sequences: the strict sandbox keeps its other freedoms
    (webhooks late, repeated and out of order included) but keeps sync tokens valid, so
    that a run the test expects to be incremental is."""
    if sandbox.strict:
        sandbox.strict.stale_token_rate = 0


def test_a_full_listing_repairs_a_stray_vendor_object(app, sandbox):
    """What the old push left behind: a live vendor object linked to a record deleted here
    (and marked synced).  A full listing finds it, counts the repair, and the delete is
    sent: the invariant holds again."""
    from models import Employee, db, utcnow

    emp, ext = synced_employee(app, "Stray")
    kept, _ = synced_employee(app, "Kept")

    def break_it():
        row = db.session.get(Employee, emp)
        row.deleted_at = utcnow()
        db.session.commit()

    db_call(app, break_it)
    assert invariant_breaks(app, sandbox) == [
        f"employees: vendor object {ext} is linked to 0 live local records"]
    quiet = run(app)  # an incremental pull: the object did not change, nothing noticed
    assert quiet["repaired"] == 0
    result = run(app, full=True)
    assert result["repaired"] == 1, result
    assert any("repaired" in e["message"] and e["id"] == emp for e in result["errors"])
    assert result["status"] == "succeeded"
    assert [o["name"] for o in sandbox.objects("employees")] == ["Kept"]
    assert invariant_breaks(app, sandbox) == []
    assert one(app, "employees", id=emp)["sync_status"] == "synced"
    assert run(app, full=True)["repaired"] == 0


def test_a_full_listing_repairs_a_record_linked_to_a_lost_object(app, sandbox):
    """A live record linked to an object the vendor no longer holds (below the guard):
    deleted here as the listing says, and the invariant holds."""
    emp, ext = synced_employee(app, "Gone There")
    others = [vendor_employee(sandbox, f"Vendor {n}") for n in range(3)]
    run(app)
    sandbox.vendor_delete("employees", ext)
    sandbox.expire_sync_tokens()
    result = run(app)
    assert result["status"] == "succeeded", result
    assert one(app, "employees", id=emp)["deleted_at"] is not None
    assert len(rows(app, "employees")) == len(others)
    assert invariant_breaks(app, sandbox) == []


def test_a_create_whose_answer_was_lost_then_deleted_here_is_deleted_there(app, sandbox):
    """The create reached the vendor but every answer was lost; the user deleted the event
    here; the next pull brings the vendor's copy.  The local delete stands: the replayed
    create links the record, the copy is merged into it, the vendor object is deleted."""
    from tests.factories import make_event

    from models import Event, db

    evt = db_call(app, lambda: make_event(project_ref_num=700100).id)
    sandbox.script_fault("POST", "/events", "apply_then_500")
    for _ in range(3):  # every retry of the client fails too: the answer is lost
        sandbox.script_fault("POST", "/events", "503")
    assert run(app)["status"] == "partial"
    [vendor] = sandbox.objects("events")
    assert one(app, "events", id=evt)["external_id"] is None

    def delete_here():
        db.session.get(Event, evt).soft_delete()
        db.session.commit()

    db_call(app, delete_here)
    result = run(app)
    assert result["status"] == "succeeded", result
    assert sandbox.objects("events") == []
    assert rows(app, "events") == []
    assert one(app, "events", id=evt)["external_id"] == vendor["id"]
    assert invariant_breaks(app, sandbox) == []
