"""Shared fixtures, flaskr-style: app, client, runner, auth, and a clean database.

The suite runs on SQLite by default and on PostgreSQL when TEST_DATABASE_URL
is set (e.g. postgresql://postgres@127.0.0.1:5432/test).  The schema is built
once per session by the app's own migrations; each test then starts from
empty tables.
"""
from __future__ import annotations

import base64
import os
import re

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from config import normalize_database_url

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
    from app import db

    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
        db.engine.dispose()


@pytest.fixture
def app_overrides() -> dict:
    """Override in a test module (or with parametrize) to change settings."""
    return {}


@pytest.fixture
def app(database_url, app_overrides):
    """The app under test, with an admin and a scheduler user."""
    from app import create_user

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
