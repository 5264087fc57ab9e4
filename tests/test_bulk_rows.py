"""bulk_rows.insert_rows: a bulk insert without SQLAlchemy's per-row work (COPY on
PostgreSQL, one driver-level executemany on SQLite) stores what an ORM insert stores,
refuses what an INSERT refuses, and declines rows it cannot write as they are."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bulk_rows import insert_rows
from models import HeldDeletion, RecordHistory, db

AT = datetime(2026, 12, 7, 15, 30, 0, 123456, tzinfo=timezone.utc)


def history_row(record_id: int, at: datetime, changes) -> dict:
    return {"resource": "events", "record_id": record_id, "at": at, "action": "created",
            "source": "csv", "actor": None, "ref": "import 7", "changes": changes}


def test_rows_read_back_as_an_orm_insert_stores_them(app):
    zone = timezone(timedelta(hours=-6))  # an aware time in another zone is stored as UTC
    rows = [history_row(1, AT, {"name": [None, "Reset ü"], "n": [None, 3]}),
            history_row(2, AT, {"due": [None, "2026-12-09T17:00:00Z"]}),
            history_row(3, AT.astimezone(zone) + timedelta(minutes=1), {})]
    with app.app_context():
        assert insert_rows(RecordHistory.__table__, rows) is True
        db.session.add(RecordHistory(**history_row(4, AT, {"name": [None, "Reset ü"], "n": [None, 3]})))
        db.session.commit()
        stored = {h.record_id: h for h in db.session.scalars(select(RecordHistory))}
        assert [(stored[i].at, stored[i].changes) for i in (1, 2, 3)] == [
            (AT, rows[0]["changes"]), (AT, rows[1]["changes"]), (AT + timedelta(minutes=1), {})]
        assert (stored[1].at, stored[1].changes, stored[1].actor) == \
               (stored[4].at, stored[4].changes, stored[4].actor)  # as the ORM stored it


def test_a_unique_violation_is_an_integrity_error_and_keeps_nothing(app):
    def held(record_id: int) -> dict:
        return {"resource": "events", "record_id": record_id, "external_id": f"evt_{record_id}",
                "run_id": 1, "held_at": AT}

    with app.app_context():
        assert insert_rows(HeldDeletion.__table__, [held(1)]) is True
        db.session.commit()
        with pytest.raises(IntegrityError):  # (resource, record_id) is unique
            insert_rows(HeldDeletion.__table__, [held(2), held(1)])
        db.session.rollback()
        assert db.session.scalars(select(HeldDeletion.record_id)).all() == [1]


def test_a_column_with_a_default_left_out_is_declined(app):
    with app.app_context():  # held_at has a Python-side default the raw insert would skip
        row = {"resource": "events", "record_id": 5, "external_id": "evt_5", "run_id": None}
        assert insert_rows(HeldDeletion.__table__, [row]) is False
        assert db.session.scalars(select(HeldDeletion)).all() == []


def test_rows_it_cannot_write_as_they_are_are_declined(app):
    with app.app_context():
        mixed = [history_row(1, AT, {}), dict(reversed(list(history_row(2, AT, {}).items())))]
        assert insert_rows(RecordHistory.__table__, mixed) is False  # keys in another order
        assert insert_rows(RecordHistory.__table__, []) is True
        assert db.session.scalars(select(RecordHistory)).all() == []
