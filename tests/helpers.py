"""Helpers shared by the test modules (no fixtures, no tests: those live in conftest.py).

Sync end-to-end: `run`, `rows`, `one`, `db_call`, `event_body`, `vendor_event`,
`vendor_employee`, `invariant_breaks`, `signed` (a webhook delivery); waiting: `wait_for`;
SQL: `statements`, `commits`; answers: `assert_error`, `fields_of`.
"""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from standardwebhooks import Webhook

API_KEY = "sk-test-Zq81Xv3"
START = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def fmt(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def signed(secret: str, body: dict | str, msg_id: str | None = None, when=None) -> tuple:
    """A webhook delivery as the vendor signs it (Standard Webhooks): (raw body, headers)."""
    raw = body if isinstance(body, str) else json.dumps(body)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = when or datetime.now(timezone.utc)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())),
               "webhook-signature": Webhook(secret).sign(msg_id, when, raw),
               "Content-Type": "application/json"}
    return raw, headers


def event_body(ref: int, name: str = "CORE - Snack Reset", **extra) -> dict:
    body = {"project_ref_num": ref, "project_name": name, "event_type": "Core",
            "store_number": 1204, "store_name": "Springfield", "location_mvid": "MV-01204",
            "start_datetime": fmt(START), "due_datetime": fmt(START + timedelta(days=5)),
            "estimated_minutes": 60}
    body.update(extra)
    return body


def vendor_event(sandbox, ref: int, **extra) -> dict:
    return sandbox.vendor_create("events", event_body(ref, **extra))


def vendor_employee(sandbox, name: str = "Vera Vendor", **extra) -> dict:
    return sandbox.vendor_create("employees", {"name": name, "email": None, "active": True,
                                               **extra})


def wait_for(condition, timeout: float = 10.0, interval: float = 0.02, message: str = ""):
    """Poll `condition()` until truthy; its value, or AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message or condition}")
        time.sleep(interval)


def run(app, **kwargs) -> dict:
    """One sync run inline; its RUN dict."""
    import sync_engine

    with app.app_context():
        return sync_engine.run_sync(app, **kwargs).to_dict()


def db_call(app, func):
    """Call func() in a fresh app context (its own session) and return the result."""
    from models import db

    with app.app_context():
        try:
            return func()
        finally:
            db.session.remove()


def rows(app, resource: str, include_deleted: bool = False) -> list[dict]:
    """Local records of a resource as dicts (with deleted_at and remote_version)."""
    from models import SYNCED_MODELS, db

    def load():
        model = SYNCED_MODELS[resource]
        query = db.select(model).order_by(model.id)
        if not include_deleted:
            query = query.where(model.deleted_at.is_(None))
        out = []
        for row in db.session.scalars(query):
            data = row.to_dict()
            data.update(deleted_at=row.deleted_at, remote_version=row.remote_version,
                        conflict_remote=row.conflict_remote, idempotency_key=row.idempotency_key,
                        sync_attempts=row.sync_attempts)
            out.append(data)
        return out

    return db_call(app, load)


def one(app, resource: str, **match) -> dict | None:
    found = [r for r in rows(app, resource, include_deleted=True)
             if all(r.get(k) == v for k, v in match.items())]
    assert len(found) <= 1, found
    return found[0] if found else None


def invariant_breaks(app, sandbox) -> list[str]:
    """What breaks the sync invariant (none: it holds): every live vendor object is linked
    to exactly one live local record, every live linked local record to a live vendor object."""
    breaks = []
    for resource in ("employees", "events", "schedules"):
        vendor = {o["id"] for o in sandbox.objects(resource)}
        linked = Counter(r["external_id"] for r in rows(app, resource) if r["external_id"])
        breaks += [f"{resource}: vendor object {oid} is linked to {linked[oid]} live local "
                   "records" for oid in sorted(vendor) if linked[oid] != 1]
        breaks += [f"{resource}: live local record linked to {ext}, which the vendor does "
                   "not hold" for ext in sorted(set(linked) - vendor)]
    return breaks


def delete_local(app, resource: str, record_id: int) -> None:
    """Soft-delete a local record (a pending delete for the vendor)."""
    from models import SYNCED_MODELS, db

    def do():
        db.session.get(SYNCED_MODELS[resource], record_id).soft_delete()
        db.session.commit()

    db_call(app, do)


@contextmanager
def _engine_events(app, name: str):
    """Record one item per `name` event of the app's engine inside the block."""
    from models import db

    seen: list = []

    def record(conn, *args):
        seen.append(args[1] if name == "before_cursor_execute" else 1)

    with app.app_context():
        engine = db.engine
    from sqlalchemy import event as sa_event

    sa_event.listen(engine, name, record)
    try:
        yield seen
    finally:
        sa_event.remove(engine, name, record)


def statements(app):
    """Record the SQL statements run inside the block (the one statement counter)."""
    return _engine_events(app, "before_cursor_execute")


def commits(app):
    """Count database COMMITs inside the block."""
    return _engine_events(app, "commit")


def assert_error(response, status: int, code: str | None = None) -> dict:
    """An error answer (the app's, via the test client, or the sandbox's, via requests):
    the status, and a JSON error with a code and message, identified by an error id or a
    request id."""
    body = response.get_json() if hasattr(response, "get_json") else response.json()
    assert response.status_code == status, body
    error = body["error"]
    assert error["message"]
    assert error.get("error_id") or response.headers.get("X-Request-Id")
    if code:
        assert error["code"] == code
    return error


def fields_of(error) -> set[str]:
    return {d["field"] for d in error["details"]}


# ---------------------------------------------------------------------------
# Small local HTTP servers for tests (a vendor that misbehaves on cue, an alert receiver)
# ---------------------------------------------------------------------------

class QuietHandler(BaseHTTPRequestHandler):
    """A test server's handler: HTTP/1.1 keep-alive, no access log, JSON answers."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_json(self):
        """The request's JSON body (None when it has none)."""
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def send_json(self, status: int, body, headers: Optional[dict] = None) -> None:
        """Answer `body` as JSON with `status` and any extra headers."""
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class LocalServer:
    """A threaded HTTP server on a free 127.0.0.1 port: `url` (plus `path`), `close()`."""

    def __init__(self, handler: type, path: str = ""):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Receiver(LocalServer):
    """An alert receiver: records the JSON bodies POSTed to it; `fail_next` answers that
    many with 503 first (recording nothing)."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.fail_next = 0
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = self.read_json()
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    self.send_json(503, {})
                else:
                    receiver.bodies.append(body)
                    self.send_json(200, {})

        super().__init__(Handler, "/hook")
