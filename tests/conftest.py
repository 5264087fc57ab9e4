"""Shared fixtures, flaskr-style: app, client, runner, auth, and a clean database;
the vendor sandbox and the end-to-end sync settings.

The suite runs on SQLite by default and on PostgreSQL when TEST_DATABASE_URL
is set (e.g. postgresql://postgres@127.0.0.1:5432/test).  The schema is built
once per session by the app's own migrations; each test then starts from
empty tables.

A module marked `pytestmark = pytest.mark.vendor_sync` gets an app pointed at
a fresh `sandbox` with sync on, a fresh `whsec_` secret and tiny backoffs
(`sync_settings` adds to them); `live` serves that app for real so the
sandbox's webhooks reach /api/webhook/schedule_update.  Helpers live in
tests/helpers.py.
"""
from __future__ import annotations

import base64
import os
import re
import zlib

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from config import normalize_database_url
from tests.helpers import API_KEY, new_secret
from tests.live_server import LiveServer
from tests.vendor_sandbox import VendorSandbox

ADMIN = ("admin", "admin-pass-123")
SCHEDULER = ("sched", "sched-pass-123")


def _reset_database(url: str) -> None:
    """Drop everything so the migrations build the schema from nothing.

    A PostgreSQL that does not answer ends the whole run at once with one clear
    message (never a skip, so CI cannot pass without it)."""
    if not url.startswith("postgresql"):
        return
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    except OperationalError as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        pytest.exit(f"TEST_DATABASE_URL={shown}: PostgreSQL is not reachable ({reason}); "
                    "start it or unset TEST_DATABASE_URL to test on SQLite", returncode=3)
    finally:
        engine.dispose()


def pytest_collection_modifyitems(config, items):
    """Deselect the tests of the other database's behaviour (`@pytest.mark.only_on("postgresql")`
    in a run on SQLite, and the reverse): they are not skipped, they do not apply; the run
    on that database (CI runs both) runs them."""
    dialect = ("postgresql" if (os.environ.get("TEST_DATABASE_URL") or "").startswith("postgresql")
               else "sqlite")
    kept, other = [], []
    for item in items:
        marker = item.get_closest_marker("only_on")
        (other if marker is not None and marker.args[0] != dialect else kept).append(item)
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = kept


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    """The test database: TEST_DATABASE_URL, or a fresh SQLite file."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        url = normalize_database_url(url)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"
    _reset_database(url)
    return url


def make_app(database_url: str, **overrides):
    """A testing app on the test database (migrated on creation)."""
    from app import create_app

    settings = {"SQLALCHEMY_DATABASE_URI": database_url}
    settings.update(overrides)
    return create_app("testing", settings)


def _empty_tables(app) -> None:
    from models import db

    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
        db.engine.dispose()


@pytest.fixture
def app_overrides(request, sync_settings) -> dict:
    """Settings on top of TestingConfig: the sync ones in `vendor_sync` modules (where
    `sync_settings` may be parametrized), else none.  Override in a test module (or
    with parametrize) to change them."""
    if request.node.get_closest_marker("vendor_sync"):
        return request.getfixturevalue("sync_overrides")
    return {}


# -- the vendor sandbox and end-to-end sync ----------------------------------

@pytest.fixture
def sandbox(request):
    """A fresh vendor sandbox on a free port (API key API_KEY).

    In `vendor_sync` modules it runs in strict mode (every freedom the vendor contract
    leaves, used: see tests/vendor_sandbox.py), seeded from the test's id (SANDBOX_SEED
    adds to it, to try other draws): each test meets its own reproducible short pages,
    stale tokens and late deliveries."""
    strict = request.node.get_closest_marker("vendor_sync") is not None
    seed = zlib.crc32(request.node.nodeid.encode()) + int(os.environ.get("SANDBOX_SEED") or 0)
    sb = VendorSandbox(api_key=API_KEY, seed=seed if strict else 7, strict=strict).start()
    yield sb
    sb.stop()


@pytest.fixture(scope="module")
def module_sandbox(request):
    """One sandbox for a module's contract tests (emptied for each test by `sb`); lenient,
    or strict when a module parametrizes it indirectly with True."""
    sb = VendorSandbox(api_key=API_KEY, seed=0, strict=getattr(request, "param", False)).start()
    yield sb
    sb.stop()


@pytest.fixture
def sb(module_sandbox):
    """The module's sandbox, emptied, without faults or a webhook URL."""
    module_sandbox.reset()
    module_sandbox.configure_webhooks(url=None, secret=None, retry_backoff=0.02, max_attempts=5)
    yield module_sandbox
    module_sandbox.reset()


@pytest.fixture
def webhook_secret() -> str:
    return new_secret()


@pytest.fixture
def sync_settings() -> dict:
    """Extra settings a test module wants on top of the e2e ones."""
    return {}


@pytest.fixture
def sync_overrides(sandbox, webhook_secret, sync_settings) -> dict:
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


@pytest.fixture
def app(database_url, app_overrides):
    """The app under test, with an admin and a scheduler user."""
    from auth import create_user

    application = make_app(database_url, **app_overrides)
    with application.app_context():
        create_user(*ADMIN, role="admin")
        create_user(*SCHEDULER, role="scheduler")
    yield application
    _empty_tables(application)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def csrf_from(html: str) -> str:
    """The CSRF token a page carries (hidden field or meta tag)."""
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html
    )
    assert match, "the page carries no CSRF token"
    return match.group(1)


class AuthActions:
    """Sign in and out through the real login form (CSRF included)."""

    def __init__(self, client):
        self._client = client
        self.csrf_token = None

    def login(self, username: str = ADMIN[0], password: str = ADMIN[1]):
        page = self._client.get("/login")
        token = csrf_from(page.get_data(as_text=True))
        response = self._client.post(
            "/login", data={"username": username, "password": password, "csrf_token": token}
        )
        self.refresh_csrf()
        return response

    def login_scheduler(self):
        return self.login(*SCHEDULER)

    def refresh_csrf(self, path: str = "/login") -> str:
        """A valid CSRF token for the current session (for form posts)."""
        page = self._client.get(path)
        self.csrf_token = csrf_from(page.get_data(as_text=True))
        return self.csrf_token

    def logout(self):
        token = self.refresh_csrf("/login")
        return self._client.post("/logout", data={"csrf_token": token})

    @staticmethod
    def basic(username: str = ADMIN[0], password: str = ADMIN[1]) -> dict:
        """Headers for HTTP Basic, as `curl -u` sends them."""
        raw = base64.b64encode(f"{username}:{password}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def admin_headers():
    return AuthActions.basic(*ADMIN)


@pytest.fixture
def scheduler_headers():
    return AuthActions.basic(*SCHEDULER)
