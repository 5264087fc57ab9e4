"""The sync under load: pushes soon after changes never get lost, racing webhooks link once.

Conditions are waited on with generous bounds; nothing here asserts a duration."""
from __future__ import annotations

import threading

import pytest

from tests.helpers import db_call, rows, wait_for

pytestmark = pytest.mark.vendor_sync

WRITERS, EACH = 4, 12


@pytest.fixture
def scheduled(app):
    """The app with its APScheduler running (soon-runs as date jobs), pushes on change."""
    import sync_scheduler

    app.testing = False  # start_scheduler refuses under TESTING
    app.config.update(SCHEDULER_ENABLED=True, SYNC_PUSH_ON_CHANGE=True,
                      SYNC_PUSH_DELAY_SECONDS=0.05, SYNC_FIRST_RUN_DELAY_SECONDS=3600)
    sync_scheduler.start_scheduler(app)
    yield app
    sync_scheduler.stop_scheduler(app)
    app.testing = True


def _writer(app, headers: dict, first: int, made: list) -> None:
    """Create EACH employees over the JSON API, one after another."""
    client = app.test_client()
    for n in range(first, first + EACH):
        answer = client.post("/api/employees", json={"name": f"Load {n}"}, headers=headers)
        assert answer.status_code == 201, answer.get_data(as_text=True)
        made.append(answer.get_json()["id"])


def _vendor_names(sandbox) -> set:
    return {o["name"] for o in sandbox.objects("employees")}


def test_every_change_written_during_pushes_reaches_the_vendor(scheduled, sandbox,
                                                               admin_headers):
    sandbox.set_faults(latency_ms=100)
    made: list = []
    threads = [threading.Thread(target=_writer, args=(scheduled, admin_headers, w * EACH, made))
               for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == WRITERS * EACH
    wanted = {f"Load {n}" for n in range(WRITERS * EACH)}
    wait_for(lambda: wanted <= _vendor_names(sandbox), timeout=90, interval=0.2,
             message="every employee written under load at the vendor")
    client = scheduled.test_client()
    for n, record_id in enumerate(made[:5]):  # then single edits, each on its own
        answer = client.patch(f"/api/employees/{record_id}", json={"name": f"Edit {n}"},
                              headers=admin_headers)
        assert answer.status_code == 200
        wait_for(lambda: f"Edit {n}" in _vendor_names(sandbox), timeout=30, interval=0.1,
                 message=f"single edit {n} at the vendor")
    wait_for(lambda: all(r["sync_status"] == "synced" for r in rows(scheduled, "employees")),
             timeout=30, interval=0.1, message="every record synced")


def test_a_soon_run_skipped_by_the_scheduler_still_pushes(scheduled, sandbox, admin_headers):
    """The job of a soon-run that never runs (skipped, or refused) is re-armed by the next
    change once its mark is stale: a lost job never stops this process's pushes."""
    import sync_scheduler

    state = sync_scheduler._state(scheduled)
    with state._lock:  # a mark whose job was lost long ago
        state._pending["push"] = -1e9
    client = scheduled.test_client()
    answer = client.post("/api/employees", json={"name": "After A Lost Job"},
                         headers=admin_headers)
    assert answer.status_code == 201
    wait_for(lambda: "After A Lost Job" in _vendor_names(sandbox), timeout=30, interval=0.1)
    assert db_call(scheduled, lambda: True)


# -- a vendor object arriving twice at once (two workers) ----------------------------------

RACERS = 4


def _racing_deliveries(app, secret: str, message: dict) -> list[int]:
    """Deliver `message` RACERS times at once (each its own webhook-id and client): the
    status codes."""
    import json as _json

    from tests.helpers import signed

    barrier, codes = threading.Barrier(RACERS), []

    def deliver(n: int) -> None:
        client = app.test_client()
        raw, headers = signed(secret, _json.dumps(message, default=str), msg_id=f"msg_race_{n}")
        barrier.wait(timeout=10)
        codes.append(client.post("/api/webhook/schedule_update", data=raw,
                                 headers=headers).status_code)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def test_a_vendor_schedule_delivered_by_racing_workers_links_once(app, sandbox, webhook_secret,
                                                                  monkeypatch):
    """Workers in separate processes share no lock: each looks the object up, finds nothing
    and inserts it; the unique external_id refuses all but one, and those answer 2xx too."""
    import contextlib

    from sync_engine import webhooks
    from tests.helpers import one, run, vendor_employee, vendor_event

    monkeypatch.setattr(webhooks, "apply_lock", contextlib.nullcontext())  # as across processes
    event, employee = vendor_event(sandbox, 4242), vendor_employee(sandbox, "Rae Race")
    run(app)
    schedule = sandbox.vendor_create("schedules", {"event_id": event["id"],
                                                   "employee_id": employee["id"],
                                                   "start_datetime": event["start_datetime"]})
    message = {"type": "schedule.created", "timestamp": schedule["updated_at"],
               "data": sandbox.object("schedules", schedule["id"])}
    codes = _racing_deliveries(app, webhook_secret, message)
    assert all(200 <= code < 300 for code in codes), codes
    linked = [r for r in rows(app, "schedules", include_deleted=True)
              if r["external_id"] == schedule["id"]]
    assert len(linked) == 1 and one(app, "schedules", external_id=schedule["id"])
