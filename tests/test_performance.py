"""Costs that must not grow with the data: SQL statements per page, per pulled page,
commits per push batch; and SQLite under concurrent writes while a sync runs.

Statements are counted with a `before_cursor_execute` listener (an executemany
counts once).  Data is bulk-inserted so the file stays fast.  The timings live
in `python -m tests.bench`.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from tests.conftest import ADMIN, AuthActions, _empty_tables, make_app
from tests.helpers import API_KEY, commits, statements
from tests.vendor_sandbox import VendorSandbox

UTC = timezone.utc
MONDAY = datetime(2026, 12, 7, tzinfo=UTC)  # the calendar week the pages show


def bulk_records(app, events: int) -> None:
    """`events` events (half scheduled in MONDAY's week), a third of them failed, runs, webhooks.

    Only events fail, so the admin page's failed list is one query at any size
    (a page spanning resources costs one query per resource on it: at most 3).
    """
    from models import Employee, Event, Schedule, SyncRun, WebhookMessage, db

    now = datetime.now(UTC)
    staff = max(3, events // 10)  # five schedules each at most: one a day (the app's rule)
    with app.app_context():
        db.session.execute(insert(Employee), [
            {"name": f"Employee {i:05d}", "code": f"P{i}", "active": True, "sync_status": "synced",
             "sync_attempts": 0, "created_at": now, "updated_at": now} for i in range(staff)])
        db.session.execute(insert(Event), [
            {"project_ref_num": 900000 + i, "project_name": f"CORE - Reset {i}", "event_type": "Core",
             "store_number": 1000 + i % 50, "start_datetime": MONDAY + timedelta(hours=i % 90),
             "due_datetime": MONDAY + timedelta(days=6), "estimated_minutes": 60,
             "sync_status": "failed" if i % 3 == 0 else "synced",
             "sync_error": "the vendor refused it (422)" if i % 3 == 0 else None,
             "sync_attempts": 0, "created_at": now, "updated_at": now} for i in range(events)])
        staff_ids = db.session.scalars(select(Employee.id).order_by(Employee.id)).all()
        event_ids = db.session.scalars(select(Event.id).order_by(Event.project_ref_num)).all()
        db.session.execute(insert(Schedule), [
            {"event_id": event_ids[i], "employee_id": staff_ids[i % staff],
             "start_datetime": MONDAY + timedelta(days=i // staff, hours=i % 10, minutes=30),
             "sync_status": "synced", "sync_attempts": 0,
             "created_at": now, "updated_at": now} for i in range(events // 2)])
        db.session.execute(insert(SyncRun), [
            {"status": "partial", "trigger": "schedule", "direction": "both", "resources": [],
             "started_at": now - timedelta(minutes=i), "finished_at": now, "pushed": i, "pulled": i,
             "failed": 1, "conflicts": 0, "errors": [], "requests_sent": 3} for i in range(events // 10)])
        db.session.execute(insert(WebhookMessage), [
            {"webhook_id": f"msg-{events}-{i}", "type": "event.updated", "object_id": f"evt_{i}",
             "version": 2, "outcome": "applied", "received_at": now} for i in range(events // 10)])
        db.session.commit()


PAGES = ["/", "/?type=Core", "/calendar?week=2026-12-07", "/calendar?week=2026-12-07&view=list", "/sync/admin",
         "/sync/admin?runs_page=2&webhooks_page=2", "/employees"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_run_the_same_statements_for_10_and_1200_records(app, client, auth, path):
    auth.login()
    bulk_records(app, 10)
    client.get(path)
    with statements(app) as small:
        assert client.get(path).status_code == 200
    _empty_tables(app)
    with app.app_context():
        from auth import create_user

        create_user(*ADMIN, role="admin")
    bulk_records(app, 1200)
    auth.login()
    with statements(app) as large:
        assert client.get(path).status_code == 200
    assert len(large) == len(small), "\n".join(large)


def test_a_busy_calendar_week_is_paged_and_says_how_many_each_day_has(app, client, auth):
    auth.login()
    bulk_records(app, 600)  # 300 schedules in the week
    first = client.get("/calendar?week=2026-12-07&view=list").get_data(as_text=True)
    assert first.count("data-schedule-id=") == 100
    assert "Page 1 of 3 (300 in all)" in first and "on other pages of this week" in first
    last = client.get("/calendar?week=2026-12-07&view=list&page=3").get_data(as_text=True)
    assert last.count("data-schedule-id=") == 100 and 'rel="prev"' in last


# ---------------------------------------------------------------------------
# Sync: a pulled page, a push batch
# ---------------------------------------------------------------------------

def vendor_objects(resource: str, employees: int, events: int, schedules: int) -> list[dict]:
    """Real vendor objects from an in-process sandbox (no HTTP)."""
    sandbox = VendorSandbox(api_key=API_KEY)
    sandbox.bulk_seed(employees=employees, events=events, schedules=schedules)
    return {name: sandbox.objects(name) for name in ("employees", "events", "schedules")}


def apply_page(app, resource: str, items: list[dict]) -> list[str]:
    """Statements run to apply one pulled page and commit it."""
    import sync_engine
    from models import db

    with app.app_context(), statements(app) as seen:
        results = sync_engine.apply_items(resource, items, None, source="pull")
        db.session.commit()
    assert {r.outcome for r in results} == {"applied"}, results[:3]
    return seen


@pytest.mark.parametrize("resource", ["employees", "events", "schedules"])
def test_a_pulled_page_costs_the_same_statements_for_10_and_100_items(app, resource):
    objects = vendor_objects(resource, 110, 110, 110)
    if resource == "schedules":  # their events and employees are known here first
        apply_page(app, "employees", objects["employees"])
        apply_page(app, "events", objects["events"])
    new_small = apply_page(app, resource, objects[resource][:10])
    new_large = apply_page(app, resource, objects[resource][10:110])
    assert len(new_small) == len(new_large), "\n".join(new_large)
    changed = [{**o, "version": o["version"] + 1} for o in objects[resource][:110]]
    if resource == "employees":
        changed = [{**o, "name": o["name"] + " Jr"} for o in changed]
    elif resource == "events":
        changed = [{**o, "project_name": o["project_name"] + " (moved)"} for o in changed]
    update_small = apply_page(app, resource, changed[:10])
    update_large = apply_page(app, resource, changed[10:110])
    assert len(update_small) == len(update_large), "\n".join(update_large)


def sync_app(database_url, sandbox, **extra):
    from auth import create_user

    application = make_app(database_url, SYNC_ENABLED=True, SYNC_PUSH_ON_CHANGE=False,
                           EXTERNAL_API_BASE_URL=sandbox.base_url, EXTERNAL_API_KEY=API_KEY,
                           EXTERNAL_API_RATE_LIMIT=100000, EXTERNAL_API_MAX_RETRIES=1,
                           WEBHOOK_SECRET="whsec_cGVyZm9ybWFuY2UtdGVzdC1zZWNyZXQ=", **extra)
    with application.app_context():
        create_user(*ADMIN, role="admin")
    return application


def test_a_push_batch_commits_a_constant_number_of_times(database_url, sandbox, monkeypatch):
    import sync_engine
    from models import Employee, Event, Schedule, db

    monkeypatch.setattr(sync_engine.RunContext, "checkpoint", lambda self, force=False: None)
    app = sync_app(database_url, sandbox)
    try:
        sandbox.bulk_seed(employees=40, events=40, schedules=0)
        sync_engine.run_sync(app, direction="pull")

        def push(count: int) -> int:
            with app.app_context():
                events = db.session.scalars(db.select(Event).where(~Event.is_scheduled)
                                            .order_by(Event.id).limit(count)).all()
                staff = db.session.scalars(db.select(Employee).where(~Employee.id.in_(
                    db.select(Schedule.employee_id).where(Schedule.deleted_at.is_(None))))
                    .order_by(Employee.id)).all()  # one schedule per employee per day
                for event, person in zip(events, staff[-count:]):
                    db.session.add(Schedule(event_id=event.id, employee_id=person.id,
                                            start_datetime=event.start_datetime))
                db.session.commit()
            with commits(app) as seen:
                run = sync_engine.run_sync(app, direction="push", resources=["schedules"])
            assert run.pushed == count and run.failed == 0, run.errors
            return len(seen)

        assert push(3) == push(30)
    finally:
        _empty_tables(app)


def test_a_plan_apply_runs_the_same_statements_and_one_commit_for_5_and_50_assignments(
        app, client, admin_headers):
    """POST /api/plan/apply: the checks read in one query each, one insert, one commit,
    one push-soon, whatever the number of assignments (one refused among them)."""
    import api
    from tests.factories import make_employee, make_event

    pushes = []

    def apply(count: int) -> tuple[int, int]:
        with app.app_context():
            events = [make_event().id for _ in range(count)]
            staff = [make_employee().id for _ in range(count)]
            off = make_employee(workdays=0b0000001).id  # Mondays only
        assignments = [{"event_id": ev, "employee_id": who, "start_datetime": "2026-12-02T09:00:00Z"}
                       for ev, who in zip(events, staff)]
        assignments[-1]["employee_id"] = off
        with statements(app) as seen, commits(app) as committed:
            answer = client.post("/api/plan/apply", headers=admin_headers,
                                 json={"assignments": assignments})
        body = answer.get_json()
        assert answer.status_code == 200 and len(body["created"]) == count - 1, body
        assert [r["error"]["code"] for r in body["refused"]] == ["employee_unavailable"]
        return len(seen), len(committed)

    original = api.notify_local_change
    api.notify_local_change = lambda: pushes.append(1)
    try:
        small, large = apply(5), apply(50)
    finally:
        api.notify_local_change = original
    assert small == large and small[1] == 1, (small, large)
    assert pushes == [1, 1]


# ---------------------------------------------------------------------------
# SQLite (the embedded default) under concurrent writes while a sync run writes
# ---------------------------------------------------------------------------

def test_concurrent_writes_during_a_sync_run_never_fail_with_database_is_locked(
        database_url, sandbox, caplog):
    import sync_engine

    sandbox.bulk_seed(employees=300, events=1500, schedules=1500)
    app = sync_app(database_url, sandbox)
    headers = {**AuthActions.basic(*ADMIN), "Content-Type": "application/json"}
    statuses, errors = [], []
    run_done = threading.Event()

    def sync() -> None:
        try:
            run = sync_engine.run_sync(app, direction="pull")
            statuses.append(("sync", run.status))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
        finally:
            run_done.set()

    def writer(n: int) -> None:
        client = app.test_client()
        i = 0
        while not run_done.is_set() or i < 5:
            response = client.post("/api/employees", headers=headers,
                                   json={"name": f"Writer {n}-{i}", "code": f"W{n}-{i}"})
            statuses.append(("create", response.status_code))
            if response.status_code == 201:
                patch = client.patch(f"/api/employees/{response.get_json()['id']}",
                                     headers=headers, json={"email": f"w{n}.{i}@example.com"})
                statuses.append(("patch", patch.status_code))
            i += 1

    try:
        threads = [threading.Thread(target=sync)] + [threading.Thread(target=writer, args=(n,))
                                                    for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert ("sync", "succeeded") in statuses
        writes = [s for kind, s in statuses if kind != "sync"]
        assert len(writes) >= 20 and set(writes) <= {200, 201}, statuses
        assert "database is locked" not in caplog.text
    finally:
        _empty_tables(app)


def test_a_push_batch_keeps_a_record_changed_while_its_create_was_in_flight_pending(
        database_url, sandbox, monkeypatch):
    """The batch's answers are stored at its end: a record edited meanwhile keeps its edit."""
    import api_service
    import sync_engine
    from models import Employee, db

    app = sync_app(database_url, sandbox)
    try:
        with app.app_context():
            db.session.add_all([Employee(name=f"Batch {i}", code=f"B{i}") for i in range(5)])
            db.session.commit()
            edited = db.session.scalar(db.select(Employee.id).where(Employee.code == "B2"))
        real_create = api_service.VendorClient.create

        def create_then_edit(self, resource, data, idempotency_key=None):
            obj = real_create(self, resource, data, idempotency_key=idempotency_key)
            if data.get("name") == "Batch 2":  # a user edits it before the answer is stored
                with db.engine.begin() as conn:
                    conn.execute(db.update(Employee).where(Employee.id == edited)
                                 .values(name="Batch 2 (edited)",
                                         updated_at=datetime.now(UTC) + timedelta(seconds=1)))
            return obj

        monkeypatch.setattr(api_service.VendorClient, "create", create_then_edit)
        with app.app_context():
            run = sync_engine.run_sync(app, direction="push", resources=["employees"])
            assert run.pushed == 5, run.errors
            db.session.remove()
            rows = {e.code: e for e in db.session.scalars(db.select(Employee))}
        assert all(rows[f"B{i}"].sync_status == "synced" and rows[f"B{i}"].idempotency_key is None
                   for i in (0, 1, 3, 4))
        changed = rows["B2"]
        assert changed.sync_status == "pending" and changed.name == "Batch 2 (edited)"
        assert changed.external_id is not None and changed.idempotency_key is None
        monkeypatch.setattr(api_service.VendorClient, "create", real_create)
        with app.app_context():
            sync_engine.run_sync(app, direction="push", resources=["employees"])
        assert sandbox.object("employees", changed.external_id)["name"] == "Batch 2 (edited)"
        assert len(sandbox.objects("employees")) == 5
    finally:
        _empty_tables(app)
