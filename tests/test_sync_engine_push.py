"""The push with 4 workers against the fast vendor: dependency order, answers stored."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.bench import free_port
from tests.factories import make_employee, make_event, make_schedule
from tests.fast_vendor import serve
from tests.helpers import API_KEY, START, db_call, rows

COUNT = 12


@pytest.fixture
def vendor():
    server = serve(free_port(), API_KEY)
    state = server.RequestHandlerClass.vendor
    state.latency = 0.002  # answers overlap: the 4 workers are busy at once
    yield server, state
    server.shutdown()
    server.server_close()


@pytest.fixture
def app_overrides(vendor):
    server, _ = vendor
    return {"SYNC_ENABLED": True, "SCHEDULER_ENABLED": False, "SYNC_PUSH_ON_CHANGE": False,
            "EXTERNAL_API_BASE_URL": f"http://127.0.0.1:{server.server_address[1]}/api/v1",
            "EXTERNAL_API_KEY": API_KEY, "EXTERNAL_API_RATE_LIMIT": 0,
            "EXTERNAL_API_CONCURRENCY": 4, "SYNC_PUSH_BATCH_SIZE": 5}


def test_no_schedule_is_sent_before_its_event_and_employee_exist_at_the_vendor(app, vendor):
    import sync_engine
    from models import Employee, Event, db

    _, state = vendor

    def graph():
        staff = [make_employee(f"Worker {n}") for n in range(COUNT)]
        events = [make_event(project_ref_num=710000 + n, start_datetime=START)
                  for n in range(COUNT)]
        for employee, event in zip(staff, events):
            make_schedule(db.session.get(Event, event.id), db.session.get(Employee, employee.id),
                          START + timedelta(hours=2))

    db_call(app, graph)
    with app.app_context():
        assert sync_engine.make_client(app).workers == 4
        run = sync_engine.run_sync(app, trigger="cli", direction="push")
        assert (run.status, run.pushed, run.failed) == ("succeeded", 3 * COUNT, 0)
    for resource in ("employees", "events", "schedules"):
        assert {r["sync_status"] for r in rows(app, resource)} == {"synced"}
    log = state.log
    created = {entry["id"]: entry["answered"] for entry in log
               if entry["method"] == "POST" and entry["status"] == 201}
    schedules = [e for e in log if e["path"].endswith("/schedules") and e["method"] == "POST"]
    assert len(schedules) == COUNT and len(created) == 3 * COUNT
    for entry in schedules:
        # it reached the vendor after the answers that created its event and employee
        assert created[entry["body"]["event_id"]] < entry["arrived"]
        assert created[entry["body"]["employee_id"]] < entry["arrived"]
    # the workers overlapped: some request arrived before an earlier one was answered
    by_arrival = sorted(log, key=lambda e: e["arrived"])
    assert any(b["arrived"] < a["answered"] for a, b in zip(by_arrival, by_arrival[1:]))
