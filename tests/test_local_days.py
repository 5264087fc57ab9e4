"""schedules.local_day: kept by the model, filled by the migration (which refuses data that
already breaks the one-per-employee-per-day rule), recomputed by `schedules recompute-days`."""
from __future__ import annotations

import logging
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from config import BASE_DIR
from tests.factories import make_employee, make_event, make_schedule, utc

CHICAGO = "America/Chicago"  # UTC-6 in December
MIGRATIONS = str(BASE_DIR / "migrations")
BEFORE = "e5f2b8c4d6a1"  # the revision before local_day


def day_of(app, schedule_id: int) -> date:
    from models import Schedule, db

    with app.app_context():
        return db.session.scalar(sa.select(Schedule.local_day).where(Schedule.id == schedule_id))


def test_the_model_keeps_local_day_on_orm_and_core_writes(app):
    from models import Schedule, db

    with app.app_context():
        employee, event = make_employee(), make_event()
        schedule = make_schedule(event, employee, utc(2026, 12, 2, 23, 30))
        assert schedule.local_day == date(2026, 12, 2)
        schedule.start_datetime = utc(2026, 12, 3, 0, 30)
        db.session.commit()
        sid = schedule.id
        other = make_event()
        db.session.execute(sa.insert(Schedule.__table__), [{
            "event_id": other.id, "employee_id": make_employee().id,
            "start_datetime": utc(2026, 12, 4, 10, 0), "sync_status": "pending",
            "sync_attempts": 0, "created_at": utc(2026, 12, 1), "updated_at": utc(2026, 12, 1)}])
        db.session.commit()
        core_day = db.session.scalar(sa.select(Schedule.local_day).where(Schedule.event_id == other.id))
    assert day_of(app, sid) == date(2026, 12, 3)
    assert core_day == date(2026, 12, 4)


def test_a_core_update_of_start_datetime_without_local_day_is_refused(app):
    from models import Schedule, db

    with app.app_context():
        sid = make_schedule(make_event(), make_employee(), utc(2026, 12, 2, 9, 0)).id
        with pytest.raises(ValueError, match="local_day"):
            db.session.execute(sa.update(Schedule).where(Schedule.id == sid)
                               .values(start_datetime=utc(2026, 12, 3, 9, 0)))
        db.session.rollback()
        db.session.execute(sa.update(Schedule).where(Schedule.id == sid).values(
            start_datetime=utc(2026, 12, 3, 9, 0), local_day=date(2026, 12, 3)))
        db.session.commit()
    assert day_of(app, sid) == date(2026, 12, 3)


@pytest.mark.parametrize("app_overrides", [{"APP_TIMEZONE": CHICAGO}])
def test_local_day_is_the_day_in_app_timezone(app, client, admin_headers):
    with app.app_context():
        employee, event = make_employee(), make_event()
        late = make_schedule(event, employee, utc(2026, 12, 3, 3, 0))  # Dec 2, 21:00 in Chicago
        assert late.local_day == date(2026, 12, 2)
        other, employee_id = make_event().id, employee.id
    answer = client.post("/api/schedules", headers=admin_headers, json={
        "event_id": other, "employee_id": employee_id, "start_datetime": "2026-12-02T15:00:00Z"})
    assert answer.status_code == 409 and answer.get_json()["error"]["code"] == "employee_busy"


def test_recompute_days_after_a_timezone_change(app, runner):
    from models import Schedule, db

    with app.app_context():
        employee = make_employee()
        first = make_schedule(make_event(), employee, utc(2026, 12, 2, 3, 0)).id
        second = make_schedule(make_event(), employee, utc(2026, 12, 3, 3, 0)).id
        third = make_schedule(make_event(), make_employee(), utc(2026, 12, 4, 12, 0)).id
        employee_id = employee.id
    assert (day_of(app, first), day_of(app, second)) == (date(2026, 12, 2), date(2026, 12, 3))
    app.config["APP_TIMEZONE"] = CHICAGO  # each of the two moves back a day: no clash
    result = runner.invoke(args=["schedules", "recompute-days"])
    assert result.exit_code == 0, result.output
    assert "2 schedule" in result.output and CHICAGO in result.output
    assert (day_of(app, first), day_of(app, second), day_of(app, third)) == (
        date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 4))
    again = runner.invoke(args=["schedules", "recompute-days"])
    assert again.exit_code == 0 and "0 schedule" in again.output
    # the index is back: a second schedule on Dec 2 (Chicago) for the employee is refused
    with app.app_context():
        db.session.add(Schedule(event_id=make_event().id, employee_id=employee_id,
                                start_datetime=utc(2026, 12, 2, 20, 0)))
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_recompute_days_refuses_a_timezone_that_makes_clashes(app, runner):
    with app.app_context():
        employee = make_employee("Cy Clash")
        first = make_schedule(make_event(), employee, utc(2026, 12, 2, 15, 0)).id
        second = make_schedule(make_event(), employee, utc(2026, 12, 3, 3, 0)).id
    app.config["APP_TIMEZONE"] = CHICAGO  # both on Dec 2 in Chicago
    result = runner.invoke(args=["schedules", "recompute-days"])
    assert result.exit_code == 1
    assert "Cy Clash" in result.output and "2026-12-02" in result.output
    assert f"#{first}" in result.output and f"#{second}" in result.output
    assert (day_of(app, first), day_of(app, second)) == (date(2026, 12, 2), date(2026, 12, 3))


@pytest.fixture
def scratch_url(database_url, tmp_path):
    """A database of its own for migration tests (a file, or a PostgreSQL schema)."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'migrate.sqlite'}"
        return
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS local_day_migration CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA local_day_migration"))
    sep = "&" if "?" in database_url else "?"
    yield f"{database_url}{sep}options=-csearch_path%3Dlocal_day_migration"
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS local_day_migration CASCADE"))
    engine.dispose()


def old_schema_with(url: str, starts: list):
    """An app on `url` migrated to the revision before local_day, with one employee whose
    schedules start at `starts` (UTC); returns the app."""
    from flask_migrate import upgrade

    from app import create_app
    from models import db

    application = create_app("testing", {"SQLALCHEMY_DATABASE_URI": url, "AUTO_MIGRATE": False,
                                         "APP_TIMEZONE": CHICAGO})
    with application.app_context():
        upgrade(directory=MIGRATIONS, revision=BEFORE)
        now = utc(2026, 11, 1)
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO employees (id, name, active, sync_status, sync_attempts, created_at,"
                " updated_at) VALUES (1, 'Mo Migrate', :t, 'synced', 0, :now, :now)"),
                {"t": True, "now": now.replace(tzinfo=None)})
            for n, start in enumerate(starts, 1):
                conn.execute(sa.text(
                    "INSERT INTO events (id, project_ref_num, project_name, event_type,"
                    " start_datetime, due_datetime, sync_status, sync_attempts, created_at,"
                    " updated_at) VALUES (:n, :n, 'CORE', 'Core', :s, :d, 'synced', 0, :now, :now)"),
                    {"n": n, "s": (start - timedelta(days=3)).replace(tzinfo=None),
                     "d": (start + timedelta(days=3)).replace(tzinfo=None),
                     "now": now.replace(tzinfo=None)})
                conn.execute(sa.text(
                    "INSERT INTO schedules (id, event_id, employee_id, start_datetime, sync_status,"
                    " sync_attempts, created_at, updated_at) VALUES (:n, :n, 1, :s, 'synced', 0,"
                    " :now, :now)"), {"n": n, "s": start.replace(tzinfo=None),
                                       "now": now.replace(tzinfo=None)})
    return application


def columns(application) -> set:
    from models import db

    with application.app_context():
        return {c["name"] for c in sa.inspect(db.engine).get_columns("schedules")}


def test_migration_refuses_data_that_breaks_the_rule_naming_the_clash(scratch_url, caplog):
    from flask_migrate import upgrade

    from models import db

    # 15:00 UTC and 03:00 UTC the next day: different UTC days, both Dec 2 in Chicago
    application = old_schema_with(scratch_url, [utc(2026, 12, 2, 15), utc(2026, 12, 3, 3),
                                                utc(2026, 12, 5, 15)])
    with application.app_context(), caplog.at_level(logging.ERROR):
        with pytest.raises(SystemExit):
            upgrade(directory=MIGRATIONS)
        db.session.remove()
    message = caplog.text
    assert "Mo Migrate" in message and "2026-12-02" in message
    assert "#1, #2" in message and "#3" not in message
    assert "local_day" not in columns(application)
    with application.app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE schedules SET deleted_at = start_datetime WHERE id = 2"))
        upgrade(directory=MIGRATIONS)
        days = dict(db.session.execute(sa.text("SELECT id, local_day FROM schedules")).all())
        db.session.remove()
        db.engine.dispose()
    assert {k: str(v) for k, v in days.items()} == {1: "2026-12-02", 2: "2026-12-02",
                                                    3: "2026-12-05"}


def test_recompute_days_is_documented():
    readme = (BASE_DIR / "README.md").read_text(encoding="utf-8")
    assert "schedules recompute-days" in readme
