"""The scheduler evaluates and delivers alerts after each run, on its own thread; runs and
vendor attempts are counted in the metrics."""
from __future__ import annotations

import pytest

from tests.helpers import API_KEY, Receiver, wait_for

pytestmark = pytest.mark.vendor_sync


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.close()


def _statuses(receiver: Receiver, alert: str) -> list[str]:
    return [b["status"] for b in receiver.bodies if b.get("alert") == alert]


def _metric(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_failing_sync_fires_one_alert_and_its_fix_resolves_it(app, sandbox, receiver):
    import sync_scheduler

    app.config.update(ALERT_WEBHOOK_URL=receiver.url, SYNC_ALERT_AFTER_FAILURES=3,
                      EXTERNAL_API_KEY="sk-wrong-key")
    state = sync_scheduler._state(app)
    failed_before = _metric("scheduler_sync_runs_total", status="failed")
    refused_before = _metric("scheduler_vendor_requests_total", method="GET", status="401")
    for _ in range(3):
        state._fire("pull")  # a soon-run, as after a webhook: refused (401)
    wait_for(lambda: _statuses(receiver, "sync_failing") == ["firing"], timeout=30,
             message="one firing notification")
    assert _metric("scheduler_sync_runs_total", status="failed") == failed_before + 3
    assert _metric("scheduler_vendor_requests_total", method="GET",
                   status="401") >= refused_before + 3
    app.config["EXTERNAL_API_KEY"] = API_KEY
    state._fire("pull")
    wait_for(lambda: _statuses(receiver, "sync_failing") == ["firing", "resolved"], timeout=30,
             message="one resolved notification")
    state._fire("pull")
    state.check_alerts()
    assert _statuses(receiver, "sync_failing") == ["firing", "resolved"]


def test_webhook_deliveries_are_counted(app, client, webhook_secret):
    from tests.helpers import signed

    before = _metric("scheduler_webhook_deliveries_total", outcome="rejected")
    raw, headers = signed("whsec_" + "A" * 44, {"type": "employee.created", "data": {"id": "x"}})
    assert client.post("/api/webhook/schedule_update", data=raw, headers=headers).status_code == 401
    assert _metric("scheduler_webhook_deliveries_total", outcome="rejected") == before + 1
