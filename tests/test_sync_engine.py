"""The sync engine end to end: the app against the vendor sandbox over real HTTP (push,
pull, failures, conflicts, lease, push soon).  The webhook receiver and /api/sync/* are in
test_sync_api.py, `flask sync run` in test_cli.py; one concern each in test_sync_engine_*.py."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.factories import make_employee, make_event, make_schedule
from tests.helpers import (API_KEY, START, db_call, delete_local, fmt, one, rows,
                           run, vendor_employee, vendor_event, wait_for)

pytestmark = pytest.mark.vendor_sync


def local(app, make, *args, **kwargs) -> int:
    """Create a local record with a factory; its id."""
    return db_call(app, lambda: make(*args, **kwargs).id)


def change(app, resource: str, record_id: int, **fields) -> None:
    """A local user change: set fields and mark_changed()."""
    from models import SYNCED_MODELS, db

    def do():
        row = db.session.get(SYNCED_MODELS[resource], record_id)
        for name, value in fields.items():
            setattr(row, name, value)
        row.mark_changed()
        db.session.commit()

    db_call(app, do)


def local_graph(app):
    """An employee, an event and its schedule, created locally (pending)."""
    emp = local(app, make_employee, "Ana Local")
    evt = local(app, make_event, project_ref_num=700001, start_datetime=START)

    def sched():
        from models import Employee, Event, db

        return make_schedule(db.session.get(Event, evt), db.session.get(Employee, emp),
                             START + timedelta(hours=2)).id

    return emp, evt, db_call(app, sched)


# ---------------------------------------------------------------------------
# Local → vendor
# ---------------------------------------------------------------------------

def test_local_creates_reach_the_vendor_and_the_echo_changes_nothing(app, sandbox, live):
    emp, evt, sch = local_graph(app)
    result = run(app)
    assert result["status"] == "succeeded", result
    assert result["pushed"] == 3
    vendor_sched = sandbox.objects("schedules")
    assert len(vendor_sched) == 1 and len(sandbox.objects("events")) == 1
    e = one(app, "employees", id=emp)
    assert e["sync_status"] == "synced" and e["external_id"] and e["remote_version"] == 1
    s = one(app, "schedules", id=sch)
    assert s["external_id"] == vendor_sched[0]["id"]
    assert vendor_sched[0]["event_id"] == one(app, "events", id=evt)["external_id"]
    assert sandbox.wait_webhooks_idle(10)
    before = {r: rows(app, r) for r in ("employees", "events", "schedules")}
    sandbox.strict.transient_rate = 0  # counted below
    requests_before = sandbox.stats()["requests_by_method"]
    again = run(app)
    assert again["status"] == "succeeded" and again["pushed"] == 0 and again["pulled"] == 0
    sent = sandbox.stats()["requests_by_method"]
    assert {m: n - requests_before.get(m, 0) for m, n in sent.items()
            if n != requests_before.get(m, 0)} == {"GET": again["requests_sent"]}  # listings only, however many pages the vendor cut
    assert {r: rows(app, r) for r in before} == before  # its time: `python -m tests.bench`


def test_local_change_and_delete_reach_the_vendor(app, sandbox):
    emp, evt, sch = local_graph(app)
    assert run(app)["status"] == "succeeded"
    change(app, "employees", emp, name="Ana Renamed", email="ana@example.com")
    delete_local(app, "schedules", sch)
    delete_local(app, "events", evt)
    result = run(app, direction="push")
    assert result["status"] == "succeeded", result
    [vendor_emp] = sandbox.objects("employees")
    assert vendor_emp["name"] == "Ana Renamed" and vendor_emp["version"] == 2
    assert sandbox.objects("schedules") == [] and sandbox.objects("events") == []
    s = one(app, "schedules", id=sch)
    assert s["deleted_at"] is not None and s["sync_status"] == "synced"
    assert one(app, "employees", id=emp)["remote_version"] == 2


def test_a_delete_of_a_record_never_pushed_sends_nothing(app, sandbox):
    emp = local(app, make_employee, "Never Sent")
    delete_local(app, "employees", emp)
    result = run(app, direction="push")
    assert result["status"] == "succeeded" and sandbox.stats()["requests"] == 0
    assert one(app, "employees", id=emp)["sync_status"] == "synced"


# ---------------------------------------------------------------------------
# Vendor → local
# ---------------------------------------------------------------------------

def test_vendor_changes_arrive_by_pull_with_tombstones(app, sandbox):
    emp = vendor_employee(sandbox, "Vic Vendor")
    evt = vendor_event(sandbox, 800001)
    sch = sandbox.vendor_create("schedules", {"event_id": evt["id"], "employee_id": emp["id"],
                                              "start_datetime": fmt(START + timedelta(hours=1))})
    first = run(app)
    assert first["status"] == "succeeded" and first["pulled"] == 3
    local_s = one(app, "schedules", external_id=sch["id"])
    assert local_s["event_id"] == one(app, "events", external_id=evt["id"])["id"]
    assert local_s["sync_status"] == "synced"
    sandbox.vendor_update("employees", emp["id"], {"name": "Vic Changed"})
    sandbox.vendor_delete("schedules", sch["id"])
    sandbox.strict.stale_token_rate = 0  # counted below: tokens that stay valid
    sandbox.strict.transient_rate = 0
    second = run(app)
    assert second["pulled"] == 2 and second["pushed"] == 0
    e = one(app, "employees", external_id=emp["id"])
    assert e["name"] == "Vic Changed" and e["sync_status"] == "synced" and e["remote_version"] == 2
    s = one(app, "schedules", external_id=sch["id"])
    assert s["deleted_at"] is not None and s["sync_status"] == "synced"
    assert run(app)["requests_sent"] == 3


def test_vendor_changes_arrive_by_webhook(app, sandbox, live):
    emp = vendor_employee(sandbox, "Wendy Webhook")
    wait_for(lambda: one(app, "employees", external_id=emp["id"]), message="created")
    sandbox.vendor_update("employees", emp["id"], {"name": "Wendy Changed"})
    wait_for(lambda: one(app, "employees", external_id=emp["id"])["name"] == "Wendy Changed")
    sandbox.vendor_delete("employees", emp["id"])
    wait_for(lambda: one(app, "employees", external_id=emp["id"])["deleted_at"] is not None)
    row = one(app, "employees", external_id=emp["id"])
    assert row["sync_status"] == "synced" and row["remote_version"] == 3
    from models import WebhookMessage, db

    outcomes = db_call(app, lambda: [m.outcome for m in db.session.scalars(
        db.select(WebhookMessage).order_by(WebhookMessage.id))])
    # each change applied once; the vendor may deliver a message again (at least once)
    assert [o for o in outcomes if o != "duplicate"] == ["applied", "applied", "applied"]


def test_webhook_for_a_schedule_of_an_unknown_event_is_deferred_then_pulled(app, sandbox, live):
    sandbox.configure_webhooks(mode="drop")
    emp = vendor_employee(sandbox)
    evt = vendor_event(sandbox, 800002)
    sandbox.configure_webhooks(mode="normal")
    sch = sandbox.vendor_create("schedules", {"event_id": evt["id"], "employee_id": emp["id"],
                                              "start_datetime": fmt(START)})
    row = wait_for(lambda: one(app, "schedules", external_id=sch["id"]), timeout=15,
                   message="the pull a deferred webhook asked for")
    assert row["sync_status"] == "synced"
    from models import SyncRun, WebhookMessage, db

    assert db_call(app, lambda: db.session.scalar(db.select(WebhookMessage.outcome))) == "deferred"
    assert db_call(app, lambda: db.session.scalar(db.select(SyncRun.trigger))) == "webhook"


def test_expired_sync_token_full_listing_finds_vendor_deletions(app, sandbox):
    keep = vendor_employee(sandbox, "Stays")
    gone = vendor_employee(sandbox, "Goes")
    assert run(app)["pulled"] == 2
    sandbox.vendor_delete("employees", gone["id"])  # no webhook URL: nobody is told
    sandbox.expire_sync_tokens()
    result = run(app, resources=["employees"])
    assert result["status"] == "succeeded", result
    g = one(app, "employees", external_id=gone["id"])
    assert g["deleted_at"] is not None and g["sync_status"] == "synced"
    assert one(app, "employees", external_id=keep["id"])["deleted_at"] is None
    sandbox.strict.stale_token_rate = 0  # counted below: the new token stays valid
    sandbox.strict.transient_rate = 0
    assert run(app, resources=["employees"])["requests_sent"] == 1  # a new token was saved


def test_vendor_delete_of_an_event_fails_a_local_pending_schedule(app, sandbox):
    evt = vendor_event(sandbox, 800003)
    run(app)
    emp = local(app, make_employee, "Late Scheduler")

    def sched():
        from models import Employee, Event, db

        event = db.session.scalar(db.select(Event).where(Event.external_id == evt["id"]))
        return make_schedule(event, db.session.get(Employee, emp), START).id

    sch = db_call(app, sched)
    sandbox.vendor_delete("events", evt["id"])
    run(app, direction="pull")
    s = one(app, "schedules", id=sch)
    assert s["sync_status"] == "failed" and "deleted at the vendor" in s["sync_error"]
    assert s["deleted_at"] is None  # nothing a user entered is dropped


# ---------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------

def test_a_crash_after_sending_a_create_then_a_rerun_gives_one_vendor_object(app, sandbox,
                                                                             monkeypatch):
    import sync_engine

    evt = local(app, make_event, project_ref_num=700100)
    real = sync_engine.push.queue_result  # where the push looks it up
    monkeypatch.setattr(sync_engine.push, "queue_result",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    first = run(app, direction="push")
    assert first["status"] == "partial"
    row = one(app, "events", id=evt)
    assert row["sync_status"] == "pending" and row["idempotency_key"] and not row["external_id"]
    assert len(sandbox.objects("events")) == 1  # the vendor did create it
    monkeypatch.setattr(sync_engine.push, "queue_result", real)
    second = run(app, direction="push")
    assert second["status"] == "succeeded", second
    assert len(sandbox.objects("events")) == 1
    assert sandbox.stats()["idempotent_replays"] == 1
    row = one(app, "events", id=evt)
    assert row["external_id"] == sandbox.objects("events")[0]["id"]
    assert row["idempotency_key"] is None and row["sync_status"] == "synced"


def test_apply_then_500_faults_never_duplicate(app, sandbox, live):
    for n in range(5):
        local(app, make_employee, f"Faulty {n}")
    sandbox.set_faults(apply_then_500_rate=1.0)
    app.config["EXTERNAL_API_MAX_RETRIES"] = 0
    run(app, direction="push")
    sandbox.clear_faults()
    app.config["EXTERNAL_API_MAX_RETRIES"] = 3
    assert sandbox.wait_webhooks_idle(30)
    # a create the vendor refused with Retry-After (strict mode) is due only after it:
    # run until every record is synced
    wait_for(lambda: run(app)["status"] == "succeeded" and all(
        r["sync_status"] == "synced" for r in rows(app, "employees")), timeout=60, interval=0.2)
    assert len(sandbox.objects("employees")) == 5
    live_rows = rows(app, "employees")
    assert len(live_rows) == 5 and all(r["sync_status"] == "synced" for r in live_rows)
    assert sorted(r["external_id"] for r in live_rows) == sorted(
        o["id"] for o in sandbox.objects("employees"))


def test_vendor_422_marks_failed_then_retry_failed_after_fixing(app, client, sandbox,
                                                               admin_headers):
    evt = local(app, make_event, project_ref_num=700200, estimated_minutes=-5)
    result = run(app)
    assert result["status"] == "partial" and result["failed"] == 1
    row = one(app, "events", id=evt)
    assert row["sync_status"] == "failed"
    assert "estimated_minutes" in row["sync_error"] and "422" in row["sync_error"]
    assert result["errors"][0]["id"] == evt
    from models import Event, db

    def fix():
        db.session.get(Event, evt).estimated_minutes = 45  # fixed without mark_changed
        db.session.commit()

    db_call(app, fix)
    answer = client.post("/api/sync/retry_failed", headers=admin_headers)
    assert answer.status_code == 200 and answer.get_json() == {"retried": 1}
    assert one(app, "events", id=evt)["sync_status"] == "pending"
    assert run(app)["status"] == "succeeded"
    assert one(app, "events", id=evt)["sync_status"] == "synced"
    assert sandbox.objects("events")[0]["estimated_minutes"] == 45


def test_vendor_down_local_writes_succeed_and_converge_later(app, client, sandbox,
                                                             admin_headers):
    sandbox.stop()
    answer = client.post("/api/employees", json={"name": "Offline Olga"}, headers=admin_headers)
    assert answer.status_code == 201
    emp_id = answer.get_json()["id"]
    result = run(app)
    assert result["status"] == "partial"
    assert one(app, "employees", id=emp_id)["sync_status"] == "pending"
    health = client.get("/api/sync/health", headers=admin_headers)
    assert health.status_code == 503 and health.get_json()["api"]["reachable"] is False
    sandbox.start()
    result = run(app)
    assert result["status"] == "succeeded", result
    assert one(app, "employees", id=emp_id)["sync_status"] == "synced"
    assert [o["name"] for o in sandbox.objects("employees")] == ["Offline Olga"]


def test_rejected_key_fails_the_run_without_showing_the_key(app, sandbox):
    local(app, make_employee, "Keyless")
    app.config["EXTERNAL_API_KEY"] = "sk-wrong-991177"
    result = run(app)
    assert result["status"] == "failed"
    assert "refused the API key (401)" in result["message"]
    text = json.dumps(result)
    assert "sk-wrong-991177" not in text and API_KEY not in text


def test_transient_errors_back_off_and_keep_the_key(app, sandbox):
    emp = local(app, make_employee, "Retry Rita")
    sandbox.set_faults(error_rate=1.0)
    app.config["SYNC_BACKOFF_BASE_SECONDS"] = 60
    app.config["SYNC_BACKOFF_MAX_SECONDS"] = 3600
    run(app, direction="push")
    row = one(app, "employees", id=emp)
    key = row["idempotency_key"]
    assert row["sync_status"] == "pending" and row["sync_attempts"] == 1 and key
    assert db_call(app, lambda: _next_attempt(emp)) > datetime.now(timezone.utc) + timedelta(
        seconds=20)
    sandbox.clear_faults()
    requests = sandbox.stats()["requests"]
    run(app, direction="push", trigger="schedule")  # not due yet: an interval run sends nothing
    assert sandbox.stats()["requests"] == requests
    assert one(app, "employees", id=emp)["sync_status"] == "pending"
    result = run(app, direction="push")  # a manual run sends it at once
    assert result["status"] == "succeeded" and result["pushed"] == 1
    assert one(app, "employees", id=emp)["sync_status"] == "synced"
    assert [o["name"] for o in sandbox.objects("employees")] == ["Retry Rita"]


def test_manual_sync_in_an_outage_stops_after_one_request_then_sends_the_backlog(
        app, client, sandbox, admin_headers):
    """A waited "Sync now" during an outage gives up after one request's retries (not one
    per resource and record), partial with the reason; after it, the next manual run sends
    what waits out its backoff at once."""
    emp, evt, sched = local_graph(app)
    app.config.update(SYNC_BACKOFF_BASE_SECONDS=60, SYNC_BACKOFF_MAX_SECONDS=3600)
    sandbox.set_faults(error_rate=1.0, retry_after_rate=0.0)  # every attempt is retried
    answer = client.post("/api/sync/trigger", json={"wait": True}, headers=admin_headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    outage = answer.get_json()["run"]
    assert outage["status"] == "partial"
    assert "vendor is unavailable" in outage["message"] and "pulling employees" in outage["message"]
    assert [e["resource"] for e in outage["errors"]] == ["employees"]
    retries = app.config["EXTERNAL_API_MAX_RETRIES"]
    # The first page of each listing is asked for at once (three listings in flight), so the
    # run sends at most each listing's attempts plus one health probe, never one per record.
    sent = sandbox.stats()["requests"]
    assert (retries + 1) + 1 <= sent <= 3 * (retries + 1) + 1, (sent, outage)
    status = client.get("/api/sync/status", headers=admin_headers).get_json()
    assert status["last_run"]["id"] == outage["id"]

    # Vendor back, records backed off by an outage push (interval runs would wait 60 s):
    sandbox.clear_faults()
    run(app, direction="pull")
    sandbox.set_faults(error_rate=1.0)
    assert run(app, direction="push", trigger="schedule")["status"] == "partial"
    assert db_call(app, lambda: _next_attempt(emp)) > datetime.now(timezone.utc) + timedelta(
        seconds=20)
    sandbox.clear_faults()
    run(app, trigger="schedule")
    assert one(app, "employees", id=emp)["sync_status"] == "pending"  # still backing off
    answer = client.post("/api/sync/trigger", json={"wait": True}, headers=admin_headers)
    after = answer.get_json()["run"]
    assert after["status"] == "succeeded" and after["pushed"] >= 1, after
    assert all(one(app, r, id=i)["sync_status"] == "synced"
               for r, i in (("employees", emp), ("events", evt), ("schedules", sched)))


def test_a_record_the_vendor_fails_on_does_not_stop_the_run(app, sandbox, monkeypatch):
    """A 5xx about one record while the vendor's health check answers: that record backs
    off, the others are still sent in the same run."""
    import sync_engine
    from api_service import TransientError

    first = local(app, make_employee, "Poison Pete")
    second = local(app, make_employee, "Healthy Hana")
    real = sync_engine.push._push_upsert

    def push(ctx, resource, model, row):
        if row.id == first:
            raise TransientError("vendor bug on this record", status=500, code="internal_error")
        return real(ctx, resource, model, row)

    monkeypatch.setattr(sync_engine.push, "_push_upsert", push)
    result = run(app, direction="push")
    assert result["status"] == "partial" and result["pushed"] == 1
    assert "unavailable" not in (result["message"] or "")
    assert one(app, "employees", id=first)["sync_status"] == "pending"
    assert one(app, "employees", id=second)["sync_status"] == "synced"


def _next_attempt(emp_id):
    from models import Employee, db

    return db.session.get(Employee, emp_id).next_attempt_at


# ---------------------------------------------------------------------------
# Conflicts
# ---------------------------------------------------------------------------

def _synced_employee(app, sandbox, name="Both Sides"):
    emp = local(app, make_employee, name)
    run(app)
    return emp, one(app, "employees", id=emp)["external_id"]


def test_last_write_wins_remote_newer(app, sandbox):
    emp, ext = _synced_employee(app, sandbox)
    change(app, "employees", emp, name="Local Edit")
    time.sleep(0.01)
    sandbox.vendor_update("employees", ext, {"name": "Vendor Edit"})
    result = run(app)
    assert result["conflicts"] == 1 and "vendor change won" in result["errors"][0]["message"]
    row = one(app, "employees", id=emp)
    assert row["name"] == "Vendor Edit" and row["sync_status"] == "synced"
    assert sandbox.object("employees", ext)["name"] == "Vendor Edit"


def test_last_write_wins_local_newer_patches_over_the_vendor(app, sandbox):
    emp, ext = _synced_employee(app, sandbox)
    sandbox.vendor_update("employees", ext, {"name": "Vendor Edit"})
    time.sleep(0.01)
    change(app, "employees", emp, name="Local Edit")
    result = run(app)
    assert result["conflicts"] == 1 and "local change won" in result["errors"][0]["message"]
    assert sandbox.object("employees", ext)["name"] == "Local Edit"
    row = one(app, "employees", id=emp)
    assert row["sync_status"] == "synced" and row["remote_version"] == 3


def test_last_write_wins_412_on_push(app, sandbox):
    emp, ext = _synced_employee(app, sandbox)
    sandbox.vendor_update("employees", ext, {"email": "vendor@example.com"})
    time.sleep(0.01)
    change(app, "employees", emp, name="Local Edit")
    result = run(app, direction="push")  # no pull first: the PATCH meets a 412
    assert result["conflicts"] == 1
    vendor = sandbox.object("employees", ext)
    assert vendor["name"] == "Local Edit" and vendor["version"] == 3


def test_tombstone_against_a_newer_local_change_recreates_it(app, sandbox):
    emp, ext = _synced_employee(app, sandbox)
    sandbox.vendor_delete("employees", ext)
    time.sleep(0.01)
    change(app, "employees", emp, name="Still Needed")
    result = run(app)
    assert result["conflicts"] == 1
    row = one(app, "employees", id=emp)
    assert row["sync_status"] == "synced" and row["external_id"] != ext
    assert [o["name"] for o in sandbox.objects("employees")] == ["Still Needed"]


@pytest.mark.parametrize("sync_settings", [{"SYNC_CONFLICT_POLICY": "manual"}])
@pytest.mark.parametrize("keep", ["local", "remote"])
def test_manual_conflicts_wait_for_an_admin(app, client, sandbox, admin_headers,
                                            scheduler_headers, keep):
    emp, ext = _synced_employee(app, sandbox)
    change(app, "employees", emp, name="Local Edit")
    sandbox.vendor_update("employees", ext, {"name": "Vendor Edit"})
    result = run(app)
    assert result["status"] == "partial" and result["conflicts"] == 1
    row = one(app, "employees", id=emp)
    assert row["sync_status"] == "conflict" and row["name"] == "Local Edit"
    assert row["conflict_remote"]["name"] == "Vendor Edit"
    sandbox.vendor_update("employees", ext, {"name": "Vendor Edit 2"})
    run(app)  # pushes and pulls nothing more for it; only refreshes conflict_remote
    row = one(app, "employees", id=emp)
    assert row["conflict_remote"]["name"] == "Vendor Edit 2" and row["name"] == "Local Edit"
    assert sandbox.object("employees", ext)["name"] == "Vendor Edit 2"
    listing = client.get("/api/sync/conflicts", headers=scheduler_headers).get_json()
    [item] = listing["data"]
    assert item["fields"] == ["name"] and item["local"]["name"] == "Local Edit"
    assert item["remote"]["name"] == "Vendor Edit 2"
    url = f"/api/sync/conflicts/employees/{emp}/resolve"
    assert client.post(url, json={"keep": "local"}, headers=scheduler_headers).status_code == 403
    assert client.post(url, json={"keep": "both"}, headers=admin_headers).status_code == 422
    assert client.post("/api/sync/conflicts/employees/99999/resolve", json={"keep": "local"},
                       headers=admin_headers).status_code == 404
    answer = client.post(url, json={"keep": keep}, headers=admin_headers)
    assert answer.status_code == 200
    assert client.post(url, json={"keep": keep}, headers=admin_headers).status_code == 409
    run(app)
    expected = "Local Edit" if keep == "local" else "Vendor Edit 2"
    assert sandbox.object("employees", ext)["name"] == expected
    row = one(app, "employees", id=emp)
    assert row["name"] == expected and row["sync_status"] == "synced"


def test_duplicate_event_create_links_to_the_vendor_event(app, sandbox):
    vendor = vendor_event(sandbox, 700300, project_name="CORE - Vendor Name")
    time.sleep(0.01)
    evt = local(app, make_event, project_ref_num=700300, project_name="CORE - Local Name")
    result = run(app, direction="push")
    assert result["status"] == "partial" and result["conflicts"] == 1
    row = one(app, "events", id=evt)
    assert row["external_id"] == vendor["id"] and row["sync_status"] == "synced"
    assert len(sandbox.objects("events")) == 1
    assert sandbox.objects("events")[0]["project_name"] == "CORE - Local Name"


def test_schedule_create_against_a_vendor_schedule_links_and_resolves(app, sandbox):
    emp = local(app, make_employee, "Local Lou")
    evt = local(app, make_event, project_ref_num=700400, start_datetime=START)
    run(app)
    ext_evt = one(app, "events", id=evt)["external_id"]
    ext_emp = one(app, "employees", id=emp)["external_id"]
    vendor_sched = sandbox.vendor_create("schedules", {
        "event_id": ext_evt, "employee_id": ext_emp, "start_datetime": fmt(START)})
    time.sleep(0.01)

    def sched():
        from models import Employee, Event, db

        return make_schedule(db.session.get(Event, evt), db.session.get(Employee, emp),
                             START + timedelta(hours=3)).id

    sch = db_call(app, sched)
    result = run(app, direction="push")
    assert result["conflicts"] == 1
    assert one(app, "schedules", id=sch)["external_id"] == vendor_sched["id"]
    [vendor] = sandbox.objects("schedules")
    assert vendor["start_datetime"] == fmt(START + timedelta(hours=3))


# ---------------------------------------------------------------------------
# Lease, push soon
# ---------------------------------------------------------------------------


def test_an_expired_lease_of_a_crashed_holder_is_taken_over(app):
    import sync_engine
    from models import SyncLease, db

    def crashed():
        db.session.add(SyncLease(name="sync", owner="dead:1:x", run_id=None,
                                 expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
        db.session.commit()

    db_call(app, crashed)
    assert run(app)["status"] == "succeeded"
    assert db_call(app, lambda: db.session.get(SyncLease, "sync").owner) is None

    def alive():
        lease = db.session.get(SyncLease, "sync")
        lease.owner, lease.run_id = "other:2:y", 42
        lease.expires_at = datetime.now(timezone.utc) + timedelta(seconds=60)
        db.session.commit()

    db_call(app, alive)
    with pytest.raises(sync_engine.SyncInProgress) as info:
        run(app)
    assert info.value.run_id == 42


@pytest.mark.parametrize("sync_settings", [{"SYNC_PUSH_ON_CHANGE": True,
                                            "SYNC_PUSH_DELAY_SECONDS": 0.2}])
def test_local_changes_are_pushed_soon_in_one_coalesced_run(app, client, sandbox,
                                                           admin_headers):
    """Four changes ask for four pushes; they become one run however slow the machine is:
    while another holder keeps the lease, the pending push waits (and stays one)."""
    import sync_engine
    from models import SyncRun, db

    holder = "test:0:other-process"
    assert db_call(app, lambda: sync_engine.acquire_lease(holder, 600))
    try:
        for n in range(4):
            answer = client.post("/api/employees", json={"name": f"Soon {n}"},
                                 headers=admin_headers)
            assert answer.status_code == 201
    finally:
        db_call(app, lambda: sync_engine.release_lease(holder))
    wait_for(lambda: len(sandbox.objects("employees")) == 4, timeout=60)
    wait_for(lambda: all(r["sync_status"] == "synced" for r in rows(app, "employees")),
             timeout=60)
    wait_for(lambda: db_call(app, lambda: db.session.scalar(
        db.select(SyncRun.status).where(SyncRun.trigger == "change"))) != "running", timeout=60)
    triggers = db_call(app, lambda: list(db.session.scalars(db.select(SyncRun.trigger))))
    assert triggers == ["change"]


