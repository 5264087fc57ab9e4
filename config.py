"""Settings, read once from the environment or `.env` with python-decouple.

Every setting is here; `.env.example` and the README (Settings) document each one.
`config_for(name)` picks the class; `ProductionConfig.validate()` refuses to
start, with one message naming everything missing, when a secret is absent.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from decouple import config

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"


def _bool(name: str, default: bool) -> bool:
    return config(name, default=default, cast=bool)


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for plain `postgresql://` URLs (psycopg2 is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class ConfigError(RuntimeError):
    """Raised at start-up when the configuration cannot work."""


def delete_guard_share(value) -> float | None:
    """SYNC_DELETE_GUARD as a share (0.2 for "20%"), None for "off"; ValueError if bad."""
    text = str(value).strip().lower()
    if text == "off":
        return None
    number = float(text[:-1] if text.endswith("%") else text)
    if not 0 <= number <= 100:
        raise ValueError(f"{value!r} is not a percentage from 0 to 100")
    return number / 100


class Config:
    """Defaults shared by every environment."""

    APP_CONFIG = "base"
    TESTING = False
    DEBUG = False

    SECRET_KEY = config("SECRET_KEY", default=None)
    DATABASE_URL = config("DATABASE_URL", default=None)
    SQLALCHEMY_DATABASE_URI = normalize_database_url(
        DATABASE_URL or f"sqlite:///{INSTANCE_DIR / 'scheduler.sqlite'}"
    )
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    SQLALCHEMY_TRACK_MODIFICATIONS = False

    APP_TIMEZONE = config("APP_TIMEZONE", default="UTC") or "UTC"
    ADMIN_USERNAME = config("ADMIN_USERNAME", default=None)
    ADMIN_PASSWORD = config("ADMIN_PASSWORD", default=None)

    EXTERNAL_API_BASE_URL = config("EXTERNAL_API_BASE_URL", default=None)
    EXTERNAL_API_KEY = config("EXTERNAL_API_KEY", default=None)
    EXTERNAL_API_TIMEOUT_SECONDS = config("EXTERNAL_API_TIMEOUT_SECONDS", default=10.0, cast=float)
    EXTERNAL_API_MAX_RETRIES = config("EXTERNAL_API_MAX_RETRIES", default=5, cast=int)
    EXTERNAL_API_RATE_LIMIT = config("EXTERNAL_API_RATE_LIMIT", default=10.0, cast=float)
    # Requests a push keeps in flight at once (keep-alive connections); never more
    # than EXTERNAL_API_RATE_LIMIT allows in one second.
    EXTERNAL_API_CONCURRENCY = config("EXTERNAL_API_CONCURRENCY", default=4, cast=int)

    WEBHOOK_SECRET = config("WEBHOOK_SECRET", default=None)
    SYNC_ENABLED = _bool("SYNC_ENABLED", False)
    SYNC_INTERVAL_MINUTES = config("SYNC_INTERVAL_MINUTES", default=15.0, cast=float)
    SYNC_CONFLICT_POLICY = config("SYNC_CONFLICT_POLICY", default="last_write_wins")
    # Seconds to wait after a local change before pushing it (changes coalesce).
    SYNC_PUSH_DELAY_SECONDS = config("SYNC_PUSH_DELAY_SECONDS", default=3.0, cast=float)
    # Days of webhook records and finished runs kept (pruned after each interval run).
    SYNC_HISTORY_DAYS = config("SYNC_HISTORY_DAYS", default=30.0, cast=float)
    # Days of per-record history kept (who changed what; pruned with the sync history).
    HISTORY_DAYS = config("HISTORY_DAYS", default=400.0, cast=float)
    # The database lease that lets one run at a time across processes: a run renews it
    # while it works; a crashed holder's lease is taken over once it expires (at once
    # by a process on the holder's host that finds the holder's pid gone).
    SYNC_LEASE_TTL_SECONDS = config("SYNC_LEASE_TTL_SECONDS", default=120.0, cast=float)
    # The deletion guard: a full listing (after a 410, or a full resync) that would delete
    # more than this share of one resource's linked local records, and at least
    # SYNC_DELETE_GUARD_MIN of them, deletes none: they are held for an admin (/sync/admin,
    # /api/sync/held).  A percentage ("20%"; "20" means the same), or "off".
    SYNC_DELETE_GUARD = config("SYNC_DELETE_GUARD", default="20%")
    SYNC_DELETE_GUARD_MIN = config("SYNC_DELETE_GUARD_MIN", default=10, cast=int)
    # Seconds after start before the interval job's first run.
    SYNC_FIRST_RUN_DELAY_SECONDS = config("SYNC_FIRST_RUN_DELAY_SECONDS", default=10.0, cast=float)
    # Whether a committed local change asks for a push SYNC_PUSH_DELAY_SECONDS later
    # (off: changes wait for the next interval run or a manual one).
    SYNC_PUSH_ON_CHANGE = _bool("SYNC_PUSH_ON_CHANGE", True)
    # Objects asked for per page of a vendor listing (pull).
    SYNC_PAGE_SIZE = config("SYNC_PAGE_SIZE", default=500, cast=int)
    # Pending records read and pushed per batch (one commit for each batch's results).
    SYNC_PUSH_BATCH_SIZE = config("SYNC_PUSH_BATCH_SIZE", default=200, cast=int)
    # Seconds between renewals of the lease by a working run (well under the TTL).
    SYNC_LEASE_RENEW_SECONDS = config("SYNC_LEASE_RENEW_SECONDS", default=30.0, cast=float)
    # A record that failed temporarily is pushed again after min(base·2^attempts, max)
    # seconds, jittered to 50-100 %.
    SYNC_BACKOFF_BASE_SECONDS = config("SYNC_BACKOFF_BASE_SECONDS", default=30.0, cast=float)
    SYNC_BACKOFF_MAX_SECONDS = config("SYNC_BACKOFF_MAX_SECONDS", default=3600.0, cast=float)
    # Seconds before a push-soon or pull-soon run tries again when another run holds the lease.
    SYNC_BUSY_RETRY_SECONDS = config("SYNC_BUSY_RETRY_SECONDS", default=2.0, cast=float)
    # Seconds a vendor health check (/api/sync/health) is reused before asking again.
    SYNC_HEALTH_CACHE_SECONDS = config("SYNC_HEALTH_CACHE_SECONDS", default=10.0, cast=float)
    # Exponential backoff of one vendor request's retries (urllib3 Retry): factor and cap in
    # seconds.  A 429's Retry-After is honoured over both.
    EXTERNAL_API_BACKOFF_FACTOR = config("EXTERNAL_API_BACKOFF_FACTOR", default=0.5, cast=float)
    EXTERNAL_API_BACKOFF_MAX = config("EXTERNAL_API_BACKOFF_MAX", default=30.0, cast=float)
    # Whether the in-process APScheduler starts (tests and CLI turn it off).
    SCHEDULER_ENABLED = True
    AUTO_MIGRATE = False

    WTF_CSRF_TIME_LIMIT = None
    WTF_CSRF_CHECK_DEFAULT = False  # checked in a before_request hook (see app.py)
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Session cookies only over HTTPS (production), and HSTS's max-age in seconds
    # (0: no Strict-Transport-Security header; it is only ever sent over HTTPS).
    SESSION_COOKIE_SECURE = False
    HSTS_MAX_AGE = 0
    # Rows per page of the dashboard and employee list, schedules per page of the week's
    # list view (/calendar?view=list), employees per page of the week's roster (/calendar).
    PAGE_SIZE = config("PAGE_SIZE", default=50, cast=int)
    CALENDAR_PAGE_SIZE = config("CALENDAR_PAGE_SIZE", default=100, cast=int)
    ROSTER_PAGE_SIZE = config("ROSTER_PAGE_SIZE", default=50, cast=int)

    # Largest request body in bytes (JSON and forms, the webhook too); past it: 413.
    MAX_CONTENT_LENGTH = config("MAX_CONTENT_LENGTH", default=1024 * 1024, cast=int)
    # Largest CSV upload in bytes (the import routes only); past it: 413.
    MAX_CSV_UPLOAD_LENGTH = config("MAX_CSV_UPLOAD_LENGTH", default=100 * 1024 * 1024, cast=int)
    # Failed sign-ins (login form and HTTP Basic alike) allowed per client address and
    # per user name before 429 (Flask-Limiter notation, "N per minute; M per hour").
    SIGNIN_LIMIT_PER_ADDRESS = config("SIGNIN_LIMIT_PER_ADDRESS", default="20 per minute; 100 per hour")
    SIGNIN_LIMIT_PER_NAME = config("SIGNIN_LIMIT_PER_NAME", default="5 per minute; 20 per hour")
    # Where the limiter counts: memory:// (one process) or shared storage such as
    # redis://host:6379 so that several processes or hosts count together.
    RATELIMIT_STORAGE_URI = config("RATELIMIT_STORAGE_URI", default="memory://")
    # Largest webhook body accepted (bytes); larger deliveries get 413 unread.
    WEBHOOK_MAX_BYTES = config("WEBHOOK_MAX_BYTES", default=65536, cast=int)
    # Days a new API token lives (0: until revoked).
    API_TOKEN_DAYS = config("API_TOKEN_DAYS", default=365.0, cast=float)
    # Serve /metrics (Prometheus text format; admins, by token or Basic).
    METRICS_ENABLED = _bool("METRICS_ENABLED", True)
    # Where alerts are POSTed (JSON with a Slack-compatible "text"); unset: admin pages only.
    ALERT_WEBHOOK_URL = config("ALERT_WEBHOOK_URL", default=None)
    # Consecutive failed or partial runs that raise an alert.
    SYNC_ALERT_AFTER_FAILURES = config("SYNC_ALERT_AFTER_FAILURES", default=3, cast=int)
    # A record pending longer than this many minutes raises an alert.
    SYNC_ALERT_PENDING_MINUTES = config("SYNC_ALERT_PENDING_MINUTES", default=60.0, cast=float)
    # Log lines as text ("time level logger [request id]: message") or json (one object a line).
    LOG_FORMAT = (config("LOG_FORMAT", default="text") or "text").strip().lower()

    # Names of settings whose values are secrets: never logged or shown.
    SECRET_SETTINGS = ("SECRET_KEY", "EXTERNAL_API_KEY", "WEBHOOK_SECRET", "ADMIN_PASSWORD",
                       "ALERT_WEBHOOK_URL")  # a chat webhook's address is its secret

    @classmethod
    def validate(cls, settings: dict) -> None:
        """Check settings that every environment needs to be coherent."""
        problems = []
        if settings.get("SYNC_CONFLICT_POLICY") not in ("last_write_wins", "manual"):
            problems.append("SYNC_CONFLICT_POLICY must be 'last_write_wins' or 'manual'")
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(settings.get("APP_TIMEZONE") or "UTC")
        except Exception:  # noqa: BLE001 - any failure means an unknown zone
            problems.append(f"APP_TIMEZONE {settings.get('APP_TIMEZONE')!r} is not a known time zone")
        if settings.get("SYNC_INTERVAL_MINUTES", 1) <= 0:
            problems.append("SYNC_INTERVAL_MINUTES must be positive")
        try:
            delete_guard_share(settings.get("SYNC_DELETE_GUARD", "20%"))
        except ValueError:
            problems.append("SYNC_DELETE_GUARD must be a percentage such as '20%', or 'off'")
        if not isinstance(settings.get("SYNC_DELETE_GUARD_MIN", 0), int) \
                or settings.get("SYNC_DELETE_GUARD_MIN", 0) < 0:
            problems.append("SYNC_DELETE_GUARD_MIN must be a whole number, 0 or more")
        if settings.get("SYNC_ALERT_AFTER_FAILURES", 1) < 1:
            problems.append("SYNC_ALERT_AFTER_FAILURES must be 1 or more")
        if settings.get("SYNC_ALERT_PENDING_MINUTES", 1) <= 0:
            problems.append("SYNC_ALERT_PENDING_MINUTES must be positive")
        if settings.get("API_TOKEN_DAYS", 0) < 0:
            problems.append("API_TOKEN_DAYS must be 0 (no expiry) or more")
        if settings.get("LOG_FORMAT", "text") not in ("text", "json"):
            problems.append("LOG_FORMAT must be 'text' or 'json'")
        if problems:
            raise ConfigError("Configuration error: " + "; ".join(problems) + ".")


class DevelopmentConfig(Config):
    """Local development: embedded SQLite, random secret key, auto-migrate."""

    APP_CONFIG = "development"
    DEBUG = False  # the reloader/debugger are chosen by `flask run --debug`
    SECRET_KEY = Config.SECRET_KEY or secrets.token_hex(32)
    AUTO_MIGRATE = True


class TestingConfig(Config):
    """The test suite: its own database, no scheduler, CSRF on."""

    APP_CONFIG = "testing"
    TESTING = True
    SECRET_KEY = "testing-secret-key"
    SQLALCHEMY_DATABASE_URI = normalize_database_url(
        os.environ.get("TEST_DATABASE_URL") or "sqlite://"
    )
    SCHEDULER_ENABLED = False
    AUTO_MIGRATE = True
    SYNC_ENABLED = False
    SYNC_PUSH_DELAY_SECONDS = 0.0
    EXTERNAL_API_BASE_URL = None
    EXTERNAL_API_KEY = None
    WEBHOOK_SECRET = None
    ADMIN_USERNAME = None
    ADMIN_PASSWORD = None
    APP_TIMEZONE = "UTC"
    SYNC_CONFLICT_POLICY = "last_write_wins"
    SYNC_DELETE_GUARD = "20%"
    SYNC_DELETE_GUARD_MIN = 10


class ProductionConfig(Config):
    """Production: every secret must come from the environment."""

    APP_CONFIG = "production"
    SESSION_COOKIE_SECURE = True
    HSTS_MAX_AGE = config("HSTS_MAX_AGE", default=31536000, cast=int)

    @classmethod
    def validate(cls, settings: dict) -> None:
        """Refuse to start, naming every missing setting at once."""
        missing = []
        if not settings.get("SECRET_KEY"):
            missing.append("SECRET_KEY")
        if settings.get("SYNC_ENABLED") and not settings.get("WEBHOOK_SECRET"):
            missing.append("WEBHOOK_SECRET (sync is on)")
        url = settings.get("DATABASE_URL") or ""
        if not url or url.startswith("sqlite"):
            missing.append("DATABASE_URL (a non-SQLite database, e.g. postgresql+psycopg://...)")
        if missing:
            raise ConfigError(
                "Production configuration is incomplete; set: " + ", ".join(missing) + "."
            )
        super().validate(settings)


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def settings_of(config_class: type[Config]) -> dict:
    """The settings a class gives an app (its upper-case attributes, as from_object reads)."""
    return {key: getattr(config_class, key) for key in dir(config_class) if key.isupper()}


def check_startup(name: str | None = None) -> None:
    """Refuse to start, with one line naming what is missing, before anything is served.

    Used by gunicorn.conf.py in the master (so no worker boots with a traceback);
    `flask` commands get the same line through create_app (see app.py)."""
    try:
        config_class = config_for(name)
        config_class.validate(settings_of(config_class))
    except ConfigError as exc:
        raise SystemExit(f"Not starting: {exc}") from None


def config_for(name: str | None) -> type[Config]:
    """The config class for `name` (or APP_CONFIG), failing clearly on a typo."""
    name = (name or config("APP_CONFIG", default="development")).strip().lower()
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(
            f"APP_CONFIG {name!r} is unknown; use one of: {', '.join(CONFIGS)}."
        ) from None
