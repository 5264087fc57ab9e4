"""Helpers the page modules share: form errors, local days, history sections, commits.

Below the audience modules (pages.py, employees.py); imports none of them.
"""
from __future__ import annotations

from datetime import date, datetime, time
from typing import Optional

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

import inputs
from models import (
    Employee,
    Event,
    RecordHistory,
    Schedule,
    app_tz,
    db,
    notify_local_change,
    to_local,
    utcnow,
)
from paging import page_number, paginate
from template_helpers import history_values


class FormErrors(Exception):
    """Per-field messages for a page form, and the status the page answers with."""

    def __init__(self, errors: dict, status: int = 422, code: Optional[str] = None):
        super().__init__("; ".join(errors.values()))
        self.errors = errors
        self.status = status
        self.code = code  # the rule's error code (e.g. employee_unavailable), when one said no
        self.future: list = []  # schedules a deactivation would leave (employee pages)


def parse_local_date(text: Optional[str], field: str = "date") -> Optional[date]:
    """A YYYY-MM-DD date from a form or query string, or None; 422 near the calendar's ends."""
    try:
        day = date.fromisoformat((text or "").strip())
    except ValueError:
        return None
    return inputs.check_day(day, field)


def parse_local_time(text: Optional[str]) -> Optional[time]:
    """An HH:MM (or HH:MM:SS) wall-clock time from a form, or None."""
    text = (text or "").strip()
    for fmt in ("%H:%M", "%H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).time()
        except ValueError:
            continue
    return None


def local_today() -> date:
    """Today's date in APP_TIMEZONE."""
    return utcnow().astimezone(app_tz()).date()


def event_local_dates(event: Event) -> tuple[date, date]:
    """The first and last local day of an event's window."""
    return to_local(event.start_datetime).date(), to_local(event.due_datetime).date()


# -- history sections (history.py writes the entries) -------------------------

HISTORY_PAGE_SIZE = 20


def history_section(conditions, endpoint: str, args: dict) -> dict:
    """A History section: the latest HISTORY_PAGE_SIZE entries (?history_page= for more)."""
    listing = paginate(RecordHistory, [conditions],
                       [RecordHistory.at.desc(), RecordHistory.id.desc()],
                       page_number("history_page"), HISTORY_PAGE_SIZE)
    return {"listing": listing, "shown": history_values(listing.items),
            "endpoint": endpoint, "args": args}


def event_history(event: Event) -> dict:
    """The event's entries and its schedules' together."""
    schedule_ids = select(Schedule.id).where(Schedule.event_id == event.id).scalar_subquery()
    condition = or_(and_(RecordHistory.resource == "events", RecordHistory.record_id == event.id),
                    and_(RecordHistory.resource == "schedules",
                         RecordHistory.record_id.in_(schedule_ids)))
    return history_section(condition, "pages.schedule_event", {"event_id": event.id})


def employee_history(employee: Employee) -> dict:
    """The employee's entries."""
    return history_section(and_(RecordHistory.resource == "employees",
                                RecordHistory.record_id == employee.id),
                           "employees.edit_employee", {"employee_id": employee.id})


def commit_or_conflict() -> bool:
    """Commit and ask for a push; False (rolled back) when a unique rule was broken."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    notify_local_change()
    return True

