"""An employee's private calendar feed (app-api.md: "An employee's calendar feed").

`/feeds/<token>.ics`: the token is the key (as a calendar service's secret address
is), so only its SHA-256 is stored (`EmployeeFeed.token_hash`, one feed per employee;
making a new one replaces the old).  `feed_ics` builds the iCalendar (RFC 5545) text with
the `icalendar` package: one VEVENT per live schedule of the employee from 30 days back
to 180 ahead, in one query; UIDs are stable per schedule, so a reschedule moves the
calendar's entry and an unschedule removes it.  Local to this app: never pushed.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Optional

from icalendar import Calendar
from icalendar import Event as VEvent
from sqlalchemy import ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from models import Employee, Event, Schedule, UTCDateTime, db, utcnow

DAYS_BACK, DAYS_AHEAD = 30, 180
UID_DOMAIN = "merch-scheduler"


class EmployeeFeed(db.Model):
    """An employee's calendar feed: the SHA-256 of its secret token (the token is shown once)."""

    __tablename__ = "employee_feeds"
    id: Mapped[int] = mapped_column(primary_key=True)
    employee_id: Mapped[int] = mapped_column(
        ForeignKey("employees.id", name="fk_employee_feeds_employee_id"))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("employee_id", name="uq_employee_feeds_employee_id"),
        UniqueConstraint("token_hash", name="uq_employee_feeds_token_hash"),
    )


def token_hash(token: str) -> str:
    """The stored form of a feed token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def make_feed(employee: Employee) -> str:
    """Make (or replace) the employee's feed in the caller's transaction; the new token."""
    token = secrets.token_urlsafe(32)
    feed = db.session.scalar(select(EmployeeFeed).where(EmployeeFeed.employee_id == employee.id))
    if feed is None:
        feed = EmployeeFeed(employee_id=employee.id)
        db.session.add(feed)
    feed.token_hash, feed.created_at = token_hash(token), utcnow()
    return token


def revoke_feed(employee: Employee) -> bool:
    """Revoke the employee's feed in the caller's transaction; False when there was none."""
    feed = db.session.scalar(select(EmployeeFeed).where(EmployeeFeed.employee_id == employee.id))
    if feed is not None:
        db.session.delete(feed)
    return feed is not None


def has_feed(employee: Employee) -> bool:
    """Whether the employee has a live feed address."""
    return db.session.scalar(select(EmployeeFeed.id).where(
        EmployeeFeed.employee_id == employee.id)) is not None


def feed_ics(token: str, now: Optional[datetime] = None) -> Optional[bytes]:
    """The feed's iCalendar bytes, or None for an unknown or revoked token; one query.

    The VCALENDAR and each VEVENT are the `icalendar` package's rendering; a VEVENT's
    bytes are kept per distinct row (`_vevent_ical`, bounded), since icalendar spends
    ~0.1 ms a VEVENT (UTC lookups, folding) and phone calendars poll the same feed: a
    poll renders only the schedules and events that changed since the last one."""
    now = now or utcnow()
    rows = db.session.execute(
        select(EmployeeFeed.employee_id, Employee.name, Schedule.id, Schedule.start_datetime,
               Schedule.updated_at, Event.project_name, Event.store_number, Event.store_name,
               Event.estimated_minutes)
        .select_from(EmployeeFeed).join(Employee, Employee.id == EmployeeFeed.employee_id)
        .outerjoin(Schedule, (Schedule.employee_id == Employee.id) & Schedule.deleted_at.is_(None)
                   & Schedule.start_datetime.between(now - timedelta(days=DAYS_BACK),
                                                     now + timedelta(days=DAYS_AHEAD)))
        .outerjoin(Event, Event.id == Schedule.event_id)
        .where(EmployeeFeed.token_hash == token_hash(token))
        .order_by(Schedule.start_datetime, Schedule.id)).all()
    if not rows:
        return None
    calendar = Calendar()
    calendar.add("prodid", "-//Merchandising Scheduler//Employee feed//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"Work: {rows[0].name}")
    frame = calendar.to_ical()  # the VEVENTs go before its last line, as add_component puts them
    assert frame.endswith(_END)
    events = [_vevent_ical(row.id, row.start_datetime, row.updated_at or now, row.project_name,
                           row.store_number, row.store_name, row.estimated_minutes)
              for row in rows if row.id is not None]
    return b"".join([frame[:-len(_END)], *events, _END])


_END = b"END:VCALENDAR\r\n"


@lru_cache(maxsize=20000)  # ~0.5 KB each with its key: 10 MB at most, per process
def _vevent_ical(schedule_id: int, start: datetime, stamp: datetime, project_name: str,
                 store_number: Optional[int], store_name: Optional[str],
                 estimated_minutes: Optional[int]) -> bytes:
    """One schedule as a VEVENT's bytes (UTC times; the estimated minutes, else one hour);
    the arguments are all it depends on, so a cached one is what it would render now."""
    store = " ".join(str(part) for part in (store_number, store_name) if part)
    item = VEvent()
    item.add("uid", f"schedule-{schedule_id}@{UID_DOMAIN}")
    item.add("dtstamp", stamp)
    item.add("dtstart", start)
    item.add("dtend", start + timedelta(minutes=estimated_minutes or 60))
    item.add("summary", f"{project_name} ({store})" if store else project_name)
    if store:
        item.add("location", f"Store {store}")
    return item.to_ical()
