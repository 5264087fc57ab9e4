"""Convergence: random edits on both sides, with faults, end in the same data everywhere."""
from __future__ import annotations

import random
import time
from datetime import timedelta

import pytest

from tests.helpers import START, db_call, event_body, fmt, invariant_breaks, rows
from tests.vendor_sandbox import SandboxError

pytestmark = pytest.mark.vendor_sync

ROUNDS = 15
# One schedule per employee per day holds on both sides (the app's rule; the vendor does not
# know it, so its users keep it here): local edits schedule on the first two days, vendor
# edits on the next three, each side picking an employee's free day among its own records.
LOCAL_HOURS, VENDOR_HOURS = (0, 39), (48, 90)


def _free_day(rng: random.Random, employees: list, held: set, hours: tuple):
    """(employee, start) with no other schedule of that employee that day (APP_TIMEZONE is
    UTC here), or None after a few tries."""
    for _ in range(20):
        employee = rng.choice(employees)
        start = START + timedelta(hours=rng.randint(*hours))
        if (employee, start.date()) not in held:
            return employee, start
    return None


def _run_when_free(app, **kwargs):
    """A run now, waiting out a background run (a deferred webhook's pull) if one holds the lease."""
    import sync_engine

    deadline = time.monotonic() + 20
    while True:
        try:
            with app.app_context():
                return sync_engine.run_sync(app, **kwargs).to_dict()
        except sync_engine.SyncInProgress:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _local_edit(app, rng: random.Random, counter) -> None:
    from models import Employee, Event, Schedule, db

    def edit():
        kind = rng.choice(["employee", "employee_change", "event", "event_change", "event_delete",
                           "schedule", "schedule", "schedule_change", "schedule_delete"])
        employees = list(db.session.scalars(db.select(Employee).where(
            Employee.deleted_at.is_(None)).order_by(Employee.id)))
        events = list(db.session.scalars(db.select(Event).where(
            Event.deleted_at.is_(None)).order_by(Event.id)))
        schedules = list(db.session.scalars(db.select(Schedule).where(
            Schedule.deleted_at.is_(None)).order_by(Schedule.id)))
        if kind == "employee" or not employees:
            db.session.add(Employee(name=f"Local {next(counter)}", email=None, active=True))
        elif kind == "employee_change":
            rng.choice(employees).name = f"Local edit {next(counter)}"
        elif kind == "event" or not events:
            body = event_body(900000 + next(counter))
            db.session.add(Event(**{**body, "start_datetime": START,
                                    "due_datetime": START + timedelta(days=5)}))
        elif kind == "event_change":
            event = rng.choice(events)
            event.project_name = f"CORE - Local edit {next(counter)}"
            event.estimated_minutes = rng.choice([15, 30, 90])
        elif kind == "event_delete":
            taken = {s.event_id for s in schedules}
            free = [e for e in events if e.id not in taken]
            if free:  # as the app allows it: only an event with no live schedule here
                rng.choice(free).soft_delete()
        elif kind == "schedule":
            taken = {s.event_id for s in schedules}
            free = [e for e in events if e.id not in taken]
            if not free:
                return
            held = {(s.employee_id, s.start_datetime.date()) for s in schedules}
            slot = _free_day(rng, [e.id for e in employees], held, LOCAL_HOURS)
            if slot is None:
                return
            db.session.add(Schedule(event_id=rng.choice(free).id, employee_id=slot[0],
                                    start_datetime=slot[1]))
        elif kind == "schedule_change" and schedules:
            target = rng.choice(schedules)
            held = {(s.employee_id, s.start_datetime.date()) for s in schedules if s is not target}
            slot = _free_day(rng, [e.id for e in employees], held, LOCAL_HOURS)
            if slot is None:
                return
            target.employee_id, target.start_datetime = slot
        elif kind == "schedule_delete" and schedules:
            rng.choice(schedules).soft_delete()
        for row in list(db.session.new) + list(db.session.dirty):
            if hasattr(row, "mark_changed") and row.deleted_at is None:
                row.mark_changed()
        db.session.commit()

    db_call(app, edit)


def _vendor_edit(sandbox, rng: random.Random, counter) -> None:
    kind = rng.choice(["employee", "employee_change", "event", "event_change", "event_delete",
                       "schedule", "schedule_change", "schedule_delete"])
    employees = sandbox.objects("employees")
    events = sandbox.objects("events")
    schedules = sandbox.objects("schedules")
    try:
        if kind == "employee" or not employees:
            sandbox.vendor_create("employees", {"name": f"Vendor {next(counter)}",
                                                "email": None, "active": True})
        elif kind == "employee_change":
            sandbox.vendor_update("employees", rng.choice(employees)["id"],
                                  {"name": f"Vendor edit {next(counter)}"})
        elif kind == "event" or not events:
            sandbox.vendor_create("events", event_body(950000 + next(counter)))
        elif kind == "event_change":
            sandbox.vendor_update("events", rng.choice(events)["id"],
                                  {"project_name": f"CORE - Vendor edit {next(counter)}"})
        elif kind == "event_delete":
            sandbox.vendor_delete("events", rng.choice(events)["id"])  # 409 in_use if scheduled
        elif kind == "schedule":
            taken = {s["event_id"] for s in schedules}
            free = [e for e in events if e["id"] not in taken]
            held = {(s["employee_id"], s["start_datetime"][:10]) for s in schedules}
            slot = _free_day(rng, [e["id"] for e in employees], _dated(held), VENDOR_HOURS)
            if free and slot:
                sandbox.vendor_create("schedules", {
                    "event_id": rng.choice(free)["id"], "employee_id": slot[0],
                    "start_datetime": fmt(slot[1])})
        elif kind == "schedule_change" and schedules:
            target = rng.choice(schedules)
            held = {(s["employee_id"], s["start_datetime"][:10]) for s in schedules
                    if s["id"] != target["id"]}
            slot = _free_day(rng, [target["employee_id"]], _dated(held), VENDOR_HOURS)
            if slot:
                sandbox.vendor_update("schedules", target["id"], {"start_datetime": fmt(slot[1])})
        elif kind == "schedule_delete" and schedules:
            sandbox.vendor_delete("schedules", rng.choice(schedules)["id"])
    except SandboxError:
        pass  # a refused vendor-user change changes nothing


def _dated(held: set) -> set:
    from datetime import date

    return {(employee, date.fromisoformat(day)) for employee, day in held}


def _compare(app, sandbox) -> None:
    """Both sides hold the same live records, field by field (mapped by external_id)."""
    from sync_engine import FIELDS

    local = {r: rows(app, r) for r in ("employees", "events", "schedules")}
    for resource, records in local.items():
        assert all(r["sync_status"] == "synced" and r["external_id"] for r in records), resource + " " + \
            repr([r for r in records if r["sync_status"] != "synced" or not r["external_id"]])
    ext = {r: {row["id"]: row["external_id"] for row in local[r]}
           for r in ("employees", "events")}
    for resource, records in local.items():
        vendor = {o["id"]: o for o in sandbox.objects(resource)}
        mine = {r["external_id"]: r for r in records}
        assert set(mine) == set(vendor), resource
        for oid, row in mine.items():
            for name in FIELDS[resource]:
                value = row[name]
                if resource == "schedules" and name == "event_id":
                    value = ext["events"][value]
                elif resource == "schedules" and name == "employee_id":
                    value = ext["employees"][value]
                theirs = vendor[oid].get(name)
                if name in ("start_datetime", "due_datetime"):
                    value, theirs = value.rstrip("Z"), theirs.rstrip("Z")
                    value, theirs = value.split(".")[0], theirs.split(".")[0]
                assert value == theirs, (resource, oid, name, value, theirs)
    refs = [e["project_ref_num"] for e in sandbox.objects("events")]
    assert len(refs) == len(set(refs))
    scheduled = [s["event_id"] for s in sandbox.objects("schedules")]
    assert len(scheduled) == len(set(scheduled))
    local_scheduled = [s["event_id"] for s in local["schedules"]]
    assert len(local_scheduled) == len(set(local_scheduled))


def _user_deletes_orphaned_schedules(app) -> None:
    """What a user does with a local schedule whose event or employee a vendor user deleted
    meanwhile (failed, "choose another or delete this schedule"): delete it."""
    from models import Schedule, db

    def act():
        for row in db.session.scalars(db.select(Schedule).where(
                Schedule.deleted_at.is_(None), Schedule.sync_status == "failed",
                Schedule.sync_error.like("%was deleted at the vendor%"))):
            row.soft_delete()
        db.session.commit()

    db_call(app, act)


def _counts():
    import sync_engine

    return sync_engine.status_counts()


def _settled(app, result) -> bool:
    """The run succeeded and nothing waits: no record pending, failed or in conflict."""
    waiting = sum(c["pending"] + c["failed"] + c["conflict"]
                  for c in db_call(app, _counts).values())
    return result["status"] == "succeeded" and not waiting


def _assert_invariant(app, sandbox, when: str) -> None:
    """After a run that settled (and its webhooks): the sync invariant holds."""
    assert sandbox.wait_webhooks_idle(15)
    assert invariant_breaks(app, sandbox) == [], when


@pytest.mark.parametrize("seed", [11, 22, 33, 44, 55])
def test_random_edits_on_both_sides_converge(app, sandbox, live, seed):
    from models import Employee, db

    import sync_engine

    with app.app_context():  # the default settings: pushes go out over 4 workers
        assert sync_engine.make_client(app).workers == 4
    rng = random.Random(seed)
    counter = iter(range(1, 10_000))
    created_local = []
    sandbox.set_faults(error_rate=0.1, drop_rate=0.05, rate_limit=(200, 40),
                       apply_then_500_rate=0.05, seed=seed)
    for round_no in range(ROUNDS):
        sandbox.configure_webhooks(mode=("duplicate", "reorder", "normal")[round_no % 3])
        for _ in range(rng.randint(1, 4)):
            _local_edit(app, rng, counter)
        for _ in range(rng.randint(1, 4)):
            _vendor_edit(sandbox, rng, counter)
        result = _run_when_free(app)
        if _settled(app, result):
            _assert_invariant(app, sandbox, f"round {round_no}: {result}")
    created_local = db_call(app, lambda: [e.name for e in db.session.scalars(
        db.select(Employee).where(Employee.name.like("Local %"), Employee.deleted_at.is_(None)))])
    sandbox.clear_faults()
    sandbox.configure_webhooks(mode="normal")
    assert sandbox.wait_webhooks_idle(15)
    quiet = 0
    for _ in range(40):
        _user_deletes_orphaned_schedules(app)
        result = _run_when_free(app)
        assert sandbox.wait_webhooks_idle(15)
        waiting = sum(c["pending"] for c in db_call(app, _counts).values())
        quiet = quiet + 1 if (result["pushed"] == 0 and result["pulled"] == 0 and not waiting
                              and result["status"] == "succeeded") else 0
        if quiet == 2:
            break
        if waiting:
            time.sleep(0.1)  # a Retry-After from the vendor still runs
    assert quiet == 2, result
    _assert_invariant(app, sandbox, "after settling")
    _compare(app, sandbox)
    vendor_names = {o["name"] for o in sandbox.objects("employees")}
    assert all(name in vendor_names for name in created_local)
