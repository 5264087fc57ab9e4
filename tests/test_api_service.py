"""Tests for api_service.py, the vendor API client.

Error mapping, headers and paging use ``responses``.  Retries use a real
scripted HTTP server on 127.0.0.1: under ``responses`` urllib3's Retry runs
for statuses but never sleeps, ignores Retry-After and never retries a
dropped connection, so it cannot show that those work.  Sleeping is replaced
(``RetryPolicy.pause``) and jitter pinned, so nothing really waits.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

import api_service
from api_service import (
    AuthError, BadRequest, Conflict, Duplicate, InUse, InvalidPageToken, NotFound, Page,
    PoolPause, RateLimited, SyncTokenExpired, TokenBucket, TransientError, ValidationFailed,
    VendorClient, VendorError, VersionMismatch, format_timestamp, parse_object,
    parse_timestamp,
)

KEY = "sk_test_SUPERSECRET_0123456789"
BASE = "https://vendor.test/api/v1"
UTC = timezone.utc


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def error_body(code, message="went wrong", details=None, **extra):
    """A vendor error body."""
    error = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error, **extra}


def make_event(**overrides):
    """A vendor event as the vendor sends it."""
    event = {"id": "ev_1", "version": 3, "updated_at": "2026-11-25T14:30:00.250Z",
             "project_ref_num": 42, "project_name": "Reset", "event_type": "Core",
             "start_datetime": "2026-11-25T09:00:00+01:00", "due_datetime": "2026-11-26T17:00:00Z"}
    event.update(overrides)
    return event


class FakeVendor:
    """A scripted vendor on 127.0.0.1: each request takes the next scripted answer.

    An answer is ``(status, body, headers)``, ``"drop"`` (close the connection
    without answering) or ``("slow", seconds, answer)``.  Requests are
    recorded as dicts with method, path, query, headers and body.
    """

    def __init__(self):
        self.script: deque = deque()
        self.requests: list[dict] = []
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                vendor.requests.append({
                    "method": self.command, "path": parts.path,
                    "query": parse_qs(parts.query), "headers": dict(self.headers),
                    "body": json.loads(raw) if raw else None,
                })
                answer = vendor.script.popleft() if vendor.script else (200, {}, {})
                if isinstance(answer, tuple) and answer[0] == "slow":
                    time.sleep(answer[1])
                    answer = answer[2]
                if answer == "drop":
                    self.close_connection = True
                    return
                status, body, headers = answer
                payload = b"" if body is None else (
                    body.encode() if isinstance(body, str) else json.dumps(body).encode())
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if body is not None and not isinstance(body, str):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = handle_any

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # many concurrent connects must not overflow the backlog

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def answer(self, *answers):
        """Queue answers, each ``(status, body[, headers])``, "drop" or ("slow", s, answer)."""
        for item in answers:
            if isinstance(item, tuple) and item[0] == "slow" and len(item[2]) == 2:
                item = ("slow", item[1], (*item[2], {}))
            elif isinstance(item, tuple) and item[0] != "slow" and len(item) == 2:
                item = (*item, {})
            self.script.append(item)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def vendor():
    server = FakeVendor()
    yield server
    server.close()


@pytest.fixture
def sleeps(monkeypatch):
    """Record the delays the retry policy asks for instead of sleeping; jitter pinned to 0."""
    recorded: list[float] = []
    monkeypatch.setattr(api_service.RetryPolicy, "pause", lambda self, s: recorded.append(s))
    monkeypatch.setattr(api_service.RetryPolicy, "jitter", lambda self: 0.0)
    return recorded


@pytest.fixture
def client(vendor, sleeps):
    """A client of the fake vendor, no client-side rate limit, short timeouts."""
    c = VendorClient(vendor.url, KEY, rate_limit=0, timeout=2, connect_timeout=1)
    yield c
    c.close()


@pytest.fixture
def mocked():
    """A ``responses`` mock and a client of BASE without retries or rate limit."""
    with responses.RequestsMock() as rsps:
        c = VendorClient(BASE, KEY, rate_limit=0, max_retries=0)
        yield rsps, c
        c.close()


def free_port():
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("2026-11-25T14:30:00Z", datetime(2026, 11, 25, 14, 30, tzinfo=UTC)),
    ("2026-11-25T14:30:00z", datetime(2026, 11, 25, 14, 30, tzinfo=UTC)),
    ("2026-11-25T14:30:00.5Z", datetime(2026, 11, 25, 14, 30, 0, 500000, tzinfo=UTC)),
    ("2026-11-25T14:30:00.123456789Z", datetime(2026, 11, 25, 14, 30, 0, 123456, tzinfo=UTC)),
    ("2026-11-25T15:30:00+01:00", datetime(2026, 11, 25, 14, 30, tzinfo=UTC)),
    ("2026-11-25T09:30:00.25-05:00", datetime(2026, 11, 25, 14, 30, 0, 250000, tzinfo=UTC)),
    ("2026-11-26T00:30:00+10:00", datetime(2026, 11, 25, 14, 30, tzinfo=UTC)),
])
def test_parse_timestamp_gives_aware_utc(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", [
    "2026-11-25T14:30:00", "2026-11-25T14:30:00.123", "2026-11-25", "yesterday", "",
    "2026-13-25T14:30:00Z",
])
def test_parse_timestamp_rejects_naive_and_garbage(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_parse_timestamp_passes_none():
    assert parse_timestamp(None) is None


@pytest.mark.parametrize("dt, expected", [
    (datetime(2026, 11, 25, 14, 30, tzinfo=UTC), "2026-11-25T14:30:00Z"),
    (datetime(2026, 11, 25, 15, 30, tzinfo=timezone(timedelta(hours=1))), "2026-11-25T14:30:00Z"),
    (datetime(2026, 11, 25, 14, 30, 0, 120000, tzinfo=UTC), "2026-11-25T14:30:00.120000Z"),
    (datetime(2026, 11, 25, 23, 30, tzinfo=timezone(timedelta(hours=-5))), "2026-11-26T04:30:00Z"),
])
def test_format_timestamp_is_utc_with_z(dt, expected):
    assert format_timestamp(dt) == expected
    assert parse_timestamp(format_timestamp(dt)) == dt


def test_format_timestamp_rejects_naive():
    with pytest.raises(ValueError):
        format_timestamp(datetime(2026, 11, 25, 14, 30))


def test_parse_object_parses_timestamp_fields_only_and_copies():
    raw = make_event()
    parsed = parse_object(raw)
    assert parsed["updated_at"] == datetime(2026, 11, 25, 14, 30, 0, 250000, tzinfo=UTC)
    assert parsed["start_datetime"] == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    assert parsed["due_datetime"] == datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
    assert parsed["project_name"] == "Reset" and parsed["version"] == 3
    assert raw["updated_at"] == "2026-11-25T14:30:00.250Z"  # the input is untouched


# --------------------------------------------------------------------------
# Error mapping
# --------------------------------------------------------------------------

@pytest.mark.parametrize("status, code, cls", [
    (400, "bad_request", BadRequest),
    (400, "invalid_page_token", InvalidPageToken),
    (401, "unauthorized", AuthError),
    (403, "forbidden", AuthError),
    (404, "not_found", NotFound),
    (409, "duplicate", Duplicate),
    (409, "in_use", InUse),
    (409, "something_else", Conflict),
    (410, "sync_token_expired", SyncTokenExpired),
    (412, "version_mismatch", VersionMismatch),
    (422, "validation_failed", ValidationFailed),
    (422, "idempotency_key_reused", ValidationFailed),
    (429, "rate_limited", RateLimited),
    (500, "internal", TransientError),
    (502, "bad_gateway", TransientError),
    (503, "unavailable", TransientError),
    (504, "timeout", TransientError),
])
def test_status_and_code_map_to_exception(mocked, status, code, cls):
    rsps, client = mocked
    rsps.get(f"{BASE}/events/ev_1", status=status,
             json=error_body(code, "the message", {"field": "why"}),
             headers={"X-Request-Id": "req-123"})
    with pytest.raises(cls) as info:
        client.get("events", "ev_1")
    err = info.value
    assert type(err) is cls
    assert (err.status, err.code, err.message) == (status, code, "the message")
    assert err.details == {"field": "why"}
    assert err.request_id == "req-123"
    assert err.is_transient == (cls in (RateLimited, TransientError))
    assert "the message" in str(err) and str(status) in str(err)


def test_exception_tree_has_one_root():
    for cls in (AuthError, NotFound, Duplicate, InUse, VersionMismatch, ValidationFailed,
                InvalidPageToken, SyncTokenExpired, RateLimited, TransientError):
        assert issubclass(cls, VendorError)
    assert issubclass(Duplicate, Conflict) and issubclass(InUse, Conflict)
    assert issubclass(InvalidPageToken, BadRequest)


def test_duplicate_names_existing_id(mocked):
    rsps, client = mocked
    rsps.post(f"{BASE}/events", status=409,
              json=error_body("duplicate", details={"existing_id": "ev_9"}))
    with pytest.raises(Duplicate) as info:
        client.create("events", {"project_ref_num": 42})
    assert info.value.existing_id == "ev_9"


def test_in_use_names_schedule_id(mocked):
    rsps, client = mocked
    rsps.delete(f"{BASE}/employees/em_1", status=409,
                json=error_body("in_use", details={"schedule_id": "sc_3"}))
    with pytest.raises(InUse) as info:
        client.delete("employees", "em_1")
    assert info.value.schedule_id == "sc_3"


def test_version_mismatch_carries_current_object_parsed(mocked):
    rsps, client = mocked
    rsps.patch(f"{BASE}/events/ev_1", status=412,
               json=error_body("version_mismatch", current=make_event(version=5)))
    with pytest.raises(VersionMismatch) as info:
        client.update("events", "ev_1", {"project_name": "x"}, if_match=3)
    assert info.value.current["version"] == 5
    assert info.value.current["updated_at"] == datetime(2026, 11, 25, 14, 30, 0, 250000, tzinfo=UTC)


def test_non_json_error_body_is_tolerated(mocked):
    rsps, client = mocked
    rsps.get(f"{BASE}/events/ev_1", status=502, body="<html>Bad Gateway</html>",
             headers={"Request-Id": "edge-7"})
    with pytest.raises(TransientError) as info:
        client.get("events", "ev_1")
    assert info.value.status == 502 and info.value.code is None
    assert "Bad Gateway" in info.value.message and info.value.request_id == "edge-7"


def test_validation_details_map_fields_to_messages(mocked):
    rsps, client = mocked
    details = {"name": "required", "email": "not an email"}
    rsps.post(f"{BASE}/employees", status=422, json=error_body("validation_failed", details=details))
    with pytest.raises(ValidationFailed) as info:
        client.create("employees", {"name": ""})
    assert info.value.details == details


@pytest.mark.parametrize("exc", [
    requests.ConnectionError("refused"),
    requests.Timeout("slow"),
    requests.exceptions.ChunkedEncodingError("cut"),
    requests.exceptions.RetryError("too many"),
    requests.exceptions.ContentDecodingError("gzip"),
])
def test_requests_exceptions_become_transient_error(mocked, exc):
    rsps, client = mocked
    rsps.get(f"{BASE}/events/ev_1", body=exc)
    with pytest.raises(TransientError) as info:
        client.get("events", "ev_1")
    assert not isinstance(info.value, requests.RequestException)
    assert info.value.status is None and info.value.is_transient


def test_unexpected_2xx_body_is_a_vendor_error(mocked):
    rsps, client = mocked
    rsps.get(f"{BASE}/events/ev_1", body="not json", status=200)
    with pytest.raises(VendorError) as info:
        client.get("events", "ev_1")
    assert info.value.code == "invalid_response"


# --------------------------------------------------------------------------
# What is sent
# --------------------------------------------------------------------------

@pytest.mark.parametrize("base", [BASE, BASE + "/"])
def test_base_url_with_or_without_slash(base):
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/events/ev_1", json=make_event())
        client = VendorClient(base, KEY, rate_limit=0)
        assert client.get("events", "ev_1")["id"] == "ev_1"
        assert rsps.calls[0].request.url == f"{BASE}/events/ev_1"


def test_every_request_has_bearer_key_and_timeouts(mocked):
    rsps, client = mocked
    rsps.get(f"{BASE}/events/ev_1", json=make_event())
    client.get("events", "ev_1")
    request = rsps.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.req_kwargs["timeout"] == (3.05, 10.0)


def test_create_sends_json_with_z_timestamps_and_a_fresh_key(mocked):
    rsps, client = mocked
    rsps.post(f"{BASE}/events", status=201, json=make_event())
    start = datetime(2026, 11, 25, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    created = client.create("events", {"project_ref_num": 42, "start_datetime": start})
    client.create("events", {"project_ref_num": 43})
    first, second = (call.request for call in rsps.calls)
    assert first.headers["Content-Type"] == "application/json"
    assert json.loads(first.body) == {"project_ref_num": 42, "start_datetime": "2026-11-25T09:00:00Z"}
    uuid.UUID(first.headers["Idempotency-Key"])
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]
    assert created["updated_at"] == datetime(2026, 11, 25, 14, 30, 0, 250000, tzinfo=UTC)


def test_create_uses_the_given_key(mocked):
    rsps, client = mocked
    rsps.post(f"{BASE}/events", status=201, json=make_event())
    client.create("events", {"project_ref_num": 42}, idempotency_key="sync-event-17-v2")
    assert rsps.calls[0].request.headers["Idempotency-Key"] == "sync-event-17-v2"


def test_create_refuses_naive_datetime_before_sending(mocked):
    _, client = mocked
    with pytest.raises(ValueError):
        client.create("events", {"start_datetime": datetime(2026, 11, 25, 9, 0)})


def test_update_sends_quoted_if_match_and_delete_returns_none(mocked):
    rsps, client = mocked
    rsps.patch(f"{BASE}/events/ev_1", json=make_event(version=4))
    rsps.delete(f"{BASE}/events/ev_1", status=204)
    assert client.update("events", "ev_1", {"project_name": "New"}, if_match=3)["version"] == 4
    assert client.delete("events", "ev_1", if_match=4) is None
    patch, delete = (call.request for call in rsps.calls)
    assert patch.headers["If-Match"] == '"3"' and delete.headers["If-Match"] == '"4"'
    assert json.loads(patch.body) == {"project_name": "New"}


def test_update_without_if_match_sends_no_header(mocked):
    rsps, client = mocked
    rsps.patch(f"{BASE}/events/ev_1", json=make_event())
    client.update("events", "ev_1", {"project_name": "New"})
    assert "If-Match" not in rsps.calls[0].request.headers


def test_delete_of_missing_object_raises_not_found(mocked):
    rsps, client = mocked
    rsps.delete(f"{BASE}/schedules/sc_1", status=404, json=error_body("not_found"))
    with pytest.raises(NotFound):
        client.delete("schedules", "sc_1")


def test_ids_are_percent_encoded_and_resources_checked(mocked):
    rsps, client = mocked
    rsps.get(f"{BASE}/events/a%2Fb%20c", json=make_event(id="a/b c"))
    assert client.get("events", "a/b c")["id"] == "a/b c"
    with pytest.raises(ValueError):
        client.get("users", "1")


def test_health_returns_status_time_and_latency(mocked):
    rsps, client = mocked
    rsps.get(f"{BASE}/health", json={"status": "ok", "time": "2026-11-25T14:30:00.5Z"})
    health = client.health()
    assert health["status"] == "ok"
    assert health["time"] == datetime(2026, 11, 25, 14, 30, 0, 500000, tzinfo=UTC)
    assert isinstance(health["latency_ms"], float) and health["latency_ms"] >= 0


def test_health_with_wrong_key_raises_auth_error(mocked):
    rsps, client = mocked
    rsps.get(f"{BASE}/health", status=401, json=error_body("unauthorized", "bad key"))
    with pytest.raises(AuthError):
        client.health()


def test_from_config_reads_external_api_settings():
    config = {"EXTERNAL_API_BASE_URL": BASE + "/", "EXTERNAL_API_KEY": KEY,
              "EXTERNAL_API_TIMEOUT_SECONDS": "2", "EXTERNAL_API_MAX_RETRIES": "7",
              "EXTERNAL_API_RATE_LIMIT": "0"}
    client = VendorClient.from_config(config)
    assert client.base_url == BASE
    assert client.timeout == (2.0, 2.0)
    assert client.retry.total == 7
    assert client.limiter is None
    assert KEY not in repr(client)


def test_from_config_without_base_url_fails_clearly():
    with pytest.raises(ValueError, match="EXTERNAL_API_BASE_URL"):
        VendorClient.from_config({"EXTERNAL_API_KEY": KEY})


def test_from_config_defaults_and_bad_values():
    client = VendorClient.from_config({"EXTERNAL_API_BASE_URL": BASE, "EXTERNAL_API_KEY": KEY,
                                       "EXTERNAL_API_MAX_RETRIES": None})
    assert client.timeout == (3.05, 10.0) and client.retry.total == 5
    with pytest.raises(ValueError, match="EXTERNAL_API_TIMEOUT_SECONDS"):
        VendorClient.from_config({"EXTERNAL_API_BASE_URL": BASE, "EXTERNAL_API_KEY": KEY,
                                  "EXTERNAL_API_TIMEOUT_SECONDS": "ten"})


# --------------------------------------------------------------------------
# Paging
# --------------------------------------------------------------------------

def test_iter_pages_follows_tokens_and_sends_only_page_token_after_first(client, vendor):
    tombstone = {"id": "ev_2", "deleted": True, "version": 7, "updated_at": "2026-11-25T15:00:00Z"}
    vendor.answer(
        (200, {"data": [make_event()], "next_page_token": "p2", "next_sync_token": None}),
        (200, {"data": [tombstone], "next_page_token": "p3"}),
        (200, {"data": [], "next_page_token": None, "next_sync_token": "s2"}),
    )
    pages = list(client.iter_pages("events", sync_token="s1", limit=2))
    assert [r["query"] for r in vendor.requests] == [
        {"limit": ["2"], "sync_token": ["s1"]}, {"page_token": ["p2"]}, {"page_token": ["p3"]}]
    assert all(r["path"] == "/api/v1/events" for r in vendor.requests)
    assert [p.next_sync_token for p in pages] == [None, None, "s2"]
    assert all(isinstance(p, Page) for p in pages)
    assert pages[0].items[0]["start_datetime"] == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    assert pages[1].items == [{**tombstone, "updated_at": datetime(2026, 11, 25, 15, 0, tzinfo=UTC)}]


def test_iter_pages_full_listing_sends_no_sync_token(client, vendor):
    vendor.answer((200, {"data": [], "next_page_token": None, "next_sync_token": "s1"}))
    pages = list(client.iter_pages("employees"))
    assert vendor.requests[0]["query"] == {"limit": ["100"]}
    assert pages[-1].next_sync_token == "s1"


def test_iter_pages_expired_sync_token(client, vendor):
    vendor.answer((410, error_body("sync_token_expired")))
    with pytest.raises(SyncTokenExpired):
        list(client.iter_pages("events", sync_token="old"))


def test_iter_pages_invalid_page_token(client, vendor):
    vendor.answer((200, {"data": [], "next_page_token": "bad"}),
                  (400, error_body("invalid_page_token")))
    with pytest.raises(InvalidPageToken):
        list(client.iter_pages("events"))


def test_iter_pages_stops_when_vendor_repeats_a_token(client, vendor):
    vendor.answer((200, {"data": [], "next_page_token": "p2"}),
                  (200, {"data": [], "next_page_token": "p2"}))
    with pytest.raises(VendorError):
        list(client.iter_pages("events"))
    assert len(vendor.requests) == 2


# --------------------------------------------------------------------------
# Retries (real local server)
# --------------------------------------------------------------------------

def test_get_is_retried_with_exponential_backoff(client, vendor, sleeps):
    vendor.answer((503, error_body("unavailable")), (502, "bad gateway"), (200, make_event()))
    assert client.get("events", "ev_1")["id"] == "ev_1"
    assert len(vendor.requests) == 3
    assert sleeps == [0.5, 1.0]
    assert client.requests_sent == 3


def test_retries_stop_at_max_retries(vendor, sleeps):
    client = VendorClient(vendor.url, KEY, rate_limit=0, max_retries=2)
    vendor.answer(*[(500, error_body("internal", "boom"))] * 5)
    with pytest.raises(TransientError) as info:
        client.get("events", "ev_1")
    assert (info.value.status, info.value.code) == (500, "internal")
    assert len(vendor.requests) == 3 and client.requests_sent == 3
    assert sleeps == [0.5, 1.0]


def test_backoff_is_capped_at_backoff_max(vendor, sleeps):
    client = VendorClient(vendor.url, KEY, rate_limit=0, max_retries=4,
                          backoff_factor=1, backoff_max=3)
    vendor.answer(*[(503, {})] * 5)
    with pytest.raises(TransientError):
        client.get("events", "ev_1")
    assert sleeps == [1, 2, 3, 3]


def test_jitter_is_added_to_backoff(client, vendor, sleeps, monkeypatch):
    monkeypatch.setattr(api_service.RetryPolicy, "jitter", lambda self: 0.25)
    vendor.answer((500, {}), (500, {}), (200, make_event()))
    client.get("events", "ev_1")
    assert sleeps == [0.75, 1.25]


def test_default_jitter_stays_within_backoff_jitter():
    policy = api_service.build_retry(5, backoff_factor=0.5, backoff_max=30)
    values = {policy.jitter() for _ in range(200)}
    assert all(0 <= v < 0.5 for v in values) and len(values) > 1


def test_non_transient_errors_are_not_retried(client, vendor, sleeps):
    vendor.answer((404, error_body("not_found")), (200, make_event()))
    with pytest.raises(NotFound):
        client.get("events", "ev_1")
    assert len(vendor.requests) == 1 and sleeps == []


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(client, vendor, sleeps, status):
    vendor.answer((status, error_body("slow_down"), {"Retry-After": "7"}), (200, make_event()))
    client.get("events", "ev_1")
    assert len(vendor.requests) == 2
    assert sleeps == [7]


def test_unreadable_retry_after_falls_back_to_backoff(client, vendor, sleeps):
    vendor.answer((429, {}, {"Retry-After": "soon"}), (200, make_event()))
    client.get("events", "ev_1")
    assert sleeps == [0.5]


def test_retry_after_beyond_backoff_max_surfaces_rate_limited(client, vendor, sleeps):
    vendor.answer((429, error_body("rate_limited"), {"Retry-After": "120"}), (200, make_event()))
    with pytest.raises(RateLimited) as info:
        client.get("events", "ev_1")
    assert info.value.retry_after == 120
    assert len(vendor.requests) == 1 and sleeps == []


def test_rate_limited_after_retries_ran_out(vendor, sleeps):
    client = VendorClient(vendor.url, KEY, rate_limit=0, max_retries=1)
    vendor.answer(*[(429, error_body("rate_limited"), {"Retry-After": "2"})] * 3)
    with pytest.raises(RateLimited) as info:
        client.get("events", "ev_1")
    assert info.value.retry_after == 2 and info.value.is_transient
    assert len(vendor.requests) == 2 and sleeps == [2]


def test_connection_refused_is_retried_then_transient_error(sleeps):
    client = VendorClient(f"http://127.0.0.1:{free_port()}/api/v1", KEY, rate_limit=0,
                          max_retries=3, connect_timeout=0.5)
    with pytest.raises(TransientError) as info:
        client.get("events", "ev_1")
    assert info.value.status is None
    assert not isinstance(info.value, requests.RequestException)
    assert client.requests_sent == 4 and sleeps == [0.5, 1.0, 2.0]


def test_dropped_connection_is_retried(client, vendor, sleeps):
    vendor.answer("drop", (200, make_event()))
    assert client.get("events", "ev_1")["id"] == "ev_1"
    assert len(vendor.requests) == 2 and sleeps == [0.5]


def test_read_timeout_is_retried_for_get(vendor, sleeps):
    # the retry's answer must beat the timeout: 3 s, room for a loaded machine
    client = VendorClient(vendor.url, KEY, rate_limit=0, timeout=3)
    vendor.answer(("slow", 10, (200, make_event())), (200, make_event()))
    assert client.get("events", "ev_1")["id"] == "ev_1"
    assert len(vendor.requests) == 2 and sleeps == [0.5]


def test_create_retries_with_the_same_idempotency_key(client, vendor, sleeps):
    vendor.answer((503, {}), "drop", (500, {}), (201, make_event()))
    assert client.create("events", {"project_ref_num": 42})["id"] == "ev_1"
    keys = {r["headers"]["Idempotency-Key"] for r in vendor.requests}
    assert len(vendor.requests) == 4 and len(keys) == 1
    assert all(r["body"] == {"project_ref_num": 42} for r in vendor.requests)


def test_patch_with_if_match_and_delete_are_retried(client, vendor, sleeps):
    vendor.answer((503, {}), (200, make_event()), "drop", (204, None))
    client.update("events", "ev_1", {"project_name": "x"}, if_match=3)
    client.delete("events", "ev_1")
    assert [r["method"] for r in vendor.requests] == ["PATCH", "PATCH", "DELETE", "DELETE"]


@pytest.mark.parametrize("answer", [(503, {}), "drop"])
def test_patch_without_if_match_is_sent_once(client, vendor, sleeps, answer):
    vendor.answer(answer, (200, make_event()))
    with pytest.raises(TransientError):
        client.update("events", "ev_1", {"project_name": "x"})
    assert len(vendor.requests) == 1 and sleeps == [] and client.requests_sent == 1


@pytest.mark.parametrize("answer", [(503, {}), (429, {}, {"Retry-After": "1"}), "drop"])
def test_post_without_key_is_sent_once(client, vendor, sleeps, answer):
    vendor.answer(answer, (201, make_event()))
    with pytest.raises((TransientError, RateLimited)):
        client.request("POST", "/events", json={"project_ref_num": 1})
    assert len(vendor.requests) == 1 and sleeps == []


def test_post_without_key_is_not_retried_after_read_timeout(vendor, sleeps):
    client = VendorClient(vendor.url, KEY, rate_limit=0, timeout=0.2)
    vendor.answer(("slow", 0.6, (201, make_event())), (201, make_event()))
    with pytest.raises(TransientError):
        client.request("POST", "/events", json={"project_ref_num": 1})
    assert len(vendor.requests) == 1


def test_low_level_post_with_key_is_retried(client, vendor, sleeps):
    vendor.answer((502, {}), (201, make_event()))
    response = client.request("POST", "/events", json={"a": 1}, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 201 and len(vendor.requests) == 2


def test_status_retries_also_run_under_responses(sleeps):
    """Other tests mock with ``responses``: status retries work there too (without sleeping)."""
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/events/ev_1", status=503, json={})
        rsps.get(f"{BASE}/events/ev_1", json=make_event())
        client = VendorClient(BASE, KEY, rate_limit=0)
        assert client.get("events", "ev_1")["id"] == "ev_1"
        assert len(rsps.calls) == 2 and client.requests_sent == 2


def test_requests_sent_counts_concurrent_requests(client, vendor):
    vendor.answer(*[(200, make_event())] * 40)

    def fetch():
        for _ in range(5):
            client.get("events", "ev_1")

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.requests_sent == 40 == len(vendor.requests)


# --------------------------------------------------------------------------
# Secrets and logging
# --------------------------------------------------------------------------

def test_logs_one_debug_line_per_request_and_info_per_retry_without_key(client, vendor, caplog):
    caplog.set_level(logging.DEBUG, logger="api_service")
    vendor.answer((503, {}), (503, {}), (200, make_event()))
    client.get("events", "ev_1")
    ours = [r for r in caplog.records if r.name == "api_service"]
    debug = [r.getMessage() for r in ours if r.levelno == logging.DEBUG]
    info = [r.getMessage() for r in ours if r.levelno == logging.INFO]
    assert len(debug) == 1 and "GET /events/ev_1 -> 200" in debug[0] and "3 attempt" in debug[0]
    assert len(info) == 2 and all("GET" in m and "503" in m for m in info)
    everything = " ".join(r.getMessage() + repr(r.args) for r in caplog.records)
    assert KEY not in everything and "Bearer" not in everything


def test_error_text_never_contains_the_key(client, vendor, caplog):
    caplog.set_level(logging.DEBUG, logger="api_service")
    echo = f"bad header Authorization: Bearer {KEY}"
    vendor.answer((401, error_body("unauthorized", echo, {"got": f"Bearer {KEY}"})))
    with pytest.raises(AuthError) as info:
        client.get("events", "ev_1")
    err = info.value
    for text in (str(err), repr(err), err.message, json.dumps(err.details)):
        assert KEY not in text
    assert KEY not in caplog.text


def test_network_error_text_never_contains_the_key(sleeps):
    client = VendorClient(f"http://127.0.0.1:{free_port()}", KEY, rate_limit=0, max_retries=0)
    with pytest.raises(TransientError) as info:
        client.get("events", "ev_1")
    assert KEY not in str(info.value) and "Bearer" not in str(info.value)


# --------------------------------------------------------------------------
# Client-side rate limit
# --------------------------------------------------------------------------

class FakeClock:
    """A clock that only moves when someone sleeps."""

    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_allows_a_burst_then_spaces_requests():
    clock = FakeClock()
    bucket = TokenBucket(4, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(6)]
    assert waits[:4] == [0, 0, 0, 0]
    assert waits[4:] == pytest.approx([0.25, 0.25])
    clock.now += 10  # idle: refills, but never beyond one burst
    assert [bucket.acquire() for _ in range(5)] == pytest.approx([0, 0, 0, 0, 0.25])


def test_token_bucket_queues_threads_fairly():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=lambda s: None)  # frozen clock
    waits = []
    threads = [threading.Thread(target=lambda: waits.append(bucket.reserve())) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == pytest.approx([0] * 10 + [i / 10 for i in range(1, 21)])


def test_limiter_is_shared_by_clients_of_the_same_vendor():
    a = VendorClient("https://shared.test/v1", KEY, rate_limit=5)
    b = VendorClient("https://shared.test/v1/", "other", rate_limit=5)
    assert a.limiter is b.limiter is not None
    assert VendorClient("https://shared.test/v1", KEY, rate_limit=0).limiter is None


def test_every_attempt_including_retries_is_throttled(vendor, sleeps, monkeypatch):
    client = VendorClient(vendor.url, KEY, rate_limit=2)
    clock = FakeClock()
    monkeypatch.setattr(client.limiter, "clock", clock)
    monkeypatch.setattr(client.limiter, "sleep", clock.sleep)
    monkeypatch.setattr(client.limiter, "_updated", clock.now)
    vendor.answer((503, {}), (503, {}), (200, make_event()), (200, make_event()))
    client.get("events", "ev_1")
    client.get("events", "ev_1")
    # 4 attempts at 2/s with a burst of 2: the 3rd and 4th wait half a second each
    assert clock.slept == pytest.approx([0.5, 0.5])
    assert len(vendor.requests) == 4



# --------------------------------------------------------------------------
# The pool pause: one 429 holds every thread and client of the vendor
# --------------------------------------------------------------------------

class ArrivalVendor:
    """A threaded vendor on 127.0.0.1 that records when each request arrives and answers
    the ``limit_at``-th with ``status`` and ``Retry-After: 1`` (once); ``/events`` lists
    ``pages`` one-item pages.  ``answered_at`` is when the 429 was written (monotonic)."""

    def __init__(self, limit_at: int, status: int = 429, pages: int = 6):
        self.arrivals: list[tuple[float, str]] = []
        self.answered_at: float | None = None
        self.seen = threading.Condition()
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with vendor.seen:
                    vendor.arrivals.append((time.monotonic(), self.headers.get("X-Seq") or self.path))
                    limited = len(vendor.arrivals) == limit_at
                    vendor.seen.notify_all()
                if limited:
                    payload, code, extra = json.dumps(error_body("rate_limited")), status, {
                        "Retry-After": "1"}
                else:
                    time.sleep(0.01)  # a little work: requests overlap
                    payload, code, extra = json.dumps(vendor.body(self.path)), 200, {}
                self.send_response(code)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if limited:
                    vendor.answered_at = time.monotonic()
                self.wfile.write(payload.encode())

        self.pages = pages
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def body(self, path: str) -> dict:
        """A listing page of /events (page n of ``pages``) or an event."""
        parts = urlsplit(path)
        if parts.path != "/api/v1/events":
            return make_event()
        n = int(parse_qs(parts.query).get("page_token", ["p1"])[0][1:])
        last = n >= self.pages
        return {"data": [make_event(id=f"ev_{n}")], "next_page_token": None if last else f"p{n + 1}",
                "next_sync_token": "s1" if last else None}

    def wait_for(self, count: int, timeout: float = 20.0) -> bool:
        """Wait until ``count`` requests have arrived."""
        with self.seen:
            return self.seen.wait_for(lambda: len(self.arrivals) >= count, timeout)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def send_log(monkeypatch):
    """Every attempt as urllib3 hands it to a connection (``sends``: started, identity,
    thread), every pass of the client's last check before sending (``admits``: time,
    thread), and when a 429/503 answer came back to the client (``received``)."""
    import urllib3.connectionpool as pool_module

    log: dict = {"sends": [], "admits": [], "received": []}
    make_request = pool_module.HTTPConnectionPool._make_request
    admit = PoolPause.admit

    def recording(self, conn, method, url, *args, **kwargs):
        headers = kwargs.get("headers") or (args[1] if len(args) > 1 else None) or {}
        log["sends"].append((time.monotonic(), headers.get("X-Seq") or url,
                             threading.get_ident()))
        response = make_request(self, conn, method, url, *args, **kwargs)
        if response.status in (429, 503):
            log["received"].append(time.monotonic())
        return response

    def recording_admit(self, *args, **kwargs):
        at = time.monotonic()  # before the check: a pass recorded here was a pass by then
        passed = admit(self, *args, **kwargs)
        if passed:
            log["admits"].append((at, threading.get_ident()))
        return passed

    monkeypatch.setattr(pool_module.HTTPConnectionPool, "_make_request", recording)
    monkeypatch.setattr(PoolPause, "admit", recording_admit)
    return log


def _offenders(vendor: ArrivalVendor, log: dict, held_at: float) -> list:
    """Requests that arrived inside the Retry-After window although the client let them
    go (its last check before sending) after it had taken the 429 in (``held_at``)."""
    sends: dict[str, deque] = {}
    previous: dict[int, float] = {}  # each thread's send before this one
    for started, identity, thread in sorted(log["sends"]):
        passes = [at for at, who in log["admits"]
                  if who == thread and previous.get(thread, -1.0) < at <= started]
        sends.setdefault(identity, deque()).append(max(passes, default=None))
        previous[thread] = started
    offenders = []
    for arrived, identity in sorted(vendor.arrivals):
        admitted = sends[identity].popleft()  # None: sent without passing the check
        inside = vendor.answered_at < arrived < vendor.answered_at + 1.0
        if inside and (admitted is None or admitted >= held_at):
            offenders.append((round(arrived - vendor.answered_at, 3), identity))
    return offenders


@pytest.mark.parametrize("status", [429, 503])
def test_a_retry_after_holds_every_worker_page_ahead_and_client_of_the_vendor(send_log, status):
    """4 send workers and a page-ahead listing on one client, a second client of the same
    vendor on its own thread, a shared 10/s limit with requests queued for tokens: after
    one Retry-After: 1 no request arrives inside the window unless it was already on its
    way when the answer came back."""
    vendor = ArrivalVendor(limit_at=14, status=status, pages=6)
    a = VendorClient(vendor.url, KEY, rate_limit=10, concurrency=4, backoff_max=5)
    b = VendorClient(vendor.url, KEY, rate_limit=10, backoff_max=5)
    errors: list = []

    def send(n):
        return a.request("GET", "/events/ev_1", headers={"X-Seq": f"a{n}"})

    def other(n):
        b.request("GET", "/events/ev_1", headers={"X-Seq": f"b{n}"})

    def listing():
        assert len(list(a.iter_pages("events", limit=1))) == 6

    jobs = [lambda: [errors.append(err) for _, _, err in a.run_concurrently(send, range(12))],
            lambda: [other(n) for n in range(5)], listing]
    threads = [threading.Thread(target=job) for job in jobs]
    try:
        for t in threads:
            t.start()
        assert vendor.wait_for(12 + 5 + 6 + 1)  # every request, and the retry of the limited one
        for t in threads:
            t.join(20)
        assert errors == [None] * 12 and vendor.answered_at is not None
        assert a.pause is b.pause and len(send_log["received"]) == 1
        assert _offenders(vendor, send_log, a.pause.held_at) == []
        assert 0 <= a.pause.held_at - send_log["received"][0] < 0.25  # taken in at once
        assert any(arrived > vendor.answered_at + 1.0 for arrived, _ in vendor.arrivals)
    finally:
        a.close()
        b.close()
        vendor.close()


@pytest.fixture(autouse=True)
def _fresh_pauses():
    """A Retry-After one test got never holds the next test's requests."""
    yield
    api_service._PAUSES.clear()
    api_service._CLOCKS.clear()


def test_a_429_to_a_request_sent_once_holds_the_pool_too(client, vendor, sleeps):
    vendor.answer((429, error_body("rate_limited"), {"Retry-After": "3"}), (200, make_event()))
    with pytest.raises(RateLimited):
        client.request("POST", "/events", json={"project_ref_num": 1})  # no key: not retried
    assert 2.5 < client.pause.remaining() <= 3
    client.get("events", "ev_1")  # waits the hold out first
    assert sleeps == [pytest.approx(3, abs=0.5)]


def test_a_retry_after_beyond_backoff_max_fails_every_request_fast_without_sending(
        client, vendor, sleeps):
    vendor.answer((429, error_body("rate_limited"), {"Retry-After": "120"}), (200, make_event()))
    with pytest.raises(RateLimited):
        client.get("events", "ev_1")
    other = VendorClient(vendor.url, KEY, rate_limit=0)  # another client of the same vendor
    with pytest.raises(RateLimited) as info:
        other.get("events", "ev_2")
    assert info.value.retry_after > 100 and "not sent" in str(info.value)
    assert len(vendor.requests) == 1 and sleeps == []


def test_a_retry_waits_for_a_longer_hold_another_thread_got(client, vendor, sleeps, monkeypatch):
    """This thread waits out its own Retry-After (2 s); a hold of 5 s that came meanwhile
    keeps its retry back for the rest."""
    def pause_and_extend(self, seconds):
        sleeps.append(seconds)
        if len(sleeps) == 1:
            client.pause.hold(5)
    monkeypatch.setattr(api_service.RetryPolicy, "pause", pause_and_extend)
    vendor.answer((503, {}, {"Retry-After": "2"}), (200, make_event()))
    client.get("events", "ev_1")
    assert sleeps[0] == 2 and sleeps[1] == pytest.approx(5, abs=0.5)
    assert len(vendor.requests) == 2


def test_pool_pause_wait_follows_extensions_and_admit_refuses_inside_a_hold():
    clock = FakeClock()
    pause = PoolPause(clock=clock)
    assert pause.admit() and pause.wait(clock.sleep) == 0.0
    end = pause.hold(2)
    assert not pause.admit() and pause.admit(waited_until=end)  # the holder waited it out

    def sleep_and_extend(seconds):
        clock.sleep(seconds)
        if len(clock.slept) == 1:
            pause.hold(1)  # another 429 came while we slept
    assert pause.wait(sleep_and_extend) == pytest.approx(103)
    assert clock.slept == pytest.approx([2, 1]) and pause.admit()
    assert pause.hold(0.5) == pytest.approx(103.5) == pause.until


# --------------------------------------------------------------------------
# The vendor's clock offset
# --------------------------------------------------------------------------

def http_date(offset: float) -> str:
    """Our clock plus ``offset`` seconds as an HTTP Date header (whole seconds, truncated)."""
    from email.utils import formatdate
    return formatdate(int(time.time() + offset), usegmt=True)


@pytest.mark.parametrize("skew", [90, -90])
def test_clock_offset_is_measured_from_the_date_header(mocked, skew):
    rsps, client = mocked
    assert client.clock_offset() is None
    rsps.get(f"{BASE}/events/ev_1", json=make_event(), headers={"Date": http_date(skew)})
    client.get("events", "ev_1")
    assert client.clock_offset() == pytest.approx(skew, abs=1.5)
    stamp = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    assert client.vendor_to_local(stamp) == stamp - timedelta(seconds=client.clock_offset())


def test_clock_offset_is_shared_by_clients_of_the_vendor_and_seen_in_error_answers(mocked):
    rsps, client = mocked
    rsps.get(f"{BASE}/events/ev_1", status=404, json=error_body("not_found"),
             headers={"Date": http_date(90)})
    with pytest.raises(NotFound):
        client.get("events", "ev_1")
    other = VendorClient(BASE, KEY, rate_limit=0)
    assert other.clock_offset() == pytest.approx(90, abs=1.5)


def test_health_reports_the_offset_from_its_fractional_time(mocked):
    rsps, client = mocked
    vendor_now = datetime.now(UTC) + timedelta(seconds=90.25)
    rsps.get(f"{BASE}/health", json={"status": "ok", "time": format_timestamp(vendor_now)})
    answer = client.health()
    assert answer["status"] == "ok" and answer["time"] == vendor_now
    assert answer["clock_offset_s"] == pytest.approx(90.25, abs=0.2)


def test_health_without_a_time_or_date_leaves_the_offset_unknown(mocked):
    rsps, client = mocked
    rsps.get(f"{BASE}/health", json={"status": "ok"})
    assert client.health()["clock_offset_s"] is None


def test_many_whole_second_samples_pin_the_offset_to_the_round_trip():
    clock = api_service.VendorClock()
    true_offset, local = 90.37, 1_800_000_000.0
    for step in range(40):  # answers at different phases of the vendor's second, 20 ms rtt
        sent = local + step * 0.13
        stamped = sent + 0.01 + true_offset
        clock.add(float(int(stamped)), 1.0, sent, sent + 0.02)
    lower, upper = clock.bounds()
    assert lower <= true_offset <= upper and upper - lower < 0.1
    assert clock.offset() == pytest.approx(true_offset, abs=0.05)


def test_a_stepped_clock_forgets_the_older_samples():
    clock = api_service.VendorClock()
    assert clock.bounds() is None and clock.offset() is None
    local = 1_800_000_000.0
    for step in range(10):
        sent = local + step * 0.3
        clock.add(float(int(sent + 90.5)), 1.0, sent, sent + 0.01)
    assert clock.offset() == pytest.approx(90.5, abs=0.6)
    sent = local + 10
    clock.add(float(int(sent)), 1.0, sent, sent + 0.01)  # the vendor's clock was set right
    assert clock.offset() == pytest.approx(0, abs=0.6)


def test_to_local_clock_is_a_pure_correction():
    stamp = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    assert api_service.to_local_clock(stamp, 90.5) == stamp - timedelta(seconds=90.5)
    assert api_service.to_local_clock(stamp, -2) == stamp + timedelta(seconds=2)
    assert api_service.to_local_clock(stamp, None) is stamp
    assert api_service.to_local_clock(None, 3.0) is None


@pytest.mark.parametrize("value, expected", [
    ("Wed, 25 Nov 2026 14:30:00 GMT", datetime(2026, 11, 25, 14, 30, tzinfo=UTC).timestamp()),
    ("garbage", None), ("", None), (None, None),
])
def test_http_date_seconds(value, expected):
    assert api_service.http_date_seconds(value) == expected


def test_clock_offset_over_real_http_from_the_servers_date(client, vendor):
    """http.server stamps every answer with its (our) clock: the offset is about 0."""
    vendor.answer(*[(200, make_event())] * 3)
    for _ in range(3):
        client.get("events", "ev_1")
    assert client.clock_offset() == pytest.approx(0, abs=1.5)
    assert client.clock.lower <= 0.05 and client.clock.upper >= -0.05


def test_proxy_and_ca_settings_are_read_from_the_environment_once(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/vendor-ca.pem")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = VendorClient(BASE, KEY, rate_limit=0)
    assert client.session.proxies.get("https") == "http://proxy.internal:3128"
    assert client.session.verify == "/etc/ssl/vendor-ca.pem" and not client.session.trust_env
    monkeypatch.setenv("NO_PROXY", "vendor.test")
    assert "https" not in VendorClient(BASE, KEY, rate_limit=0).session.proxies


def test_bodies_are_utf8_json_with_datetimes_as_rfc3339(client, vendor):
    vendor.answer((201, make_event()))
    client.create("employees", {"name": "Zoë Ångström", "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)},
                  idempotency_key="k-utf8")
    sent = vendor.requests[0]
    assert sent["body"] == {"name": "Zoë Ångström", "at": "2026-01-02T03:04:05Z"}
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"


def test_a_token_taken_before_a_hold_is_given_back_and_the_request_waits(vendor, sleeps):
    """The token bucket's wait ends inside a hold that came meanwhile: the request waits
    the hold out (it is not sent into it) and its unused token goes back to the bucket."""
    client = VendorClient(vendor.url, KEY, rate_limit=1)
    clock = FakeClock()
    client.limiter.clock, client.limiter._updated = clock, clock.now
    client.pause.clock = clock

    def sleep_then_hold(seconds):
        clock.sleep(seconds)
        if len(clock.slept) == 1:
            client.pause.hold(3)  # another thread got a 429 while this one waited
    client.limiter.sleep = sleep_then_hold
    vendor.answer((200, make_event()), (200, make_event()))
    client.get("events", "ev_1")  # the burst token
    sent_before = client.requests_sent
    client.get("events", "ev_1")  # waits 1 s for a token, then the 3 s hold
    assert clock.slept == pytest.approx([1.0]) and sleeps == [pytest.approx(3.0)]
    assert client.requests_sent == sent_before + 1 and len(vendor.requests) == 2


@pytest.mark.parametrize("skew", [90, -90])
def test_a_90_second_vendor_clock_skew_is_measured_over_real_http(skew):
    """The vendor sandbox with its clock skewed: the Date headers of a few answers, then
    /health's time, put the offset within 1.5 s of the skew."""
    from tests.helpers import API_KEY
    from tests.vendor_sandbox import VendorSandbox

    sandbox = VendorSandbox(api_key=API_KEY).start()
    try:
        answer = requests.post(f"{sandbox.control_url}/clock", json={"skew_seconds": skew})
        assert answer.json() == {"skew_seconds": skew} == {"skew_seconds": sandbox.clock_skew()}
        client = VendorClient(sandbox.base_url, API_KEY, rate_limit=0)
        list(client.iter_pages("events"))
        assert client.clock_offset() == pytest.approx(skew, abs=1.5)  # from Date alone
        answer = client.health()
        assert answer["clock_offset_s"] == pytest.approx(skew, abs=1.5)
        updated = sandbox.vendor_create("employees", {"name": "Skewed"})["updated_at"]
        local = client.vendor_to_local(parse_timestamp(updated))
        assert abs((local - datetime.now(UTC)).total_seconds()) < 1.5
    finally:
        sandbox.stop()
    assert sandbox.clock_skew() == 0


# --------------------------------------------------------------------------
# HTTP: one write a request, and what Session.send would have handled
# --------------------------------------------------------------------------

def test_a_create_goes_out_in_one_write_with_its_body(client, vendor, monkeypatch):
    """Head and JSON body in one write (urllib3 alone makes two: two wake-ups of the vendor)."""
    import http.client

    writes: list[bytes] = []
    plain_send = http.client.HTTPConnection.send
    monkeypatch.setattr(http.client.HTTPConnection, "send",
                        lambda self, data: (writes.append(data), plain_send(self, data))[1])
    vendor.answer((201, make_event()), (200, make_event()))
    client.create("employees", {"name": "Dana Reyes"}, idempotency_key="k-one-write")
    client.get("employees", "emp_1")
    assert len(writes) == 2  # one a request
    assert writes[0].startswith(b"POST /api/v1/employees HTTP/1.1\r\n")
    assert writes[0].endswith(b"\r\n\r\n" + json.dumps({"name": "Dana Reyes"}).encode())
    sent = vendor.requests[0]
    assert sent["body"] == {"name": "Dana Reyes"} and sent["headers"]["Idempotency-Key"] == "k-one-write"
    assert sent["headers"]["Content-Length"] == str(len(json.dumps({"name": "Dana Reyes"})))
    assert vendor.requests[1]["method"] == "GET" and vendor.requests[1]["body"] is None


def test_a_cookie_the_vendor_sets_is_sent_back(client, vendor):
    """The quick send skips Session.send only when it has nothing to do: a cookie set by an
    answer (a load balancer's, say) goes back on the next request."""
    vendor.answer((200, make_event(), {"Set-Cookie": "lb=node-2; Path=/"}), (200, make_event()))
    client.get("events", "ev_1")
    client.delete("events", "ev_1")
    assert vendor.requests[1]["headers"].get("Cookie") == "lb=node-2"
    assert vendor.requests[1]["headers"]["Content-Length"] == "0"
    assert vendor.requests[1]["headers"]["Authorization"] == f"Bearer {KEY}"


def test_listing_queries_are_encoded_as_requests_encodes_them(client, vendor):
    """The page token is opaque: sent back exactly, whatever characters it holds."""
    token = "a+b/c=d&e f~ü"
    vendor.answer((200, {"data": [], "next_page_token": token}),
                  (200, {"data": [], "next_sync_token": "s"}))
    list(client.iter_pages("events", limit=50, ahead=False))
    assert [r["query"] for r in vendor.requests] == [{"limit": ["50"]}, {"page_token": [token]}]
