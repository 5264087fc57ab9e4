"""Contract tests: api_service.VendorClient against the vendor sandbox over real HTTP.

Every operation and the exception each error maps to, then fault runs with
fixed seeds: every call either succeeds or raises a VendorError, and no
create is ever applied twice.  Every test runs against the lenient sandbox and
the strict one (which uses every freedom the contract leaves a server), so a
test asserts only what the contract promises.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime

import pytest

import api_service
from api_service import (AuthError, Duplicate, InUse, InvalidPageToken, NotFound,
                         RateLimited, SyncTokenExpired, TransientError, ValidationFailed,
                         VendorClient, VendorError, VersionMismatch)
from tests.helpers import API_KEY

# every test against both sandboxes (conftest's module_sandbox, parametrized)
pytestmark = pytest.mark.parametrize("module_sandbox", [False, True], indirect=True,
                                     ids=["lenient", "strict"])

EVENT = {"project_ref_num": 1, "project_name": "CORE - Snack Reset", "event_type": "Core",
         "store_number": 1204, "store_name": "Springfield Supercenter",
         "location_mvid": "MV-01204", "start_datetime": "2026-12-01T08:00:00Z",
         "due_datetime": "2026-12-03T17:00:00Z", "estimated_minutes": 90}


def make_client(sb, **overrides) -> VendorClient:
    """A client with tiny backoff and no client-side rate limit that waits a Retry-After
    of up to 2 s (the strict sandbox sends 1 s on some 429s and 503s), as the app does."""
    settings = dict(rate_limit=0, backoff_factor=0.01, backoff_max=2, max_retries=5,
                    timeout=5, connect_timeout=2)
    settings.update(overrides)
    return VendorClient(sb.base_url, API_KEY, **settings)


@pytest.fixture(autouse=True)
def _fresh_pauses():
    """The module's sandbox is reset for each test, and so is what its Retry-After told the
    clients (the pool pause is per vendor URL and process: a 100 s one would hold the next
    tests' requests too)."""
    yield
    api_service._PAUSES.clear()


@pytest.fixture
def client(sb):
    with make_client(sb) as c:
        yield c


def event(ref: int, **overrides) -> dict:
    return {**EVENT, "project_ref_num": ref, **overrides}


def spontaneous(sb) -> int:
    """The 429s and 503s the strict sandbox answered of its own accord (the contract lets a
    server answer any request so; 0 for the lenient one): they take the place of faults a
    test asked for."""
    return sb.stats()["strict"]["transient_answers"]


def assert_aware(obj: dict, *fields) -> None:
    for field in ("updated_at",) + fields:
        assert isinstance(obj[field], datetime) and obj[field].utcoffset() is not None


# --------------------------------------------------------------------------
# Every operation
# --------------------------------------------------------------------------


def test_health(client):
    health = client.health()
    assert health["status"] == "ok"
    assert isinstance(health["time"], datetime) and health["time"].tzinfo is not None


def test_crud_round_trip_with_aware_timestamps(sb, client):
    emp = client.create("employees", {"name": "Maria Lopez", "email": "maria@example.com"})
    evt = client.create("events", event(101))
    assert_aware(evt, "start_datetime", "due_datetime")
    sched = client.create("schedules", {"event_id": evt["id"], "employee_id": emp["id"],
                                        "start_datetime": evt["start_datetime"]})
    assert sched["version"] == 1 and sched["start_datetime"] == evt["start_datetime"]
    raw = sb.object("employees", emp["id"])["updated_at"]
    assert api_service.format_timestamp(client.get("employees", emp["id"])["updated_at"]) == raw
    moved = client.update("schedules", sched["id"], {"start_datetime": "2026-12-02T09:30:00Z"},
                          if_match=1)
    assert moved["version"] == 2 and moved["start_datetime"].hour == 9
    assert client.update("employees", emp["id"], {"active": False})["active"] is False
    client.delete("schedules", sched["id"], if_match=2)
    client.delete("events", evt["id"])
    with pytest.raises(NotFound):
        client.get("schedules", sched["id"])


def test_microseconds_survive(sb, client):
    evt = client.create("events", event(102, start_datetime="2026-12-01T08:00:00.123456Z"))
    assert evt["start_datetime"].microsecond == 123456
    assert sb.object("events", evt["id"])["start_datetime"] == "2026-12-01T08:00:00.123456Z"


def test_same_idempotency_key_creates_once(sb, client):
    first = client.create("employees", {"name": "A"}, idempotency_key="same")
    again = client.create("employees", {"name": "A"}, idempotency_key="same")
    assert again == first and len(sb.objects("employees")) == 1
    with pytest.raises(ValidationFailed) as info:
        client.create("employees", {"name": "B"}, idempotency_key="same")
    assert info.value.code == "idempotency_key_reused"


def test_listing_full_then_incremental(sb, client):
    """What the contract promises a full listing: every live object once, in a stable
    order, pages of at most `limit` (not necessarily full, nor in creation order), the
    sync token on the last page only."""
    ids = [client.create("employees", {"name": f"E{n}"})["id"] for n in range(7)]
    pages = list(client.iter_pages("employees", limit=3))
    assert all(len(p.items) <= 3 for p in pages)
    assert [p.next_sync_token is not None for p in pages] == [False] * (len(pages) - 1) + [True]
    listed = [i["id"] for p in pages for i in p.items]
    assert sorted(listed) == sorted(ids)
    again = [i["id"] for p in client.iter_pages("employees", limit=2) for i in p.items]
    assert again == listed  # stable
    client.update("employees", ids[0], {"name": "changed"})
    client.delete("employees", ids[1])
    changes = [i for p in client.iter_pages("employees", pages[-1].next_sync_token)
               for i in p.items]
    by_id = {i["id"]: i for i in changes}
    assert set(by_id) == {ids[0], ids[1]}
    assert by_id[ids[1]]["deleted"] is True and by_id[ids[1]]["version"] == 2
    assert_aware(by_id[ids[1]])


# --------------------------------------------------------------------------
# Every error class
# --------------------------------------------------------------------------


def test_auth_error(sb):
    with VendorClient(sb.base_url, "wrong", rate_limit=0) as bad, pytest.raises(AuthError) as e:
        bad.health()
    assert e.value.status == 401 and e.value.request_id and "wrong" not in str(e.value)


def test_not_found(client):
    with pytest.raises(NotFound):
        client.get("events", "evt_missing")
    with pytest.raises(NotFound):
        client.delete("events", "evt_missing")
    with pytest.raises(NotFound):
        client.update("events", "evt_missing", {"project_name": "x"}, if_match=1)


def test_duplicate_and_in_use(client):
    first = client.create("events", event(7))
    with pytest.raises(Duplicate) as dup:
        client.create("events", event(7))
    assert dup.value.existing_id == first["id"]
    emp = client.create("employees", {"name": "A"})
    sched = client.create("schedules", {"event_id": first["id"], "employee_id": emp["id"],
                                        "start_datetime": "2026-12-02T09:00:00Z"})
    with pytest.raises(Duplicate) as dup:
        client.create("schedules", {"event_id": first["id"], "employee_id": emp["id"],
                                    "start_datetime": "2026-12-02T09:00:00Z"})
    assert dup.value.existing_id == sched["id"]
    for resource, oid in (("events", first["id"]), ("employees", emp["id"])):
        with pytest.raises(InUse) as used:
            client.delete(resource, oid)
        assert used.value.schedule_id == sched["id"]


def test_version_mismatch_carries_the_parsed_current(sb, client):
    emp = client.create("employees", {"name": "A"})
    sb.vendor_update("employees", emp["id"], {"name": "changed at the vendor"})
    with pytest.raises(VersionMismatch) as info:
        client.update("employees", emp["id"], {"name": "mine"}, if_match=1)
    assert info.value.current["version"] == 2
    assert info.value.current["name"] == "changed at the vendor"
    assert_aware(info.value.current)
    with pytest.raises(VersionMismatch):
        client.delete("employees", emp["id"], if_match=1)


@pytest.mark.parametrize("resource,data,field", [
    ("employees", {"name": ""}, "name"),
    ("employees", {"name": "A", "active": 1}, "active"),
    ("events", event(0), "project_ref_num"),
    ("events", event(5, due_datetime="2026-11-30T00:00:00Z"), "due_datetime"),
    ("events", event(6, start_datetime="2026-12-01T08:00:00"), "start_datetime"),
    ("schedules", {"event_id": "evt_x", "employee_id": "emp_x",
                   "start_datetime": "2026-12-02T09:00:00Z"}, "event_id"),
])
def test_validation_failed_details(client, resource, data, field):
    with pytest.raises(ValidationFailed) as info:
        client.create(resource, data)
    assert info.value.status == 422 and field in info.value.details


def test_naive_datetime_is_never_sent(client):
    with pytest.raises((ValueError, VendorError)):
        client.create("events", event(8, start_datetime=datetime(2026, 12, 1, 8)))


def test_invalid_page_token(client):
    with pytest.raises(InvalidPageToken):
        client.request("GET", "/events", params={"page_token": "forged"})


def test_sync_token_expired(sb, client):
    token = list(client.iter_pages("events"))[-1].next_sync_token
    sb.expire_sync_tokens()
    with pytest.raises(SyncTokenExpired):
        list(client.iter_pages("events", token))


def test_rate_limited_when_retry_after_exceeds_backoff(sb, client):
    sb.set_faults(rate_limit=(0.01, 1))  # no refill however slow the machine
    client.health()
    with pytest.raises(RateLimited) as info:
        client.health()
    assert info.value.retry_after >= 1


def test_client_side_rate_limit_avoids_429(sb, monkeypatch):
    # the strict sandbox's spontaneous Retry-After is honoured without sleeping: the test
    # counts the 429s of the sandbox's rate limit, which the client's own limit must avoid
    monkeypatch.setattr(api_service.RetryPolicy, "pause", lambda self, seconds: None)
    sb.set_faults(rate_limit=(400, 100))
    with make_client(sb, rate_limit=100) as limited:
        for _ in range(150):
            limited.health()
    assert sb.stats()["rate_limited"] == 0


def test_transient_errors_are_retried_then_surfaced(sb, client):
    sb.set_faults(error_rate=1.0, retry_after_rate=0.0)
    with pytest.raises((TransientError, RateLimited)) as info:
        client.get("events", "evt_x")
    assert info.value.status in (429, 500, 502, 503, 504)
    assert client.requests_sent == 6
    assert sb.stats()["faults_injected"]["error"] + spontaneous(sb) == 6


def test_drops_surface_as_transient_never_as_requests_errors(sb, client):
    sb.set_faults(drop_rate=1.0)
    with pytest.raises((TransientError, RateLimited)) as info:
        client.health()
    assert info.value.status is None or spontaneous(sb)  # the last answer: a drop, or a 429/503
    assert client.requests_sent == 6
    assert sb.stats()["faults_injected"]["drop"] + spontaneous(sb) == 6


def test_unconditional_patch_is_sent_once(sb, client):
    emp = client.create("employees", {"name": "A"})
    sent = client.requests_sent
    sb.set_faults(error_rate=1.0)
    with pytest.raises(TransientError):
        client.update("employees", emp["id"], {"name": "B"})
    assert client.requests_sent == sent + 1


def test_retried_conditional_patch_after_apply_then_500_sees_412(sb, client):
    emp = client.create("employees", {"name": "A"})
    sb.set_faults(apply_then_500_rate=1.0)
    with pytest.raises(VersionMismatch) as info:
        client.update("employees", emp["id"], {"name": "B"}, if_match=1)
    assert info.value.current["name"] == "B" and info.value.current["version"] == 2


@pytest.mark.parametrize("max_retries", [0, 3])
def test_create_applied_then_500_is_created_once(sb, max_retries):
    sb.set_faults(apply_then_500_rate=1.0)
    with make_client(sb, max_retries=max_retries) as c:
        with pytest.raises(TransientError):
            c.create("employees", {"name": "A"}, idempotency_key="once")
        sb.clear_faults()
        made = c.create("employees", {"name": "A"}, idempotency_key="once")
    assert [e["id"] for e in sb.objects("employees")] == [made["id"]]
    assert sb.stats()["creates"] == 1


def test_create_whose_answer_is_dropped_is_created_once(sb, client):
    sb.set_faults(apply_then_drop_rate=1.0)
    with pytest.raises(TransientError) as info:
        client.create("employees", {"name": "A"}, idempotency_key="lost")
    assert info.value.status is None
    sb.clear_faults()
    made = client.create("employees", {"name": "A"}, idempotency_key="lost")
    assert [e["id"] for e in sb.objects("employees")] == [made["id"]]
    # every request that reached the store after the first was answered from the key
    assert sb.stats()["creates"] == 1
    assert sb.stats()["idempotent_replays"] == client.requests_sent - 1 - spontaneous(sb)


# --------------------------------------------------------------------------
# Fault runs
# --------------------------------------------------------------------------


class Run:
    """Calls through the client, recording outcomes; never lets a raw exception pass."""

    def __init__(self, client):
        self.client, self.calls = client, 0
        self.outcomes, self.by_operation = Counter(), Counter()

    def call(self, label, fn, *args, **kwargs):
        self.calls += 1
        try:
            result = fn(*args, **kwargs)
            outcome = "ok"
        except VendorError as exc:
            result = exc
            outcome = type(exc).__name__
        except Exception as exc:  # pragma: no cover - the assertion is the point
            pytest.fail(f"raw {type(exc).__name__} escaped the client: {exc}")
        self.outcomes[outcome] += 1
        self.by_operation[f"{label}:{outcome}"] += 1
        return result

    def figures(self) -> dict:
        sent = self.client.requests_sent
        failures = sum(n for name, n in self.outcomes.items() if name != "ok")
        return {"calls": self.calls, "requests_sent": sent, "retries": sent - self.calls,
                "failures_surfaced": failures, "outcomes": dict(sorted(self.outcomes.items())),
                "by_operation": dict(sorted(self.by_operation.items()))}


def fault_run(sb, seed: int, operations: int = 300) -> dict:
    """Creates, conditional and plain updates and gets under 30% errors, 10% drops, 10%
    apply-then-500; then every unresolved create retried with its key.  The seed also
    restarts the strict sandbox's own draws (its spontaneous 429s and 503s)."""
    sb.set_faults(seed=seed)
    with make_client(sb) as c:
        staff = [c.create("employees", {"name": f"Staff {n}"}) for n in range(5)]
        versions = {e["id"]: e["version"] for e in staff}
        sb.set_faults(error_rate=0.3, drop_rate=0.1, apply_then_500_rate=0.1, seed=seed)
        run, keys, made = Run(c), [], {}
        for i in range(operations):
            oid = staff[i % len(staff)]["id"]
            kind = i % 4
            if kind == 0:
                keys.append(key := f"seed{seed}-create-{i}-{uuid.uuid4().hex[:6]}")
                for _ in range(3):  # the caller's own retries, with the same key
                    result = run.call("create", c.create, "employees", {"name": f"New {i}"},
                                      idempotency_key=key)
                    if not isinstance(result, (TransientError, RateLimited)):
                        break
                if isinstance(result, dict):
                    made[key] = result["id"]
            elif kind == 1:
                result = run.call("patch_if_match", c.update, "employees", oid,
                                  {"name": f"v{i}"}, if_match=versions[oid])
                current = result.current if isinstance(result, VersionMismatch) else result
                if isinstance(current, dict):
                    versions[oid] = current["version"]
            elif kind == 2:
                run.call("get", c.get, "employees", oid)
            else:  # sent once: the client must not repeat an unconditional PATCH
                result = run.call("patch", c.update, "employees", oid,
                                  {"email": f"s{i}@example.com"})
                if isinstance(result, dict):
                    versions[oid] = result["version"]
        figures = run.figures()
        figures["sandbox_faults"] = sb.stats()["faults_injected"]
        sb.clear_faults()
        for key in keys:  # resolve every create the run could not confirm
            if key not in made:
                made[key] = c.create("employees", {"name": f"New {key.split('-')[2]}"},
                                     idempotency_key=key)["id"]
        live = [e["id"] for e in sb.objects("employees")]
        assert len(live) == len(set(live)) == len(staff) + len(keys)
        assert set(made.values()) == set(live) - set(versions)
        assert sb.stats()["creates"] == len(staff) + len(keys)  # no create applied twice
        figures["creates"], figures["live_employees"] = len(keys), len(live)
    return figures


def test_fault_run_30_percent_errors(sb, monkeypatch):
    monkeypatch.setattr(api_service.RetryPolicy, "pause", lambda self, seconds: None)  # counts
    figures = fault_run(sb, seed=30)
    print("\nfault run (30% errors, 10% drops, 10% apply-then-500, seed 30):", figures)
    ops = figures["by_operation"]
    assert figures["retries"] > 0 and figures["outcomes"]["ok"] > 0.6 * figures["calls"]
    assert ops.get("get:ok", 0) > 0.9 * (ops.get("get:ok", 0) + ops.get("get:TransientError", 0))
    assert figures["sandbox_faults"]["error"] and figures["sandbox_faults"]["drop"]
    assert figures["sandbox_faults"]["apply_then_500"]


def test_fault_run_is_reproducible(sb, monkeypatch):
    monkeypatch.setattr(api_service.RetryPolicy, "pause", lambda self, seconds: None)
    first = fault_run(sb, seed=31, operations=80)
    sb.reset()
    second = fault_run(sb, seed=31, operations=80)
    assert first == second


def test_429_storm(sb):
    sb.set_faults(rate_limit=(0.05, 3), error_rate=0.2, seed=5)  # refill: 20 s, not in the test
    with make_client(sb) as c:
        run = Run(c)
        for _ in range(20):
            run.call("health", c.health)
        figures = run.figures()
    print("\n429 storm (0.05 rps, burst 3, 20% errors):", figures, "sandbox 429s:",
          sb.stats()["rate_limited"])
    assert figures["outcomes"]["RateLimited"] >= 10
    assert set(figures["outcomes"]) <= {"ok", "RateLimited", "TransientError"}
