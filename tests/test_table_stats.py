"""Planner statistics after a bulk write (table_stats.py): on PostgreSQL a first pull, a
large CSV import and the demo seed leave their tables analyzed, as an operator checks
it (pg_stat_user_tables.last_analyze, pg_class.reltuples); a small write analyzes nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.helpers import run
from tests.test_csv_formats import HEADER, SAMPLE, upload


@pytest.fixture
def app_overrides(sync_overrides) -> dict:
    """The sync on, against a lenient sandbox (no faults: a run pulls everything)."""
    return sync_overrides


@pytest.fixture
def pg(database_url):
    """What PostgreSQL says of a table: (last_analyze, reltuples, rows counted)."""
    assert database_url.startswith("postgresql"), "a test using `pg` is only_on('postgresql')"
    engine = create_engine(database_url)

    def stats(table: str):
        with engine.connect() as conn:  # a fresh connection: stats not cached
            analyzed = conn.scalar(text("SELECT last_analyze FROM pg_stat_user_tables"
                                        " WHERE relname = :t"), {"t": table})
            tuples = conn.scalar(text("SELECT reltuples FROM pg_class WHERE relname = :t"
                                      " AND relkind = 'r'"), {"t": table})
            counted = conn.scalar(text(f'SELECT count(*) FROM "{table}"'))
        return analyzed, tuples, counted

    yield stats
    engine.dispose()


def work_bank(rows: int, first_ref: int = 650000) -> str:
    """A WorkBankVisits.csv of `rows` unscheduled events."""
    lines = [HEADER] + [
        f"CORE - Reset {ref},{ref},mv{ref},1234,Springfield Supercenter,09/27/2025 12:00:00 AM,"
        "10/03/2025 11:59:00 PM,60,,," for ref in range(first_ref, first_ref + rows)]
    return "\n".join(lines) + "\n"


@pytest.mark.only_on("postgresql")
def test_a_bulk_csv_import_leaves_its_tables_analyzed(client, admin_headers, pg):
    before = pg("events")[0]
    answer = upload(client, admin_headers, work_bank(1200))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    analyzed, tuples, counted = pg("events")
    assert analyzed is not None and (before is None or analyzed > before)
    assert counted >= 1200 and tuples == counted  # the planner knows the table's size
    history_analyzed, history_tuples, history_counted = pg("record_history")
    assert history_analyzed is not None and history_tuples == history_counted


@pytest.mark.only_on("postgresql")
def test_a_small_import_analyzes_nothing(client, admin_headers, pg):
    upload(client, admin_headers, work_bank(1000, first_ref=660000))  # analyzed once
    before = pg("events")
    assert upload(client, admin_headers, SAMPLE).status_code == 200
    after = pg("events")
    assert after[0] == before[0] and after[2] == before[2] + 2  # two more rows, not analyzed


@pytest.mark.only_on("postgresql")
def test_a_first_pull_leaves_every_table_it_filled_analyzed(app, sandbox, pg):
    sandbox.bulk_seed(employees=60, events=700, schedules=300)  # 1,060 objects, each < 1,000
    befores = {t: pg(t)[0] for t in ("employees", "events", "schedules")}
    result = run(app)
    assert result["status"] == "succeeded" and result["pulled"] == 1060
    for table, before in befores.items():
        analyzed, tuples, counted = pg(table)
        assert analyzed is not None and (before is None or analyzed > before), table
        assert tuples == counted, table
    _, schedules, _ = pg("schedules")
    assert schedules == 300


@pytest.mark.only_on("postgresql")
def test_a_small_pull_analyzes_nothing(app, sandbox, pg):
    sandbox.bulk_seed(employees=60, events=700, schedules=300)
    run(app)
    before = pg("events")
    sandbox.bulk_seed(employees=0, events=5, schedules=0)
    assert run(app)["pulled"] == 5
    after = pg("events")
    assert after[0] == before[0] and after[2] == before[2] + 5


@pytest.mark.only_on("postgresql")
def test_the_demo_seed_leaves_its_tables_analyzed(runner, pg):
    befores = {t: pg(t)[0] for t in ("employees", "events", "schedules")}
    assert "demo data added" in runner.invoke(args=["demo", "seed"]).output
    for table, before in befores.items():
        analyzed, tuples, counted = pg(table)
        assert analyzed is not None and (before is None or analyzed > before), table
        assert tuples == counted, table


@pytest.mark.only_on("sqlite")
def test_on_sqlite_a_bulk_import_analyzes_nothing_and_stands(app, client, admin_headers):
    import table_stats

    answer = upload(client, admin_headers, work_bank(1200))
    assert answer.status_code == 200 and answer.get_json()["created"] == 1200
    with app.app_context():
        assert table_stats.after_bulk_write(["events"], 5000) == []
