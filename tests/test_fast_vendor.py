"""The benchmark's fast vendor honours the contract parts the benchmark relies on."""
import pytest

from api_service import Duplicate, InUse, NotFound, SyncTokenExpired, VendorClient, VersionMismatch
from tests.bench import free_port
from tests.fast_vendor import serve

KEY = "fast-key"


@pytest.fixture
def vendor():
    server = serve(free_port(), KEY)
    client = VendorClient(f"http://127.0.0.1:{server.server_address[1]}/api/v1", KEY,
                          rate_limit=0, max_retries=0)
    store = server.RequestHandlerClass.vendor.store
    yield client, store
    client.close()
    server.shutdown()
    server.server_close()


def listing(client, resource, token=None, limit=2):
    pages = list(client.iter_pages(resource, sync_token=token, limit=limit))
    assert all(p.next_sync_token is None for p in pages[:-1]) and pages[-1].next_sync_token
    return [o for p in pages for o in p.items], pages[-1].next_sync_token


def test_full_then_incremental_listing_with_tombstones(vendor):
    client, store = vendor
    counts = store.seed(3, 5, 2)
    assert counts == {"employees": 3, "events": 5, "schedules": 2}
    events, token = listing(client, "events")
    assert len({e["id"] for e in events}) == 5
    assert listing(client, "events", token)[0] == []
    changed = client.update("events", events[0]["id"], {"project_name": "Renamed"}, if_match=1)
    assert changed["version"] == 2
    client.update("events", events[0]["id"], {"project_name": "Again"})
    free = events[4]["id"]
    client.delete("events", free)
    made = client.create("events", {"project_ref_num": 1, "project_name": "New",
                                    "start_datetime": "2026-12-01T08:00:00Z",
                                    "due_datetime": "2026-12-02T08:00:00Z"})
    changes, token2 = listing(client, "events", token)
    by_id = {o["id"]: o for o in changes}
    assert len(changes) == 3  # each object once, in its latest state
    assert by_id[events[0]["id"]]["project_name"] == "Again"
    assert by_id[free]["deleted"] is True and by_id[made["id"]]["version"] == 1
    assert listing(client, "events", token2)[0] == []
    with pytest.raises(SyncTokenExpired):
        list(client.iter_pages("events", sync_token="bogus"))


def test_writes_follow_the_rules(vendor):
    client, store = vendor
    store.seed(1, 2, 1)
    events = listing(client, "events")[0]
    schedule = listing(client, "schedules")[0][0]
    employee = listing(client, "employees")[0][0]
    body = {"event_id": schedule["event_id"], "employee_id": employee["id"],
            "start_datetime": "2026-12-01T09:00:00Z"}
    with pytest.raises(Duplicate) as dup:
        client.create("schedules", body)
    assert dup.value.existing_id == schedule["id"]
    with pytest.raises(InUse):
        client.delete("events", schedule["event_id"])
    with pytest.raises(VersionMismatch) as stale:
        client.update("schedules", schedule["id"], {"start_datetime": body["start_datetime"]},
                      if_match=7)
    assert stale.value.current["version"] == 1
    other = next(e["id"] for e in events if e["id"] != schedule["event_id"])
    first = client.create("schedules", {**body, "event_id": other}, idempotency_key="k1")
    again = client.create("schedules", {**body, "event_id": other}, idempotency_key="k1")
    assert again == first and len(listing(client, "schedules")[0]) == 2
    client.delete("schedules", first["id"])
    with pytest.raises(NotFound):
        client.delete("schedules", first["id"])
