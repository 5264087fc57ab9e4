"""The vendor's clock runs 90 s off ours: last-write-wins still follows real time.

The sandbox's `set_clock_skew` moves the clock that stamps `updated_at` and `Date`; the
engine corrects the vendor's stamps by the offset it measured (or, in a process that never
called the vendor, the one shared through the `vendor_clock` table)."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest

from tests.factories import make_employee
from tests.helpers import db_call, one, run, signed

pytestmark = pytest.mark.vendor_sync

GAP = 1.5  # seconds between the two changes: far below the 90 s skew, above the offset's error


def _synced_employee(app) -> tuple[int, str]:
    """A local employee pushed to the vendor: (local id, vendor id)."""
    emp = db_call(app, lambda: make_employee("Skewed Sam").id)
    run(app)
    return emp, one(app, "employees", id=emp)["external_id"]


def _change_locally(app, emp: int, name: str) -> None:
    """A local user's change (pending, stamped with our clock)."""
    from models import Employee, db

    def do():
        row = db.session.get(Employee, emp)
        row.name = name
        row.mark_changed()
        db.session.commit()
    db_call(app, do)


def _both_changes(app, sandbox, emp: int, ext: str, vendor_first: bool) -> str:
    """Change the record on both sides, GAP apart; the name that must win (the later)."""
    if vendor_first:
        sandbox.vendor_update("employees", ext, {"name": "Vendor Edit"})
        time.sleep(GAP)
        _change_locally(app, emp, "Local Edit")
        return "Local Edit"
    _change_locally(app, emp, "Local Edit")
    time.sleep(GAP)
    sandbox.vendor_update("employees", ext, {"name": "Vendor Edit"})
    return "Vendor Edit"


def _forget_own_measurement(app) -> None:
    """This process never called the vendor: only the shared table knows the offset."""
    import vendor_pacing
    from sync_engine import clock

    key = app.config["EXTERNAL_API_BASE_URL"].rstrip("/").lower()
    vendor_pacing._CLOCKS.pop(key, None)
    clock._cache.clear()


@pytest.mark.parametrize("skew", [-90, 90])
@pytest.mark.parametrize("vendor_first", [False, True], ids=["vendor_later", "local_later"])
def test_the_later_change_wins_a_pull_whatever_the_vendors_clock(app, sandbox, skew,
                                                                 vendor_first):
    sandbox.set_clock_skew(skew)
    emp, ext = _synced_employee(app)
    winner = _both_changes(app, sandbox, emp, ext, vendor_first)
    result = run(app)
    assert result["conflicts"] == 1
    assert one(app, "employees", id=emp)["name"] == winner
    assert sandbox.object("employees", ext)["name"] == winner


@pytest.mark.parametrize("skew", [-90, 90])
@pytest.mark.parametrize("vendor_first", [False, True], ids=["vendor_later", "local_later"])
def test_the_later_change_wins_a_webhook_in_a_process_that_never_called_the_vendor(
        app, client, sandbox, webhook_secret, skew, vendor_first):
    sandbox.set_clock_skew(skew)
    emp, ext = _synced_employee(app)  # the run shares the offset in vendor_clock
    stored = db_call(app, lambda: __import__("sync_engine").clock.stored_row(app))
    assert stored is not None and stored["offset_s"] == pytest.approx(skew, abs=1.5)
    _forget_own_measurement(app)
    winner = _both_changes(app, sandbox, emp, ext, vendor_first)
    body = {"type": "employee.updated", "timestamp": datetime.now(timezone.utc).isoformat(),
            "data": sandbox.object("employees", ext)}
    raw, headers = signed(webhook_secret, json.dumps(body, default=str))
    answer = client.post("/api/webhook/schedule_update", data=raw, headers=headers)
    assert answer.status_code == 200
    assert one(app, "employees", id=emp)["name"] == winner


def test_health_shows_the_offset(app, client, auth, sandbox):
    sandbox.set_clock_skew(-90)
    auth.login()
    run(app)
    api = client.get("/api/sync/health").get_json()["api"]
    assert api["clock_offset_s"] == pytest.approx(-90, abs=1.5)
    page = client.get("/sync/admin").get_data(as_text=True)
    assert "data-clock-offset" in page and "-90" in page
