"""Small helpers that make records for tests (call inside an app context)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count

_seq = count(1)


def utc(*args) -> datetime:
    """An aware UTC datetime: utc(2026, 11, 25, 9, 0)."""
    return datetime(*args, tzinfo=timezone.utc)


def make_employee(name: str | None = None, **fields):
    from models import Employee, db

    n = next(_seq)
    employee = Employee(name=name or f"Employee {n}", code=fields.pop("code", f"US{100000 + n}"),
                        email=fields.pop("email", None), active=fields.pop("active", True), **fields)
    db.session.add(employee)
    db.session.commit()
    return employee


def make_event(**fields):
    from models import Event, db, event_type_for

    n = next(_seq)
    start = fields.pop("start_datetime", utc(2026, 12, 1, 0, 0))
    due = fields.pop("due_datetime", start + timedelta(days=6, hours=23, minutes=59))
    name = fields.pop("project_name", f"CORE - Reset {n}")
    event = Event(
        project_ref_num=fields.pop("project_ref_num", 600000 + n), project_name=name,
        event_type=fields.pop("event_type", event_type_for(name)),
        store_number=fields.pop("store_number", 1234), store_name=fields.pop("store_name", "Springfield"),
        location_mvid=fields.pop("location_mvid", "9f2c1a7e"), start_datetime=start, due_datetime=due,
        estimated_minutes=fields.pop("estimated_minutes", 120), **fields,
    )
    db.session.add(event)
    db.session.commit()
    return event


def make_schedule(event, employee, start: datetime | None = None, **fields):
    from models import Schedule, db

    schedule = Schedule(event_id=event.id, employee_id=employee.id,
                        start_datetime=start or event.start_datetime + timedelta(hours=9), **fields)
    db.session.add(schedule)
    db.session.commit()
    return schedule
