"""Benchmarks: the app against a floor measured in the same run, one table.

    python -m tests.bench [--quick] [--database-url URL] [--only CASE ...] [--latency MS ...]

Each case sets up its own data (the fast vendor's control API, or bulk
inserts), measures the app, measures a floor on the same machine, the same
database and the same vendor (a bare loop doing the least work that could give
the same result), and prints one row: the app's figure, the floor, the ratio
and the target.  Figures are printed, not asserted: the exit status is 0
unless a case crashes.

* SQLite by default (a temporary file); PostgreSQL with --database-url (its
  `public` schema is dropped and rebuilt by the app's migrations: use a
  scratch database).
* The vendor is `tests/fast_vendor.py` (in-memory, stdlib, keep-alive) in its
  own process, so it neither shares the GIL with the app nor hides the app's
  cost: a floor measured against a slow vendor is mostly the vendor.  Its own
  per-request cost is measured and printed beside the table.
* The sync cases (first pull, no-op sync, push) run at each vendor latency
  (0 and 20 ms by default: the vendor sleeps that long before each answer, as
  a real vendor across a network would); the others at latency 0 only.
* The client's rate limit (EXTERNAL_API_RATE_LIMIT, 10 req/s by default) is
  policy, not cost: it is set to 100000 req/s here so that the bench measures
  the work, not the throttle; except in the `ratelimit` case, a first pull at
  the default 10 req/s against a vendor 50 ms away, whose figure is set by the
  limit (its floor is pages ÷ 10 s).  EXTERNAL_API_CONCURRENCY is its default (4).
* --quick divides every size by 10 (CI runs it after the tests).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import requests
from sqlalchemy import create_engine, func, insert, select, text

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key"
RATE_LIMIT = 100000  # the client's own throttle, set high: see the module docstring
LATENCIES = (0, 20)  # ms the vendor sleeps before each answer
WEEK = date(2026, 12, 7)  # a Monday: the calendar week the pages case shows
UTC = timezone.utc


# ---------------------------------------------------------------------------
# The vendor subprocess and the app
# ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Vendor:
    """tests/fast_vendor.py in its own process, driven through /_control."""

    def __init__(self):
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.base_url = self.root + "/api/v1"
        self.proc = None
        self.http = requests.Session()

    def start(self) -> "Vendor":
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "fast_vendor.py"), "--port", str(self.port),
             "--api-key", API_KEY], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.http.get(self.root + "/_control/stats", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("the fast vendor did not start")

    def stop(self) -> None:
        self.http.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def control(self, method: str, path: str, body=None):
        response = self.http.request(method, f"{self.root}/_control/{path}", json=body, timeout=120)
        response.raise_for_status()
        return response.json()

    def seed(self, employees=0, events=0, schedules=0) -> dict:
        self.control("POST", "reset")
        return self.control("POST", "seed", {"employees": employees, "events": events,
                                             "schedules": schedules})

    def latency(self, ms: float) -> None:
        self.control("POST", "latency", {"ms": ms})

    def requests_served(self) -> int:
        return self.control("GET", "stats")["requests"]

    def per_request_ms(self, rounds: int = 1000) -> dict:
        """The vendor's own cost: a keep-alive loop of GET /health and of POST creates."""
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {API_KEY}"
        self.seed()
        started = time.perf_counter()
        for _ in range(rounds):
            session.get(f"{self.base_url}/health", timeout=30).raise_for_status()
        get_ms = (time.perf_counter() - started) * 1000 / rounds
        started = time.perf_counter()
        for n in range(rounds):
            session.post(f"{self.base_url}/employees", json={"name": f"Cost {n}"}, timeout=30,
                         headers={"Idempotency-Key": str(uuid.uuid4())}).raise_for_status()
        post_ms = (time.perf_counter() - started) * 1000 / rounds
        session.close()
        return {"get": get_ms, "post": post_ms}


def prepare_database(url: str | None) -> tuple[str, str]:
    """(SQLAlchemy URL, label): a fresh SQLite file, or PostgreSQL with an empty schema."""
    from config import normalize_database_url

    if not url:
        path = Path(tempfile.mkdtemp(prefix="bench-")) / "bench.sqlite"
        return f"sqlite:///{path}", "SQLite (temp file)"
    url = normalize_database_url(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url, "PostgreSQL " + url.rsplit("@", 1)[-1]


def make_app(url: str, vendor: Vendor):
    """The app on `url` (migrated), syncing with the fast vendor, no background pushes."""
    from app import create_app
    from auth import create_user

    app = create_app("testing", {
        "SQLALCHEMY_DATABASE_URI": url,
        "SYNC_ENABLED": True,
        "SYNC_PUSH_ON_CHANGE": False,
        "EXTERNAL_API_BASE_URL": vendor.base_url,
        "EXTERNAL_API_KEY": API_KEY,
        "EXTERNAL_API_RATE_LIMIT": RATE_LIMIT,
        "EXTERNAL_API_CONCURRENCY": 4,  # the default, said explicitly
        "EXTERNAL_API_MAX_RETRIES": 2,
        "WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"bench-webhook-secret-32-bytes!!").decode(),
    })
    app.add_url_rule("/_bench/ping", "bench_ping", lambda: "ok")  # the pages case's floor
    with app.app_context():
        create_user("admin", "admin-pass-123", role="admin")
    return app


def empty_tables(app, keep=("users",)) -> None:
    from models import db

    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                if table.name not in keep:
                    conn.execute(table.delete())
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    gc.collect()
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def run_sync(app, **kwargs):
    import sync_engine

    with app.app_context():
        run = sync_engine.run_sync(app, trigger="cli", **kwargs)
        if run.status not in ("succeeded", "partial"):
            raise RuntimeError(f"sync run {run.id} {run.status}: {run.message} {run.errors[:3]}")
        return {"pulled": run.pulled, "pushed": run.pushed, "failed": run.failed,
                "requests": run.requests_sent, "status": run.status}


# ---------------------------------------------------------------------------
# Floors
# ---------------------------------------------------------------------------

def _ts(text: str | None):
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _row(resource: str, obj: dict, refs: dict, now: datetime) -> dict:
    base = {"external_id": obj["id"], "remote_version": obj["version"], "sync_status": "synced",
            "sync_attempts": 0, "last_synced": now, "created_at": now,
            "updated_at": _ts(obj["updated_at"])}
    if resource == "employees":
        return {**base, "name": obj["name"], "email": obj.get("email"), "active": obj["active"]}
    if resource == "events":
        return {**base, **{k: obj.get(k) for k in ("project_ref_num", "project_name", "event_type",
                                                     "store_number", "store_name", "location_mvid",
                                                     "estimated_minutes")},
                "start_datetime": _ts(obj["start_datetime"]), "due_datetime": _ts(obj["due_datetime"])}
    return {**base, "event_id": refs["events"][obj["event_id"]],
            "employee_id": refs["employees"][obj["employee_id"]],
            "start_datetime": _ts(obj["start_datetime"])}


class BareHTTP:
    """The floors' HTTP: one http.client keep-alive connection, the standard library only
    (no `requests`, nothing of the app's client)."""

    def __init__(self, base_url: str):
        url = urlsplit(base_url)
        self.prefix = url.path.rstrip("/")
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        self.headers = {"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        """One request on the kept-alive connection; the answer's JSON (None when empty)."""
        data = json.dumps(body).encode() if body is not None else None
        sent = {**self.headers, **(headers or {})}
        if data is not None:
            sent["Content-Type"] = "application/json"
        self.conn.request(method, self.prefix + path, body=data, headers=sent)
        response = self.conn.getresponse()
        raw = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {response.status} {raw[:200]!r}")
        return json.loads(raw) if raw else None

    def close(self) -> None:
        self.conn.close()


def bare_pull(app, vendor: Vendor, page_size: int, resources=("employees", "events", "schedules"),
              with_history: bool = True) -> int:
    """One keep-alive http.client connection paging each listing; one executemany per page
    (and the page's history entries with the floor's own SQL, unless `with_history` is
    false).  Only the app's table definitions are shared, not its code."""
    from models import SYNCED_MODELS, db

    session = BareHTTP(vendor.base_url)
    refs: dict = {}
    total = 0
    analyzed: dict = {}  # rows of each table at its last ANALYZE (PostgreSQL)
    held: dict = {}
    with app.app_context():
        engine = db.engine
        for resource in resources:
            table = SYNCED_MODELS[resource].__table__
            params = {"limit": page_size}
            while True:
                body = session.call("GET", f"/{resource}?{urlencode(params)}")
                now = datetime.now(UTC)
                rows = [_row(resource, obj, refs, now) for obj in body["data"]]
                if rows:
                    with engine.begin() as conn:
                        conn.execute(insert(table), rows)
                        if with_history:
                            ids = conn.execute(select(table.c.external_id, table.c.id).where(
                                _any(conn, table.c.external_id, [r["external_id"] for r in rows])))
                            bare_history(conn, resource, dict(ids.all()),
                                         {row["external_id"]: row for row in rows}, now, "pull")
                    held[resource] = held.get(resource, 0) + len(rows)
                    if with_history and conn.dialect.name == "postgresql" \
                            and held[resource] >= 2 * analyzed.get(resource, 500):
                        # statistics as the table grows (the app does the same): without
                        # them the look-up above scans the whole table, 50 ms a page
                        analyzed[resource] = held[resource]
                        with engine.connect().execution_options(
                                isolation_level="AUTOCOMMIT") as auto:
                            auto.execute(text(f"ANALYZE {table.name}"))
                total += len(rows)
                if not body.get("next_page_token"):
                    break
                params = {"page_token": body["next_page_token"]}
            if resource != "schedules":
                with engine.connect() as conn:
                    refs[resource] = dict(conn.execute(select(table.c.external_id, table.c.id)).all())
    session.close()
    return total


def _any(conn, column, values: list):
    """`column IN values`; on PostgreSQL `= ANY(one array)`, as the app asks (RETURNING
    from the executemany instead was slower: psycopg parsed each batch's long statement)."""
    if conn.dialect.name != "postgresql":
        return column.in_(values)
    from sqlalchemy import any_, bindparam
    from sqlalchemy.dialects.postgresql import ARRAY

    return column == any_(bindparam(None, values, type_=ARRAY(column.type)))


# the fields the app's history records for a new record (history.TRACKED), written out here
BARE_TRACKED = {
    "employees": ("code", "name", "email", "active"),
    "events": ("project_ref_num", "project_name", "event_type", "store_number", "store_name",
               "location_mvid", "start_datetime", "due_datetime", "estimated_minutes"),
    "schedules": ("event_id", "employee_id", "start_datetime"),
}
HISTORY_COLUMNS = "resource, record_id, at, action, source, actor, ref, changes"


def _history_value(value):
    return value.isoformat()[:-6] + "Z" if isinstance(value, datetime) else value


def bare_history(conn, resource: str, ids: dict, rows: dict, at: datetime, source: str) -> None:
    """The history entries the app must write for bulk-inserted rows (issue 13: one per
    new record, its tracked fields as [null, value]), with the floor's own SQL on the
    driver's connection: one COPY on PostgreSQL, one sqlite3 executemany elsewhere.  Part
    of the floor because they are part of the result: without them the floor would not
    give the same database."""
    fields = BARE_TRACKED[resource]
    naive = at.astimezone(UTC).replace(tzinfo=None)
    records = [(resource, record_id, naive, "created", source, None, "bench",
                json.dumps({f: [None, _history_value(rows[key][f])] for f in fields
                            if rows[key].get(f) is not None}))
               for key, record_id in ids.items()]
    if not records:
        return
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY record_history ({HISTORY_COLUMNS}) FROM STDIN") as copy:
                for record in records:
                    copy.write_row(record)
        return
    stamp = naive.strftime("%Y-%m-%d %H:%M:%S.%f")  # how a DATETIME is stored on SQLite
    raw.executemany(f"INSERT INTO record_history ({HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(r[0], r[1], stamp, *r[3:]) for r in records])


def bare_posts(vendor: Vendor, payloads: list[dict]) -> int:
    """A bare keep-alive loop (http.client) POSTing each schedule once (with an idempotency key)."""
    session = BareHTTP(vendor.base_url)
    for payload in payloads:
        session.call("POST", "/schedules", payload, {"Idempotency-Key": str(uuid.uuid4())})
    session.close()
    return len(payloads)


def vendor_ids(vendor: Vendor, resource: str) -> list[dict]:
    return vendor.control("GET", f"objects/{resource}")["data"]


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

class Bench:
    """The cases, sharing one app, one database and one vendor."""

    def __init__(self, app, vendor: Vendor, scale: int):
        self.app, self.vendor, self.scale = app, vendor, scale
        self.rows: list[dict] = []

    def n(self, full: int) -> int:
        return max(1, full // self.scale)

    def add(self, case, app_figure, floor="—", ratio="—", target="", met=None, note=""):
        self.rows.append({"case": case, "app": app_figure, "floor": floor, "ratio": ratio,
                          "target": target, "met": {True: "yes", False: "NO", None: "—"}[met],
                          "note": note})
        print(f"  {case}: {app_figure} (floor {floor}, ratio {ratio}) {note}", flush=True)

    def page_size(self) -> int:
        import sync_engine

        return sync_engine.settings(self.app)["page_size"]

    # -- first pull and no-op sync ------------------------------------------

    def first_pull_and_noop(self, latency: float) -> None:
        emp, evt, sch = self.n(5000), self.n(20000), self.n(20000)
        at = f" (vendor latency {latency:g} ms)"
        label = f"first pull: {emp} employees, {evt} events, {sch} schedules{at}"
        self.vendor.seed(emp, evt, sch)
        self.vendor.latency(latency)
        empty_tables(self.app)
        records_only_s, _ = timed(bare_pull, self.app, self.vendor, self.page_size(),
                                  with_history=False)
        empty_tables(self.app)
        floor_s, floor_n = timed(bare_pull, self.app, self.vendor, self.page_size())
        empty_tables(self.app)
        app_s, result = timed(run_sync, self.app, direction="pull")
        assert result["pulled"] == floor_n == emp + evt + sch, (result, floor_n)
        ratio, goal = app_s / floor_s, (1.5 if not latency else 1.0)
        self.add(label, f"{app_s:.2f} s", f"{floor_s:.2f} s", f"{ratio:.2f}×", f"≤ {goal}×",
                 ratio <= goal, f"{result['requests']} requests; records alone "
                                f"{records_only_s:.2f} s ({app_s / records_only_s:.2f}×)")
        # no-op: everything held locally, sync tokens stored; a waited trigger of the API
        client = self.login()
        client.post("/api/sync/trigger", json={"wait": True})  # warm
        before = self.vendor.requests_served()
        times = []
        for _ in range(5):
            started = time.perf_counter()
            response = client.post("/api/sync/trigger", json={"wait": True})
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.get_data(as_text=True)
        sent = (self.vendor.requests_served() - before) / len(times)
        noop_ms, goal = statistics.median(times) * 1000, 4 * latency + 50
        self.add(f"no-op sync (waited trigger), {evt} events held locally{at}",
                 f"{sent:.0f} requests, {noop_ms:.0f} ms", target=f"< {goal:g} ms",
                 met=sent <= 3 and noop_ms < goal, note="median of 5")

    def first_pull_rate_limited(self, latency: float = 50, rate: float = 10) -> None:
        """The first pull at the client's default rate limit and a real vendor's latency:
        the limit, not the app, should set the time (pages ÷ rate)."""
        emp, evt, sch = self.n(5000), self.n(20000), self.n(20000)
        size = self.page_size()
        pages = sum(-(-n // size) for n in (emp, evt, sch))
        self.vendor.seed(emp, evt, sch)
        self.vendor.latency(latency)
        empty_tables(self.app)
        self.app.config["EXTERNAL_API_RATE_LIMIT"] = rate
        try:
            app_s, result = timed(run_sync, self.app, direction="pull")
        finally:
            self.app.config["EXTERNAL_API_RATE_LIMIT"] = RATE_LIMIT
        assert result["pulled"] == emp + evt + sch, result
        floor_s = pages / rate
        ratio = app_s / floor_s
        self.add(f"first pull at {rate:g} req/s: {emp} employees, {evt} events, {sch} schedules "
                 f"(vendor latency {latency:g} ms)", f"{app_s:.2f} s",
                 f"{floor_s:.2f} s", f"{ratio:.2f}×", "≤ 1.1× of pages ÷ rate", ratio <= 1.1,
                 f"{pages} pages of {size}, {result['requests']} requests")

    def login(self):
        """A test client signed in as the admin."""
        import re

        client = self.app.test_client()
        login = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
        response = client.post("/login", data={"username": "admin", "password": "admin-pass-123",
                                               "csrf_token": token})
        assert response.status_code == 302, response.status_code
        client.environ_base["HTTP_X_CSRFTOKEN"] = token  # the API's CSRF header
        return client

    # -- push ------------------------------------------------------------------

    def push(self, latency: float) -> None:
        count = self.n(2000)
        label = f"push of {count} pending schedules (vendor latency {latency:g} ms)"
        self.vendor.seed(count, count, 0)
        self.vendor.latency(0)
        events = sorted(vendor_ids(self.vendor, "events"), key=lambda o: o["project_ref_num"])
        staff = sorted(vendor_ids(self.vendor, "employees"), key=lambda o: o["name"])
        payloads = [{"event_id": e["id"], "employee_id": p["id"],
                     "start_datetime": (_ts(e["start_datetime"]) + timedelta(hours=1))
                     .strftime("%Y-%m-%dT%H:%M:%SZ")} for e, p in zip(events, staff)]
        self.vendor.latency(latency)
        floor_s, _ = timed(bare_posts, self.vendor, payloads)
        # the app: the same vendor state, pulled, then the schedules made locally
        self.vendor.seed(count, count, 0)
        empty_tables(self.app)
        run_sync(self.app, direction="pull")
        self._local_schedules()
        app_s, result = timed(run_sync, self.app, direction="push", resources=["schedules"])
        assert result["pushed"] == count and not result["failed"], result
        ratio, goal = app_s / floor_s, (2.0 if not latency else 0.30)
        concurrency = self.app.config.get("EXTERNAL_API_CONCURRENCY")
        self.add(label, f"{app_s:.2f} s", f"{floor_s:.2f} s", f"{ratio:.2f}×", f"≤ {goal}×",
                 ratio <= goal, f"{result['requests']} requests, concurrency {concurrency}")

    def _local_schedules(self) -> None:
        from models import Employee, Event, Schedule, db

        with self.app.app_context():
            events = db.session.execute(select(Event.id, Event.start_datetime)
                                        .order_by(Event.project_ref_num)).all()
            staff = db.session.scalars(select(Employee.id).order_by(Employee.name)).all()
            now = datetime.now(UTC)
            db.session.execute(insert(Schedule), [
                {"event_id": eid, "employee_id": pid, "start_datetime": start + timedelta(hours=1),
                 "sync_status": "pending", "sync_attempts": 0, "created_at": now, "updated_at": now}
                for (eid, start), pid in zip(events, staff)])
            db.session.commit()

    # -- pages -------------------------------------------------------------------

    def pages(self) -> None:
        evt, failed = self.n(20000), self.n(10000)
        self._page_data(evt, failed)
        client = self.login()
        rounds = 30 if self.scale == 1 else 10
        floor = self._latencies(client, "/_bench/ping", rounds)
        for name, path in (("dashboard", "/"), ("calendar week, list view", f"/calendar?week={WEEK}&view=list"),
                           ("/sync/admin", "/sync/admin")):
            lat = self._latencies(client, path, rounds)
            p50, p95 = pct(lat, 50), pct(lat, 95)
            self.add(f"page {name}: {evt} events, {failed} failed records",
                     f"p50 {p50:.1f} / p95 {p95:.1f} ms",
                     f"p50 {pct(floor, 50):.2f} ms", f"{p50 / pct(floor, 50):.0f}×",
                     "p50 < 50 ms", p50 < 50)
        staff, schedules = self._roster_data(evt)
        lat = self._latencies(client, f"/calendar?week={WEEK}", rounds)
        p50, p95 = pct(lat, 50), pct(lat, 95)
        self.add(f"page roster week (50 of {staff} employees): {schedules} schedules that week",
                 f"p50 {p50:.1f} / p95 {p95:.1f} ms", f"p50 {pct(floor, 50):.2f} ms",
                 f"{p50 / pct(floor, 50):.0f}×", "p50 < 50 ms", p50 < 50)

    @staticmethod
    def _latencies(client, path: str, rounds: int) -> list[float]:
        client.get(path)  # warm
        out = []
        for _ in range(rounds):
            started = time.perf_counter()
            response = client.get(path)
            out.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        return out

    def _page_data(self, evt: int, failed: int) -> None:
        """`evt` events (half scheduled in WEEK), `failed` of them failed, runs and webhooks."""
        from models import Employee, Event, Schedule, SyncRun, WebhookMessage, db

        empty_tables(self.app)
        monday = datetime.combine(WEEK, datetime.min.time(), tzinfo=UTC)
        now = datetime.now(UTC)
        staff_n = max(10, evt // 8)  # four schedules each at most: one a day (the app's rule)
        with self.app.app_context():
            db.session.execute(insert(Employee), [
                {"id": i + 1, "name": f"Employee {i:05d}", "code": f"US{100000 + i}", "active": True,
                 "sync_status": "synced", "sync_attempts": 0, "created_at": now, "updated_at": now}
                for i in range(staff_n)])
            db.session.execute(insert(Event), [
                {"id": i + 1, "project_ref_num": 700000 + i, "project_name": f"CORE - Reset {i}",
                 "event_type": "Core", "store_number": 1000 + i % 900, "store_name": "Store",
                 "start_datetime": monday + timedelta(hours=i % 100),
                 "due_datetime": monday + timedelta(days=6, hours=23),
                 "estimated_minutes": 60, "sync_status": "failed" if i >= evt - failed else "synced",
                 "sync_error": "the vendor refused it (422): bench" if i >= evt - failed else None,
                 "sync_attempts": 0, "created_at": now, "updated_at": now}
                for i in range(evt)])
            db.session.execute(insert(Schedule), [
                {"event_id": i + 1, "employee_id": i % staff_n + 1,
                 "start_datetime": monday + timedelta(days=i // staff_n, hours=i % 10, minutes=30),
                 "sync_status": "synced", "sync_attempts": 0, "created_at": now, "updated_at": now}
                for i in range(evt // 2)])
            db.session.execute(insert(SyncRun), [
                {"status": "partial", "trigger": "schedule", "direction": "both", "resources": [],
                 "started_at": now - timedelta(minutes=15 * i), "finished_at": now, "pushed": i,
                 "pulled": i, "failed": 1, "conflicts": 0, "errors": [], "requests_sent": 3}
                for i in range(200)])
            db.session.execute(insert(WebhookMessage), [
                {"webhook_id": f"msg_{i}", "type": "event.updated", "object_id": f"evt_{i}",
                 "version": 2, "outcome": "applied", "received_at": now} for i in range(500)])
            db.session.commit()
            if db.engine.dialect.name == "postgresql":
                db.session.execute(text("SELECT setval('employees_id_seq', :n)"), {"n": staff_n})
                db.session.execute(text("SELECT setval('events_id_seq', :n)"), {"n": evt})
                db.session.commit()
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("ANALYZE"))

    def _roster_data(self, evt: int) -> tuple[int, int]:
        """On top of _page_data: employees up to n(5000) and schedules in WEEK up to n(20000)
        (the new employees work Monday to Thursday: one schedule a day, the app's rule)."""
        from models import Employee, Event, Schedule, db

        monday = datetime.combine(WEEK, datetime.min.time(), tzinfo=UTC)
        now = datetime.now(UTC)
        with self.app.app_context():
            staff_n = db.session.scalar(select(func.count(Employee.id)))
            have = db.session.scalar(select(func.count(Schedule.id)))
            extra_staff = max(0, self.n(5000) - staff_n)
            extra = min(max(0, self.n(20000) - have), extra_staff * 4)
            first_emp = db.session.scalar(select(func.max(Employee.id))) + 1
            first_evt = db.session.scalar(select(func.max(Event.id))) + 1
            db.session.execute(insert(Employee), [
                {"id": first_emp + i, "name": f"Roster {i:05d}", "code": f"RS{100000 + i}", "active": True,
                 "sync_status": "synced", "sync_attempts": 0, "created_at": now, "updated_at": now}
                for i in range(extra_staff)])
            db.session.execute(insert(Event), [
                {"id": first_evt + i, "project_ref_num": 900000 + i, "project_name": f"CORE - Roster {i}",
                 "event_type": "Core", "store_number": 1000 + i % 900, "store_name": "Store",
                 "start_datetime": monday, "due_datetime": monday + timedelta(days=6, hours=23),
                 "estimated_minutes": 60, "sync_status": "synced", "sync_attempts": 0,
                 "created_at": now, "updated_at": now} for i in range(extra)])
            db.session.execute(insert(Schedule), [
                {"event_id": first_evt + i, "employee_id": first_emp + i % extra_staff,
                 "start_datetime": monday + timedelta(days=i // extra_staff, hours=8 + i % 9),
                 "sync_status": "synced", "sync_attempts": 0, "created_at": now, "updated_at": now}
                for i in range(extra)])
            db.session.commit()
            if db.engine.dialect.name == "postgresql":
                db.session.execute(text("SELECT setval('employees_id_seq', :n)"), {"n": first_emp + extra_staff})
                db.session.execute(text("SELECT setval('events_id_seq', :n)"), {"n": first_evt + extra})
                db.session.commit()
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("ANALYZE"))
            return (db.session.scalar(select(func.count(Employee.id))),
                    db.session.scalar(select(func.count(Schedule.id))))

    # -- CSV import ------------------------------------------------------------

    def csv_import(self) -> None:
        from models import Event, db

        count = self.n(20000)
        header = ["Project Name", "Project Reference Number", "Location MVID", "Store Number",
                  "Store Name", "Start Date/Time", "Due Date/Time", "Estimated Time"]
        lines = [",".join(header)]
        rows = []
        for i in range(count):
            start = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(hours=i % 200)
            due = start + timedelta(days=6)
            lines.append(f"CORE - Reset {i},{800000 + i},mv{i},{1000 + i % 900},Store {i % 900},"
                         f"{start:%m/%d/%Y %I:%M:%S %p},{due:%m/%d/%Y %I:%M:%S %p},60")
            rows.append({"project_ref_num": 800000 + i, "project_name": f"CORE - Reset {i}",
                         "event_type": "Core", "location_mvid": f"mv{i}", "store_number": 1000 + i % 900,
                         "store_name": f"Store {i % 900}", "start_datetime": start, "due_datetime": due,
                         "estimated_minutes": 60, "sync_status": "pending", "sync_attempts": 0})
        data = ("\r\n".join(lines) + "\r\n").encode()

        def bare(with_history=True):
            with self.app.app_context():
                now = datetime.now(UTC)
                db.session.execute(insert(Event), [{**r, "created_at": now, "updated_at": now}
                                                   for r in rows])
                if with_history:
                    ids = db.session.execute(select(Event.project_ref_num, Event.id))
                    bare_history(db.session.connection(), "events", dict(ids.all()),
                                 {r["project_ref_num"]: r for r in rows}, now, "csv")
                db.session.commit()

        def the_app():
            import csv_formats

            with self.app.app_context():
                return csv_formats.import_events_csv(io.BytesIO(data))

        empty_tables(self.app)
        events_only_s, _ = timed(bare, with_history=False)
        empty_tables(self.app)
        floor_s, _ = timed(bare)
        empty_tables(self.app)
        app_s, result = timed(the_app)
        assert result["created"] == count, result
        ratio = app_s / floor_s
        self.add(f"CSV import of {count} rows", f"{app_s:.2f} s", f"{floor_s:.2f} s",
                 f"{ratio:.2f}×", "≤ 1.5×", ratio <= 1.5,
                 f"events alone {events_only_s:.2f} s ({app_s / events_only_s:.2f}×)")

    # -- memory ------------------------------------------------------------------

    def memory(self) -> None:
        peaks = {}
        for events in (self.n(20000), self.n(80000)):
            self.vendor.seed(0, events, 0)
            empty_tables(self.app)
            gc.collect()
            tracemalloc.start()
            try:
                run_sync(self.app, direction="pull", resources=["events"])
                peaks[events] = tracemalloc.get_traced_memory()[1] / 2**20
            finally:
                tracemalloc.stop()
        (small, low), (big, high) = peaks.items()
        ratio = high / low
        self.add(f"peak memory, first pull of {small} vs {big} events",
                 f"{low:.1f} / {high:.1f} MiB", ratio=f"{ratio:.2f}×",
                 target="flat (≤ 1.3× for 4× the data)", met=ratio <= 1.3,
                 note=f"page size {self.page_size()}")

    # -- a 50 MB CSV of bad rows: peak RSS growth of the import ---------------------

    def csv_bad_memory(self) -> None:
        """Upload a CSV of bad rows through the route and measure the process's peak RSS growth.

        Linux only: the peak (VmHWM) is reset through /proc/self/clear_refs just
        before the request, so the figure is the request's own growth over the
        resident size it started from (the file's bytes are made beforehand).
        """
        size = self.n(50 * 2**20)
        # every row has several bad fields: a reference that is not a number, a bad store
        # number, two bad dates and a bad duration (the shapes that once kept every row)
        row = ("CORE - Reset,R{ref},mv1,not-a-number,Store 1,13/41/2026 12:00:00 AM,"
               "someday,sixty,,,\r\n")
        header = ("Project Name,Project Reference Number,Location MVID,Store Number,Store Name,"
                  "Start Date/Time,Due Date/Time,Estimated Time,Employee ID,Rep Name,Schedule Date/Time\r\n")
        lines, total, ref = [header], len(header), 900000
        while total < size:
            lines.append(row.format(ref=ref))
            total += len(lines[-1])
            ref += 1
        boundary = "benchboundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bad.csv\"\r\n"
                f"Content-Type: text/csv\r\n\r\n{''.join(lines)}\r\n--{boundary}--\r\n").encode()
        rows = len(lines) - 1
        del lines
        auth = base64.b64encode(b"bench:bench-pass-123").decode()
        with self.app.app_context():
            from auth import create_user

            create_user("bench", "bench-pass-123", role="admin")
        client = self.app.test_client()

        def status_kib(field: str) -> int:
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

        gc.collect()
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset the peak resident set size
        before = status_kib("VmRSS")
        started = time.perf_counter()
        response = client.post("/api/import/events", data=body, headers={"Authorization": f"Basic {auth}"},
                               content_type=f"multipart/form-data; boundary={boundary}")
        seconds = time.perf_counter() - started
        growth = (status_kib("VmHWM") - before) / 1024
        error = response.get_json()["error"]
        assert response.status_code == 422 and error["total"] == 5 * rows, (response.status_code, error.get("total"))
        self.add(f"CSV import of a {len(body) / 2**20:.0f} MB file of {rows} bad rows",
                 f"{growth:.0f} MiB peak RSS growth", target="≤ 64 MiB, answer ≤ 64 KiB",
                 met=growth <= 64 and len(response.data) <= 65536,
                 note=f"{seconds:.1f} s, answer {len(response.data) / 1024:.1f} KiB, "
                      f"{len(error['details'])} of {error['total']} problems listed")



# ---------------------------------------------------------------------------
# Cases whose figures used to be asserted in tests (issue 15): self-contained
# ---------------------------------------------------------------------------

def sandbox_seed_and_listing(bench: Bench) -> None:
    """The vendor sandbox itself: a bulk seed, then a full listing in pages of 500."""
    from tests.vendor_sandbox import VendorSandbox

    emp, evt, sch = bench.n(5000), bench.n(20000), bench.n(20000)
    with VendorSandbox(api_key=API_KEY) as sb:
        seed_s, counts = timed(sb.bulk_seed, employees=emp, events=evt, schedules=sch)
        assert counts == {"employees": emp, "events": evt, "schedules": sch}, counts

        def list_all() -> int:
            params, seen = {"limit": 500}, 0
            with requests.Session() as http:
                while True:
                    page = http.get(f"{sb.base_url}/schedules", params=params, timeout=60,
                                    headers={"Authorization": f"Bearer {API_KEY}"}).json()
                    seen += len(page["data"])
                    if not page["next_page_token"]:
                        return seen
                    params = {"page_token": page["next_page_token"]}

        list_s, seen = timed(list_all)
        assert seen == sch, seen
    bench.add(f"sandbox bulk seed: {emp} employees, {evt} events, {sch} schedules",
              f"{seed_s:.2f} s", target="< 5 s", met=seed_s < 5)
    bench.add(f"sandbox full listing of {sch} schedules, limit 500", f"{list_s:.2f} s",
              target="< 10 s", met=list_s < 10, note=f"{-(-sch // 500)} pages over HTTP")


def admin_deep_pages(bench: Bench) -> None:
    """/sync/admin's first, middle and last page of failed records (was a < 2 s assert)."""
    evt, failed = bench.n(20000), bench.n(10000)
    bench._page_data(evt, failed)
    client = bench.app.test_client()
    import re

    login = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
    client.post("/login", data={"username": "admin", "password": "admin-pass-123",
                                "csrf_token": token})
    last = max(1, -(-failed // 25))
    for page in (1, last // 2 or 1, last):
        lat = bench._latencies(client, f"/sync/admin?failed_page={page}", 10)
        bench.add(f"/sync/admin failed page {page} of {last}: {failed} failed records",
                  f"p50 {pct(lat, 50):.1f} / max {max(lat):.1f} ms", target="max < 2000 ms",
                  met=max(lat) < 2000)


CASES = ("pull", "ratelimit", "push", "pages", "csv", "memory", "csvbad", "sandbox", "admin_pages")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def print_table(rows: list[dict], title: str) -> None:
    heads = {"case": "case", "app": "the app", "floor": "floor", "ratio": "ratio",
             "target": "target", "met": "met", "note": "note"}
    widths = {k: max(len(h), *(len(str(r[k])) for r in rows)) for k, h in heads.items()}
    line = " | ".join(h.ljust(widths[k]) for k, h in heads.items())
    print(f"\n{title}\n{line.rstrip()}\n" + "-+-".join("-" * widths[k] for k in heads))
    for row in rows:
        print(" | ".join(str(row[k]).ljust(widths[k]) for k in heads).rstrip())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every size ÷10 (CI)")
    parser.add_argument("--database-url", help="PostgreSQL scratch database (schema rebuilt)")
    parser.add_argument("--only", nargs="*", choices=CASES, help="run only these cases")
    parser.add_argument("--latency", nargs="*", type=float, default=list(LATENCIES),
                        help="vendor latencies (ms) for the sync cases (default: 0 20)")
    args = parser.parse_args(argv)
    os.environ.pop("TEST_DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import logging

    logging.disable(logging.WARNING)
    url, label = prepare_database(args.database_url)
    vendor = Vendor().start()
    started = time.monotonic()
    bench, cost = None, None
    try:
        cost = vendor.per_request_ms(1000 if not args.quick else 300)
        print(f"fast vendor: {cost['get']:.2f} ms a GET /health, {cost['post']:.2f} ms a create "
              "(keep-alive loop, latency 0)", flush=True)
        app = make_app(url, vendor)
        bench = Bench(app, vendor, 10 if args.quick else 1)
        by_latency = {"pull": bench.first_pull_and_noop, "push": bench.push}
        once = {"ratelimit": bench.first_pull_rate_limited, "pages": bench.pages, "csv": bench.csv_import, "memory": bench.memory,
                "csvbad": bench.csv_bad_memory,
                "sandbox": lambda: sandbox_seed_and_listing(bench),
                "admin_pages": lambda: admin_deep_pages(bench)}
        for name in args.only or CASES:
            print(f"== {name}", flush=True)
            if name in by_latency:
                for latency in args.latency:
                    by_latency[name](latency)
            else:
                vendor.latency(0)
                once[name]()
                vendor.latency(0)
    finally:
        vendor.stop()
        if bench is not None and bench.rows:
            print_table(bench.rows, f"Benchmarks on {label}{' (quick: sizes ÷10)' if args.quick else ''}, "
                                    f"client rate limit set to {RATE_LIMIT} req/s, "
                                    f"EXTERNAL_API_CONCURRENCY "
                                    f"{bench.app.config.get('EXTERNAL_API_CONCURRENCY')}, "
                                    f"{time.monotonic() - started:.0f} s")
        if cost is not None:
            print(f"The fast vendor's own cost per request (keep-alive, latency 0): "
                  f"{cost['get']:.2f} ms a GET /health, {cost['post']:.2f} ms a create.")
        if not args.database_url:
            with contextlib.suppress(OSError):
                os.remove(url.split(":///", 1)[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
