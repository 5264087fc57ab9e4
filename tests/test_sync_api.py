"""The sync API (sync_api.py) over HTTP: the webhook receiver (/api/webhook/schedule_update:
signatures, ordering, duplicates, 503 when sync is off, the admin's log of deliveries) and
/api/sync/* (trigger, roles and validation, status and health).  The engine behind them is
in test_sync_engine.py and test_sync_engine_*.py."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.factories import make_employee
from tests.helpers import START, db_call, fmt, one, rows, run, signed, vendor_employee, wait_for
from tests.test_sync_engine import local

pytestmark = pytest.mark.vendor_sync


# ---------------------------------------------------------------------------
# Webhook receiver
# ---------------------------------------------------------------------------

def test_webhook_signature_timestamp_and_body_checks(app, client, webhook_secret):
    url = "/api/webhook/schedule_update"
    message = {"type": "employee.created", "timestamp": fmt(START),
               "data": {"id": "emp_x1", "name": "Sig Ned", "email": None, "active": True,
                        "version": 1, "updated_at": "2026-11-25T14:30:00Z"}}
    raw, headers = signed(webhook_secret, message)
    bad = dict(headers, **{"webhook-signature": signed(webhook_secret, message, "other")[1][
        "webhook-signature"]})
    assert client.post(url, data=raw, headers=bad).status_code == 401
    assert client.post(url, data=raw, headers={"Content-Type": "application/json"}).status_code \
        == 401
    stale = signed(webhook_secret, message, when=datetime.now(timezone.utc) - timedelta(minutes=6))
    assert client.post(url, data=stale[0], headers=stale[1]).status_code == 401
    for not_a_message in ({"type": "employee.renamed", "data": {"id": "x"}},
                          {"type": "employee.created", "data": "x"},
                          {"type": "invoice.created", "data": {"id": "x"}}, "[1, 2]"):
        body = signed(webhook_secret, not_a_message)
        assert client.post(url, data=body[0], headers=body[1]).status_code == 400
    assert rows(app, "employees") == []
    first = client.post(url, data=raw, headers=headers)
    assert first.status_code == 200 and first.get_json()["outcome"] == "applied"
    before = rows(app, "employees")
    repeat = client.post(url, data=raw, headers=headers)
    assert repeat.status_code == 200 and repeat.get_json()["outcome"] == "duplicate"
    assert rows(app, "employees") == before


def test_webhooks_late_older_versions_never_overwrite(app, client, webhook_secret):
    url = "/api/webhook/schedule_update"

    def msg(version, name, kind="updated"):
        return {"type": f"employee.{kind}", "timestamp": fmt(START),
                "data": {"id": "emp_late", "name": name, "email": None, "active": True,
                         "version": version, "updated_at": fmt(START + timedelta(minutes=version))}}

    for version, name, kind, outcome in ((3, "Third", "updated", "applied"),
                                         (1, "First", "created", "stale"),
                                         (2, "Second", "updated", "stale")):
        raw, headers = signed(webhook_secret, msg(version, name, kind))
        answer = client.post(url, data=raw, headers=headers)
        assert answer.status_code == 200 and answer.get_json()["outcome"] == outcome
    row = one(app, "employees", external_id="emp_late")
    assert row["name"] == "Third" and row["remote_version"] == 3
    tomb = {"type": "employee.deleted", "timestamp": fmt(START),
            "data": {"id": "emp_late", "deleted": True, "version": 2, "updated_at": fmt(START)}}
    raw, headers = signed(webhook_secret, tomb)
    assert client.post(url, data=raw, headers=headers).get_json()["outcome"] == "stale"
    assert one(app, "employees", external_id="emp_late")["deleted_at"] is None


def test_a_delete_that_overtakes_the_create_of_an_object_new_here_makes_no_record(
        app, client, webhook_secret):
    """The vendor created then deleted an object; its messages arrive out of order, the
    delete first: the late create is older than the deletion, so nothing appears here."""
    url = "/api/webhook/schedule_update"
    data = {"id": "emp_brief", "name": "Brief", "email": None, "active": True, "version": 1,
            "updated_at": fmt(START)}
    tomb = {"id": "emp_brief", "deleted": True, "version": 2,
            "updated_at": fmt(START + timedelta(minutes=1))}
    for kind, body, outcome in (("deleted", tomb, "stale"), ("created", data, "stale")):
        raw, headers = signed(webhook_secret, {"type": f"employee.{kind}",
                                               "timestamp": fmt(START), "data": body})
        answer = client.post(url, data=raw, headers=headers)
        assert answer.status_code == 200 and answer.get_json()["outcome"] == outcome
    assert rows(app, "employees", include_deleted=True) == []


def test_a_late_webhook_never_brings_back_a_deletion_found_by_a_full_listing(
        app, client, sandbox, webhook_secret):
    """The vendor changed then deleted an employee; a stale token made the app find the
    deletion by its absence from a full listing (no tombstone, so no version).  The
    change's webhook, delivered late, is older than the deletion: it must not revive it."""
    emp = vendor_employee(sandbox, "Gone Later")
    assert run(app, resources=["employees"])["status"] == "succeeded"
    changed = sandbox.vendor_update("employees", emp["id"], {"name": "Changed Then Gone"})
    sandbox.vendor_delete("employees", emp["id"])  # no webhook URL yet: nobody is told
    sandbox.expire_sync_tokens()
    assert run(app, resources=["employees"])["status"] == "succeeded"
    assert one(app, "employees", external_id=emp["id"])["deleted_at"] is not None
    raw, headers = signed(webhook_secret, {"type": "employee.updated", "timestamp": fmt(START),
                                           "data": changed})
    answer = client.post("/api/webhook/schedule_update", data=raw, headers=headers)
    assert answer.status_code == 200 and answer.get_json()["outcome"] == "deferred"
    wait_for(lambda: db_call(app, _webhook_pull_finished), timeout=60,
             message="the pull the webhook asked for")
    row = one(app, "employees", external_id=emp["id"])
    assert row["deleted_at"] is not None and row["name"] == "Gone Later"
    assert rows(app, "employees") == []


def _webhook_pull_finished() -> bool:
    from models import SyncRun, db

    return db.session.scalar(db.select(SyncRun.status).where(SyncRun.trigger == "webhook")) \
        not in (None, "running")


@pytest.mark.parametrize("mode", ["duplicate", "reorder"])
def test_duplicated_and_reordered_vendor_webhooks_converge(app, sandbox, live, mode):
    sandbox.configure_webhooks(mode=mode)
    emp = vendor_employee(sandbox, "V0")
    for n in range(1, 6):
        sandbox.vendor_update("employees", emp["id"], {"name": f"V{n}"})
    assert sandbox.wait_webhooks_idle(10)
    row = wait_for(lambda: one(app, "employees", external_id=emp["id"]))
    assert row["name"] == "V5" and row["remote_version"] == 6
    assert len(rows(app, "employees")) == 1


def test_webhook_answers_503_when_sync_is_off(app, client, webhook_secret):
    app.config["SYNC_ENABLED"] = False
    raw, headers = signed(webhook_secret, {"type": "employee.created", "data": {"id": "e"}})
    answer = client.post("/api/webhook/schedule_update", data=raw, headers=headers)
    assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "sync_disabled"


def test_rejected_and_repeated_deliveries_are_logged_for_the_admin(app, client, webhook_secret,
                                                                    auth):
    """A bad signature or a repeat is visible on /sync/admin; the real message still applies."""
    from models import WebhookMessage, db

    url = "/api/webhook/schedule_update"
    message = {"type": "employee.created", "timestamp": fmt(START),
               "data": {"id": "emp_log", "name": "Logged", "email": None, "active": True,
                        "version": 1, "updated_at": "2026-11-25T14:30:00Z"}}
    raw, headers = signed(webhook_secret, message, msg_id="msg_logged")
    forged = dict(headers, **{"webhook-signature": "v1,AAAA"})
    assert client.post(url, data=raw, headers=forged).status_code == 401
    assert client.post(url, data=raw, headers=headers).get_json()["outcome"] == "applied"
    assert client.post(url, data=raw, headers=headers).get_json()["outcome"] == "duplicate"
    outcomes = db_call(app, lambda: sorted(
        (m.outcome, m.webhook_id.split("#")[0]) for m in db.session.scalars(
            db.select(WebhookMessage))))
    assert outcomes == [("applied", "msg_logged"), ("duplicate", "msg_logged"),
                        ("rejected", "invalid_signature")]  # rejections: one row per reason
    auth.login()
    page = client.get("/sync/admin").get_data(as_text=True)
    assert "rejected" in page and "verification failed" in page and "msg_logged" in page
    assert one(app, "employees", external_id="emp_log")["name"] == "Logged"


# ---------------------------------------------------------------------------
# /api/sync/* routes
# ---------------------------------------------------------------------------

def test_second_trigger_during_a_run_is_409(app, client, sandbox, admin_headers):
    for n in range(3):
        local(app, make_employee, f"Slow {n}")
    sandbox.hold()  # the run waits on its first vendor request until release()
    try:
        first = client.post("/api/sync/trigger", json={"direction": "push"},
                            headers=admin_headers)
        assert first.status_code == 202
        run_id = first.get_json()["run"]["id"]
        assert first.get_json()["run"]["status"] == "running"
        second = client.post("/api/sync/trigger", headers=admin_headers)
    finally:
        sandbox.release()
    assert second.status_code == 409
    body = second.get_json()
    assert body["error"]["code"] == "sync_in_progress"
    assert body["error"]["details"] == {"run_id": run_id} and body["run"]["id"] == run_id
    done = wait_for(lambda: client.get(f"/api/sync/runs/{run_id}", headers=admin_headers)
                    .get_json()["status"] != "running", timeout=60)
    assert done
    final = client.post("/api/sync/trigger", json={"wait": True}, headers=admin_headers)
    assert final.status_code == 200 and final.get_json()["run"]["status"] == "succeeded"
    runs = client.get("/api/sync/runs?per_page=1", headers=admin_headers).get_json()
    assert runs["total"] == 2 and runs["data"][0]["id"] == final.get_json()["run"]["id"]


def test_trigger_validation_and_roles(app, client, admin_headers, scheduler_headers):
    from tests.conftest import AuthActions

    nobody = AuthActions.basic("nobody", "wrong-password")
    assert client.post("/api/sync/trigger", headers=nobody).status_code == 401
    assert client.get("/api/sync/status").status_code == 401
    for path in ("/api/sync/trigger", "/api/sync/retry_failed",
                 "/api/sync/conflicts/employees/1/resolve"):
        assert client.post(path, json={}, headers=scheduler_headers).status_code == 403
    for body in ({"resources": ["invoices"]}, {"direction": "sideways"}, {"resources": "events"}):
        answer = client.post("/api/sync/trigger", json=body, headers=admin_headers)
        assert answer.status_code == 422, body
    assert client.get("/api/sync/conflicts", headers=scheduler_headers).status_code == 200
    assert client.get("/api/sync/runs", headers=scheduler_headers).status_code == 200
    app.config["SYNC_ENABLED"] = False
    off = client.post("/api/sync/trigger", headers=admin_headers)
    assert off.status_code == 409 and off.get_json()["error"]["code"] == "sync_disabled"


def test_status_and_health(app, client, sandbox, admin_headers):
    local(app, make_employee, "Counted")
    status = client.get("/api/sync/status", headers=admin_headers).get_json()
    assert status["enabled"] is True and status["running"] is False
    assert status["policy"] == "last_write_wins" and status["last_run"] is None
    assert status["counts"]["employees"] == {"synced": 0, "pending": 1, "failed": 0,
                                             "conflict": 0}
    assert client.get("/api/sync/health").get_json() == {"status": "ok"}
    run(app)
    detailed = client.get("/api/sync/health", headers=admin_headers).get_json()
    assert detailed["status"] == "ok" and detailed["api"]["reachable"] is True
    assert detailed["database"] == {"ok": True} and detailed["scheduler"]["running"] is False
    requests = sandbox.stats()["requests"]
    client.get("/api/sync/health", headers=admin_headers)
    assert sandbox.stats()["requests"] == requests  # cached
    status = client.get("/api/sync/status", headers=admin_headers).get_json()
    assert status["counts"]["employees"]["synced"] == 1
    assert status["last_run"]["status"] == "succeeded"
