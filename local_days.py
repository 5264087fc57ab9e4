"""A schedule's local day: its calendar day in APP_TIMEZONE, stored in `schedules.local_day`.

The database holds one live schedule per employee per local day through the partial
unique index `uq_schedules_employee_day_live` on (employee_id, local_day) WHERE
deleted_at IS NULL.  The model keeps the column (models.py); this module works on a
plain Connection with Core only, so that the migration that adds the column and
`flask --app app schedules recompute-days` (after APP_TIMEZONE changes) share it.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Optional
from zoneinfo import ZoneInfo

import sqlalchemy as sa

INDEX_NAME = "uq_schedules_employee_day_live"
LIVE = "deleted_at IS NULL"
BATCH = 1000

_schedules = sa.table(
    "schedules", sa.column("id", sa.Integer), sa.column("employee_id", sa.Integer),
    sa.column("start_datetime", sa.DateTime), sa.column("local_day", sa.Date),
    sa.column("deleted_at", sa.DateTime))
_employees = sa.table("employees", sa.column("id", sa.Integer), sa.column("name", sa.String))


def local_day_of(start: Optional[datetime], tz: ZoneInfo) -> Optional[date]:
    """The calendar day in `tz` of a UTC instant (naive values are UTC, as stored)."""
    if start is None:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    return start.astimezone(tz).date()


class DayClashError(RuntimeError):
    """Live schedules that would share an employee's local day: the rule cannot hold."""

    def __init__(self, clashes: list[dict], tz: ZoneInfo):
        self.clashes = clashes
        super().__init__(clash_message(clashes, tz))


def clash_message(clashes: list[dict], tz: ZoneInfo, shown: int = 20) -> str:
    """One line per clash (employee, day, schedule ids), at most `shown` of them."""
    lines = [f"{len(clashes)} employee-day(s) in {tz.key} have more than one live schedule; "
             "one live schedule per employee per day is required. Unschedule (delete) all but "
             "one schedule of each, then run this again:"]
    for clash in clashes[:shown]:
        ids = ", ".join(f"#{i}" for i in clash["schedule_ids"])
        lines.append(f"  employee #{clash['employee_id']} ({clash['employee_name']}) on "
                     f"{clash['day'].isoformat()}: schedules {ids}")
    if len(clashes) > shown:
        lines.append(f"  … and {len(clashes) - shown} more")
    return "\n".join(lines)


def find_clashes(conn, tz: ZoneInfo) -> list[dict]:
    """Employee-days in `tz` with more than one live schedule, computed from start_datetime.

    One pass over the live schedules ordered by employee and time (streamed, so memory does
    not grow with the table): consecutive rows of one employee on one day clash.
    """
    query = (sa.select(_schedules.c.id, _schedules.c.employee_id, _schedules.c.start_datetime,
                       _employees.c.name)
             .join(_employees, _employees.c.id == _schedules.c.employee_id)
             .where(_schedules.c.deleted_at.is_(None))
             .order_by(_schedules.c.employee_id, _schedules.c.start_datetime, _schedules.c.id)
             .execution_options(yield_per=BATCH))
    clashes: list[dict] = []
    current: Optional[dict] = None
    for row_id, employee_id, start, name in conn.execute(query):
        day = local_day_of(start, tz)
        if current is not None and (current["employee_id"], current["day"]) == (employee_id, day):
            current["schedule_ids"].append(row_id)
            continue
        if current is not None and len(current["schedule_ids"]) > 1:
            clashes.append(current)
        current = {"employee_id": employee_id, "employee_name": name, "day": day,
                   "schedule_ids": [row_id]}
    if current is not None and len(current["schedule_ids"]) > 1:
        clashes.append(current)
    return clashes


def _changes(conn, tz: ZoneInfo) -> list[dict]:
    """{b_id, b_day} for each row (live or not) whose local_day is not its day in `tz`."""
    query = sa.select(_schedules.c.id, _schedules.c.start_datetime, _schedules.c.local_day)
    return [{"b_id": row_id, "b_day": local_day_of(start, tz)}
            for row_id, start, stored in conn.execute(query)
            if local_day_of(start, tz) != stored]


def fill_local_days(conn, tz: ZoneInfo, changes: Optional[list[dict]] = None) -> int:
    """Set local_day from start_datetime where it differs, BATCH rows an executemany.

    Returns how many rows changed.  Callers make sure no unique index can trip over a
    half-done update (the migration before creating it, `recompute` by dropping it).
    """
    changes = _changes(conn, tz) if changes is None else changes
    stmt = (sa.update(_schedules).where(_schedules.c.id == sa.bindparam("b_id"))
            .values(local_day=sa.bindparam("b_day")))
    for start in range(0, len(changes), BATCH):
        conn.execute(stmt, changes[start:start + BATCH])
    return len(changes)


def create_index_sql() -> str:
    """The unique index as the model and the migration declare it (same on both databases)."""
    return (f"CREATE UNIQUE INDEX {INDEX_NAME} ON schedules (employee_id, local_day) "
            f"WHERE {LIVE}")


def recompute(conn, tz: ZoneInfo) -> int:
    """Recompute every schedule's local_day for `tz`, in the caller's transaction.

    Refuses (DayClashError, nothing changed) when two live schedules of an employee fall on
    one day in `tz`.  The index is dropped and re-created around the update (inside the
    transaction: PostgreSQL locks the table meanwhile, SQLite the database), since moving
    every day by one would trip over it row by row.  Returns how many rows changed.
    """
    clashes = find_clashes(conn, tz)
    if clashes:
        raise DayClashError(clashes, tz)
    changes = _changes(conn, tz)
    if not changes:
        return 0
    conn.execute(sa.text(f"DROP INDEX IF EXISTS {INDEX_NAME}"))
    fill_local_days(conn, tz, changes)
    conn.execute(sa.text(create_index_sql()))
    return len(changes)
