"""Models, the database handle, time helpers and domain rules: the bottom of the app.

Nothing here imports the web app: `sync_engine/`, `csv_formats.py`,
`error_handlers.py` and `app.py` import from this module.  What needs the
app at call time (APP_TIMEZONE, the session) goes through `flask.current_app`
and `db`, bound to an app in `create_app`.

Order: Base, db → column type → errors → models in dependency order → time
helpers → domain rules.
"""
from __future__ import annotations

import logging
import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Optional
from zoneinfo import ZoneInfo

from blinker import Namespace
from flask import current_app
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    any_,
    bindparam,
    event as sa_event,
    exists,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    column_property,
    mapped_column,
    relationship,
    validates,
)
from werkzeug.security import check_password_hash, generate_password_hash

import inputs
import local_days
from timestamps import parse_timestamp

log = logging.getLogger("app")


# ---------------------------------------------------------------------------
# Base, db (unbound; bound in create_app)
# ---------------------------------------------------------------------------

class Base(DeclarativeBase):
    """Declarative base for every model."""


db = SQLAlchemy(model_class=Base)

def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stores aware datetimes as naive UTC; loads them back as aware UTC.

    Naive values are refused so that a local time can never be stored by
    mistake as if it were UTC.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store aware UTC datetimes")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)




# ---------------------------------------------------------------------------
# Errors: what the app answers (ApiError) and a broken domain rule (DomainError)
# ---------------------------------------------------------------------------

class ApiError(Exception):
    """An error answer: status, machine code, human message, optional details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 extra: Optional[dict] = None, fields: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.extra = extra or {}  # beside "error" in the answer
        self.fields = fields or {}  # inside "error" (e.g. a CSV's problem total)


class DomainError(ApiError):
    """A rule a record breaks: which field, why, and the HTTP status that fits."""

    def __init__(self, message: str, field: Optional[str] = None, status: int = 422,
                 code: str = "validation_failed", details: Any = None):
        if details is None and field:
            details = [{"field": field, "message": message}]
        super().__init__(status, code, message, details)
        self.field = field

    def to_api_error(self) -> ApiError:
        return ApiError(self.status, self.code, self.message, self.details)


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------

# every value of SyncMixin.sync_status (the status counts list them in this order)
SYNC_STATUSES = ("synced", "pending", "failed", "conflict")
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
ALL_WORKDAYS = 0b1111111
EVENT_TYPES = ("Core", "Juicer", "Supervisor", "Digital", "Freeosk", "Other")
ROLES = ("admin", "scheduler")


class SyncMixin:
    """Columns and helpers every synced model shares.

    `sync_status` is `pending` for new and changed records; the sync engine
    moves it to `synced`, `failed` or `conflict`.  `remote_version` is the
    vendor's last seen `version`; `deleted_at` marks a local delete that still
    has to reach the vendor (the row is hidden from pages and the API).
    """

    external_id: Mapped[Optional[str]] = mapped_column(String(64), unique=True)
    remote_version: Mapped[Optional[int]] = mapped_column(Integer)
    sync_status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    last_synced: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    sync_error: Mapped[Optional[str]] = mapped_column(Text)
    sync_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[Optional[str]] = mapped_column(String(255))
    conflict_remote: Mapped[Optional[dict]] = mapped_column(JSON)
    # no index: nearly all rows are live, and SQLite would prefer it to the selective one
    # active_history on the fields per-record history tracks (history.py): a change
    # knows its old value even on an expired row
    deleted_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, active_history=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    # The state a retry starts from: pending, no attempts, a fresh idempotency key.
    RETRY_VALUES = {"sync_status": "pending", "sync_attempts": 0, "next_attempt_at": None,
                    "sync_error": None, "idempotency_key": None}

    @staticmethod
    def pending_values() -> dict:
        """The sync columns of a record new here (bulk INSERTs use them): pending, no attempts."""
        return {"sync_status": "pending", "sync_attempts": 0}

    @staticmethod
    def synced_values(at: Optional[datetime] = None) -> dict:
        """The columns of a record the vendor has as it is here (bulk UPDATEs use them too)."""
        return {"sync_status": "synced", "sync_error": None, "sync_attempts": 0,
                "next_attempt_at": None, "idempotency_key": None, "conflict_remote": None,
                "last_synced": at or utcnow()}

    def _assign(self, values: dict) -> None:
        for name, value in values.items():
            setattr(self, name, value)

    def mark_synced(self, at: Optional[datetime] = None, note: Optional[str] = None) -> None:
        """The vendor has this version: synced, nothing pending (`note` kept as sync_error)."""
        self._assign(self.synced_values(at))
        self.sync_error = note

    def mark_failed(self, error: str) -> None:
        """The vendor refused it (or cannot take it): failed until someone retries."""
        self.sync_status = "failed"
        self.sync_error = error

    def mark_conflict(self, remote: dict, summary: str) -> None:
        """Both sides changed and an admin decides (SYNC_CONFLICT_POLICY=manual)."""
        self.sync_status = "conflict"
        self.conflict_remote = remote
        self.sync_error = "conflict: " + summary

    def mark_pending(self, note: str) -> None:
        """To be sent again at once (no attempts yet), `note` saying why (the sync repaired it)."""
        self._assign({"sync_status": "pending", "sync_attempts": 0, "next_attempt_at": None,
                      "sync_error": note})

    def back_off(self, until: datetime, error: str) -> None:
        """A send failed for now: stays pending, one attempt more, not sent before `until`."""
        self.sync_attempts = (self.sync_attempts or 0) + 1
        self.next_attempt_at = until
        self.sync_error = error

    def reset_for_retry(self) -> None:
        """Back to pending, to be sent at once with a fresh idempotency key."""
        self._assign(self.RETRY_VALUES)

    def mark_changed(self) -> None:
        """Record a local change: pending for the vendor, stamped now."""
        self.updated_at = utcnow()
        if self.sync_status != "conflict":
            self.sync_status = "pending"
        self.sync_error = None
        self.sync_attempts = 0
        self.next_attempt_at = None

    def soft_delete(self) -> None:
        """Hide the record and queue its delete for the vendor."""
        self.deleted_at = utcnow()
        self.mark_changed()

    def sync_fields(self) -> dict:
        """The sync fields every API object carries."""
        return {
            "external_id": self.external_id,
            "sync_status": self.sync_status,
            "last_synced": iso(self.last_synced),
            "sync_error": self.sync_error,
            "updated_at": iso(self.updated_at),
        }


class User(db.Model):
    """A person who signs in: an admin or a scheduler (not synced)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="scheduler")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Part of every session's id (`get_id`): signing out or a new password adds one,
    # so a copy of an older session cookie no longer signs anyone in.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    # Flask-Login protocol
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version or 0}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def set_password(self, password: str) -> None:
        """A new password also ends every session signed in with the old one."""
        self.password_hash = generate_password_hash(password)
        self.session_version = (self.session_version or 0) + 1

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class ApiToken(db.Model):
    """An API client's bearer token: acts as its user; stored only as a SHA-256 hash.

    Local to this app (never synced).  `tokens.py` makes, checks and revokes them."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, to tell tokens apart
    label: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship(lazy="joined")

    def usable(self, now: datetime) -> bool:
        """Neither revoked nor expired at `now`."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class Employee(SyncMixin, db.Model):
    """A merchandiser who can be given work."""

    __tablename__ = "employees"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[Optional[str]] = mapped_column(String(64), active_history=True)
    name: Mapped[str] = mapped_column(String(120), index=True, active_history=True)
    email: Mapped[Optional[str]] = mapped_column(String(255), active_history=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True, active_history=True)
    # Availability (app-api.md "Availability"): local to this app, never pushed to the vendor.
    # `workdays`: a 7-bit mask, bit 0 = Monday … bit 6 = Sunday (date.weekday()); all seven
    # by default.  A server default only (no Python default), so that Core inserts and the
    # COPY path (bulk_rows.insert_rows) that leave it out keep working; None before a flush means 127.
    workdays: Mapped[int] = mapped_column(
        Integer, CheckConstraint("workdays BETWEEN 0 AND 127", name="ck_employees_workdays"),
        server_default=str(ALL_WORKDAYS))
    # At most this many scheduled days in a Monday–Sunday local week; None: no limit.
    # 1..7 (0 would mean "never works", which workdays = [] already says).
    max_days_per_week: Mapped[Optional[int]] = mapped_column(Integer, CheckConstraint(
        "max_days_per_week BETWEEN 1 AND 7", name="ck_employees_max_days_per_week"))

    __table_args__ = (
        Index(
            "uq_employees_code_live", "code", unique=True,
            sqlite_where=db.text("deleted_at IS NULL AND code IS NOT NULL"),
            postgresql_where=db.text("deleted_at IS NULL AND code IS NOT NULL"),
        ),
    )

    @property
    def workday_names(self) -> list[str]:
        """The weekdays worked, Monday first: ["mon", "tue", ...]."""
        return workday_names(self.workdays)

    @workday_names.setter
    def workday_names(self, value: Any) -> None:
        self.workdays = workdays_mask(value)

    def works_on(self, day: date) -> bool:
        """Whether `day`'s weekday is one of the employee's workdays."""
        mask = ALL_WORKDAYS if self.workdays is None else self.workdays
        return bool(mask & (1 << day.weekday()))

    def to_dict(self) -> dict:
        return {
            "id": self.id, "code": self.code, "name": self.name,
            "email": self.email, "active": self.active,
            "workdays": self.workday_names, "max_days_per_week": self.max_days_per_week,
            **self.sync_fields(),
        }


class Event(SyncMixin, db.Model):
    """A piece of work at a store, to be done between start and due."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_ref_num: Mapped[int] = mapped_column(Integer, active_history=True)
    project_name: Mapped[str] = mapped_column(String(200), active_history=True)
    event_type: Mapped[str] = mapped_column(String(20), default="Other", index=True, active_history=True)
    store_number: Mapped[Optional[int]] = mapped_column(Integer, index=True, active_history=True)
    store_name: Mapped[Optional[str]] = mapped_column(String(200), active_history=True)
    location_mvid: Mapped[Optional[str]] = mapped_column(String(64), active_history=True)
    start_datetime: Mapped[datetime] = mapped_column(UTCDateTime, active_history=True)
    due_datetime: Mapped[datetime] = mapped_column(UTCDateTime, active_history=True)
    estimated_minutes: Mapped[Optional[int]] = mapped_column(Integer, active_history=True)

    __table_args__ = (
        Index(
            "uq_events_ref_live", "project_ref_num", unique=True,
            sqlite_where=db.text("deleted_at IS NULL"),
            postgresql_where=db.text("deleted_at IS NULL"),
        ),
        Index("ix_events_window", "start_datetime", "due_datetime", "id"),
    )

    def to_dict(self) -> dict:
        return {
            "id": self.id, "project_ref_num": self.project_ref_num,
            "project_name": self.project_name, "event_type": self.event_type,
            "store_number": self.store_number, "store_name": self.store_name,
            "location_mvid": self.location_mvid,
            "start_datetime": iso(self.start_datetime), "due_datetime": iso(self.due_datetime),
            "estimated_minutes": self.estimated_minutes, "is_scheduled": bool(self.is_scheduled),
            **self.sync_fields(),
        }


class Schedule(SyncMixin, db.Model):
    """One event given to one employee at one time."""

    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True, active_history=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"), index=True, active_history=True)
    start_datetime: Mapped[datetime] = mapped_column(UTCDateTime, index=True, active_history=True)
    # start_datetime's calendar day in APP_TIMEZONE, for the one-per-employee-per-day index.
    # Kept here: set with start_datetime on the ORM (validates) and by the column default on
    # Core inserts; a Core UPDATE of start_datetime must set it too (checked below).  After
    # APP_TIMEZONE changes: `flask --app app schedules recompute-days`.
    local_day: Mapped[date] = mapped_column(Date, default=lambda ctx: local_day(
        ctx.get_current_parameters().get("start_datetime")))

    event: Mapped[Event] = relationship(lazy="joined", innerjoin=True)
    employee: Mapped[Employee] = relationship(lazy="joined", innerjoin=True)

    __table_args__ = (
        Index(
            "uq_schedules_event_live", "event_id", unique=True,
            sqlite_where=db.text("deleted_at IS NULL"),
            postgresql_where=db.text("deleted_at IS NULL"),
        ),
        Index(
            local_days.INDEX_NAME, "employee_id", "local_day", unique=True,
            sqlite_where=db.text(local_days.LIVE),
            postgresql_where=db.text(local_days.LIVE),
        ),
        Index("ix_schedules_employee_start", "employee_id", "start_datetime"),
    )

    @validates("start_datetime")
    def _keep_local_day(self, _key, value):
        self.local_day = local_day(value)
        return value

    def to_dict(self) -> dict:
        return {
            "id": self.id, "event_id": self.event_id, "employee_id": self.employee_id,
            "start_datetime": iso(self.start_datetime), **self.sync_fields(),
        }


class TimeOff(db.Model):
    """Whole local days (APP_TIMEZONE) an employee is off, start_date..end_date inclusive.

    Local to this app, like the rest of availability: the vendor's contract has no time
    off, so it is never pushed and carries no sync columns (external_id, sync_status, …)
    that the sync engine would have to learn to skip; a row is deleted outright.
    """

    __tablename__ = "time_off"
    id: Mapped[int] = mapped_column(primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id"))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    note: Mapped[Optional[str]] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("end_date >= start_date", name="ck_time_off_dates"),
        Index("ix_time_off_employee_start", "employee_id", "start_date"),
    )

    def covers(self, day: date) -> bool:
        """Whether `day` is one of the days off."""
        return self.start_date <= day <= self.end_date

    def to_dict(self) -> dict:
        return {"id": self.id, "employee_id": self.employee_id,
                "start_date": self.start_date.isoformat(), "end_date": self.end_date.isoformat(),
                "note": self.note, "created_at": iso(self.created_at)}


# An event is scheduled while it has a live schedule (derived, never stored).
Event.is_scheduled = column_property(
    exists().where(Schedule.event_id == Event.id, Schedule.deleted_at.is_(None))
    .correlate_except(Schedule),  # else a Schedule query joining Event has no FROM
    deferred=False,
)


@sa_event.listens_for(Session, "do_orm_execute")
def _core_updates_keep_local_day(state) -> None:
    """A bulk UPDATE of Schedule.start_datetime that does not set local_day is a bug: refuse it."""
    if not state.is_update or state.bind_mapper is None or state.bind_mapper.class_ is not Schedule:
        return
    values = getattr(state.statement, "_values", None) or {}
    names = {getattr(key, "key", key) for key in values}
    if "start_datetime" in names and "local_day" not in names:
        raise ValueError("an UPDATE of schedules.start_datetime must set local_day too "
                         "(models.local_day)")


class SyncRun(db.Model):
    """One sync run: what started it, what it moved, how it ended."""

    __tablename__ = "sync_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    direction: Mapped[str] = mapped_column(String(8), default="both")
    resources: Mapped[list] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    pushed: Mapped[int] = mapped_column(Integer, default=0)
    pulled: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    conflicts: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list] = mapped_column(JSON, default=list)
    message: Mapped[Optional[str]] = mapped_column(Text)
    requests_sent: Mapped[int] = mapped_column(Integer, default=0)
    # deletions held by SYNC_DELETE_GUARD, and breaks of the sync invariant repaired
    held: Mapped[int] = mapped_column(Integer, default=0)
    repaired: Mapped[int] = mapped_column(Integer, default=0)
    # An interval run's tick (the interval's start): unique, so that one tick records
    # one run however many processes serve the app; NULL for every other trigger.
    tick_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, unique=True, index=True)

    def to_dict(self) -> dict:
        return {
            "id": self.id, "status": self.status, "trigger": self.trigger,
            "direction": self.direction, "resources": self.resources or [],
            "started_at": iso(self.started_at), "finished_at": iso(self.finished_at),
            "pushed": self.pushed, "pulled": self.pulled, "failed": self.failed,
            "conflicts": self.conflicts, "errors": self.errors or [],
            "message": self.message, "requests_sent": self.requests_sent,
            "held": self.held or 0, "repaired": self.repaired or 0,
        }


class SyncState(db.Model):
    """Per-resource bookmark: the vendor's sync token, saved after a full pull."""

    __tablename__ = "sync_state"
    resource: Mapped[str] = mapped_column(String(32), primary_key=True)
    sync_token: Mapped[Optional[str]] = mapped_column(Text)
    last_pull_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    last_full_pull_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncLease(db.Model):
    """A database lease so that one sync runs at a time across processes."""

    __tablename__ = "sync_leases"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[Optional[str]] = mapped_column(String(128))
    run_id: Mapped[Optional[int]] = mapped_column(Integer)
    expires_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    # Where the holder runs: a process on the same host that finds the holder's pid
    # gone takes the lease at once instead of waiting for it to expire.
    holder_host: Mapped[Optional[str]] = mapped_column(String(255))
    holder_pid: Mapped[Optional[int]] = mapped_column(Integer)


class VendorClockRow(db.Model):
    """The vendor's latest measured clock offset (vendor minus ours), shared by every process."""

    __tablename__ = "vendor_clock"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    offset_s: Mapped[float] = mapped_column(Float)
    lower_s: Mapped[Optional[float]] = mapped_column(Float)
    upper_s: Mapped[Optional[float]] = mapped_column(Float)
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookMessage(db.Model):
    """Every verified webhook message, recorded once by its `webhook-id`; rejected
    deliveries and repeats are counted in one row per minute and reason (`count`)."""

    __tablename__ = "webhook_messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[Optional[str]] = mapped_column(String(64))
    version: Mapped[Optional[int]] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[Optional[str]] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    def to_dict(self) -> dict:
        return {
            "webhook_id": self.webhook_id, "type": self.type, "object_id": self.object_id,
            "version": self.version, "outcome": self.outcome, "detail": self.detail,
            "received_at": iso(self.received_at), "count": self.count,
        }


class HeldDeletion(db.Model):
    """A local record a full listing no longer returned, not deleted because the listing
    would have deleted more than SYNC_DELETE_GUARD of its kind: it waits for an admin
    (apply the deletion, or restore the record to the vendor).  It counts only while the
    record is live and still linked to `external_id`."""

    __tablename__ = "sync_held_deletions"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource: Mapped[str] = mapped_column(String(16))
    record_id: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[Optional[int]] = mapped_column(Integer)
    held_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("resource", "record_id", name="uq_sync_held_deletions_record"),
    )


class RetiredVendorId(db.Model):
    """A vendor id known to be deleted at the vendor that no live record here is linked
    to: the former id of a record created again after the vendor deleted it (404, or a
    tombstone the local change won over), or the id of a tombstone about an object never
    known here.  A deleted vendor object never changes again, so every live message about
    one is older than its deletion: a late webhook about it changes nothing (it must not
    create a record here).  Kept as long as webhook records (SYNC_HISTORY_DAYS, at least
    2 days: the vendor retries a message for up to 24 hours)."""

    __tablename__ = "sync_retired_ids"
    resource: Mapped[str] = mapped_column(String(16), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[Optional[int]] = mapped_column(Integer)  # the record it was linked to
    version: Mapped[Optional[int]] = mapped_column(Integer)  # the tombstone's, when known
    retired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
class Alert(db.Model):
    """One operational alert's state (alerts.py): firing since when, or resolved."""

    __tablename__ = "alerts"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    firing: Mapped[bool] = mapped_column(Boolean, default=False)
    since: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    text: Mapped[Optional[str]] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertNotification(db.Model):
    """An alert's start or end waiting to be POSTed to ALERT_WEBHOOK_URL (an outbox)."""

    __tablename__ = "alert_notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    alert: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # firing | resolved
    text: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    sent_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, index=True)
    last_error: Mapped[Optional[str]] = mapped_column(Text)


class RecordHistory(db.Model):
    """One change to an employee, event or schedule: who (source, actor), when, through
    what (ref: an import, run or webhook message id) and the fields' old and new values
    (`history.py` writes them; kept HISTORY_DAYS).  Not synced; no foreign key, so that
    the entries outlive their record."""

    __tablename__ = "record_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource: Mapped[str] = mapped_column(String(16))
    record_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    action: Mapped[str] = mapped_column(String(16))  # created | changed | deleted | restored
    source: Mapped[str] = mapped_column(String(16))  # page | api | csv | pull | webhook | ...
    actor: Mapped[Optional[str]] = mapped_column(String(80))
    ref: Mapped[Optional[str]] = mapped_column(String(255), index=True)
    changes: Mapped[dict] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_record_history_record", "resource", "record_id", "at"),
    )

    def to_dict(self) -> dict:
        return {"at": iso(self.at), "action": self.action, "source": self.source,
                "actor": self.actor, "ref": self.ref, "changes": self.changes or {}}


SYNCED_MODELS = {"employees": Employee, "events": Event, "schedules": Schedule}


# ---------------------------------------------------------------------------
# Time helpers: storage is UTC, people see and type APP_TIMEZONE
# ---------------------------------------------------------------------------

def iso(dt: Optional[datetime]) -> Optional[str]:
    """RFC 3339 UTC with `Z`, as the JSON API answers."""
    if dt is None:
        return None
    if dt.tzinfo is not timezone.utc:
        dt = dt.astimezone(timezone.utc)
    return dt.isoformat()[:-6] + "Z"  # "+00:00" → "Z" (a third faster than astimezone+replace)


def local_day(start: Optional[datetime]) -> Optional[date]:
    """The calendar day in APP_TIMEZONE of a stored instant (Schedule.local_day)."""
    return local_days.local_day_of(start, app_tz())


def app_tz() -> ZoneInfo:
    """The zone in which pages show and take times."""
    return ZoneInfo(current_app.config["APP_TIMEZONE"])


def to_local(dt: Optional[datetime]) -> Optional[datetime]:
    """A stored UTC datetime in APP_TIMEZONE."""
    return dt.astimezone(app_tz()) if dt is not None else None


class LocalTimeError(ValueError):
    """A wall-clock time that does not exist in APP_TIMEZONE (DST gap)."""


def local_to_utc(naive: datetime) -> datetime:
    """A wall-clock time in APP_TIMEZONE → aware UTC (DST-correct).

    A time in the spring-forward gap does not exist and is refused; an
    ambiguous time in the autumn overlap takes its first occurrence; a day
    outside the years inputs.py supports is refused before any shift.
    """
    try:
        inputs.check_day(naive.date(), "time")
    except inputs.BadInput:
        raise LocalTimeError(f"{naive:%Y-%m-%d} is outside the supported years "
                             f"({inputs.MIN_DAY.year:04d}–{inputs.MAX_DAY.year})") from None
    tz = app_tz()
    aware = naive.replace(tzinfo=tz, fold=0)
    back = aware.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None)
    if back != naive:
        raise LocalTimeError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {tz.key} (clocks change that day)"
        )
    return aware.astimezone(timezone.utc)


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a calendar day in APP_TIMEZONE (23 to 25 hours)."""
    tz = app_tz()
    start = datetime.combine(day, time.min, tzinfo=tz).astimezone(timezone.utc)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz).astimezone(timezone.utc)
    return start, end


def parse_api_datetime(value: Any, field: str) -> datetime:
    """An RFC 3339 timestamp from a JSON body → aware UTC; naive is refused."""
    if not isinstance(value, str) or not value.strip():
        raise DomainError(f"{field} must be an RFC 3339 timestamp", field=field)
    try:
        parsed = parse_timestamp(value.strip(), keep_offset=True)
    except (ValueError, OverflowError) as exc:
        if "naive" in str(exc):
            raise DomainError(f"{field} has no UTC offset; send e.g. 2026-11-25T14:30:00Z",
                              field=field) from None
        raise DomainError(f"{field} is not a valid RFC 3339 timestamp: {value!r}", field=field) from None
    try:
        inputs.check_day(parsed.date(), field)
        return inputs.check_instant(parsed, field)
    except inputs.BadInput:
        raise DomainError(f"{field} must lie in the years {inputs.MIN_DAY.year:04d} to "
                          f"{inputs.MAX_DAY.year}, got {value!r}", field=field) from None



# Domain rules shared by pages, the JSON API and the CSV import
# ---------------------------------------------------------------------------



# One rule for an email address, pages and API alike.
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def is_email(text: str) -> bool:
    return EMAIL_PATTERN.fullmatch(text) is not None


def in_list(column, values):
    """`column IN (values)` as one parameter: on PostgreSQL `= ANY(an array)`; psycopg
    rewrote a query of 1,000 placeholders on every call (a CSV import's look-ups: 0.37 s of
    its 20,000 rows), and a pulled page's look-ups ran 40 % faster."""
    values = [v for v in values if v is not None]
    if db.session.get_bind().dialect.name != "postgresql":
        return column.in_(bindparam(None, values, expanding=True, type_=column.type))
    return column == any_(bindparam(None, values, type_=ARRAY(column.type)))


def live(model):
    """A select of the model's rows that are not soft-deleted."""
    return select(model).where(model.deleted_at.is_(None))


def value_taken(column, value, record=None) -> bool:
    """Whether another live row of `column`'s model already has `value` (e.g. an employee code)."""
    model = column.class_
    query = live(model).where(column == value)
    if record is not None:
        query = query.where(model.id != record.id)
    return db.session.scalar(query.limit(1)) is not None


def get_live(model, record_id: int):
    """A live record by id, or None."""
    obj = db.session.get(model, record_id)
    return obj if obj is not None and obj.deleted_at is None else None


def event_type_for(project_name: str) -> str:
    """The event type a project name implies (csv-formats.md: first match wins)."""
    upper = (project_name or "").upper()
    for key, value in (("CORE", "Core"), ("DIGITAL", "Digital"), ("JUICER", "Juicer"),
                       ("SUPERVISOR", "Supervisor"), ("FREEOSK", "Freeosk")):
        if key in upper:
            return value
    return "Other"


def busy_employee_ids(day: date, exclude_schedule_id: Optional[int] = None):
    """A select of employee ids with a live schedule on `day` (APP_TIMEZONE)."""
    query = select(Schedule.employee_id).where(
        Schedule.deleted_at.is_(None), Schedule.local_day == day)
    if exclude_schedule_id is not None:
        query = query.where(Schedule.id != exclude_schedule_id)
    return query


# The rule "one schedule per employee per day" (APP_TIMEZONE): its query and its words,
# used by check_schedule, the CSV import and the sync engine.
ONE_PER_DAY = "one schedule per employee per day"


def day_holders(employee_ids, days, exclude_schedule_id: Optional[int] = None):
    """A select of (id, employee_id, local_day) of the live schedules that hold these
    employees' local days (other than `exclude_schedule_id`)."""
    query = select(Schedule.id, Schedule.employee_id, Schedule.local_day).where(
        Schedule.deleted_at.is_(None), in_list(Schedule.employee_id, employee_ids),
        in_list(Schedule.local_day, days))
    if exclude_schedule_id is not None:
        query = query.where(Schedule.id != exclude_schedule_id)
    return query


def day_taken(employee_id: int, day: date, exclude_schedule_id: Optional[int] = None) -> Optional[int]:
    """The id of the live schedule that holds the employee's local `day`, or None (free)."""
    return db.session.scalar(day_holders([employee_id], [day], exclude_schedule_id).limit(1))


def day_taken_words(who: str, day: date, holder: Optional[str] = None, rule: bool = False) -> str:
    """Why `who` cannot have another schedule on `day`: "<who> already has work on <day>",
    with what holds it ("schedule #3") and the rule's name when asked."""
    words = f"{who} already has work on {day.isoformat()}"
    if holder:
        words += f" ({holder})"
    return f"{words}: {ONE_PER_DAY}" if rule else words


def available_employees(day: date, exclude_schedule_id: Optional[int] = None) -> list[Employee]:
    """Active employees with no schedule on `day` (APP_TIMEZONE), by name."""
    busy = busy_employee_ids(day, exclude_schedule_id)
    query = live(Employee).where(Employee.active.is_(True), Employee.id.not_in(busy))
    return list(db.session.scalars(query.order_by(Employee.name, Employee.id)))


def check_schedule(event: Optional[Event], employee: Optional[Employee], start: datetime,
                   schedule: Optional[Schedule] = None, known: Optional[tuple] = None) -> None:
    """Raise DomainError unless `employee` may do `event` at `start` (aware UTC).

    Rules (docs/openapi.yaml): inside the event's window (422), an active employee
    (422), no other schedule for that employee that day (409), and the event not already
    scheduled (409).  `schedule` is the one being changed, if any; `known` = (event taken,
    day taken) loaded beforehand for many checks at once (the planner's apply), else queried.
    """
    if event is None:
        raise DomainError("event not found", field="event_id", status=422)
    if employee is None:
        raise DomainError("employee not found", field="employee_id", status=422)
    if not (event.start_datetime <= start <= event.due_datetime):
        window = f"{fmt_local(event.start_datetime)} – {fmt_local(event.due_datetime)}"
        raise DomainError(f"the time is outside the event's window ({window})",
                          field="start_datetime", status=422)
    if not employee.active:
        raise DomainError(f"{employee.name} is inactive", field="employee_id", status=422)
    own_id, day = (schedule.id if schedule is not None else None), to_local(start).date()
    if known[0] if known else db.session.scalar(live(Schedule).where(
            Schedule.event_id == event.id, Schedule.id != (own_id or 0)).limit(1)) is not None:
        raise DomainError("the event is already scheduled", field="event_id",
                          status=409, code="already_scheduled")
    if known[1] if known else day_taken(employee.id, day, own_id) is not None:
        raise DomainError(day_taken_words(employee.name, day),
                          field="employee_id", status=409, code="employee_busy")


def future_schedules(employee_id: int) -> list[Schedule]:
    """An employee's live schedules that have not started yet, earliest first."""
    return list(db.session.scalars(live(Schedule).where(
        Schedule.employee_id == employee_id, Schedule.start_datetime >= utcnow())
        .order_by(Schedule.start_datetime, Schedule.id)))


def deactivate(employee: Employee, unschedule_future: bool) -> list[Schedule]:
    """Make `employee` inactive in the caller's transaction; returns the schedules unscheduled.

    An inactive employee will not come, so live future schedules are never left to them
    silently: with `unschedule_future` they are unscheduled (soft-deleted, pushed as
    deletes; their events go back to the dashboard), else DomainError 409 in_use names them.
    """
    future = future_schedules(employee.id)
    if future and not unschedule_future:
        ids = ", ".join(str(s.id) for s in future)
        raise DomainError(
            f"{employee.name} has {len(future)} future schedule{'s' if len(future) != 1 else ''}"
            f" ({ids}); unschedule them first, or deactivate with \"unschedule_future\": true",
            field="active", status=409, code="in_use",
            details=[{"resource": "schedule", "id": s.id, "event_id": s.event_id,
                      "start_datetime": iso(s.start_datetime)} for s in future])
    for schedule in future:
        schedule.soft_delete()
    employee.active = False
    return future


def fmt_local(dt: Optional[datetime], fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored UTC datetime as text in APP_TIMEZONE."""
    return to_local(dt).strftime(fmt) if dt is not None else ""


# Sent (sender: the app) after a local write to synced records was committed.
# sync_scheduler.py connects each app's scheduler to it (a coalesced push soon);
# this module knows nothing of the sync.
local_change = Namespace().signal("local-change")


def notify_local_change() -> None:
    """A local write was committed: tell whoever listens (`local_change`): the app's
    sync scheduler asks for one coalesced push soon (nothing when sync is off)."""
    if not current_app.config["SYNC_ENABLED"]:
        return
    try:
        local_change.send(current_app._get_current_object())
    except Exception:  # noqa: BLE001 - a local write must never fail because of sync
        log.exception("could not queue a push; the next interval run will send it")


# ---------------------------------------------------------------------------
# Workdays (availability.py holds the rest of the availability rules)
# ---------------------------------------------------------------------------

def workday_names(mask: Optional[int]) -> list[str]:
    """A workdays mask as names, Monday first (None: all seven)."""
    mask = ALL_WORKDAYS if mask is None else mask
    return [name for bit, name in enumerate(WEEKDAY_NAMES) if mask & (1 << bit)]


def workdays_mask(value: Any, field: str = "workdays") -> int:
    """["mon", "tue", ...] (any order, any case) → the mask; DomainError 422 naming `field`."""
    if not isinstance(value, (list, tuple)):
        raise DomainError(f"{field} must be a list of weekdays, e.g. [\"mon\", \"tue\"]",
                          field=field)
    mask = 0
    for item in value:
        name = item.strip().lower() if isinstance(item, str) else None
        if name not in WEEKDAY_NAMES:
            raise DomainError(f"{field}: {item!r} is not a weekday; use "
                              f"{', '.join(WEEKDAY_NAMES)}", field=field)
        bit = 1 << WEEKDAY_NAMES.index(name)
        if mask & bit:
            raise DomainError(f"{field}: {name!r} is listed twice", field=field)
        mask |= bit
    return mask
