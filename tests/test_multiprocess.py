"""Two app processes (gunicorn) syncing the same database: the lease keeps runs apart.

Both processes run the interval job every 3 s (SYNC_INTERVAL_MINUTES=0.05)
against one vendor sandbox, on the test database (TEST_DATABASE_URL when set,
PostgreSQL in CI; else a SQLite file).  From the sync_runs table: runs never
overlap, the gap between runs stays about one interval, both sides converge.
Then the process holding the lease is killed with SIGKILL in the middle of a
run and the other one takes over once the lease (SYNC_LEASE_TTL_SECONDS=4)
expires.  A SIGTERM'd worker stops its run at a checkpoint and gives the
lease back (gunicorn.conf.py's worker_exit → sync_scheduler.shutdown_scheduler).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from tests.conftest import _empty_tables, make_app
from tests.helpers import wait_for
from tests.vendor_sandbox import VendorSandbox

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
INTERVAL = 3.0  # seconds (SYNC_INTERVAL_MINUTES=0.05)
LEASE_TTL = 4.0
KEY = "multiprocess-key"

pytestmark = pytest.mark.skipif(not GUNICORN.exists(), reason=f"gunicorn is not installed ({GUNICORN})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppProcess:
    """`gunicorn -c gunicorn.conf.py "app:create_app()"` with one worker, on its own port."""

    def __init__(self, database_url: str, sandbox: VendorSandbox, log_path: Path):
        self.port = free_port()
        self.log = open(log_path, "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "SYNC_", "EXTERNAL_"))}
        env.update({
            "APP_CONFIG": "development", "DATABASE_URL": database_url,
            "SECRET_KEY": "multiprocess-secret", "SYNC_ENABLED": "true",
            "SYNC_INTERVAL_MINUTES": str(INTERVAL / 60), "SYNC_LEASE_TTL_SECONDS": str(LEASE_TTL),
            "SYNC_FIRST_RUN_DELAY_SECONDS": "1", "SYNC_PUSH_DELAY_SECONDS": "0.5",
            "EXTERNAL_API_BASE_URL": sandbox.base_url, "EXTERNAL_API_KEY": KEY,
            "EXTERNAL_API_RATE_LIMIT": "1000", "EXTERNAL_API_TIMEOUT_SECONDS": "5",
            "WEBHOOK_SECRET": "whsec_bXVsdGlwcm9jZXNzLXRlc3Qtc2VjcmV0",
            "GUNICORN_BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": "1",
            "GUNICORN_GRACEFUL_TIMEOUT": "10", "GUNICORN_ACCESS_LOG": "",
        })
        self.proc = subprocess.Popen(
            [str(GUNICORN), "-c", "gunicorn.conf.py", "app:create_app()"], cwd=ROOT, env=env,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "gunicorn exited; see its log"
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/api/sync/health", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("gunicorn did not answer in time")

    def worker_pids(self) -> set[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        return {int(pid) for pid in out.split()}

    def pids(self) -> set[int]:
        return {self.proc.pid} | self.worker_pids()

    def kill(self, sig=signal.SIGKILL) -> None:
        for pid in self.worker_pids():
            _signal(pid, sig)
        _signal(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            _signal(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
                self.proc.wait(5)
        self.log.close()


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def runs(app) -> list:
    from models import SyncRun, db

    with app.app_context():
        db.session.remove()
        return db.session.scalars(db.select(SyncRun).order_by(SyncRun.started_at)).all()


def lease(app):
    from models import SyncLease, db

    with app.app_context():
        db.session.remove()
        return db.session.get(SyncLease, "sync")


def seed_local(app) -> None:
    """Local records the vendor does not have yet (pushed by the runs)."""
    from datetime import datetime, timezone

    from models import Employee, Event, db

    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    with app.app_context():
        db.session.add_all([Employee(name=f"Local {i}", code=f"L{i}") for i in range(5)])
        db.session.add_all([Event(project_ref_num=990000 + i, project_name=f"CORE - Local {i}",
                                  event_type="Core", start_datetime=start,
                                  due_datetime=start + timedelta(days=6)) for i in range(10)])
        db.session.commit()


def converged(app, sandbox: VendorSandbox) -> dict:
    """Per resource: (live here, live at the vendor, live here not synced)."""
    from models import SYNCED_MODELS, db

    out = {}
    with app.app_context():
        db.session.remove()
        for name, model in SYNCED_MODELS.items():
            rows = db.session.scalars(db.select(model).where(model.deleted_at.is_(None))).all()
            vendor = {o["id"] for o in sandbox.objects(name)}
            out[name] = ({r.external_id for r in rows} == vendor,
                         [r.id for r in rows if r.sync_status != "synced"])
    return out


@pytest.fixture
def setting(database_url, tmp_path):
    """The migrated test database (emptied after), a sandbox, two gunicorns (stopped after)."""
    app = make_app(database_url)  # runs the migrations
    sandbox = VendorSandbox(api_key=KEY).start()
    procs: list[AppProcess] = []
    try:
        yield app, sandbox, procs, tmp_path
    finally:
        for proc in procs:
            proc.stop()
        sandbox.stop()
        _empty_tables(app)


def test_two_processes_take_turns_converge_and_survive_a_killed_lease_holder(setting):
    app, sandbox, procs, tmp_path = setting
    sandbox.bulk_seed(employees=20, events=60, schedules=30)
    seed_local(app)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    procs += [AppProcess(url, sandbox, tmp_path / f"gunicorn-{n}.log") for n in range(2)]
    for proc in procs:
        proc.wait_ready()

    # --- several intervals: runs alternate, never overlap, never leave a gap ----------------
    assert wait_for(lambda: len([r for r in runs(app) if r.status != "running"]) >= 4,
                    timeout=6 * INTERVAL), _logs(tmp_path)
    done = [r for r in runs(app) if r.status != "running"]
    for run in done:
        assert run.status == "succeeded", _dump(app)
    for before, after in zip(done, done[1:]):
        assert before.finished_at <= after.started_at, "two runs overlapped"
        assert (after.started_at - before.finished_at).total_seconds() <= INTERVAL + 2.0
    state = converged(app, sandbox)
    assert all(same and not waiting for same, waiting in state.values()), state
    assert len(sandbox.objects("employees")) == 25 and len(sandbox.objects("events")) == 70

    # --- SIGKILL the holder in the middle of a (slow) run: the other takes over ----------
    sandbox.set_faults(latency_ms=400)
    holder = wait_for(lambda: _holder(app, procs), timeout=3 * INTERVAL, interval=0.02)
    assert holder is not None, "no run was caught in progress"
    proc, killed_run, expires_at = holder
    proc.kill(signal.SIGKILL)
    survivor = next(p for p in procs if p is not proc)
    taken = wait_for(lambda: [r for r in runs(app) if r.id > killed_run], timeout=LEASE_TTL + 3 * INTERVAL)
    assert taken, _logs(tmp_path)
    assert taken[0].started_at >= expires_at - timedelta(seconds=0.5), "taken before the lease expired"
    sandbox.clear_faults()
    assert wait_for(lambda: any(r.status == "succeeded" for r in runs(app) if r.id > killed_run),
                    timeout=3 * INTERVAL), _logs(tmp_path)
    assert survivor.proc.poll() is None
    killed = next(r for r in runs(app) if r.id == killed_run)  # closed by the run that took over
    assert killed.status == "failed" and "abandoned" in killed.message, _dump(app)

    # --- SIGTERM the survivor's worker mid-run: it stops at a checkpoint, lease given back --
    sandbox.set_faults(latency_ms=400)
    holder = wait_for(lambda: _holder(app, [survivor]), timeout=3 * INTERVAL, interval=0.02)
    assert holder is not None
    _, stopped_run, _ = holder
    for pid in survivor.worker_pids():
        os.kill(pid, signal.SIGTERM)
    stopped = wait_for(lambda: next((r for r in runs(app) if r.id == stopped_run
                                     and r.status != "running"), None), timeout=8)
    assert stopped is not None, _dump(app) + _logs(tmp_path)
    assert stopped.status in ("failed", "succeeded", "partial")
    assert stopped.status != "failed" or "shutting down" in (stopped.message or "")
    held = lease(app)
    assert held.owner is None or held.run_id != stopped_run, "the stopped run kept the lease"



def _holder(app, procs):
    """(process, run id, lease expiry) while a run of one of `procs` is in progress."""
    held = lease(app)
    if held is None or held.owner is None or held.run_id is None:
        return None
    pid = int(held.owner.split(":")[1])
    for proc in procs:
        if pid in proc.pids():
            return proc, held.run_id, held.expires_at
    return None


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.glob("*.log")))


def _dump(app) -> str:
    return "\n".join(f"{r.id} {r.status} {r.trigger} {r.started_at:%H:%M:%S.%f} "
                     f"{r.finished_at and r.finished_at.strftime('%H:%M:%S.%f')} {r.message}"
                     for r in runs(app))
