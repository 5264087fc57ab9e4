"""The vendor client's concurrency: the page-ahead listing, the send pool, the pool pause."""
from __future__ import annotations

import json
import threading
import time

import responses

from api_service import PoolPause, ValidationFailed, VendorClient
from tests.helpers import LocalServer, QuietHandler

KEY = "sk_test_concurrency"
BASE = "https://vendor.test/api/v1"


def test_workers_default_to_the_setting_and_never_exceed_the_rate_limit():
    config = {"EXTERNAL_API_BASE_URL": BASE, "EXTERNAL_API_KEY": KEY}
    assert VendorClient.from_config({**config, "EXTERNAL_API_RATE_LIMIT": "0"}).workers == 4
    assert VendorClient.from_config({**config, "EXTERNAL_API_CONCURRENCY": "8",
                                     "EXTERNAL_API_RATE_LIMIT": "2"}).workers == 2
    assert VendorClient(BASE, KEY, rate_limit=0.5, concurrency=4).workers == 1


@responses.activate
def test_the_next_page_is_requested_while_the_caller_works_on_this_one():
    asked = []
    second_asked = threading.Event()

    def listing(request):
        token = request.params.get("page_token")
        asked.append(token)
        if token == "p2":
            second_asked.set()
        nxt = {None: "p2", "p2": "p3", "p3": None}[token]
        body = {"data": [{"id": f"ev_{token}", "version": 1}], "next_page_token": nxt,
                "next_sync_token": None if nxt else "s9"}
        return 200, {}, json.dumps(body)

    responses.add_callback(responses.GET, f"{BASE}/events", callback=listing)
    client = VendorClient(BASE, KEY, rate_limit=0)
    pages = client.iter_pages("events", limit=1)
    first = next(pages)
    # while the caller still holds page 1, page 2 is fetched, and only page 2
    assert second_asked.wait(10)
    assert asked == [None, "p2"] and first.items[0]["id"] == "ev_None"
    rest = list(pages)
    assert [p.items[0]["id"] for p in rest] == ["ev_p2", "ev_p3"]
    assert rest[-1].next_sync_token == "s9" and asked == [None, "p2", "p3"]


@responses.activate
def test_run_concurrently_uses_every_worker_and_answers_in_order():
    workers = 3
    together = threading.Barrier(workers, timeout=10)  # breaks unless 3 run at once
    running, peak, lock = [0], [0], threading.Lock()

    def create(request):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        body = json.loads(request.body)
        if body["n"] < workers:
            together.wait()
        with lock:
            running[0] -= 1
        if body["n"] == 4:
            return 422, {}, json.dumps({"error": {"code": "validation_failed", "message": "no"}})
        return 201, {}, json.dumps({"id": f"emp_{body['n']}", "version": 1})

    responses.add_callback(responses.POST, f"{BASE}/employees", callback=create)
    client = VendorClient(BASE, KEY, rate_limit=0, concurrency=workers)
    out = list(client.run_concurrently(lambda n: client.create("employees", {"n": n}), range(8)))
    assert [item for item, _, _ in out] == list(range(8))
    assert [obj["id"] for n, obj, err in out if err is None] == [f"emp_{n}" for n in range(8) if n != 4]
    assert isinstance(out[4][2], ValidationFailed)
    assert peak[0] == workers


@responses.activate
def test_run_concurrently_stops_queueing_when_asked():
    responses.add(responses.POST, f"{BASE}/employees", json={"id": "emp", "version": 1}, status=201)
    client = VendorClient(BASE, KEY, rate_limit=0, concurrency=2)
    seen = []
    for item, _, _ in client.run_concurrently(lambda n: client.create("employees", {"n": n}),
                                              range(100), stop=lambda: len(seen) >= 1):
        seen.append(item)
    assert seen[0] == 0 and len(seen) < 100
    assert len(responses.calls) == len(seen)


class PausingVendor(LocalServer):
    """A threaded vendor: the first 4 creates arrive together; the first gets a 429 with
    Retry-After, the others answer once the client holds its pool.  Every arrival is logged."""

    def __init__(self, retry_after: str, held: threading.Event):
        self.log: list[tuple[float, str, str]] = []  # (monotonic, key, answer)
        together = threading.Barrier(4, timeout=10)
        lock = threading.Lock()
        vendor = self

        class Handler(QuietHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers["Idempotency-Key"]
                with lock:
                    arrived = len(vendor.log)
                    vendor.log.append((time.monotonic(), key, ""))
                if arrived < 4:
                    together.wait()
                if arrived == 0:
                    status, body, headers = 429, {"error": {"code": "rate_limited",
                                                            "message": "slow"}}, {"Retry-After": retry_after}
                else:
                    if arrived < 4:
                        held.wait(10)  # in flight when the 429 came: answered after it
                    status, body, headers = 201, {"id": f"emp_{key}", "version": 1}, {}
                self.send_json(status, body, headers)

        super().__init__(Handler, "/api/v1")


def test_a_429_with_retry_after_pauses_every_worker(monkeypatch):
    held = threading.Event()
    vendor = PausingVendor("1", held)
    try:
        client = VendorClient(vendor.url, KEY, rate_limit=0, concurrency=4, max_retries=2)
        pause = PoolPause()
        client.pause = pause
        real_hold = client.hold_pool
        ends = []

        def hold(seconds):
            real_hold(seconds)
            ends.append(pause.until)
            held.set()

        monkeypatch.setattr(client, "hold_pool", hold)
        keys = [f"k{n}" for n in range(8)]
        out = list(client.run_concurrently(
            lambda k: client.create("employees", {"name": k}, idempotency_key=k), keys))
        assert [err for _, _, err in out] == [None] * 8
        assert len(ends) == 1
        first_key = vendor.log[0][1]
        after = vendor.log[4:]
        # the 4 creates in flight when the 429 came, then the retry and the 4 others:
        # every one of those sent only once the Retry-After was over, by every worker
        assert len(after) == 5 and sorted(k for _, k, _ in after) == sorted(
            [first_key] + [k for k in keys if k not in {key for _, key, _ in vendor.log[:4]}])
        assert all(at >= ends[0] for at, _, _ in after)
    finally:
        vendor.close()
