"""A run far longer than the lease's TTL keeps its lease while it lives, and loses it at once
when killed.

A subprocess runs a sync against a sandbox that answers each request after longer than the
TTL (3 s); while it lives no run starts here, however many times one is asked for; after
`kill -9` one starts here without waiting for the TTL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import API_KEY, db_call, rows, vendor_employee, wait_for

pytestmark = pytest.mark.vendor_sync

ROOT = Path(__file__).resolve().parent.parent
TTL, RENEW = 3.0, 1.0
LATENCY_MS = 4000  # each request outlasts the TTL: only renewals keep the lease
WATCH_SECONDS = 3 * TTL  # how long the holder is watched (each try is a condition checked)

HOLDER = textwrap.dedent("""
    import sys
    from tests.conftest import make_app
    import sync_engine

    app = make_app(sys.argv[1], SYNC_ENABLED=True, EXTERNAL_API_BASE_URL=sys.argv[2],
                   EXTERNAL_API_KEY=sys.argv[3], EXTERNAL_API_TIMEOUT_SECONDS=300,
                   EXTERNAL_API_RATE_LIMIT=0, SYNC_LEASE_TTL_SECONDS=%r,
                   SYNC_LEASE_RENEW_SECONDS=%r, SYNC_PAGE_SIZE=1)
    with app.app_context():
        sync_engine.run_sync(app)
""" % (TTL, RENEW))


@pytest.fixture
def sync_settings():
    return {"SYNC_LEASE_TTL_SECONDS": TTL, "SYNC_LEASE_RENEW_SECONDS": RENEW}


def _holder_run(app, pid: int):
    """The run id the subprocess's lease names, once it holds it."""
    from models import SyncLease, db

    def read():
        row = db.session.get(SyncLease, "sync")
        return row.run_id if row is not None and row.holder_pid == pid and row.run_id else None
    return db_call(app, read)


def _try_run(app):
    """A manual run here: its dict, or None while another run holds the lease."""
    import sync_engine

    try:
        with app.app_context():
            return sync_engine.run_sync(app).to_dict()
    except sync_engine.SyncInProgress:
        return None


def test_a_run_longer_than_its_lease_keeps_it_and_a_killed_one_is_replaced(app, sandbox,
                                                                             database_url):
    for n in range(3):
        vendor_employee(sandbox, f"Slow {n}")
    sandbox.set_faults(latency_ms=LATENCY_MS)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, database_url, sandbox.base_url,
                               API_KEY], cwd=ROOT)
    try:
        run_id = wait_for(lambda: _holder_run(app, holder.pid), timeout=60, interval=0.05,
                          message="the subprocess's run to hold the lease")
        tries, until = 0, time.monotonic() + WATCH_SECONDS
        while time.monotonic() < until:  # several TTLs, each request longer than one
            assert _try_run(app) is None, "a second run started while the first renewed"
            assert holder.poll() is None
            tries += 1
            time.sleep(0.2)
        assert tries > 1 and _holder_run(app, holder.pid) == run_id
        sandbox.clear_faults()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        taken = wait_for(lambda: _try_run(app), timeout=2 * TTL, interval=0.05,
                         message="a run here once the holder is gone")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert taken["status"] == "succeeded"
    assert len(rows(app, "employees")) == 3  # the killed run's committed pages, and the rest

    from models import SyncRun, db

    killed = db_call(app, lambda: db.session.get(SyncRun, run_id).to_dict())
    assert killed["status"] == "failed" and "abandoned" in killed["message"]
