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
    converters = [_memo(proc) if proc else None for proc in procs]
    params = [tuple(convert(row[n]) if convert else row[n]
                    for n, convert in zip(names, converters)) for row in rows]
    quote = connection.dialect.identifier_preparer.quote
    connection.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join('?' * len(names))})", params)


def _memo(proc):
    """`proc`, remembering the values it has converted in this batch (hashable ones)."""
    seen: dict = {}

    def convert(value):
        try:
            return seen[value]
        except KeyError:
            seen[value] = done = proc(value)
            return done
        except TypeError:  # unhashable (a dict for a JSON column)
            return proc(value)
    return convert
