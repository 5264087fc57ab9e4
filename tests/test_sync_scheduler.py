"""The in-process scheduler: one interval job, started only where it should run."""
from __future__ import annotations

import pytest

import sync_scheduler
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
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"vendor-sync", "vendor-sync-first"}
    job = jobs["vendor-sync"]
    assert job.max_instances == 1 and job.coalesce
    # every process fires on the same wall-clock ticks: multiples of the interval (15 min)
    assert job.next_run_time.minute % 15 == 0 and job.next_run_time.second == 0
    first = jobs["vendor-sync-first"].next_run_time  # SYNC_FIRST_RUN_DELAY_SECONDS after start
    assert sync_scheduler.next_run_at(scheduled) == min(first, job.next_run_time)
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
    assert [j.id.startswith("vendor-push-soon") for j in scheduler.get_jobs()].count(True) == 1
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


def test_ticks_are_the_same_wall_clock_intervals_everywhere():
    from datetime import datetime, timezone

    moment = datetime(2026, 12, 4, 17, 7, 59, 999999, tzinfo=timezone.utc)
    assert sync_scheduler.current_tick(15, moment) == datetime(2026, 12, 4, 17, 0,
                                                               tzinfo=timezone.utc)
    assert sync_scheduler.current_tick(0.05, moment) == datetime(2026, 12, 4, 17, 7, 57,
                                                                 tzinfo=timezone.utc)
    boundary = datetime(2026, 12, 4, 17, 15, tzinfo=timezone.utc)
    assert sync_scheduler.current_tick(15, boundary) == boundary


def test_a_tick_taken_by_another_process_records_nothing(app, sandbox):
    """Two processes' interval jobs fire for one tick: the second finds it taken, no row."""
    import sync_engine
    from models import SyncRun, db

    tick = sync_scheduler.current_tick(15)
    with app.app_context():
        first = sync_engine.run_sync(app, trigger="schedule", tick_at=tick)
        assert first.status == "succeeded" and first.tick_at == tick
        with pytest.raises(sync_engine.TickTaken):
            sync_engine.run_sync(app, trigger="schedule", tick_at=tick)
        assert db.session.scalar(db.select(db.func.count()).select_from(SyncRun)) == 1
        assert sync_engine.lease_holder_run_id() is None  # the lease was not kept


def test_a_tick_claimed_in_a_race_records_one_run(app, sandbox, monkeypatch):
    """Past the early check (both saw the tick free): the unique tick_at keeps one run."""
    import sync_engine
    from models import SyncRun, db

    tick = sync_scheduler.current_tick(15)
    with app.app_context():
        sync_engine.run_sync(app, trigger="schedule", tick_at=tick)
        monkeypatch.setattr(sync_engine.runs, "_tick_taken", lambda tick_at: False)
        with pytest.raises(sync_engine.TickTaken):
            sync_engine.run_sync(app, trigger="schedule", tick_at=tick)
        assert [r.tick_at for r in db.session.scalars(db.select(SyncRun))] == [tick]
        assert sync_engine.lease_holder_run_id() is None


def test_an_interval_run_waits_within_its_tick_for_a_run_in_progress(app, sandbox, monkeypatch):
    """A manual run holds the lease when the tick fires: the tick's run follows it."""
    import threading

    import sync_engine
    from models import SyncRun, db

    tries = []
    real = sync_engine.acquire_lease
    monkeypatch.setattr(sync_engine.runs, "acquire_lease",  # where start_run looks it up
                        lambda *args, **kwargs: tries.append(1) or real(*args, **kwargs))
    with app.app_context():
        assert real("manual-run-elsewhere", 600)
    job = threading.Thread(target=app.extensions["sync_scheduler"]._scheduled_run)
    job.start()
    wait_for(lambda: len(tries) >= 2, message="the interval job to try twice")
    with app.app_context():
        sync_engine.release_lease("manual-run-elsewhere")
    job.join(timeout=30)
    with app.app_context():
        [recorded] = db.session.scalars(db.select(SyncRun)).all()
        assert recorded.trigger == "schedule" and recorded.status == "succeeded"
        assert recorded.tick_at == sync_scheduler.current_tick(
            app.config["SYNC_INTERVAL_MINUTES"], recorded.started_at)


def test_history_older_than_the_setting_is_pruned(app):
    """Webhook records, retired vendor ids and finished runs past SYNC_HISTORY_DAYS go;
    recent and running stay."""
    from datetime import datetime, timedelta, timezone

    import sync_engine
    from models import RetiredVendorId, SyncRun, WebhookMessage, db

    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    with app.app_context():
        db.session.add_all([
            WebhookMessage(webhook_id="old", type="event.updated", outcome="applied", received_at=old),
            WebhookMessage(webhook_id="new", type="event.updated", outcome="applied", received_at=recent),
            SyncRun(status="succeeded", trigger="schedule", started_at=old, finished_at=old),
            SyncRun(status="running", trigger="schedule", started_at=old),
            SyncRun(status="partial", trigger="manual", started_at=recent, finished_at=recent),
            RetiredVendorId(resource="events", external_id="evt_old", retired_at=old),
            RetiredVendorId(resource="events", external_id="evt_new", retired_at=recent),
        ])
        db.session.commit()
        assert sync_engine.prune_history(app, now=now) == {"webhooks": 1, "runs": 1,
                                                           "retired_ids": 1,
                                                           "record_history": 0}
        assert db.session.scalars(db.select(RetiredVendorId.external_id)).all() == ["evt_new"]
        assert [m.webhook_id for m in db.session.scalars(db.select(WebhookMessage))] == ["new"]
        assert sorted(r.status for r in db.session.scalars(db.select(SyncRun))) == ["partial", "running"]
        # never below 2 days: a webhook id must outlive the vendor's 24 h of retries
        db.session.add(WebhookMessage(webhook_id="yesterday", type="event.updated",
                                      outcome="applied", received_at=now - timedelta(days=1)))
        db.session.commit()
        app.config["SYNC_HISTORY_DAYS"] = 0.5
        assert sync_engine.prune_history(app, now=now)["webhooks"] == 1  # only the 29-day one
        assert [m.webhook_id for m in db.session.scalars(db.select(WebhookMessage))] == ["yesterday"]


def test_a_local_change_reaches_the_scheduler_of_its_own_app_only(app, database_url,
                                                                   monkeypatch):
    """models.notify_local_change sends `models.local_change` with the app as sender; each
    app's SyncScheduler is connected for its own app (models import nothing of the sync)."""
    import models
    import sync_engine
    from tests.conftest import make_app

    other = make_app(database_url, SYNC_ENABLED=True)
    asked = []
    for each in (app, other):
        scheduler = each.extensions[sync_engine.SCHEDULER_EXTENSION]
        monkeypatch.setattr(scheduler, "request",
                            lambda kind, each=each: asked.append((each, kind)))
    # the bound method connected by init_app calls the patched request
    assert models.local_change.has_receivers_for(app)
    with app.app_context():
        models.notify_local_change()
    assert asked == [(app, "push")]
    with other.app_context():
        models.notify_local_change()
    assert asked == [(app, "push"), (other, "push")]
