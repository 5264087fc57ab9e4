"""The application factory: `create_app()` and its `register_*` steps.

The routes live in one module per audience: auth.py (sign-in), pages.py (the
scheduler's pages), employees.py, api.py (the JSON API), sync_api.py (the sync
API and the vendor's webhook) and sync_admin.py; the CLI in cli.py.  Models,
db, time helpers and domain rules live in `models.py`; the vendor sync in
`sync_engine.py`, which talks HTTP through `api_service.py`.  Imports point one
way: nothing imports this module (`flask --app app` and the tests ask it for
`create_app`).
"""
from __future__ import annotations

import logging
from typing import Optional

import click
from flask import Flask, g, request
from flask_login import current_user
from sqlalchemy import event as sa_event
from sqlalchemy import select

import account
import api
import auth
import calendar_feeds
import cli
import config as app_config
import employees
import history
import inputs
import metrics
import ops
import pages
import security
import sync_admin
import sync_api
import sync_scheduler
from error_handlers import configure_logging, is_api_request, register_error_handlers
from extensions import csrf, login_manager, migrate
from models import User, db
from observability import register_request_ids
from template_helpers import register_template_helpers

log = logging.getLogger("app")


def create_app(config_name: Optional[str] = None, overrides: Optional[dict] = None) -> Flask:
    """Build the app: config, extensions, routes, error pages, commands."""
    app = Flask(__name__, instance_relative_config=True)
    config_class = app_config.config_for(config_name)
    app.config.from_object(config_class)
    if overrides:
        app.config.update(overrides)
    try:
        config_class.validate(app.config)
    except app_config.ConfigError as exc:
        if click.get_current_context(silent=True) is not None:
            # a `flask` command: click prints "Error: <what is missing>", exit 1, no traceback
            raise click.ClickException(f"Not starting: {exc}") from None
        raise
    register_logging(app)
    register_request_ids(app)
    metrics.register_request_metrics(app)
    register_input_rules(app)
    register_extensions(app)
    register_history_source(app)
    register_routes(app)
    register_error_handlers(app)
    register_template_helpers(app)
    register_commands(app)
    with app.app_context():
        if app.config.get("AUTO_MIGRATE"):
            upgrade_database(app)
        bootstrap_admin(app)
    register_scheduler(app)
    return app


def register_logging(app: Flask) -> None:
    """Logging is configured in error_handlers.configure_logging (one place)."""
    configure_logging(app)


def register_extensions(app: Flask) -> None:
    """Bind db, migrations, CSRF and the login manager to the app."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite"):
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
        if ":///" in uri and uri != "sqlite://":
            from pathlib import Path

            Path(uri.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(app_config.BASE_DIR / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    security.register_security(app)  # first: throttled sign-ins answer 429 before anything
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            sa_event.listen(db.engine, "connect", _sqlite_pragmas)

    app.before_request(auth_then_csrf)


def auth_then_csrf():
    """API writes: 401 unless signed in, then CSRF unless signed in by a token or Basic.

    CSRF is skipped only for a request that authenticated with an API token or
    HTTP Basic (a script sends no cookie a forger could ride on); a session cookie
    with any other Authorization header still needs the CSRF token.  The vendor's
    webhook is authenticated by its signature.  A path or method that matches no
    route answers 404/405 before any check (no view runs).
    """
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    if request.blueprint == "webhook":
        return None
    if request.routing_exception is not None:
        return None  # the 404/405 answers (pages too: /healthz, a feed); no view runs
    if is_api_request():
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if g.get("basic_auth"):
            return None
    csrf.protect()
    return None


# The history source of each blueprint's writes (history.py): pages, the JSON and sync
# APIs with the signed-in user as actor, the webhook with none.
HISTORY_SOURCES = {"auth": "page", "account": "page", "pages": "page", "employees": "page",
                   "sync_admin": "page",
                   "api": "api", "sync_api": "api", "webhook": "webhook"}


def register_history_source(app: Flask) -> None:
    """Every write request says where its changes come from, once, here (history.py)."""

    @app.before_request
    def history_source():
        """Name the source (and actor) of this write request's history entries."""
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None  # reads write nothing; a GET that wrote would fail loudly
        name = HISTORY_SOURCES.get(request.blueprint or "")
        if name is not None:
            actor = current_user.username if name != "webhook" and \
                current_user.is_authenticated else None
            history.set_source(name, actor=actor)
        return None

    @app.teardown_request
    def history_source_done(_exc=None):
        """Forget the request's history source."""
        history.clear_source()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL and a busy timeout so requests and the sync thread share the file."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def register_input_rules(app: Flask) -> None:
    """inputs.py's rules: ids in paths, body limits, and clean text in queries and forms."""
    app.request_class = inputs.Request
    app.url_map.converters["int"] = inputs.IdConverter

    @app.before_request
    def refuse_unclean_text():
        """A NUL in a query parameter or form field is 422 naming it.

        Only once the caller is known (anonymous calls get their 401 or the
        login page first), except the login form's fields (its `next` is
        checked by security.safe_next); the webhook's body is the sync
        engine's to check.
        """
        if request.endpoint in (None, "static", "webhook.webhook_schedule_update"):
            return
        if request.endpoint == "auth.login":
            inputs.check_mapping(request.form.items(multi=True))  # `next` is security.safe_next's
            return
        if not current_user.is_authenticated:
            return
        inputs.check_mapping(request.args.items(multi=True))
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            inputs.check_mapping(request.form.items(multi=True))


def register_routes(app: Flask) -> None:
    """URL rules for the login and account, pages, employees, JSON API, sync API, webhook,
    sync admin, and the operators' probes and metrics."""
    for blueprint in (auth.bp, account.bp, pages.bp, employees.bp, api.bp, sync_api.bp,
                      sync_api.webhook, sync_admin.bp, ops.bp, calendar_feeds.bp):
        app.register_blueprint(blueprint)
    # Browsers and bookmarks ask for /favicon.ico whatever the page links: answer it.
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.ico"))


def upgrade_database(app: Flask) -> None:
    """Bring the schema to the latest migration (development and testing)."""
    from flask_migrate import upgrade

    if app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite://":
        db.create_all()  # in-memory database: nothing to migrate
        return
    upgrade(directory=str(app_config.BASE_DIR / "migrations"))


def bootstrap_admin(app: Flask) -> None:
    """Make sure ADMIN_USERNAME/ADMIN_PASSWORD can sign in as an admin."""
    username, password = app.config.get("ADMIN_USERNAME"), app.config.get("ADMIN_PASSWORD")
    if not (username and password):
        return
    try:
        user = db.session.scalar(select(User).where(User.username == username))
    except Exception:  # noqa: BLE001 - schema not there yet (before `db upgrade`)
        db.session.rollback()
        log.warning("users table missing: run `flask --app app db upgrade`")
        return
    if user is None or not user.check_password(password) or user.role != "admin":
        auth.create_user(username, password, role="admin")
        log.info("admin user %r ready", username)


def register_scheduler(app: Flask) -> None:
    """Soon-runs for every app; the interval sync job when sync is on (never under testing)."""
    sync_scheduler.init_app(app)


def register_commands(app: Flask) -> None:
    """`flask --app app users ...`, `sync ...`, `demo ...`, `schedules ...`."""
    cli.register_commands(app)
