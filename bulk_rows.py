"""Bulk inserts without SQLAlchemy's per-row work: the one place that does it.

`insert_rows(table, rows)` writes a list of dicts (the same keys in the same order,
no column with a Python-side default left out) in the session's transaction (or
the given connection's):

* PostgreSQL (psycopg 3): one `COPY ... FROM STDIN`, a stream instead of a statement
  per row.  A first pull's inserts were the largest part of its time there.
* SQLite: one driver-level `executemany` of tuples.  SQLAlchemy's `executemany`
  builds and processes every row's parameters apart (a first pull of 45,000 records
  spent about 1 s of its 3.7 s there, cProfile); here each column's bind processor
  is looked up once and a value met again in the same batch (a run's timestamp) is
  converted once.

Either way the values go through the columns' own bind processors, so what is
stored is what an ORM insert stores.  False, with nothing written, when the rows
do not fit (the caller then uses `insert(table)`); a unique violation raises
IntegrityError as an INSERT would.
"""
from __future__ import annotations

from sqlalchemy import DateTime
from sqlalchemy.exc import IntegrityError

from models import db


def insert_rows(table, rows: list[dict], connection=None) -> bool:
    """Insert `rows` into `table` by COPY (PostgreSQL) or one driver-level executemany
    (SQLite); False when the rows do not fit or the database is another."""
    if not rows:
        return True
    connection = connection if connection is not None else db.session.connection()
    dialect = connection.dialect
    names = list(rows[0])
    if any(c.default is not None and c.name not in names for c in table.columns) \
            or any(list(row) != names for row in rows):
        return False
    procs = [table.c[name].type._cached_bind_processor(dialect) for name in names]
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        _copy(connection, table, names, procs, rows)
        return True
    if dialect.name == "sqlite":
        _executemany(connection, table, names, procs, rows)
        return True
    return False


def _copy(connection, table, names, procs, rows) -> None:
    quote = connection.dialect.identifier_preparer.quote
    sql = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
    try:
        with connection.connection.driver_connection.cursor() as cursor:
            with cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row([proc(row[n]) if proc else row[n]
                                    for n, proc in zip(names, procs)])
    except Exception as exc:
        if str(getattr(exc, "sqlstate", "") or "").startswith("23"):  # as an INSERT would say it
            raise IntegrityError(sql, None, exc) from exc
        raise


def _executemany(connection, table, names, procs, rows) -> None:
    converters = [_memo(proc) if proc and _is_time(table.c[name].type) else proc
                  for name, proc in zip(names, procs)]
    columns = [[convert(row[n]) for row in rows] if convert else [row[n] for row in rows]
               for n, convert in zip(names, converters)]  # column by column: no per-value test
    params = list(zip(*columns))
    quote = connection.dialect.identifier_preparer.quote
    connection.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join('?' * len(names))})", params)


def _is_time(column_type) -> bool:
    """A DateTime column, or a TypeDecorator over one (models.UTCDateTime)."""
    return isinstance(getattr(column_type, "impl", column_type), DateTime)


def _memo(proc):
    """`proc` for a time column, remembering what it converted in this batch: a run's or
    an import's own timestamp (created, synced, updated) repeats on every row."""
    seen: dict = {}

    def convert(value):
        done = seen.get(value, seen)
        if done is seen:
            done = seen[value] = proc(value)
        return done
    return convert
