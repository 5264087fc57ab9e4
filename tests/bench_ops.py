"""What an API client pays: `python -m tests.bench_ops [--rounds 300] [--gunicorn-workers 2]`.

Serves the app for real, twice (the development server `flask run`, then gunicorn),
on a fresh SQLite file with the vendor sandbox beside it, and times with the
standard library's http.client over one keep-alive connection:

* the same request (`GET /api/sync/health`) anonymous, with an API token and with
  HTTP Basic: the token's cost over anonymous is the target (at most 5 ms, p50);
  Basic shows what the password hash costs;
* `GET /api/employees?per_page=1` with a token and with Basic;
* the no-op sync: `POST /api/sync/trigger {"wait": true}` with a token once
  everything is in step (three listing requests), target under 50 ms (p50); the
  triggers are 0.4 s apart, since back to back the client's own rate limit
  (EXTERNAL_API_RATE_LIMIT, 10 requests/s) paces three listings to 0.3 s a run.

Figures only: no test asserts them.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN = ("admin", "admin-bench-123")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"bench_ops: nothing answers on port {port}")


def timings(port: int, method: str, path: str, headers: dict, rounds: int, body=None) -> list[float]:
    """Milliseconds per request over one keep-alive connection (after 5 warm-ups)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    payload = json.dumps(body).encode() if body is not None else None
    sent = {**headers, **({"Content-Type": "application/json"} if payload else {})}
    out = []
    warm = 5 if rounds > 1 else 0
    for n in range(rounds + warm):
        start = time.perf_counter()
        conn.request(method, path, body=payload, headers=sent)
        response = conn.getresponse()
        response.read()
        if response.status >= 400:
            raise SystemExit(f"bench_ops: {method} {path} answered {response.status}")
        if n >= warm:
            out.append((time.perf_counter() - start) * 1000)
    conn.close()
    return out


class Served:
    """The sandbox, a fresh database with an admin and a token, and one server of the app."""

    def __init__(self, kind: str, workers: int):
        self.kind, self.workers, self.children = kind, workers, []
        self.port, self.vendor_port = free_port(), free_port()
        folder = tempfile.mkdtemp(prefix="bench-ops-")
        key, secret = "bench-" + secrets.token_hex(6), "whsec_" + base64.b64encode(b"x" * 32).decode()
        self.env = {**os.environ, "APP_CONFIG": "development", "SECRET_KEY": secrets.token_hex(16),
                    "DATABASE_URL": f"sqlite:///{folder}/bench.sqlite", "SYNC_ENABLED": "true",
                    "EXTERNAL_API_BASE_URL": f"http://127.0.0.1:{self.vendor_port}/api/v1",
                    "EXTERNAL_API_KEY": key, "WEBHOOK_SECRET": secret,
                    "SYNC_INTERVAL_MINUTES": "60", "SYNC_PUSH_ON_CHANGE": "false",
                    "SYNC_FIRST_RUN_DELAY_SECONDS": "3600", "WEB_CONCURRENCY": str(workers),
                    "GUNICORN_BIND": f"127.0.0.1:{self.port}", "GUNICORN_ACCESS_LOG": "",
                    "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-ops-metrics-")}
        self.spawn([sys.executable, "tests/vendor_sandbox.py", "--port", str(self.vendor_port),
                    "--api-key", key, "--seed-demo"])
        wait_for(self.vendor_port)

    def spawn(self, command: list[str]) -> None:
        self.children.append(subprocess.Popen(command, cwd=ROOT, env=self.env, start_new_session=True,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def flask(self, *args: str, stdin: str = "") -> str:
        return subprocess.run([str(BIN / "flask"), "--app", "app", *args], cwd=ROOT, env=self.env,
                              input=stdin, capture_output=True, text=True, check=True).stdout

    def start(self) -> str:
        """Schema, admin, token, then the server; the token."""
        self.flask("db", "upgrade")
        self.flask("users", "create", ADMIN[0], "--role", "admin", "--password-stdin",
                   stdin=ADMIN[1] + "\n")
        token = self.flask("users", "token", ADMIN[0]).strip()
        if self.kind == "gunicorn":
            self.spawn([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "app:create_app()"])
        else:
            self.spawn([str(BIN / "flask"), "--app", "app", "run", "--port", str(self.port)])
        wait_for(self.port)
        return token

    def stop(self) -> None:
        for child in self.children:
            os.killpg(child.pid, signal.SIGTERM)
        for child in self.children:
            child.wait(30)


def p50(values: list[float]) -> float:
    return statistics.median(values)


def measure(kind: str, rounds: int, workers: int) -> list[tuple]:
    """Rows (server, request, p50 ms, note) for one kind of server."""
    served = Served(kind, workers)
    try:
        token = served.start()
        bearer = {"Authorization": f"Bearer {token}"}
        basic = {"Authorization": "Basic " + base64.b64encode(":".join(ADMIN).encode()).decode()}
        timings(served.port, "POST", "/api/sync/trigger", bearer, 1, {"wait": True})  # first pull
        rows, anonymous = [], 0.0
        for name, headers in (("anonymous", {}), ("token", bearer), ("Basic", basic)):
            figure = p50(timings(served.port, "GET", "/api/sync/health", headers,
                                 rounds if name != "Basic" else max(20, rounds // 10)))
            anonymous = figure if name == "anonymous" else anonymous
            extra = "" if name == "anonymous" else f"{figure - anonymous:+.1f} ms over anonymous"
            target = " (target ≤ +5 ms)" if name == "token" else ""
            rows.append((kind, f"GET /api/sync/health, {name}", figure, extra + target))
        for name, headers in (("token", bearer), ("Basic", basic)):
            figure = p50(timings(served.port, "GET", "/api/employees?per_page=1", headers,
                                 rounds if name != "Basic" else max(20, rounds // 10)))
            rows.append((kind, f"GET /api/employees?per_page=1, {name}", figure, ""))
        noop = []
        for _ in range(20):  # spaced: back to back, the client's own rate limit (10 req/s)
            time.sleep(0.4)  # sets the pace (3 listings = 0.3 s a run), not the app
            noop += timings(served.port, "POST", "/api/sync/trigger", bearer, 1, {"wait": True})
        rows.append((kind, "no-op sync (waited trigger, token)", p50(noop),
                     "target < 50 ms; runs 0.4 s apart"))
        return rows
    finally:
        served.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    args = parser.parse_args(argv)
    rows = measure("flask run", args.rounds, 1) + measure("gunicorn", args.rounds, args.gunicorn_workers)
    print(f"\n{'server':10} {'request':42} {'p50 ms':>7}  note")
    for server, request, figure, note in rows:
        print(f"{server:10} {request:42} {figure:7.1f}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
