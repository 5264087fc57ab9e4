"""The deletion guard: a full listing that would delete too much of one resource holds it.

A vendor that lost its data (a restore from backup, a tenant reset, the sandbox
restarted empty) answers 410 to the app's sync tokens and lists nothing; the
full listing must not wipe the local schedule.  The deletions are held for an
admin, who applies them or restores the records to the vendor.
"""
from __future__ import annotations

import pytest

from tests.conftest import AuthActions, make_app
from tests.factories import make_employee
from tests.helpers import db_call, invariant_breaks, rows, run

pytestmark = pytest.mark.vendor_sync

SEEDED = {"employees": 12, "events": 15, "schedules": 12}


def seeded_and_pulled(app, sandbox) -> dict:
    """The vendor's data pulled here: every record linked; the live local counts."""
    sandbox.bulk_seed(**SEEDED)
    assert run(app)["status"] == "succeeded"
    return local_counts(app)


def local_counts(app) -> dict:
    return {resource: len(rows(app, resource)) for resource in SEEDED}


def held(client, headers) -> dict:
    response = client.get("/api/sync/held", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def act(client, headers, resource: str, action: str):
    return client.post(f"/api/sync/held/{resource}", json={"action": action}, headers=headers)


def wiped(app, sandbox) -> dict:
    """The vendor loses everything (its tokens too) and the app syncs: the run."""
    sandbox.reset()
    return run(app)


# ---------------------------------------------------------------------------
# Holding
# ---------------------------------------------------------------------------

def test_a_wiped_vendor_deletes_nothing_here_and_holds_the_deletions(app, sandbox, client,
                                                                     admin_headers):
    before = seeded_and_pulled(app, sandbox)
    local_only = db_call(app, lambda: make_employee("Made Here").id)  # never pushed: not at risk
    result = wiped(app, sandbox)
    assert result["status"] == "partial", result
    assert "held" in result["message"] and "12 employees" in result["message"], result["message"]
    assert "SYNC_DELETE_GUARD" in result["message"]
    assert result["held"] == sum(SEEDED.values())
    counts = local_counts(app)
    assert counts == {**before, "employees": before["employees"] + 1}  # nothing deleted
    answer = held(client, admin_headers)
    assert {r: answer[r]["count"] for r in answer} == SEEDED
    assert {answer[r]["run_id"] for r in answer} == {result["id"]}
    assert len(answer["employees"]["sample"]) == 5
    assert all(s["external_id"] and s["id"] != local_only for s in answer["employees"]["sample"])
    status = client.get("/api/sync/status", headers=admin_headers).get_json()
    assert status["held"] == SEEDED
    # the local-only employee was pushed in the same run; the held ones were not touched
    assert [o["name"] for o in sandbox.objects("employees")] == ["Made Here"]


def test_held_deletions_survive_a_restart_and_a_second_full_listing(app, sandbox, client,
                                                                    admin_headers, database_url,
                                                                    app_overrides):
    seeded_and_pulled(app, sandbox)
    first = wiped(app, sandbox)
    sandbox.expire_sync_tokens()
    second = run(app)  # the same listing again: still held, not doubled, not applied
    assert second["status"] == "partial" and second["held"] == sum(SEEDED.values())
    restarted = make_app(database_url, **app_overrides)
    answer = held(restarted.test_client(), admin_headers)
    assert {r: answer[r]["count"] for r in answer} == SEEDED
    assert {answer[r]["run_id"] for r in answer} == {second["id"]} != {first["id"]}
    assert local_counts(app) == SEEDED


def test_an_incremental_pull_applies_any_number_of_tombstones(app, sandbox, client,
                                                             admin_headers):
    # An incremental pull, always: the strict sandbox's stale tokens (a shared random draw,
    # whose order depends on which of the three listings asks first) would make it a full
    # listing, which the guard rightly holds (test_a_wiped_vendor_deletes_nothing_here_...).
    sandbox.strict.stale_token_rate = 0
    seeded_and_pulled(app, sandbox)
    for obj in sandbox.objects("schedules"):
        sandbox.vendor_delete("schedules", obj["id"])
    result = run(app)
    assert result["status"] == "succeeded", result
    assert local_counts(app)["schedules"] == 0
    assert held(client, admin_headers) == {}


@pytest.mark.parametrize("linked,gone", [
    (12, 2),    # 17 % of the linked employees, and fewer than SYNC_DELETE_GUARD_MIN
    (5, 3),     # 60 %, but fewer than SYNC_DELETE_GUARD_MIN
    (60, 11),   # at least the minimum, but 18 %: not more than 20 %
])
def test_small_deletions_below_the_guard_are_applied_at_once(app, sandbox, client,
                                                            admin_headers, linked, gone):
    sandbox.bulk_seed(employees=linked, events=0, schedules=0)
    assert run(app)["status"] == "succeeded"
    for obj in sandbox.objects("employees")[:gone]:
        sandbox.vendor_delete("employees", obj["id"])
    sandbox.expire_sync_tokens()  # a full listing, not tombstones
    result = run(app)
    assert result["status"] == "succeeded", result
    assert result["held"] == 0
    assert len(rows(app, "employees")) == linked - gone
    assert held(client, admin_headers) == {}
    assert invariant_breaks(app, sandbox) == []


@pytest.mark.parametrize("sync_settings", [{"SYNC_DELETE_GUARD": "10%",
                                            "SYNC_DELETE_GUARD_MIN": 2}])
def test_the_share_and_the_minimum_are_settings(app, sandbox, client, admin_headers):
    sandbox.bulk_seed(employees=12, events=0, schedules=0)
    run(app)
    for obj in sandbox.objects("employees")[:2]:
        sandbox.vendor_delete("employees", obj["id"])
    sandbox.expire_sync_tokens()
    result = run(app)  # 2 of 12 = 17 % > 10 %, and 2 >= 2: held
    assert result["status"] == "partial" and result["held"] == 2
    assert held(client, admin_headers)["employees"]["count"] == 2
    assert len(rows(app, "employees")) == 12


@pytest.mark.parametrize("sync_settings", [{"SYNC_DELETE_GUARD": "off"}])
def test_the_guard_off_applies_a_wipe(app, sandbox, client, admin_headers):
    seeded_and_pulled(app, sandbox)
    result = wiped(app, sandbox)
    assert result["status"] == "succeeded", result
    assert local_counts(app) == {"employees": 0, "events": 0, "schedules": 0}
    assert held(client, admin_headers) == {}


# ---------------------------------------------------------------------------
# Apply and restore
# ---------------------------------------------------------------------------

def test_apply_deletes_what_the_listing_said(app, sandbox, client, admin_headers):
    seeded_and_pulled(app, sandbox)
    wiped(app, sandbox)
    response = act(client, admin_headers, "schedules", "apply")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["count"] == 12
    assert local_counts(app) == {**SEEDED, "schedules": 0}
    answer = held(client, admin_headers)
    assert set(answer) == {"employees", "events"}
    assert act(client, admin_headers, "schedules", "apply").status_code == 409  # nothing left
    assert act(client, admin_headers, "employees", "apply").get_json()["count"] == 12
    assert act(client, admin_headers, "events", "apply").get_json()["count"] == 15
    assert local_counts(app) == {"employees": 0, "events": 0, "schedules": 0}
    assert held(client, admin_headers) == {}
    assert run(app)["status"] == "succeeded"
    assert invariant_breaks(app, sandbox) == []


def test_restore_pushes_them_again_and_both_sides_converge(app, sandbox, client,
                                                          admin_headers):
    seeded_and_pulled(app, sandbox)
    before = {r: {row["id"]: row for row in rows(app, r)} for r in SEEDED}
    wiped(app, sandbox)
    # restoring the schedules restores the events and employees they need, too
    response = act(client, admin_headers, "schedules", "restore")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["count"] == 12
    answer = held(client, admin_headers)
    assert {r: answer[r]["count"] for r in answer} == {"events": 3}  # the unscheduled ones
    assert act(client, admin_headers, "events", "restore").get_json()["count"] == 3
    assert held(client, admin_headers) == {}
    result = run(app)
    assert result["status"] == "succeeded", result
    assert sandbox.counts() == SEEDED
    after = {r: {row["id"]: row for row in rows(app, r)} for r in SEEDED}
    assert set(after["schedules"]) == set(before["schedules"])  # the same local records
    for resource in SEEDED:
        assert all(row["sync_status"] == "synced" for row in after[resource].values())
        old = {row["external_id"] for row in before[resource].values()}
        assert not old & {row["external_id"] for row in after[resource].values()}  # new ids
    vendor_names = sorted(o["name"] for o in sandbox.objects("employees"))
    assert vendor_names == sorted(row["name"] for row in after["employees"].values())
    assert invariant_breaks(app, sandbox) == []
    assert run(app)["pushed"] == 0  # settled


# ---------------------------------------------------------------------------
# The API and the page
# ---------------------------------------------------------------------------

def test_held_api_roles_and_bad_requests(app, sandbox, client, admin_headers,
                                        scheduler_headers):
    seeded_and_pulled(app, sandbox)
    wiped(app, sandbox)
    assert client.get("/api/sync/held").status_code == 401
    assert held(client, scheduler_headers)["employees"]["count"] == 12
    refused = act(client, scheduler_headers, "employees", "apply")
    assert refused.status_code == 403
    assert len(rows(app, "employees")) == 12
    bad = act(client, admin_headers, "employees", "drop")
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "validation_failed"
    assert "action" in bad.get_json()["error"]["message"]
    assert act(client, admin_headers, "widgets", "apply").status_code == 404
    assert client.post("/api/sync/held/employees", data="[1]", headers=admin_headers,
                       content_type="application/json").status_code == 400
    assert held(client, admin_headers)["employees"]["count"] == 12  # nothing changed


def test_nothing_held_is_409(app, sandbox, client, admin_headers):
    response = act(client, admin_headers, "events", "restore")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "nothing_held"
    assert held(client, admin_headers) == {}
    assert client.get("/api/sync/status", headers=admin_headers).get_json()["held"] == {
        "employees": 0, "events": 0, "schedules": 0}


def test_the_admin_page_shows_the_banner_and_its_buttons_work(app, sandbox, client, auth):
    seeded_and_pulled(app, sandbox)
    wiped(app, sandbox)
    auth.login()
    page = client.get("/sync/admin").get_data(as_text=True)
    assert "12 employees" in page and "15 events" in page and "12 schedules" in page
    assert "Apply the deletions" in page and "Restore them to the vendor" in page
    assert "Employee 00001" in page  # a sample names the records
    token = auth.refresh_csrf("/sync/admin")
    response = client.post("/sync/admin/held/schedules",
                           data={"action": "apply", "csrf_token": token})
    assert response.status_code == 302
    assert len(rows(app, "schedules")) == 0
    page = client.get("/sync/admin").get_data(as_text=True)
    assert "12 schedules were deleted here" in page  # the flash
    assert "Apply the deletions" in page  # employees and events are still held
    again = client.post("/sync/admin/held/schedules", data={"action": "apply", "csrf_token": token},
                        follow_redirects=True).get_data(as_text=True)
    assert "No schedule deletions are held" in again
    client.post("/sync/admin/held/employees", data={"action": "restore", "csrf_token": token})
    client.post("/sync/admin/held/events", data={"action": "restore", "csrf_token": token})
    page = client.get("/sync/admin").get_data(as_text=True)
    assert "Apply the deletions" not in page


def test_scheduler_cannot_use_the_page_actions(app, sandbox, client):
    seeded_and_pulled(app, sandbox)
    wiped(app, sandbox)
    auth = AuthActions(client)
    auth.login_scheduler()
    token = auth.refresh_csrf("/")
    response = client.post("/sync/admin/held/employees",
                           data={"action": "apply", "csrf_token": token})
    assert response.status_code == 403
    assert len(rows(app, "employees")) == 12


def test_two_admins_applying_at_once_one_wins(app, sandbox, admin_headers):
    """Released together by a barrier, several rounds: one 200 deletes them, the other 409."""
    import threading

    for _round in range(3):
        sandbox.bulk_seed(employees=12, events=0, schedules=0)
        assert run(app)["status"] == "succeeded"
        assert wiped(app, sandbox)["held"] == 12
        barrier, answers = threading.Barrier(2), []

        def apply():
            client = app.test_client()
            barrier.wait()
            response = act(client, admin_headers, "employees", "apply")
            answers.append((response.status_code, response.get_json()))

        threads = [threading.Thread(target=apply) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(status for status, _ in answers) == [200, 409], answers
        assert [body["count"] for status, body in answers if status == 200] == [12]
        assert len(rows(app, "employees")) == 0


@pytest.mark.parametrize("value,share", [("20%", 0.2), ("20", 0.2), (" 12.5 % ", 0.125),
                                         ("OFF", None), ("0%", 0.0), ("100%", 1.0)])
def test_guard_setting_values(value, share):
    import config

    assert config.delete_guard_share(value) == share


@pytest.mark.parametrize("overrides,named", [({"SYNC_DELETE_GUARD": "lots"}, "SYNC_DELETE_GUARD"),
                                             ({"SYNC_DELETE_GUARD": "120%"}, "SYNC_DELETE_GUARD"),
                                             ({"SYNC_DELETE_GUARD_MIN": -1}, "SYNC_DELETE_GUARD_MIN")])
def test_a_bad_guard_setting_is_refused_at_start(database_url, overrides, named):
    import config

    with pytest.raises(config.ConfigError, match=named):
        make_app(database_url, **overrides)
