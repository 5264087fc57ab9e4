"""The load test: `python -m tests.load` (or `make load`).

gunicorn with 4 workers on PostgreSQL, the sync on against the vendor sandbox (its
webhooks included), and Locust (locustfile.py) playing 50 schedulers on their daily
round plus one API client polling the sync with a token, for 60 s.  Then the checks:

* no double booking: no employee with two live schedules on one local day, no event
  with two live schedules (SQL of its own);
* the sync kept up: the oldest pending change's age at the end of the load, then
  every local change at the vendor once the sync has caught up (schedules compared
  with the sandbox's own objects);
* /metrics agrees with what was done: the server counted at least the requests
  Locust sent, runs and vendor requests were counted.

It prints a table per request type (requests, failures, p50, p95, max) and the
figures above.  Needs a PostgreSQL it may wipe: `--database` (default
postgresql://postgres@127.0.0.1:5432/load, created if missing).

    python -m tests.load [--users 50] [--seconds 60] [--spawn-rate 5] [--workers 4] [--latency-ms 20]

People start at --spawn-rate a second (5: the 50 are all at work after 10 s), each
signing in first: a desk's people do not all sign in in the same second, and a sign-in
is a password hash (scrypt, ~75 ms of CPU) that 50 at once would queue behind.
"""
from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCHEDULER = ("scheduler", "scheduler-load-123")
ADMIN = ("admin", "admin-load-123")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, every: float = 0.2):
    """Poll `check` until it returns something truthy, or fail naming `what`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        time.sleep(every)
    raise SystemExit(f"load: timed out waiting for {what}")


def http(method: str, url: str, body=None, token: str | None = None, timeout: float = 120):
    """(status, parsed JSON or text) with the standard library."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status, kind = response.read(), response.status, response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raw, status, kind = exc.read(), exc.code, exc.headers.get("Content-Type", "")
    return status, (json.loads(raw) if "json" in kind else raw.decode())


def reset_database(url: str) -> None:
    """Drop and recreate the public schema (creating the database if needed)."""
    import sqlalchemy as sa

    from config import normalize_database_url

    url = normalize_database_url(url)
    target = sa.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                           {"n": target.database}):
            conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


class Stack:
    """The sandbox and gunicorn, started and stopped together."""

    def __init__(self, args):
        self.args, self.children = args, []
        self.app_port, self.sandbox_port = free_port(), free_port()
        self.app_url = f"http://127.0.0.1:{self.app_port}"
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.key = "load-" + secrets.token_hex(8)
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self.env = {**os.environ, "APP_CONFIG": "development", "DATABASE_URL": args.database,
                    "SECRET_KEY": secrets.token_hex(32), "SYNC_ENABLED": "true",
                    "EXTERNAL_API_BASE_URL": f"{self.sandbox_url}/api/v1",
                    "EXTERNAL_API_KEY": self.key, "WEBHOOK_SECRET": self.secret,
                    "SYNC_INTERVAL_MINUTES": "1", "SIGNIN_LIMIT_PER_ADDRESS": "100000 per minute",
                    "SIGNIN_LIMIT_PER_NAME": "100000 per minute", "WEB_CONCURRENCY": str(args.workers),
                    "GUNICORN_BIND": f"127.0.0.1:{self.app_port}", "GUNICORN_ACCESS_LOG": "",
                    "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="load-metrics-")}

    def spawn(self, command: list[str], log: str, env=None) -> subprocess.Popen:
        handle = open(Path(self.args.logs) / log, "w")
        process = subprocess.Popen(command, cwd=ROOT, env=env or self.env, stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append(process)
        return process

    def flask(self, *args: str, stdin: str = "") -> str:
        return subprocess.run([str(BIN / "flask"), "--app", "app", *args], cwd=ROOT, env=self.env,
                              input=stdin, capture_output=True, text=True, check=True).stdout

    def start(self) -> str:
        """Sandbox with data, schema, users, gunicorn; the admin's token."""
        self.spawn([sys.executable, "tests/vendor_sandbox.py", "--port", str(self.sandbox_port),
                    "--api-key", self.key, "--webhook-url",
                    f"{self.app_url}/api/webhook/schedule_update", "--webhook-secret", self.secret,
                    "--latency-ms", str(self.args.latency_ms)], "sandbox.log")
        wait_until(lambda: http("GET", f"{self.sandbox_url}/_control")[0] == 200, 30, "the sandbox")
        http("POST", f"{self.sandbox_url}/_control/seed",
             {"kind": "bulk", "employees": 200, "events": 2000, "schedules": 600})
        reset_database(self.args.database)
        self.flask("db", "upgrade")
        for name, password in (ADMIN, SCHEDULER):
            role = "admin" if name == ADMIN[0] else "scheduler"
            self.flask("users", "create", name, "--role", role, "--password-stdin", stdin=password + "\n")
        token = self.flask("users", "token", ADMIN[0], "--label", "load test").strip()
        self.spawn([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "app:create_app()"], "gunicorn.log")
        wait_until(lambda: http("GET", f"{self.app_url}/readyz")[0] == 200, 60, "gunicorn")
        return token

    def stop(self) -> None:
        for process in reversed(self.children):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.children:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def waited_sync(app_url: str, token: str) -> dict:
    """One sync run, waited for (retried while another run holds the lease)."""
    def attempt():
        status, body = http("POST", f"{app_url}/api/sync/trigger", {"wait": True}, token)
        return body["run"] if status == 200 else None
    return wait_until(attempt, 300, "a waited sync run", every=1.0)


def locust(stack: Stack, token: str) -> dict[str, dict]:
    """Run Locust headless; its stats per request type."""
    prefix = str(Path(stack.args.logs) / "locust")
    env = {**stack.env, "LOAD_USER": SCHEDULER[0], "LOAD_PASSWORD": SCHEDULER[1], "LOAD_TOKEN": token}
    subprocess.run([str(BIN / "locust"), "-f", "locustfile.py", "--headless", "--only-summary",
                    "-u", str(stack.args.users + 1), "-r", str(stack.args.spawn_rate),
                    "-t", f"{stack.args.seconds}s",
                    "--host", stack.app_url, "--csv", prefix, "--exit-code-on-error", "0"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=stack.args.seconds + 120)
    with open(prefix + "_stats.csv", newline="") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


def db_checks(url: str) -> dict:
    """Double bookings, with SQL of its own."""
    import sqlalchemy as sa

    from config import normalize_database_url

    engine = sa.create_engine(normalize_database_url(url))
    with engine.connect() as conn:
        day_twice = conn.scalar(sa.text(
            "SELECT count(*) FROM (SELECT employee_id, local_day FROM schedules WHERE deleted_at IS NULL"
            " GROUP BY employee_id, local_day HAVING count(*) > 1) AS t"))
        event_twice = conn.scalar(sa.text(
            "SELECT count(*) FROM (SELECT event_id FROM schedules WHERE deleted_at IS NULL"
            " GROUP BY event_id HAVING count(*) > 1) AS t"))
        local = {row[0]: row[1:] for row in conn.execute(sa.text(
            "SELECT s.external_id, e.external_id, p.external_id FROM schedules s"
            " JOIN events e ON e.id = s.event_id JOIN employees p ON p.id = s.employee_id"
            " WHERE s.deleted_at IS NULL"))}
        pending = conn.scalar(sa.text("SELECT count(*) FROM schedules WHERE sync_status = 'pending'"))
    engine.dispose()
    return {"day_twice": day_twice, "event_twice": event_twice, "local": local, "pending": pending}


def vendor_schedules(sandbox_url: str) -> dict:
    status, body = http("GET", f"{sandbox_url}/_control/objects/schedules")
    return {o["id"]: (o["event_id"], o["employee_id"]) for o in body["data"]}


def metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def report(stats: dict, elapsed: float) -> None:
    print(f"\n{'request':42} {'reqs':>6} {'fail':>5} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}")
    for name, row in sorted(stats.items(), key=lambda kv: kv[0] == "Aggregated"):
        print(f"{name:42} {row['Request Count']:>6} {row['Failure Count']:>5} {row['50%']:>7} "
              f"{row['95%']:>7} {float(row['Max Response Time']):>7.0f}")
    total = int(stats["Aggregated"]["Request Count"])
    print(f"\nthroughput: {total / elapsed:.1f} requests/s over {elapsed:.0f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--spawn-rate", type=float, default=5,
                        help="people starting (signing in) per second (default 5: 50 in 10 s)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/load")
    parser.add_argument("--logs", default=tempfile.mkdtemp(prefix="load-logs-"))
    args = parser.parse_args(argv)
    Path(args.logs).mkdir(parents=True, exist_ok=True)
    stack = Stack(args)
    try:
        token = stack.start()
        first = waited_sync(stack.app_url, token)
        print(f"first sync: run {first['id']} {first['status']}, pulled {first['pulled']}")
        started = time.monotonic()
        stats = locust(stack, token)
        elapsed = time.monotonic() - started
        _, text = http("GET", f"{stack.app_url}/metrics", token=token)
        oldest = metric(text, "scheduler_sync_oldest_pending_age_seconds") if "oldest" in text else None
        report(stats, elapsed)
        print(f"oldest pending change at the end of the load: {oldest:.1f} s")
        runs = [waited_sync(stack.app_url, token) for _ in range(2)]
        checks = db_checks(args.database)
        vendor = vendor_schedules(stack.sandbox_url)
        missing = [x for x, refs in checks["local"].items() if x is None or vendor.get(x) != refs]
        extra = set(vendor) - set(checks["local"])
        served = metric(text, "scheduler_http_requests_total")
        sent = int(stats["Aggregated"]["Request Count"])
        print(f"after: runs {[r['status'] for r in runs]}; pending schedules {checks['pending']}; "
              f"live schedules {len(checks['local'])}, not at the vendor as here {len(missing)}, "
              f"at the vendor only {len(extra)}")
        print(f"double bookings: employee-days {checks['day_twice']}, events {checks['event_twice']}")
        print(f"/metrics: {served:.0f} requests counted by the server (Locust sent {sent}); "
              f"runs {metric(text, 'scheduler_sync_runs_total'):.0f}; "
              f"vendor requests {metric(text, 'scheduler_vendor_requests_total'):.0f}")
        failures = int(stats["Aggregated"]["Failure Count"])
        ok = (failures == 0 and checks["day_twice"] == 0 and checks["event_twice"] == 0
              and not missing and not extra and served >= sent)
        print("load: OK" if ok else "load: CHECKS FAILED", f"(logs in {args.logs})")
        return 0 if ok else 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
