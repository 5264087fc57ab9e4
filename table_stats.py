"""Planner statistics after a bulk write (PostgreSQL): the one place that runs ANALYZE.

PostgreSQL plans from the statistics ANALYZE leaves in pg_class/pg_statistic.  A table
filled in one go (the first pull, a large pull, a CSV import, the demo seed) keeps the
statistics of when it was empty until something analyzes it, and autovacuum may be off
or a minute away: the dashboard's count of unscheduled events, an anti-join, then took
17–30 ms planned as if the tables were tiny, and 0.4 ms after an ANALYZE.

`after_bulk_write(tables, rows)` analyzes the named tables when one run or import wrote
at least BULK_ROWS rows (a small sync or edit analyzes nothing); `analyze(tables)` does it
unconditionally.  On SQLite both do nothing.  ANALYZE of a table takes a lock that
readers and writers do not wait for, and samples at most 30,000 rows of it.
"""
from __future__ import annotations

import logging
from typing import Iterable

from sqlalchemy import text

from models import db

log = logging.getLogger(__name__)

BULK_ROWS = 1000  # rows one run or import must write before its tables are analyzed
HISTORY_TABLE = "record_history"  # every bulk write also writes a history row per record


def analyze(tables: Iterable[str]) -> list[str]:
    """ANALYZE each table in the session's transaction (PostgreSQL only); the tables
    analyzed.  The caller commits."""
    if db.session.get_bind().dialect.name != "postgresql":
        return []
    names = [name for name in dict.fromkeys(tables) if name in db.metadata.tables]
    for name in names:
        db.session.execute(text(f'ANALYZE "{name}"'))
    return names


def after_bulk_write(tables: Iterable[str], rows: int, force: bool = False) -> list[str]:
    """After a committed bulk write of `rows` rows into `tables` (and their history):
    ANALYZE them when rows >= BULK_ROWS (or `force`), in a transaction of its own.  Never
    raises: statistics are an optimisation, the write stands without them."""
    if rows < BULK_ROWS and not force:
        return []
    try:
        names = analyze([*tables, HISTORY_TABLE])
        db.session.commit()
    except Exception:  # noqa: BLE001 - the write is committed; stale statistics only
        db.session.rollback()
        log.warning("could not ANALYZE after a bulk write of %d rows", rows, exc_info=True)
        return []
    if names:
        log.info("analyzed %s after a bulk write of %d rows", ", ".join(names), rows)
    return names
