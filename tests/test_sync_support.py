"""Fixtures and helpers for the end-to-end sync tests (no tests here).

`sandbox` is a VendorSandbox on a free port; `app_overrides` points the app
at it with sync on, a fresh `whsec_` secret and tiny backoffs; `live` serves
the app for real so the sandbox's webhooks reach /api/webhook/schedule_update.
Import the fixtures into a test module with
`from tests.test_sync_support import *  # noqa: F401,F403`.
"""
from __future__ import annotations

import base64
import os
import secrets
import time
import zlib
from datetime import datetime, timedelta, timezone

import pytest

from tests.live_server import LiveServer
from tests.vendor_sandbox import VendorSandbox

API_KEY = "sk-test-Zq81Xv3"

__all__ = ["sandbox", "webhook_secret", "sync_settings", "app_overrides", "live", "API_KEY",
           "wait_for", "run", "rows", "one", "fmt", "START", "event_body", "new_secret",
           "vendor_event", "vendor_employee", "db_call"]

START = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def fmt(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


@pytest.fixture
def sandbox(request):
    """The vendor in strict mode: every freedom the contract leaves, used (vendor_sandbox.py).

    Its seed comes from the test's id (SANDBOX_SEED adds to it, to try other draws): each
    test meets its own, reproducible, short pages, stale tokens and late deliveries."""
    seed = zlib.crc32(request.node.nodeid.encode()) + int(os.environ.get("SANDBOX_SEED") or 0)
    sb = VendorSandbox(api_key=API_KEY, seed=seed, strict=True).start()
    yield sb
    sb.stop()


@pytest.fixture
def webhook_secret() -> str:
    return new_secret()


@pytest.fixture
def sync_settings() -> dict:
    """Extra settings a test module wants on top of the e2e ones."""
    return {}


@pytest.fixture
def app_overrides(sandbox, webhook_secret, sync_settings):
    settings = {
        "SYNC_ENABLED": True, "SCHEDULER_ENABLED": False, "SYNC_PUSH_ON_CHANGE": False,
        "EXTERNAL_API_BASE_URL": sandbox.base_url, "EXTERNAL_API_KEY": API_KEY,
        "EXTERNAL_API_MAX_RETRIES": 3, "EXTERNAL_API_BACKOFF_FACTOR": 0.001,
        # BACKOFF_MAX 2: the strict sandbox's Retry-After: 1 is waited for, not surfaced
        "EXTERNAL_API_BACKOFF_MAX": 2, "EXTERNAL_API_RATE_LIMIT": 0,
        "EXTERNAL_API_TIMEOUT_SECONDS": 5,
        "WEBHOOK_SECRET": webhook_secret, "SYNC_BACKOFF_BASE_SECONDS": 0.0001,
        "SYNC_BACKOFF_MAX_SECONDS": 0.001, "SYNC_PUSH_DELAY_SECONDS": 0.3,
        "SYNC_BUSY_RETRY_SECONDS": 0.2, "SYNC_HEALTH_CACHE_SECONDS": 10,
    }
    settings.update(sync_settings)
    return settings


@pytest.fixture
def live(app, sandbox, webhook_secret):
    """The app served for real; the sandbox sends its webhooks there."""
    server = LiveServer(app)
    url = server.start()
    sandbox.configure_webhooks(url=url + "/api/webhook/schedule_update", secret=webhook_secret,
                               retry_backoff=0.05)
    yield url
    sandbox.configure_webhooks(url=None)
    sandbox.wait_webhooks_idle(5)
    server.stop()


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
    from app import db

    with app.app_context():
        try:
            return func()
        finally:
            db.session.remove()


def rows(app, resource: str, include_deleted: bool = False) -> list[dict]:
    """Local records of a resource as dicts (with deleted_at and remote_version)."""
    from app import SYNCED_MODELS, db

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
