"""The in-process scheduler: one interval job, started only where it should run."""
from __future__ import annotations

import pytest

from tests.factories import make_employee
from tests.helpers import db_call, rows, wait_for

pytestmark = pytest.mark.vendor_sync


@pytest.fixture
def scheduled(app):
    import sync_scheduler

    app.testing = False  # start_scheduler refuses under TESTING
    app.config["SCHEDULER_ENABLED"] = True
    yield app
    sync_scheduler.stop_scheduler(app)
    app.testing = True


def test_scheduler_has_one_interval_job_and_a_next_run(scheduled, client, admin_headers):
    import sync_scheduler

    scheduler = sync_scheduler.start_scheduler(scheduled)
    assert scheduler is not None and scheduler.running
    assert sync_scheduler.start_scheduler(scheduled) is scheduler  # never twice
    [job] = scheduler.get_jobs()
    assert job.id == "vendor-sync" and job.max_instances == 1 and job.coalesce
    assert sync_scheduler.next_run_at(scheduled) is not None
    health = client.get("/api/sync/health", headers=admin_headers).get_json()
    assert health["scheduler"]["running"] is True and health["scheduler"]["next_run_at"]
    status = client.get("/api/sync/status", headers=admin_headers).get_json()
    assert status["next_run_at"] is not None


@pytest.mark.parametrize("sync_settings", [{"SYNC_PUSH_ON_CHANGE": True}])
def test_request_push_uses_the_scheduler_with_one_date_job(scheduled, sandbox):
    import sync_scheduler

    scheduler = sync_scheduler.start_scheduler(scheduled)
    db_call(scheduled, lambda: make_employee("Scheduled Push"))
    for _ in range(3):
        sync_scheduler.request_push(scheduled)
    assert [j.id for j in scheduler.get_jobs()].count("vendor-push-soon") == 1
    wait_for(lambda: len(sandbox.objects("employees")) == 1, timeout=10)
    wait_for(lambda: rows(scheduled, "employees")[0]["sync_status"] == "synced")


def test_scheduler_does_not_start_when_sync_is_off_or_under_testing(app):
    import sync_scheduler

    app.config["SCHEDULER_ENABLED"] = True
    assert sync_scheduler.start_scheduler(app) is None  # TESTING
    app.testing = False
    app.config["SYNC_ENABLED"] = False
    try:
        assert sync_scheduler.start_scheduler(app) is None
        sync_scheduler.request_push(app)  # does nothing with sync off
        assert sync_scheduler.next_run_at(app) is None
    finally:
        app.testing = True


def test_history_older_than_the_setting_is_pruned(app):
    """Webhook records and finished runs past SYNC_HISTORY_DAYS go; recent and running stay."""
    from datetime import datetime, timedelta, timezone

    import sync_engine
    from models import SyncRun, WebhookMessage, db

    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    with app.app_context():
        db.session.add_all([
            WebhookMessage(webhook_id="old", type="event.updated", outcome="applied", received_at=old),
            WebhookMessage(webhook_id="new", type="event.updated", outcome="applied", received_at=recent),
            SyncRun(status="succeeded", trigger="schedule", started_at=old, finished_at=old),
            SyncRun(status="running", trigger="schedule", started_at=old),
            SyncRun(status="partial", trigger="manual", started_at=recent, finished_at=recent),
        ])
        db.session.commit()
        assert sync_engine.prune_history(app, now=now) == {"webhooks": 1, "runs": 1}
        assert [m.webhook_id for m in db.session.scalars(db.select(WebhookMessage))] == ["new"]
        assert sorted(r.status for r in db.session.scalars(db.select(SyncRun))) == ["partial", "running"]
        # never below 2 days: a webhook id must outlive the vendor's 24 h of retries
        db.session.add(WebhookMessage(webhook_id="yesterday", type="event.updated",
                                      outcome="applied", received_at=now - timedelta(days=1)))
        db.session.commit()
        app.config["SYNC_HISTORY_DAYS"] = 0.5
        assert sync_engine.prune_history(app, now=now)["webhooks"] == 1  # only the 29-day one
        assert [m.webhook_id for m in db.session.scalars(db.select(WebhookMessage))] == ["yesterday"]
