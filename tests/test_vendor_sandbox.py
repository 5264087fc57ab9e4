"""The vendor sandbox honours docs/vendor-api.md: raw HTTP against a live sandbox."""

from __future__ import annotations

import base64
import itertools
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.helpers import API_KEY, assert_error
from tests.vendor_sandbox import SandboxError, SandboxStateError, VendorSandbox, parse_ts

KEY = API_KEY
SECRET = "whsec_" + base64.b64encode(b"sandbox-test-secret-0123456789ab").decode()
AUTH = {"Authorization": f"Bearer {KEY}"}
_refs = itertools.count(1000)


# --------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------


def api(sb, method, path, *, headers=None, **kwargs):
    """One authenticated request to the sandbox's /api/v1."""
    return requests.request(method, sb.base_url + path, headers={**AUTH, **(headers or {})},
                            timeout=5, **kwargs)


def event_body(**overrides) -> dict:
    body = {"project_ref_num": next(_refs), "project_name": "CORE - Snack Reset",
            "event_type": "Core", "store_number": 1204, "store_name": "Springfield",
            "location_mvid": "MV-01204", "start_datetime": "2026-12-01T08:00:00Z",
            "due_datetime": "2026-12-03T17:00:00Z", "estimated_minutes": 90}
    body.update(overrides)
    return body


def make_employee(sb, **overrides) -> dict:
    return sb.vendor_create("employees", {"name": "Maria Lopez", **overrides})


def make_event(sb, **overrides) -> dict:
    return sb.vendor_create("events", event_body(**overrides))


def make_schedule(sb, event=None, employee=None, **overrides) -> dict:
    event = event or make_event(sb)
    employee = employee or make_employee(sb)
    return sb.vendor_create("schedules", {"event_id": event["id"], "employee_id": employee["id"],
                                          "start_datetime": "2026-12-02T09:00:00Z",
                                          **overrides})


def list_all(sb, resource, **params):
    """Follow a listing to its end: (items, pages, next_sync_token)."""
    items, pages = [], []
    while True:
        body = api(sb, "GET", f"/{resource}", params=params).json()
        pages.append(body)
        items += body["data"]
        if not body["next_page_token"]:
            return items, pages, body["next_sync_token"]
        params = {"page_token": body["next_page_token"]}


# --------------------------------------------------------------------------
# Auth, health, request ids
# --------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}])
@pytest.mark.parametrize("path", ["/health", "/events", "/employees/emp_x"])
def test_auth_required_everywhere(sb, headers, path):
    resp = requests.get(sb.base_url + path, headers=headers, timeout=5)
    assert_error(resp, 401, "unauthorized")


def test_health(sb):
    resp = api(sb, "GET", "/health")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"
    assert resp.json()["time"].endswith("Z")
    assert resp.headers["X-Request-Id"].startswith("req_")


def test_unknown_paths_answer_contract_errors(sb):
    assert_error(api(sb, "GET", "/widgets"), 404, "not_found")
    assert_error(api(sb, "GET", "/employees/nope"), 404, "not_found")
    assert_error(api(sb, "PUT", "/employees/nope", json={}), 405, "method_not_allowed")


# --------------------------------------------------------------------------
# Create, read, validation
# --------------------------------------------------------------------------


def test_create_and_get_employee(sb):
    resp = api(sb, "POST", "/employees", json={"name": "Aisha Khan", "email": None, "x": 1})
    assert resp.status_code == 201
    emp = resp.json()
    assert emp["version"] == 1 and emp["active"] is True and emp["email"] is None
    assert "x" not in emp and len(emp["id"]) <= 64
    parse_ts(emp["updated_at"])
    assert api(sb, "GET", f"/employees/{emp['id']}").json() == emp


def test_event_defaults_and_timestamp_normalisation(sb):
    body = event_body(start_datetime="2026-12-01T10:00:00.250+02:00",
                      due_datetime="2026-12-01T08:00:00.25Z")
    del body["event_type"], body["store_number"], body["estimated_minutes"]
    event = api(sb, "POST", "/events", json=body).json()
    assert event["event_type"] == "Other"
    assert event["store_number"] is None and event["estimated_minutes"] is None
    assert event["start_datetime"] == "2026-12-01T08:00:00.250000Z"
    assert event["due_datetime"] == "2026-12-01T08:00:00.250000Z"


EMPLOYEE_RULES = [
    ({}, "name"), ({"name": ""}, "name"), ({"name": "x" * 121}, "name"), ({"name": 5}, "name"),
    ({"name": None}, "name"), ({"name": "A", "email": 5}, "email"),
    ({"name": "A", "active": "yes"}, "active"), ({"name": "A", "active": 1}, "active"),
    ({"name": "A", "active": None}, "active"),
]


@pytest.mark.parametrize("body,field", EMPLOYEE_RULES)
def test_employee_validation(sb, body, field):
    error = assert_error(api(sb, "POST", "/employees", json=body), 422, "validation_failed")
    assert field in error["details"]
    assert sb.objects("employees") == []


EVENT_RULES = [
    ({"project_ref_num": None}, "project_ref_num"), ({"project_ref_num": 0}, "project_ref_num"),
    ({"project_ref_num": -4}, "project_ref_num"), ({"project_ref_num": True}, "project_ref_num"),
    ({"project_ref_num": "12"}, "project_ref_num"), ({"project_ref_num": 1.5}, "project_ref_num"),
    ({"project_name": ""}, "project_name"), ({"project_name": "x" * 201}, "project_name"),
    ({"event_type": "Party"}, "event_type"), ({"event_type": None}, "event_type"),
    ({"store_number": "12"}, "store_number"), ({"store_number": False}, "store_number"),
    ({"store_name": 7}, "store_name"), ({"location_mvid": 7}, "location_mvid"),
    ({"estimated_minutes": -1}, "estimated_minutes"),
    ({"estimated_minutes": True}, "estimated_minutes"),
    ({"start_datetime": "2026-12-01T08:00:00"}, "start_datetime"),
    ({"start_datetime": "2026-12-01"}, "start_datetime"),
    ({"start_datetime": "tomorrow"}, "start_datetime"),
    ({"start_datetime": 1764576000}, "start_datetime"),
    ({"start_datetime": "2026-13-01T08:00:00Z"}, "start_datetime"),
    ({"due_datetime": None}, "due_datetime"),
    ({"due_datetime": "2026-11-30T08:00:00Z"}, "due_datetime"),
]


@pytest.mark.parametrize("overrides,field", EVENT_RULES)
def test_event_validation(sb, overrides, field):
    body = {k: v for k, v in event_body(**overrides).items() if v is not None or k not in
            ("project_ref_num", "due_datetime")}
    error = assert_error(api(sb, "POST", "/events", json=body), 422, "validation_failed")
    assert field in error["details"], error


@pytest.mark.parametrize("case", ["missing_event", "unknown_event", "deleted_event",
                                  "unknown_employee", "inactive_employee", "before_window",
                                  "after_window", "naive_start", "missing_start"])
def test_schedule_validation(sb, case):
    event, emp = make_event(sb), make_employee(sb)
    body = {"event_id": event["id"], "employee_id": emp["id"],
            "start_datetime": "2026-12-02T09:00:00Z"}
    field = {"missing_event": "event_id", "unknown_event": "event_id",
             "deleted_event": "event_id", "unknown_employee": "employee_id",
             "inactive_employee": "employee_id", "missing_start": "start_datetime"}.get(
                 case, "start_datetime")
    if case == "missing_event":
        del body["event_id"]
    elif case == "unknown_event":
        body["event_id"] = "evt_nope"
    elif case == "deleted_event":
        sb.vendor_delete("events", event["id"])
    elif case == "unknown_employee":
        body["employee_id"] = "emp_nope"
    elif case == "inactive_employee":
        sb.vendor_update("employees", emp["id"], {"active": False})
    elif case == "before_window":
        body["start_datetime"] = "2026-12-01T07:59:59Z"
    elif case == "after_window":
        body["start_datetime"] = "2026-12-03T17:00:00.000001Z"
    elif case == "naive_start":
        body["start_datetime"] = "2026-12-02T09:00:00"
    else:
        del body["start_datetime"]
    error = assert_error(api(sb, "POST", "/schedules", json=body), 422, "validation_failed")
    assert field in error["details"], error


def test_schedule_window_edges_are_inclusive(sb):
    event, emp = make_event(sb), make_employee(sb)
    body = {"event_id": event["id"], "employee_id": emp["id"],
            "start_datetime": event["due_datetime"]}
    sched = api(sb, "POST", "/schedules", json=body).json()
    resp = api(sb, "PATCH", f"/schedules/{sched['id']}",
               json={"start_datetime": event["start_datetime"]})
    assert resp.status_code == 200


def test_patch_to_inactive_employee_refused_but_keeping_one_allowed(sb):
    sched = make_schedule(sb)
    idle = make_employee(sb, name="Tom Brooks", active=False)
    resp = api(sb, "PATCH", f"/schedules/{sched['id']}", json={"employee_id": idle["id"]})
    assert "employee_id" in assert_error(resp, 422, "validation_failed")["details"]
    sb.vendor_update("employees", sched["employee_id"], {"active": False})
    resp = api(sb, "PATCH", f"/schedules/{sched['id']}",
               json={"start_datetime": "2026-12-02T10:00:00Z"})
    assert resp.status_code == 200 and resp.json()["version"] == 2


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b'"text"', b""])
@pytest.mark.parametrize("method,path", [("POST", "/employees"), ("PATCH", "/employees/{id}")])
def test_bad_request_bodies(sb, data, method, path):
    emp = make_employee(sb)
    resp = api(sb, method, path.format(id=emp["id"]), data=data,
               headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "bad_request")


# --------------------------------------------------------------------------
# Conflicts, versions, deletes
# --------------------------------------------------------------------------


def test_duplicate_project_ref_num(sb):
    event = make_event(sb)
    resp = api(sb, "POST", "/events", json=event_body(project_ref_num=event["project_ref_num"]))
    assert assert_error(resp, 409, "duplicate")["details"]["existing_id"] == event["id"]
    other = make_event(sb)
    resp = api(sb, "PATCH", f"/events/{other['id']}",
               json={"project_ref_num": event["project_ref_num"]})
    assert assert_error(resp, 409, "duplicate")["details"]["existing_id"] == event["id"]
    sb.vendor_delete("events", event["id"])  # the number is free again once deleted
    assert api(sb, "PATCH", f"/events/{other['id']}",
               json={"project_ref_num": event["project_ref_num"]}).status_code == 200


def test_one_live_schedule_per_event(sb):
    sched = make_schedule(sb)
    body = {"event_id": sched["event_id"], "employee_id": sched["employee_id"],
            "start_datetime": "2026-12-02T09:00:00Z"}
    error = assert_error(api(sb, "POST", "/schedules", json=body), 409, "duplicate")
    assert error["details"]["existing_id"] == sched["id"]
    assert api(sb, "DELETE", f"/schedules/{sched['id']}").status_code == 204
    assert api(sb, "POST", "/schedules", json=body).status_code == 201


@pytest.mark.parametrize("resource,field", [("events", "event_id"),
                                            ("employees", "employee_id")])
def test_in_use_blocks_delete(sb, resource, field):
    sched = make_schedule(sb)
    error = assert_error(api(sb, "DELETE", f"/{resource}/{sched[field]}"), 409, "in_use")
    assert error["details"]["schedule_id"] == sched["id"]
    api(sb, "DELETE", f"/schedules/{sched['id']}")
    assert api(sb, "DELETE", f"/{resource}/{sched[field]}").status_code == 204


def test_versions_and_noop_patch(sb):
    emp = make_employee(sb)
    one = api(sb, "PATCH", f"/employees/{emp['id']}", json={"name": "Maria L."}).json()
    assert one["version"] == 2 and one["name"] == "Maria L."
    same = api(sb, "PATCH", f"/employees/{emp['id']}", json={"name": "Maria L.", "id": "z"})
    assert same.json() == one
    assert api(sb, "PATCH", f"/employees/{emp['id']}", json={}).json()["version"] == 2


@pytest.mark.parametrize("header", ['"1"', "1", 'W/"1"'])
def test_if_match_accepted_with_or_without_quotes(sb, header):
    emp = make_employee(sb)
    resp = api(sb, "PATCH", f"/employees/{emp['id']}", json={"name": "B"},
               headers={"If-Match": header})
    assert resp.status_code == 200 and resp.json()["version"] == 2


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_if_match_mismatch_412_with_current(sb, method):
    emp = make_employee(sb)
    current = sb.vendor_update("employees", emp["id"], {"name": "Newer"})
    resp = api(sb, method, f"/employees/{emp['id']}", json={"name": "Stale"} if method ==
               "PATCH" else None, headers={"If-Match": '"1"'})
    assert_error(resp, 412, "version_mismatch")
    assert resp.json()["current"] == current
    assert sb.object("employees", emp["id"]) == current


def test_delete_then_404_everywhere(sb):
    emp = make_employee(sb)
    resp = api(sb, "DELETE", f"/employees/{emp['id']}", headers={"If-Match": '"1"'})
    assert resp.status_code == 204 and resp.content == b"" and resp.headers["X-Request-Id"]
    assert_error(api(sb, "GET", f"/employees/{emp['id']}"), 404, "not_found")
    assert_error(api(sb, "DELETE", f"/employees/{emp['id']}"), 404, "not_found")
    assert_error(api(sb, "PATCH", f"/employees/{emp['id']}", json={}), 404, "not_found")
    tomb = sb.object("employees", emp["id"])
    assert tomb == {"id": emp["id"], "deleted": True, "version": 2,
                    "updated_at": tomb["updated_at"]}


# --------------------------------------------------------------------------
# Idempotency keys
# --------------------------------------------------------------------------


def test_idempotent_replay(sb):
    key = {"Idempotency-Key": "k-1"}
    first = api(sb, "POST", "/employees", json={"name": "Ivan", "active": True}, headers=key)
    again = api(sb, "POST", "/employees", json={"active": True, "name": "Ivan"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(sb.objects("employees")) == 1
    assert sb.stats()["idempotent_replays"] == 1 and sb.stats()["creates"] == 1


def test_idempotency_key_reused_with_other_body(sb):
    key = {"Idempotency-Key": "k-2"}
    api(sb, "POST", "/employees", json={"name": "Ivan"}, headers=key)
    resp = api(sb, "POST", "/employees", json={"name": "Grace"}, headers=key)
    assert_error(resp, 422, "idempotency_key_reused")
    resp = api(sb, "POST", "/events", json={"name": "Ivan"}, headers=key)
    assert_error(resp, 422, "idempotency_key_reused")
    assert len(sb.objects("employees")) == 1


def test_remembered_refusal_is_replayed_until_a_new_key(sb):
    event = make_event(sb)
    body = event_body(project_ref_num=event["project_ref_num"])
    key = {"Idempotency-Key": "k-3"}
    assert_error(api(sb, "POST", "/events", json=body, headers=key), 409, "duplicate")
    sb.vendor_delete("events", event["id"])
    again = api(sb, "POST", "/events", json=body, headers=key)
    assert_error(again, 409, "duplicate")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api(sb, "POST", "/events", json=body,
               headers={"Idempotency-Key": "k-4"}).status_code == 201


def test_idempotency_key_too_long(sb):
    resp = api(sb, "POST", "/employees", json={"name": "A"},
               headers={"Idempotency-Key": "k" * 256})
    assert_error(resp, 400, "bad_request")


# --------------------------------------------------------------------------
# Listings and sync tokens
# --------------------------------------------------------------------------


def test_full_listing_pages(sb):
    made = [make_employee(sb, name=f"E{n}")["id"] for n in range(25)]
    items, pages, sync = list_all(sb, "employees", limit=10)
    assert [e["id"] for e in items] == made
    assert [len(p["data"]) for p in pages] == [10, 10, 5]
    assert all(p["next_sync_token"] is None for p in pages[:-1]) and sync
    assert list_all(sb, "employees", limit=25)[1][0]["next_page_token"] is None


def test_empty_listing_still_gives_a_sync_token(sb):
    body = api(sb, "GET", "/events").json()
    assert body["data"] == [] and body["next_page_token"] is None and body["next_sync_token"]


@pytest.mark.parametrize("limit", ["0", "501", "abc", "-1", "1.5"])
def test_limit_bounds(sb, limit):
    assert_error(api(sb, "GET", "/events", params={"limit": limit}), 422, "validation_failed")


def test_default_limit_is_100(sb):
    sb.bulk_seed(employees=150, events=0, schedules=0)
    assert len(api(sb, "GET", "/employees").json()["data"]) == 100
    assert len(api(sb, "GET", "/employees", params={"limit": 500}).json()["data"]) == 150


def test_incremental_listing_with_tombstones(sb):
    a, b, c, d = (make_employee(sb, name=n) for n in "abcd")
    _, _, token = list_all(sb, "employees")
    sb.vendor_update("employees", a["id"], {"name": "a2"})
    sb.vendor_update("employees", a["id"], {"name": "a3"})
    sb.vendor_delete("employees", b["id"])
    e = make_employee(sb, name="e")
    items, _, token2 = list_all(sb, "employees", sync_token=token, limit=1)
    by_id = {i["id"]: i for i in items}
    assert len(items) == len(by_id) == 3 and c["id"] not in by_id and d["id"] not in by_id
    assert by_id[a["id"]]["name"] == "a3" and by_id[a["id"]]["version"] == 3
    assert set(by_id[b["id"]]) == {"id", "deleted", "version", "updated_at"}
    assert by_id[b["id"]]["deleted"] is True and by_id[b["id"]]["version"] == 2
    assert by_id[e["id"]]["version"] == 1
    assert list_all(sb, "employees", sync_token=token2)[0] == []


def test_change_during_full_listing_is_not_lost(sb):
    ids = [make_employee(sb, name=f"E{n}")["id"] for n in range(6)]
    first = api(sb, "GET", "/employees", params={"limit": 2}).json()
    sb.vendor_update("employees", ids[0], {"name": "seen then changed"})
    sb.vendor_update("employees", ids[4], {"name": "changed before seen"})
    sb.vendor_delete("employees", ids[5])
    new = make_employee(sb, name="created while paging")
    rest, _, token = list_all(sb, "employees", page_token=first["next_page_token"])
    listed = [i["id"] for i in first["data"] + rest]
    assert listed == ids[:5]  # every object live at the start and still live
    changes = {i["id"]: i for i in list_all(sb, "employees", sync_token=token)[0]}
    assert set(changes) == {ids[0], ids[4], ids[5], new["id"]}
    assert changes[ids[5]]["deleted"] is True


def test_change_during_incremental_listing_is_not_lost(sb):
    ids = [make_employee(sb, name=f"E{n}")["id"] for n in range(6)]
    _, _, token = list_all(sb, "employees")
    for oid in ids:
        sb.vendor_update("employees", oid, {"name": "v2"})
    first = api(sb, "GET", "/employees", params={"sync_token": token, "limit": 2}).json()
    sb.vendor_update("employees", ids[0], {"name": "v3"})  # already returned
    sb.vendor_update("employees", ids[5], {"name": "v3"})  # not yet returned
    rest, _, token2 = list_all(sb, "employees", page_token=first["next_page_token"])
    assert [i["id"] for i in first["data"] + rest] == ids[:5]
    later = list_all(sb, "employees", sync_token=token2)[0]
    assert {i["id"]: i["name"] for i in later} == {ids[0]: "v3", ids[5]: "v3"}


def test_expired_and_unknown_sync_tokens(sb):
    make_employee(sb)
    _, _, token = list_all(sb, "employees")
    _, _, event_token = list_all(sb, "events")
    page = api(sb, "GET", "/employees", params={"sync_token": token, "limit": 1}).json()
    assert_error(api(sb, "GET", "/employees", params={"sync_token": "bogus"}), 410,
                 "sync_token_expired")
    assert_error(api(sb, "GET", "/employees", params={"sync_token": event_token}), 410,
                 "sync_token_expired")
    sb.vendor_update("employees", sb.objects("employees")[0]["id"], {"name": "x"})
    sb.vendor_create("employees", {"name": "y"})
    page = api(sb, "GET", "/employees", params={"sync_token": token, "limit": 1}).json()
    sb.expire_sync_tokens()
    assert_error(api(sb, "GET", "/employees", params={"sync_token": token}), 410,
                 "sync_token_expired")
    assert_error(api(sb, "GET", "/employees", params={"page_token": page["next_page_token"]}),
                 410, "sync_token_expired")
    assert list_all(sb, "employees")[2]  # a full listing starts afresh


def test_invalid_page_tokens(sb):
    for n in range(3):
        make_employee(sb, name=str(n))
    token = api(sb, "GET", "/employees", params={"limit": 1}).json()["next_page_token"]
    raw, sig = token.split(".")
    forged = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(raw + "==").replace(b'"l":1', b'"l":9')).decode().rstrip("=")
    bad = [{"page_token": "nonsense"}, {"page_token": f"{forged}.{sig}"},
           {"page_token": token, "limit": 1}, {"page_token": token, "sync_token": "x"},
           {"page_token": ""}]
    for params in bad:
        assert_error(api(sb, "GET", "/employees", params=params), 400, "invalid_page_token")
    assert_error(api(sb, "GET", "/events", params={"page_token": token}), 400,
                 "invalid_page_token")
    assert api(sb, "GET", "/employees", params={"page_token": token}).status_code == 200


def test_bulk_seed_fills_pages_of_the_limit(sb):
    """The figures (seed and listing time): `python -m tests.bench --only sandbox`."""
    counts = sb.bulk_seed(employees=5000, events=20000, schedules=20000)
    assert counts == {"employees": 5000, "events": 20000, "schedules": 20000}
    items, pages, _ = list_all(sb, "schedules", limit=500)
    assert len(items) == 20000 and len(pages) == 40
    assert len({item["id"] for item in items}) == 20000


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


def test_rate_limit_429_with_retry_after(sb):
    sb.set_faults(rate_limit=(0.01, 2))  # a token a 100 s: no refill however slow the test
    statuses = [api(sb, "GET", "/health") for _ in range(4)]
    assert [r.status_code for r in statuses[:2]] == [200, 200]
    limited = statuses[2]
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    assert sb.stats()["rate_limited"] >= 1
    assert requests.get(sb.control_url + "/stats", timeout=5).status_code == 200


def run_faulted_gets(sb, seed, n=40):
    sb.set_faults(error_rate=0.4, seed=seed)
    return [api(sb, "GET", "/health") for _ in range(n)]


def test_error_rate_is_reproducible_with_a_seed(sb):
    first = [r.status_code for r in run_faulted_gets(sb, seed=7)]
    second = run_faulted_gets(sb, seed=7)
    assert [r.status_code for r in second] == first
    assert {200} < set(first) and set(first) <= {200, 500, 502, 503, 504}
    assert [r.status_code for r in run_faulted_gets(sb, seed=8)] != first
    for resp in second:
        if resp.status_code >= 500:
            assert resp.json()["error"]["code"] and resp.headers["X-Request-Id"]
        if "Retry-After" in resp.headers:
            assert resp.status_code == 503 and resp.headers["Retry-After"] == "1"


def test_errors_happen_before_applying(sb):
    sb.set_faults(error_rate=1.0)
    assert api(sb, "POST", "/employees", json={"name": "A"}).status_code >= 500
    assert sb.objects("employees") == []


def test_drop_closes_the_connection_without_an_answer(sb):
    sb.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        api(sb, "POST", "/employees", json={"name": "A"})
    assert sb.objects("employees") == []
    assert sb.stats()["requests_by_status"]["dropped"] == 1
    assert requests.get(sb.control_url + "/stats", timeout=5).status_code == 200


@pytest.mark.parametrize("fault", ["apply_then_500_rate", "apply_then_drop_rate"])
def test_apply_then_fail_applies_and_the_key_replays_201(sb, fault):
    sb.set_faults(**{fault: 1.0})
    key = {"Idempotency-Key": f"k-{fault}"}
    if fault == "apply_then_500_rate":
        assert_error(api(sb, "POST", "/employees", json={"name": "A"}, headers=key), 500,
                     "internal_error")
    else:
        with pytest.raises(requests.ConnectionError):
            api(sb, "POST", "/employees", json={"name": "A"}, headers=key)
    [created] = sb.objects("employees")
    assert api(sb, "GET", f"/employees/{created['id']}").status_code == 200  # GETs unharmed
    sb.clear_faults()
    again = api(sb, "POST", "/employees", json={"name": "A"}, headers=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == created and len(sb.objects("employees")) == 1


def test_scripted_faults_hit_the_next_matching_request_once(sb):
    emp = api(sb, "POST", "/employees", json={"name": "A"}).json()
    seen = []
    sb.script_fault("PATCH", r"/employees/[^/]+", "503",
                    before=lambda: seen.append(sb.vendor_delete("employees", emp["id"])["id"]))
    sb.script_fault("POST", "/employees", "apply_then_500")
    assert api(sb, "GET", f"/employees/{emp['id']}").status_code == 200  # not matching
    first = api(sb, "PATCH", f"/employees/{emp['id']}", json={"name": "B"})
    assert_error(first, 503, "service_unavailable")
    assert seen == [emp["id"]]  # the vendor-side change ran while the request waited
    assert_error(api(sb, "PATCH", f"/employees/{emp['id']}", json={"name": "B"}), 404,
                 "not_found")  # used once: the retry meets the real state
    key = {"Idempotency-Key": "k-scripted"}
    assert_error(api(sb, "POST", "/employees", json={"name": "C"}, headers=key), 500,
                 "internal_error")
    [stored] = sb.objects("employees")
    again = api(sb, "POST", "/employees", json={"name": "C"}, headers=key)
    assert again.status_code == 201 and again.json()["id"] == stored["id"]
    assert sb.scripted_faults() == []


def test_scripted_faults_over_the_control_api(sb):
    url = sb.control_url + "/faults/script"
    bad = requests.post(url, json={"method": "POST", "path": "/employees", "fault": "418"},
                        timeout=5)
    assert bad.status_code == 422 and "fault must be one of" in bad.json()["error"]["message"]
    assert requests.post(url, json={"method": "post", "path": "/employees", "fault": "drop"},
                         timeout=5).json() == {"data": [{"method": "POST", "path": "/employees",
                                                         "fault": "drop"}]}
    with pytest.raises(requests.ConnectionError):
        api(sb, "POST", "/employees", json={"name": "A"})
    assert sb.objects("employees") == []
    sb.script_fault("GET", "/health", "502")
    sb.clear_faults()
    assert requests.get(url, timeout=5).json() == {"data": []}


def test_latency(sb):
    sb.set_faults(latency_ms=120)
    started = time.monotonic()
    api(sb, "GET", "/health")
    assert time.monotonic() - started >= 0.12


# --------------------------------------------------------------------------
# Webhooks
# --------------------------------------------------------------------------


class Receiver:
    """A tiny webhook endpoint recording every POST; answers queued statuses."""

    def __init__(self):
        self.messages: list[tuple[dict, bytes]] = []
        self.statuses: list[int] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.cond:
                    receiver.messages.append((dict(self.headers), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/webhook/schedule_update"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()

    def wait_for(self, count, timeout=5.0) -> list:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.messages) >= count, timeout), \
                f"only {len(self.messages)} of {count} webhooks arrived"
            return list(self.messages)

    def verified(self) -> list[tuple[str, dict]]:
        """(webhook-id, payload) of every message, signatures checked."""
        return [(h["webhook-id"], Webhook(SECRET).verify(body, h)) for h, body in self.messages]


@pytest.fixture
def receiver(sb):
    rec = Receiver()
    sb.configure_webhooks(url=rec.url, secret=SECRET)
    yield rec
    sb.configure_webhooks(url=None)
    rec.server.shutdown()
    rec.server.server_close()


def test_webhooks_for_api_and_vendor_changes(sb, receiver):
    emp = api(sb, "POST", "/employees", json={"name": "A"}).json()
    api(sb, "PATCH", f"/employees/{emp['id']}", json={"name": "B"})
    api(sb, "DELETE", f"/employees/{emp['id']}")
    event = sb.vendor_create("events", event_body())
    assert sb.wait_webhooks_idle(5)
    receiver.wait_for(4)
    msgs = receiver.verified()
    assert [m["type"] for _, m in msgs] == ["employee.created", "employee.updated",
                                            "employee.deleted", "event.created"]
    assert [m["data"]["version"] for _, m in msgs] == [1, 2, 3, 1]
    assert msgs[2][1]["data"] == {"id": emp["id"], "deleted": True, "version": 3,
                                  "updated_at": msgs[2][1]["data"]["updated_at"]}
    assert msgs[3][1]["data"] == event
    assert len({wid for wid, _ in msgs}) == 4
    assert all(m["timestamp"].endswith("Z") for _, m in msgs)
    assert sb.stats()["webhooks"]["delivered"] == 4


def test_duplicate_mode_delivers_each_message_twice(sb, receiver):
    sb.configure_webhooks(mode="duplicate")
    make_employee(sb)
    make_employee(sb)
    assert sb.wait_webhooks_idle(5)
    ids = [wid for wid, _ in receiver.verified()]
    assert len(ids) == 4 and len(set(ids)) == 2


def test_reorder_mode_delivers_newest_first(sb, receiver):
    sb.configure_webhooks(mode="reorder", reorder_window=3)
    emp = make_employee(sb)
    sb.vendor_update("employees", emp["id"], {"name": "v2"})
    sb.vendor_update("employees", emp["id"], {"name": "v3"})
    receiver.wait_for(3)
    assert [m["data"]["version"] for _, m in receiver.verified()] == [3, 2, 1]


def test_bad_signature_mode(sb, receiver):
    sb.configure_webhooks(mode="bad_signature")
    make_employee(sb)
    [(headers, body)] = receiver.wait_for(1)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)


def test_retry_on_non_2xx_keeps_the_webhook_id(sb, receiver):
    receiver.statuses = [500, 503]
    emp = make_employee(sb)
    assert sb.wait_webhooks_idle(5)
    msgs = receiver.verified()
    assert len(msgs) == 3 and len({wid for wid, _ in msgs}) == 1
    assert msgs[-1][1]["data"]["id"] == emp["id"]
    assert [e["status"] for e in sb.webhook_log()] == [500, 503, 200]
    assert sb.stats()["webhooks"]["failed"] == 2


def test_gives_up_after_max_attempts(sb, receiver):
    sb.configure_webhooks(max_attempts=2)
    receiver.statuses = [500] * 5
    make_employee(sb)
    assert sb.wait_webhooks_idle(5)
    assert len(receiver.messages) == 2 and sb.stats()["webhooks"]["gave_up"] == 1


def test_connection_errors_are_retried(sb):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    sb.configure_webhooks(url=url, secret=SECRET, max_attempts=2)
    make_employee(sb)
    assert sb.wait_webhooks_idle(5)
    log = sb.webhook_log()
    assert len(log) == 2 and all(e["status"] is None and e["error"] for e in log)


def test_drop_and_delay_modes(sb, receiver):
    sb.configure_webhooks(mode="drop")
    make_employee(sb)
    assert sb.wait_webhooks_idle(5) and receiver.messages == []
    assert sb.stats()["webhooks"]["dropped"] == 1
    sb.configure_webhooks(mode="delay", delay_seconds=0.2)
    started = time.monotonic()
    make_employee(sb)
    receiver.wait_for(1)
    assert time.monotonic() - started >= 0.2


def test_no_url_no_deliveries(sb):
    make_employee(sb)
    assert sb.wait_webhooks_idle(1)
    assert sb.webhook_log() == [] and sb.stats()["webhooks"]["messages"] == 0


# --------------------------------------------------------------------------
# The HTTP control API
# --------------------------------------------------------------------------


def control(sb, method, path, **kwargs):
    return requests.request(method, sb.control_url + path, timeout=10, **kwargs)


def test_control_api_round_trip(sb):
    assert control(sb, "POST", "/seed", json={"employees": 3, "events": 4,
                                              "schedules": 2}).json() == {
        "employees": 3, "events": 4, "schedules": 2}
    emp = control(sb, "POST", "/objects/employees", json={"name": "Vendor User"})
    assert emp.status_code == 201
    emp_id = emp.json()["id"]
    assert control(sb, "PATCH", f"/objects/employees/{emp_id}",
                   json={"active": False}).json()["version"] == 2
    assert control(sb, "DELETE", f"/objects/employees/{emp_id}").json()["deleted"] is True
    live = control(sb, "GET", "/objects/employees").json()["data"]
    every = control(sb, "GET", "/objects/employees?include_deleted=1").json()["data"]
    assert len(live) == 3 and len(every) == 4
    bad = control(sb, "POST", "/objects/employees", json={"name": ""})
    assert bad.status_code == 422 and "name" in bad.json()["error"]["details"]
    assert control(sb, "GET", "/stats").json()["vendor_creates"] == 1


def test_control_faults_tokens_webhooks(sb):
    faults = control(sb, "POST", "/faults", json={"error_rate": 1.0, "rate_limit": [50, 10],
                                                  "seed": 3}).json()
    assert faults["error_rate"] == 1.0 and faults["rate_limit"] == [50.0, 10.0]
    assert api(sb, "GET", "/health").status_code >= 500
    assert control(sb, "DELETE", "/faults").json()["error_rate"] == 0.0
    assert api(sb, "GET", "/health").status_code == 200
    assert control(sb, "POST", "/faults", json={"nonsense": 1}).status_code == 422
    token = list_all(sb, "events")[2]
    control(sb, "POST", "/expire_tokens")
    assert api(sb, "GET", "/events", params={"sync_token": token}).status_code == 410
    config = control(sb, "POST", "/webhooks", json={"mode": "delay", "delay_seconds": 0.1})
    assert config.json()["mode"] == "delay"
    assert control(sb, "POST", "/webhooks", json={"mode": "chaos"}).status_code == 422
    assert control(sb, "POST", "/webhooks/wait_idle", json={"timeout": 1}).json() == {
        "idle": True}
    assert control(sb, "GET", "/webhooks/log").json() == {"data": []}
    assert control(sb, "POST", "/reset").json() == {"ok": True}
    assert "POST /_control/reset" in control(sb, "GET", "").json()["endpoints"]


def test_demo_seed_is_realistic(sb):
    sb.seed_demo(employees=5, events=20, schedules=5)
    events = sb.objects("events")
    assert len(events) == 20 and len(sb.objects("schedules")) == 5
    assert all(" - " in e["project_name"] or e["event_type"] == "Other" for e in events)
    assert all(e["store_number"] and e["store_name"] for e in events)
    assert all("@" in e["email"] for e in sb.objects("employees"))


def test_vendor_helpers_raise_sandbox_errors(sb):
    with pytest.raises(SandboxError) as info:
        sb.vendor_create("events", {"project_name": "x"})
    assert info.value.status == 422 and "project_ref_num" in info.value.details
    with pytest.raises(SandboxError):
        sb.vendor_delete("employees", "emp_missing")


def test_stats_shape(sb):
    api(sb, "GET", "/health")
    requests.get(sb.base_url + "/health", timeout=5)
    stats = sb.stats()
    assert stats["requests"] == 2 and stats["requests_by_method"] == {"GET": 2}
    assert stats["requests_by_status"] == {"200": 1, "401": 1}
    assert set(stats["faults_injected"]) == {"error", "drop", "apply_then_500",
                                             "apply_then_drop"}
    json.dumps(stats)


# --------------------------------------------------------------------------
# Strict mode: every freedom the contract leaves, used
# --------------------------------------------------------------------------


@pytest.fixture
def strict():
    """A strict sandbox of its own (no spontaneous 429/503 unless a test asks)."""
    sb = VendorSandbox(api_key=KEY, seed=5, strict=True).start()
    sb.strict.transient_rate = 0
    yield sb
    sb.stop()


def test_strict_listing_short_pages_in_id_order_every_object_once(strict):
    made = [make_employee(strict, name=f"E{n}") for n in range(40)]
    listings = [list_all(strict, "employees", limit=7) for _ in range(4)]
    inner = [len(p["data"]) for _, pages, _ in listings for p in pages[:-1]]
    assert all(size <= 7 for _, pages, _ in listings for size in map(len, (
        p["data"] for p in pages)))
    assert any(0 < size < 7 for size in inner) and 0 in inner  # short, even empty, not last
    for items, pages, token in listings:
        assert all(p["next_sync_token"] is None for p in pages[:-1]) and token
        ids = [item["id"] for item in items]
        assert sorted(ids) == sorted(o["id"] for o in made)  # each once
        assert ids == sorted(ids) != [o["id"] for o in made]  # stable, not creation order


def test_strict_timestamps_carry_fractional_seconds(strict):
    event = api(strict, "POST", "/events", json=event_body()).json()
    assert event["start_datetime"] == "2026-12-01T08:00:00.000Z"
    assert parse_ts(event["updated_at"]) and "." in event["updated_at"]
    assert "." in api(strict, "GET", "/health").json()["time"]
    assert strict.object("events", event["id"])["start_datetime"] == "2026-12-01T08:00:00Z"


@pytest.mark.parametrize("header", ["1", 'W/"1"', "*", "'1'", '"1", "2"'])
def test_strict_if_match_only_in_the_contracts_form(strict, header):
    emp = make_employee(strict)
    resp = api(strict, "PATCH", f"/employees/{emp['id']}", json={"name": "B"},
               headers={"If-Match": header})
    assert_error(resp, 400, "bad_request")
    assert strict.object("employees", emp["id"])["version"] == 1
    ok = api(strict, "PATCH", f"/employees/{emp['id']}", json={"name": "B"},
             headers={"If-Match": '"1"'})
    assert ok.status_code == 200 and ok.json()["version"] == 2


def test_strict_sync_tokens_go_stale_and_stay_stale(strict):
    make_employee(strict)
    answers = []
    for _ in range(12):
        _, _, token = list_all(strict, "employees")
        answers.append(api(strict, "GET", "/employees", params={"sync_token": token}))
    statuses = [r.status_code for r in answers]
    assert 410 in statuses and 200 in statuses, statuses
    stale = next(r for r in answers if r.status_code == 410)
    assert_error(stale, 410, "sync_token_expired")
    assert strict.stats()["strict"]["stale_tokens"] == statuses.count(410)


def test_strict_spontaneous_429_and_503_carry_retry_after(strict):
    strict.strict.transient_rate = 1.0
    answers = [api(strict, "GET", "/health") for _ in range(30)]
    assert {r.status_code for r in answers} == {429, 503}
    assert all(r.headers["Retry-After"] == "1" for r in answers if r.status_code == 429)
    after = [r.headers.get("Retry-After") for r in answers if r.status_code == 503]
    assert "1" in after and None in after
    strict.strict.transient_rate = 0
    assert api(strict, "GET", "/health").status_code == 200


def test_strict_webhooks_late_repeated_and_out_of_order(strict):
    rec = Receiver()
    strict.configure_webhooks(url=rec.url, secret=SECRET, retry_backoff=0.02)
    try:
        emp = make_employee(strict, name="V0")
        for n in range(1, 20):
            strict.vendor_update("employees", emp["id"], {"name": f"V{n}"})
        assert strict.wait_webhooks_idle(30)
        versions = [m["data"]["version"] for _, m in rec.verified()]
        assert sorted(set(versions)) == list(range(1, 21))  # every change delivered
        assert len(versions) > 20  # some more than once (same webhook-id)
        assert versions != sorted(versions)  # not in the order they happened
        ids = [h["webhook-id"] for h, _ in rec.messages]
        assert len(set(ids)) == 20
    finally:
        strict.configure_webhooks(url=None)
        rec.server.shutdown()
        rec.server.server_close()


# --------------------------------------------------------------------------
# The state file (what `make run` uses to keep the vendor's data)
# --------------------------------------------------------------------------


def test_state_file_keeps_objects_tokens_and_keys_across_a_restart(tmp_path):
    state = tmp_path / "instance" / "vendor_sandbox.json"
    first = VendorSandbox(api_key=KEY, state_file=state)
    assert not first.restored and not state.exists()  # nothing written before a change
    first.start()
    try:
        seeded = first.seed_demo(employees=3, events=4, schedules=2)
        emp = api(first, "POST", "/employees", json={"name": "Lena Reed"},
                  headers={"Idempotency-Key": "create-lena"}).json()
        gone = make_employee(first, name="Gone Soon")
        first.vendor_delete("employees", gone["id"])
        _, _, tokens = zip(*(list_all(first, r) for r in ("employees", "events", "schedules")))
        before = {r: first.objects(r, include_deleted=True) for r in ("employees", "events",
                                                                       "schedules")}
    finally:
        first.stop()
    assert json.loads(state.read_text())["format"] == "vendor-sandbox-state/1"
    assert [p.name for p in state.parent.iterdir()] == [state.name]  # no temporary file left

    second = VendorSandbox(api_key=KEY, state_file=state).start()
    try:
        assert second.restored
        assert second.counts() == {"employees": seeded["employees"] + 1,
                                   "events": seeded["events"], "schedules": seeded["schedules"]}
        assert {r: second.objects(r, include_deleted=True) for r in before} == before
        # The sync tokens issued before the restart still work: nothing new yet.
        for resource, token in zip(("employees", "events", "schedules"), tokens):
            resp = api(second, "GET", f"/{resource}", params={"sync_token": token})
            assert resp.status_code == 200 and resp.json()["data"] == [], resource
        # ...and then show exactly the changes made after it.
        changed = api(second, "PATCH", f"/employees/{emp['id']}", json={"name": "Lena R."}).json()
        newer = api(second, "POST", "/employees", json={"name": "Omar Khan"}).json()
        items, _, _ = list_all(second, "employees", sync_token=tokens[0])
        assert items == [changed, newer]
        assert newer["id"] not in {e["id"] for e in before["employees"]}
        # An idempotency key used before the restart still replays its answer.
        replay = api(second, "POST", "/employees", json={"name": "Lena Reed"},
                     headers={"Idempotency-Key": "create-lena"})
        assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["id"] == emp["id"]
        # expire_tokens survives a restart too (a vendor's restore from backup).
        second.expire_sync_tokens()
    finally:
        second.stop()
    third = VendorSandbox(api_key=KEY, state_file=state).start()
    try:
        assert_error(api(third, "GET", "/employees", params={"sync_token": tokens[0]}), 410,
                     "sync_token_expired")
        assert len(third.objects("employees")) == seeded["employees"] + 2
    finally:
        third.stop()


def test_unreadable_state_file_is_refused_not_overwritten(tmp_path):
    state = tmp_path / "vendor_sandbox.json"
    state.write_text("{not json")
    with pytest.raises(SandboxStateError, match="vendor_sandbox.json"):
        VendorSandbox(api_key=KEY, state_file=state)
    assert state.read_text() == "{not json"


def test_without_a_state_file_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with VendorSandbox(api_key=KEY) as sandbox:
        sandbox.seed_demo()
        api(sandbox, "POST", "/employees", json={"name": "Lena Reed"})
        sandbox.reset()
    assert list(tmp_path.iterdir()) == []
