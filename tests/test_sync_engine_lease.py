"""The sync lease after a crash: a dead holder on this host is taken over at once.

A sync run in another process (a subprocess on this host, the database's
test settings, the lease TTL at ten minutes) holds the lease mid-run; after
`kill -9` of that process a run here takes the lease without waiting for the
TTL, and closes the killed run as abandoned.  A holder on another host, or a
live one on this host, is left alone until its lease expires.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers import API_KEY, db_call, wait_for

pytestmark = pytest.mark.vendor_sync

ROOT = Path(__file__).resolve().parent.parent
TTL = 600.0  # far longer than any wait below: only a takeover explains a run here

HOLDER = textwrap.dedent("""
    import sys
    from tests.conftest import make_app
    import sync_engine

    app = make_app(sys.argv[1], SYNC_ENABLED=True, EXTERNAL_API_BASE_URL=sys.argv[2],
                   EXTERNAL_API_KEY=sys.argv[3], EXTERNAL_API_TIMEOUT_SECONDS=300,
                   EXTERNAL_API_RATE_LIMIT=0, SYNC_LEASE_TTL_SECONDS=%r)
    with app.app_context():
        sync_engine.run_sync(app)  # the sandbox answers its first request after minutes
""" % TTL)


@pytest.fixture
def sync_settings():
    return {"SYNC_LEASE_TTL_SECONDS": TTL}


def lease(app):
    from models import SyncLease, db

    def read():
        row = db.session.get(SyncLease, "sync")
        return None if row is None else (row.owner, row.holder_host, row.holder_pid, row.run_id)
    return db_call(app, read)


def set_lease(app, host: str, pid: int, expires_in: float) -> None:
    import sync_engine
    from models import SyncLease, db

    def write():
        row = db.session.get(SyncLease, "sync") or SyncLease(name="sync")
        row.owner, row.holder_host, row.holder_pid = f"elsewhere:{pid}:x", host, pid
        row.expires_at = sync_engine.lease.utcnow() + timedelta(seconds=expires_in)
        db.session.add(row)
        db.session.commit()
    db_call(app, write)


def try_run(app):
    """A manual run here: its dict, or None while another run holds the lease."""
    import sync_engine

    try:
        with app.app_context():
            return sync_engine.run_sync(app).to_dict()
    except sync_engine.SyncInProgress:
        return None


def gone_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_holder_on_this_host_is_taken_over_at_once(app, sandbox, database_url):
    sandbox.set_faults(latency_ms=int(TTL * 1000))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, database_url, sandbox.base_url,
                               API_KEY], cwd=ROOT)
    try:
        held = wait_for(lambda: (lambda row: row if row and row[2] == holder.pid and row[3]
                                 else None)(lease(app)), timeout=60, interval=0.05,
                        message="the subprocess's run to hold the lease")
        assert try_run(app) is None  # alive: the lease is its own
        sandbox.clear_faults()  # (the killed run's request still sleeps in the sandbox)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        killed_at = time.monotonic()
        taken = wait_for(lambda: try_run(app), timeout=60, interval=0.05,
                         message="a run to take over the dead holder's lease")
        took = time.monotonic() - killed_at
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert taken["status"] == "succeeded"
    print(f"lease taken over {took:.2f} s after kill -9 (lease TTL {TTL:.0f} s)")

    from models import SyncRun, db

    killed = db_call(app, lambda: db.session.get(SyncRun, held[3]).to_dict())
    assert killed["status"] == "failed" and "abandoned" in killed["message"]
    assert lease(app)[0] is None  # the run here gave it back


def test_a_holder_on_another_host_is_waited_for_until_its_lease_expires(app, sandbox):
    import sync_engine

    set_lease(app, "other-host 8f1e... pid:[4026531836]", gone_pid(), expires_in=TTL)
    assert sync_engine.HOST_IDENTITY != "other-host 8f1e... pid:[4026531836]"
    assert try_run(app) is None  # its pid means nothing here
    set_lease(app, "other-host 8f1e... pid:[4026531836]", gone_pid(), expires_in=-1)
    assert try_run(app)["status"] == "succeeded"


def test_a_live_holder_on_this_host_keeps_the_lease(app, sandbox):
    import sync_engine

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        set_lease(app, sync_engine.HOST_IDENTITY, sleeper.pid, expires_in=TTL)
        assert try_run(app) is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert try_run(app)["status"] == "succeeded"  # now it is gone: taken at once
