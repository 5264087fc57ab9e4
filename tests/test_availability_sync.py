"""A vendor schedule that breaks availability is applied as the vendor says (the vendor
knows no workdays, time off or weekly limits), and its JSON says what it breaks
(`warnings`).  A pull leaves the employee's availability as it is."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import make_employee
from tests.helpers import START, db_call, fmt, one, run, vendor_event

pytestmark = pytest.mark.vendor_sync


def test_a_pulled_schedule_on_a_day_off_is_applied_with_a_warning(app, client, sandbox, admin_headers):
    def make():
        off_day = START.weekday()
        return make_employee("Wes Weekday", workdays=0b1111111 & ~(1 << off_day), max_days_per_week=2).id

    emp = db_call(app, make)
    assert run(app)["status"] == "succeeded"
    ext_emp = one(app, "employees", id=emp)["external_id"]
    event = vendor_event(sandbox, 720001)
    vendor_sched = sandbox.vendor_create("schedules", {
        "event_id": event["id"], "employee_id": ext_emp,
        "start_datetime": fmt(START + timedelta(hours=3))})
    assert run(app)["status"] == "succeeded"
    row = one(app, "schedules", external_id=vendor_sched["id"])
    assert row is not None and row["sync_status"] == "synced" and row["deleted_at"] is None
    answer = client.get(f"/api/schedules/{row['id']}", headers=admin_headers).get_json()
    assert answer["warnings"] and answer["warnings"][0].startswith("Wes Weekday does not work on ")
    employee = client.get(f"/api/employees/{emp}", headers=admin_headers).get_json()
    assert employee["max_days_per_week"] == 2 and len(employee["workdays"]) == 6
