"""Alerts (alerts.py): each condition fires once and resolves once, a local receiver
gets one POST for each, a failed POST is tried again later, a flapping sync never
fires, and two processes evaluating at once record one start."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

import alerts
from tests.helpers import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def conf(receiver):
    return {"SYNC_ALERT_AFTER_FAILURES": 3, "SYNC_ALERT_PENDING_MINUTES": 60,
            "ALERT_WEBHOOK_URL": receiver.url}


def add_runs(*statuses):
    from models import SyncRun, db, utcnow

    for status in statuses:
        db.session.add(SyncRun(status=status, finished_at=utcnow(), message=f"{status} run"))
    db.session.commit()


def test_a_failing_sync_fires_once_and_resolves_once(app, conf, receiver):
    with app.app_context():
        add_runs("failed", "partial")
        assert alerts.evaluate(conf) == {}
        add_runs("failed")
        assert alerts.evaluate(conf) == {"sync_failing": "firing"}
        assert [a.name for a in alerts.firing()] == ["sync_failing"]
        assert alerts.deliver(conf) == 1
        add_runs("failed")
        assert alerts.evaluate(conf) == {}  # still firing: no second start
        assert alerts.deliver(conf) == 0
        add_runs("succeeded")
        assert alerts.evaluate(conf) == {"sync_failing": "resolved"}
        assert alerts.deliver(conf) == 1
        assert alerts.firing() == []
    firing, resolved = receiver.bodies
    assert firing["status"] == "firing" and firing["alert"] == "sync_failing"
    assert "failed 3 runs in a row" in firing["text"] and firing["since"].endswith("Z")
    assert resolved["status"] == "resolved" and resolved["since"] == firing["since"]
    assert resolved["text"].startswith("Resolved: ")


def test_a_flapping_sync_never_fires(app, conf, receiver):
    with app.app_context():
        for _ in range(5):
            add_runs("failed", "failed", "succeeded")
            assert alerts.evaluate(conf) == {}
        assert alerts.deliver(conf) == 0
    assert receiver.bodies == []


def test_a_record_pending_too_long_fires_until_it_is_synced(app, conf, receiver):
    from models import db, utcnow
    from tests.factories import make_employee

    with app.app_context():
        employee = make_employee("Waits Long")
        assert alerts.evaluate(conf) == {}  # pending, but only just
        employee.updated_at = utcnow() - timedelta(minutes=61)
        db.session.commit()
        assert alerts.evaluate(conf) == {"pending_too_long": "firing"}
        employee.mark_synced()
        db.session.commit()
        assert alerts.evaluate(conf) == {"pending_too_long": "resolved"}
        assert alerts.deliver(conf) == 2
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]
    assert "waited 61 minutes" in receiver.bodies[0]["text"]


def test_held_deletions_fire_while_they_are_held(app, conf, receiver):
    from models import HeldDeletion, db
    from tests.factories import make_employee

    with app.app_context():
        employee = make_employee("Held One", external_id="emp-held-1")
        db.session.add(HeldDeletion(resource="employees", record_id=employee.id,
                                    external_id="emp-held-1"))
        db.session.commit()
        assert alerts.evaluate(conf) == {"deletions_held": "firing"}
        assert "1 employees" in alerts.firing()[0].text
        db.session.query(HeldDeletion).delete()
        db.session.commit()
        assert alerts.evaluate(conf) == {"deletions_held": "resolved"}


@pytest.mark.parametrize("offset", [90.0, -90.0])
def test_a_skewed_vendor_clock_fires(app, conf, offset):
    with app.app_context():
        assert alerts.evaluate(conf, clock_offset_s=offset) == {"vendor_clock_skew": "firing"}
        assert ("ahead of" if offset > 0 else "behind") in alerts.firing()[0].text
        assert alerts.evaluate(conf, clock_offset_s=offset / 2) == {"vendor_clock_skew": "resolved"}
        assert alerts.evaluate(conf, clock_offset_s=None) == {}


def test_a_failed_post_is_tried_again_later_in_order(app, conf, receiver):
    from models import utcnow

    receiver.fail_next = 1
    with app.app_context():
        add_runs("failed", "failed", "failed")
        alerts.evaluate(conf)
        add_runs("succeeded")
        alerts.evaluate(conf)
        assert alerts.deliver(conf) == 0  # the receiver said 503: nothing after it goes either
        assert alerts.deliver(conf) == 0  # not due yet
        later = utcnow() + timedelta(seconds=alerts.RETRY_BASE_S + 1)
        assert alerts.deliver(conf, now=lambda: later) == 2
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]


def test_an_unreachable_receiver_does_not_raise(app, conf):
    conf = dict(conf, ALERT_WEBHOOK_URL="http://127.0.0.1:9/closed")
    with app.app_context():
        add_runs("failed", "failed", "failed")
        alerts.evaluate(conf)
        assert alerts.deliver(conf, timeout=2) == 0


def test_without_a_webhook_url_alerts_only_show(app, conf, receiver):
    conf = dict(conf, ALERT_WEBHOOK_URL=None)
    with app.app_context():
        add_runs("failed", "failed", "failed")
        assert alerts.evaluate(conf) == {"sync_failing": "firing"}
        assert alerts.deliver(conf) == 0
    assert receiver.bodies == []


def test_two_evaluators_at_once_record_one_start(app, conf):
    from models import AlertNotification, db

    with app.app_context():
        add_runs("failed", "failed", "failed")
        alerts.evaluate({**conf, "SYNC_ALERT_AFTER_FAILURES": 99})  # the rows exist, nothing fires
    barrier = threading.Barrier(2)
    errors = []

    def evaluate():
        try:
            with app.app_context():
                barrier.wait(10)
                alerts.evaluate(conf)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=evaluate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AlertNotification)) == 1


def test_admins_see_a_banner_on_every_page_while_an_alert_fires(app, conf, client, auth):
    with app.app_context():
        add_runs("failed", "failed", "failed")
        alerts.evaluate(conf)
    auth.login()
    for path in ("/", "/sync/admin", "/employees", "/account/tokens"):
        html = client.get(path).get_data(as_text=True)
        assert 'class="alert-banner"' in html and "failed 3 runs in a row" in html, path
    auth.logout()
    auth.login_scheduler()
    assert 'class="alert-banner"' not in client.get("/").get_data(as_text=True)
    with app.app_context():
        add_runs("succeeded")
        alerts.evaluate(conf)
    auth.logout()
    auth.login()
    assert 'class="alert-banner"' not in client.get("/sync/admin").get_data(as_text=True)
