"""`make run` (devserver.py) as an operator uses it: start, stop, start again, nothing lost.

devserver.py runs as a subprocess on free ports, with its SQLite database and
the sandbox's state file in a temporary directory.  After local work has
synced, SIGTERM stops it (exit 0, both ports free); a second start shows the
same employees, events and schedules here and at the vendor, and a sync
after the restart deletes nothing.  SIGINT (Ctrl-C) stops it the same way.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_for
from tests.test_multiprocess import free_port

ROOT = Path(__file__).resolve().parent.parent
ADMIN = ("admin", "devserver-admin-123")
RESOURCES = ("employees", "events", "schedules")


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class DevServer:
    """`python devserver.py` with its own ports, database and sandbox state file."""

    def __init__(self, tmp_path: Path):
        self.port, self.sandbox_port = free_port(), free_port()
        self.tmp_path = tmp_path
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("TEST_", "SYNC_", "EXTERNAL_", "WEBHOOK_", "FLASK_"))}
        self.env.update({
            "APP_CONFIG": "development", "PORT": str(self.port),
            "SANDBOX_PORT": str(self.sandbox_port),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'scheduler.sqlite'}",
            "SANDBOX_STATE_FILE": str(tmp_path / "vendor_sandbox.json"),
            "EXTERNAL_API_BASE_URL": "",  # over any .env: start the sandbox
            "ADMIN_USERNAME": ADMIN[0], "ADMIN_PASSWORD": ADMIN[1],
            "SYNC_FIRST_RUN_DELAY_SECONDS": "1", "SYNC_PUSH_DELAY_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
        })
        self.proc = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.log = self.tmp_path / f"devserver-{self.starts}.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "devserver.py"], cwd=ROOT, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        wait_for(self.serving, timeout=180, interval=0.2, message="devserver to serve")

    def serving(self) -> bool:
        assert self.proc.poll() is None, f"devserver.py exited early\n{self.output()}"
        try:
            return requests.get(self.url("/api/sync/health"), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, sig: signal.Signals) -> int:
        """Signal devserver.py alone (not its group) and wait for its exit status."""
        os.kill(self.proc.pid, sig)
        return self.proc.wait(timeout=90)

    def kill_all(self) -> None:
        """Clean-up after a failure: devserver.py's own stop, then SIGKILL to what is left."""
        if self.proc is None:
            return
        groups = [self.proc.pid]  # its own group (set-up commands), then its children's
        if self.proc.poll() is None:
            groups += map(int, subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
                                              capture_output=True, text=True).stdout.split())
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop(signal.SIGTERM)
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()

    def output(self) -> str:
        return self.log.read_text()[-4000:]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.url(path), auth=ADMIN, timeout=60, **kwargs)

    def counts(self) -> dict:
        """Live records here and at the vendor, per resource."""
        here = {r: self.api("GET", f"/api/{r}", params={"per_page": 1}).json()["total"]
                for r in RESOURCES}
        stats = requests.get(f"http://127.0.0.1:{self.sandbox_port}/_control/stats", timeout=10)
        return {"app": here, "vendor": stats.json()["objects"]}

    def sync(self) -> dict:
        """A waited manual sync (retried while the interval job holds the lease)."""
        def attempt():
            resp = self.api("POST", "/api/sync/trigger", json={"wait": True})
            if resp.status_code == 409 and resp.json()["error"]["code"] == "sync_in_progress":
                return None
            assert resp.status_code == 200, resp.text
            return resp.json()["run"]
        return wait_for(attempt, timeout=120, interval=0.5, message="a manual sync")

    def settled(self) -> bool:
        """Nothing waiting to be pushed and both sides holding the same records."""
        self.sync()
        status = self.api("GET", "/api/sync/status").json()["counts"]
        counts = self.counts()
        waiting = sum(c["pending"] + c["failed"] + c["conflict"] for c in status.values())
        return waiting == 0 and counts["app"] == counts["vendor"]


@pytest.fixture
def devserver(tmp_path):
    server = DevServer(tmp_path)
    yield server
    server.kill_all()


def make_local_work(server: DevServer) -> None:
    """What a person does in the app: a new employee, an imported-like event, a schedule."""
    emp = server.api("POST", "/api/employees", json={"name": "Rita Local", "code": "RL0001"})
    assert emp.status_code == 201, emp.text
    event = server.api("POST", "/api/events", json={
        "project_ref_num": 777001, "project_name": "CORE - Restart Check",
        "start_datetime": "2030-03-04T08:00:00Z", "due_datetime": "2030-03-08T17:00:00Z"})
    assert event.status_code == 201, event.text
    sched = server.api("POST", "/api/schedules", json={
        "event_id": event.json()["id"], "employee_id": emp.json()["id"],
        "start_datetime": "2030-03-05T09:00:00Z"})
    assert sched.status_code == 201, sched.text


def test_make_run_restarts_lose_nothing_and_stop_cleanly(devserver):
    devserver.start()
    make_local_work(devserver)
    wait_for(devserver.settled, timeout=180, interval=1, message="the first sync to settle")
    before = devserver.counts()
    assert all(before["app"][r] > 0 for r in RESOURCES), before

    assert devserver.stop(signal.SIGTERM) == 0, devserver.output()
    assert not listening(devserver.port) and not listening(devserver.sandbox_port)

    devserver.start()  # same ports: free again
    assert devserver.counts() == before, devserver.output()
    run = devserver.sync()
    assert run["status"] == "succeeded", run
    assert devserver.counts() == before, run
    print(f"counts before the restart: {before['app']}, after: {devserver.counts()['app']}")

    assert devserver.stop(signal.SIGINT) == 0, devserver.output()
    assert not listening(devserver.port) and not listening(devserver.sandbox_port)
