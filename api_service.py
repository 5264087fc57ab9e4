"""HTTP client for the vendor's scheduling API (see docs/vendor-api.md).

This module knows HTTP and the vendor's contract, nothing about the database.

Layout, top to bottom:

* timestamps: ``parse_timestamp``, ``format_timestamp``, ``parse_object``
* errors: ``VendorError`` and its tree, ``error_from_response`` (the one place
  that maps a status and an ``error.code`` to an exception)
* pacing (vendor_pacing.py, re-exported here): the rate limit (``TokenBucket``,
  ``shared_limiter``), the pool-wide pause after a ``Retry-After`` (``PoolPause``,
  ``shared_pause``) and the vendor's clock (``VendorClock``, ``shared_clock``,
  ``to_local_clock``)
* retry policy: ``RetryPolicy`` (urllib3 ``Retry``), built by ``build_retry``,
  and ``VendorAdapter``, which decides per request whether it may be retried
* ``VendorClient``: the methods the sync engine calls; ``iter_pages`` fetches
  one page ahead while the caller applies the current one, ``run_concurrently``
  sends over a small pool of keep-alive connections (``workers``).

The retry policy lives in one place.  ``build_retry`` makes the only retrying
``Retry``; ``RetryPolicy.get_backoff_time`` and ``RetryPolicy.jitter`` compute
the delay (tests pin ``jitter``), ``RetryPolicy.pause`` is the only sleep
between attempts (tests replace it), and ``is_retry_safe`` is the only rule
for which requests may be repeated: GET/HEAD/OPTIONS, DELETE, PATCH with
``If-Match`` and POST with ``Idempotency-Key``.  Everything else is sent once.
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

import metrics
from vendor_http import QuickSend, use_one_write
from vendor_listing import ListingAhead
from vendor_pacing import (  # noqa: F401 - re-exported: part of the client's interface
    PoolPause,
    TokenBucket,
    VendorClock,
    _CLOCKS,
    _DATE_CACHE,
    _LIMITERS,
    _LIMITERS_LOCK,
    _PAUSES,
    http_date_seconds,
    shared_clock,
    shared_limiter,
    shared_pause,
    to_local_clock,
)

from timestamps import format_timestamp, parse_timestamp  # noqa: E402,F401 - re-exported

log = logging.getLogger("api_service")

TIMESTAMP_FIELDS = ("updated_at", "start_datetime", "due_datetime")
RESOURCES = ("employees", "events", "schedules")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
REQUEST_ID_HEADERS = ("X-Request-Id", "Request-Id", "X-Correlation-Id")


# --------------------------------------------------------------------------
# Timestamps: timestamps.py reads and writes RFC 3339 (re-exported here)
# --------------------------------------------------------------------------

def parse_object(obj: dict) -> dict:
    """Return a copy of a vendor object with its timestamp fields parsed."""
    out = dict(obj)
    for field in TIMESTAMP_FIELDS:
        if isinstance(out.get(field), str):
            out[field] = parse_timestamp(out[field])
    return out


_JSON_ENCODER = jsonlib.JSONEncoder(ensure_ascii=False)  # json.dumps with options builds one per call


def _encode(value: Any) -> Any:
    """Make a request body JSON-ready: datetimes become RFC 3339 with Z."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, Mapping):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item) for item in value]
    return value


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

class VendorError(Exception):
    """Any failure talking to the vendor; keeps status, code, message, details, request id."""

    is_transient = False

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 details: dict | None = None, request_id: str | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details
        self.request_id = request_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [f"HTTP {self.status}" if self.status is not None else "no response"]
        if self.code:
            parts.append(f"code={self.code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return f"{self.message} ({', '.join(parts)})"


class AuthError(VendorError):
    """401 or 403: the key is missing, wrong or not allowed."""


class NotFound(VendorError):
    """404: no such object (or it was deleted)."""


class Conflict(VendorError):
    """409 that is neither ``duplicate`` nor ``in_use``."""


class Duplicate(Conflict):
    """409 duplicate: ``existing_id`` names the object that already holds the slot."""

    @property
    def existing_id(self) -> str | None:
        """The id of the live object that already holds the unique slot."""
        return (self.details or {}).get("existing_id")


class InUse(Conflict):
    """409 in_use: ``schedule_id`` names the live schedule blocking a delete."""

    @property
    def schedule_id(self) -> str | None:
        """The id of the live schedule that must be deleted first."""
        return (self.details or {}).get("schedule_id")


class VersionMismatch(VendorError):
    """412: If-Match named an old version; ``current`` is the vendor's object (parsed)."""

    def __init__(self, *args, current: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.current = current


class ValidationFailed(VendorError):
    """422 (also ``idempotency_key_reused``); ``details`` maps fields to messages."""


class BadRequest(VendorError):
    """400 other than invalid_page_token."""


class InvalidPageToken(BadRequest):
    """400 invalid_page_token."""


class SyncTokenExpired(VendorError):
    """410: the sync token is unknown or too old; do a full listing."""


class RateLimited(VendorError):
    """429 once retries ran out (or Retry-After was too long to wait); see ``retry_after``."""

    is_transient = True


class TransientError(VendorError):
    """5xx, timeout or dropped connection once retries ran out; status None without a response."""

    is_transient = True


_BY_STATUS: dict[int, type[VendorError]] = {
    400: BadRequest, 401: AuthError, 403: AuthError, 404: NotFound, 408: TransientError,
    409: Conflict, 410: SyncTokenExpired, 412: VersionMismatch, 422: ValidationFailed,
    429: RateLimited,
}
_BY_CODE: dict[tuple[int, str], type[VendorError]] = {
    (400, "invalid_page_token"): InvalidPageToken,
    (409, "duplicate"): Duplicate,
    (409, "in_use"): InUse,
}


def _redact(value: Any, secrets: tuple[str, ...]) -> Any:
    """Remove secrets and bearer tokens from text (recursively in dicts and lists)."""
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, "[REDACTED]")
        return re.sub(r"(?i)(bearer\s+)\S+", r"\1[REDACTED]", value)
    if isinstance(value, dict):
        return {key: _redact(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item, secrets) for item in value]
    return value


def _request_id(response: requests.Response) -> str | None:
    """The vendor's request id from the response headers, if any."""
    for name in REQUEST_ID_HEADERS:
        if response.headers.get(name):
            return response.headers[name]
    return None


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (number or HTTP date), or None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(Retry(0).parse_retry_after(value))
    except Exception:  # noqa: BLE001 - an unreadable header is just absent
        return None


def error_from_response(response: requests.Response, secrets: tuple[str, ...] = ()) -> VendorError:
    """Map a non-2xx response to the exception for its status and ``error.code``."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), str) else None
    details = error.get("details") if isinstance(error.get("details"), dict) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    if not message:
        snippet = " ".join((response.text or "").split())[:200]
        message = f"vendor answered {status} {response.reason or ''}".strip()
        message += f": {snippet}" if snippet else ""
    cls = _BY_CODE.get((status, code or "")) or _BY_STATUS.get(status)
    if cls is None:
        cls = TransientError if status >= 500 else VendorError
    kwargs: dict[str, Any] = dict(
        status=status, code=code, details=_redact(details, secrets),
        request_id=_request_id(response), retry_after=_retry_after(response),
    )
    if cls is VersionMismatch:
        current = body.get("current") if isinstance(body, dict) else None
        kwargs["current"] = parse_object(current) if isinstance(current, dict) else None
    return cls(_redact(message, secrets), **kwargs)


def error_from_exception(exc: Exception, secrets: tuple[str, ...] = ()) -> VendorError:
    """Wrap a requests/urllib3 exception so callers never see one."""
    transient = (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError,
                 requests.exceptions.ChunkedEncodingError,
                 requests.exceptions.ContentDecodingError, Urllib3Error, OSError)
    cls = TransientError if isinstance(exc, transient) else VendorError
    code = "network_error" if cls is TransientError else "client_error"
    text = _redact(f"{type(exc).__name__}: {exc}", secrets)
    return cls(f"request to the vendor failed: {text}", code=code)


# --------------------------------------------------------------------------
# Retry policy
# --------------------------------------------------------------------------

class RetryPolicy(Retry):
    """urllib3 ``Retry`` with our backoff, Retry-After cap, logging and hooks.

    * Delay before retry *n* (1-based): ``min(backoff_max, backoff_factor *
      2**(n-1))`` plus ``jitter()`` (uniform in ``[0, backoff_jitter)``),
      capped at ``backoff_max``.  Unlike plain urllib3, the first retry
      waits too.
    * ``Retry-After`` on 429/503 is honoured exactly instead of the backoff.
      A ``Retry-After`` longer than ``backoff_max`` is *not* waited for: the
      response is handed back at once and surfaces as ``RateLimited`` (or
      ``TransientError`` for 503) with ``retry_after`` set, so a sync run is
      never blocked for minutes; the caller decides when to come back.
      Either way the pool is held for it (``hold_pool``) as the answer is read,
      and while a hold beyond ``backoff_max`` runs, the client's requests fail
      fast with ``RateLimited`` without being sent.
    * ``observer`` (the client) is told of every retry (``on_retry``: count
      and INFO log) and asked to wait out the pool pause and throttle before
      it is sent (``before_retry``).
    """

    RETRY_AFTER_STATUS_CODES = RETRY_AFTER_STATUSES

    def __init__(self, *args, observer: Any = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.observer = observer

    def new(self, **kw: Any) -> "RetryPolicy":
        """Copy, carrying the observer along (urllib3 makes a new Retry per attempt)."""
        retry = super().new(**kw)
        retry.observer = self.observer
        return retry

    def jitter(self) -> float:
        """Random extra delay in ``[0, backoff_jitter)``; tests pin this."""
        return random.random() * self.backoff_jitter

    def get_backoff_time(self) -> float:
        """Exponential backoff with jitter and a cap, from the first retry on."""
        failures = len(self.history)
        if failures == 0:
            return 0.0
        delay = self.backoff_factor * (2 ** (failures - 1)) + self.jitter()
        return float(max(0.0, min(self.backoff_max, delay)))

    def retry_after_seconds(self, response: Any) -> float | None:
        """Retry-After of a 429/503 response in seconds, None if absent or unreadable."""
        if response is None or not self.respect_retry_after_header:
            return None
        if getattr(response, "status", None) not in self.RETRY_AFTER_STATUS_CODES:
            return None
        try:
            return self.get_retry_after(response)
        except Exception:  # noqa: BLE001 - unreadable header: fall back to backoff
            return None

    def pause(self, seconds: float) -> None:
        """The only sleep between attempts; tests replace it."""
        time.sleep(seconds)

    def sleep(self, response: Any = None) -> None:
        """Wait before the next attempt: Retry-After (the pool was held when the answer
        came, in ``increment``) or backoff; then the pool pause and the rate limit."""
        delay = self.retry_after_seconds(response)
        if delay is None:
            delay = self.get_backoff_time()
        if delay > 0:
            self.pause(delay)
        if self.observer is not None:
            self.observer.before_retry()

    def increment(self, method=None, url=None, response=None, error=None,
                  _pool=None, _stacktrace=None) -> "RetryPolicy":
        """Count a failed attempt; hold the pool for its Retry-After at once (every
        thread's next attempt waits); refuse to wait for one beyond backoff_max."""
        if self.observer is not None:
            self.observer.attempt_ended(method, getattr(response, "status", None))
        wait = self.retry_after_seconds(response)
        if wait is not None and self.observer is not None:
            self.observer.hold_pool(wait)
        if wait is not None and wait > self.backoff_max:
            raise MaxRetryError(_pool, url, ResponseError(  # type: ignore[arg-type]
                f"Retry-After {wait:.0f}s exceeds backoff_max {self.backoff_max}s"))
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        if self.observer is not None:
            self.observer.on_retry(method, url, _cause(response, error), len(retry.history),
                                   len(retry.history) + (retry.total or 0))
        return retry


def _cause(response: Any, error: Exception | None) -> str:
    """Why an attempt failed, for the retry log line: 'HTTP 503' or the error's class."""
    if error is not None:
        return type(error).__name__
    return f"HTTP {getattr(response, 'status', '?')}"


def build_retry(max_retries: int, backoff_factor: float, backoff_max: float,
                observer: Any = None) -> RetryPolicy:
    """Build the retry policy for safe requests (the single place it is configured).

    ``max_retries`` retries in all, for 429/500/502/503/504, refused or timed-out
    connections, read timeouts and dropped connections.  Other errors (TLS
    failures) are not retried.  Redirects are not followed.  The final response
    is returned (``raise_on_status=False``) so ``error_from_response`` maps it.
    """
    return RetryPolicy(
        total=max(0, int(max_retries)),
        connect=None, read=None, status=None, other=0,
        redirect=False,
        allowed_methods=None,  # the adapter already decided the request is safe
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        backoff_jitter=backoff_factor,
        respect_retry_after_header=True,
        raise_on_status=False,
        observer=observer,
    )


NO_RETRY = Retry(total=0, read=False, redirect=False, raise_on_status=False)


def is_retry_safe(request: requests.PreparedRequest) -> bool:
    """May this request be sent again after a lost answer? (GET, DELETE, keyed POST, If-Match PATCH)."""
    method = (request.method or "").upper()
    if method in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return True
    if method == "POST":
        return bool(request.headers.get("Idempotency-Key"))
    if method == "PATCH":
        return bool(request.headers.get("If-Match"))
    return False


class VendorAdapter(HTTPAdapter):
    """Pooled adapter that throttles every attempt and retries only safe requests.

    Safe requests go through this adapter with the ``RetryPolicy``; unsafe
    ones through a twin adapter with ``NO_RETRY`` that shares the same
    connection pool.  Nothing is mutated per request, so one adapter serves
    many threads.
    """

    def __init__(self, retry: RetryPolicy, observer: Any, pool_maxsize: int = 10):
        super().__init__(pool_connections=pool_maxsize, pool_maxsize=pool_maxsize,
                         max_retries=retry)
        self.observer = observer
        self.once = HTTPAdapter(pool_connections=pool_maxsize, pool_maxsize=pool_maxsize,
                                max_retries=NO_RETRY)
        self.once.poolmanager.clear()
        self.once.poolmanager = self.poolmanager

    def init_poolmanager(self, *args, **kwargs):
        """requests' pool manager, its connections writing head and body at once."""
        super().init_poolmanager(*args, **kwargs)
        use_one_write(self.poolmanager)
        self.pools = {}  # (scheme://host:port, verify, cert) -> urllib3 pool, without a proxy

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        """The pool of the request's host, remembered while it stays open (requests parses
        the URL three times to find it again each request); through a proxy as requests does."""
        if proxies:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        key = ("/".join(request.url.split("/", 3)[:3]), verify, cert)
        pool = self.pools.get(key)
        if pool is None or pool.pool is None:  # closed (the adapter's, or the manager evicted it)
            pool = self.pools[key] = super().get_connection_with_tls_context(request, verify,
                                                                             None, cert)
        return pool

    def request_url(self, request, proxies):
        """The path to send; as requests says it (a proxy may need the whole URL)."""
        if proxies:
            return super().request_url(request, proxies)
        url = request.path_url
        return f"/{url.lstrip('/')}" if url.startswith("//") else url

    def send(self, request, *args, **kwargs):
        """Throttle and count the first attempt, then send with the fitting retry policy;
        a final 429/503 with Retry-After (not retried) holds the pool too."""
        self.observer.before_attempt()
        try:
            if is_retry_safe(request):
                response = super().send(request, *args, **kwargs)
            else:
                response = self.once.send(request, *args, **kwargs)
        except BaseException:
            self.observer.attempt_ended(request.method, None)  # no answer (or retries spent)
            raise
        self.observer.attempt_ended(request.method, response.status_code)
        if response.status_code in RETRY_AFTER_STATUSES:
            self.observer.on_final_answer(response)
        return response


# --------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------

@dataclass
class Page:
    """One page of a listing; only the last page has ``next_sync_token``."""

    items: list[dict]
    next_page_token: str | None
    next_sync_token: str | None


class VendorClient:
    """Client for the vendor API: one pooled session, retries, rate limit, typed errors."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0,
                 connect_timeout: float = 3.05, max_retries: int = 5, rate_limit: float = 10.0,
                 backoff_factor: float = 0.5, backoff_max: float = 30.0, pool_maxsize: int = 10,
                 concurrency: int = 4):
        if not base_url:
            raise ValueError("base_url is required (EXTERNAL_API_BASE_URL)")
        if not api_key:
            raise ValueError("api_key is required (EXTERNAL_API_KEY)")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = (float(connect_timeout), float(timeout))
        self.max_retries = int(max_retries)
        self.limiter = shared_limiter(self.base_url.lower(), float(rate_limit or 0))
        self.pause = shared_pause(self.base_url.lower())
        self.clock = shared_clock(self.base_url.lower())
        # requests in flight at once: never more than the rate limit allows in a second
        self.workers = max(1, int(concurrency or 1))
        if rate_limit and rate_limit > 0:
            self.workers = max(1, min(self.workers, int(rate_limit)))
        pool_maxsize = max(pool_maxsize, self.workers + 1)  # + the pull's page-ahead fetch
        self.requests_sent = 0
        self._count_lock = threading.Lock()
        self._local = threading.local()
        self._first_pages: dict = {}  # (resource, sync_token, limit) -> ListingAhead (start_listings)
        self.retry = build_retry(max_retries, backoff_factor, backoff_max, observer=self)
        self.session = requests.Session()
        self.session.headers.update({
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": "scheduler-sync/1 (+api_service.py)",
        })
        _settings_from_environment(self.session, self.base_url)
        adapter = VendorAdapter(self.retry, observer=self, pool_maxsize=pool_maxsize)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._quick = QuickSend(self.session, self.base_url)

    @classmethod
    def from_config(cls, config: Mapping) -> "VendorClient":
        """The one builder from EXTERNAL_API_* settings (e.g. a Flask ``app.config``).

        An unset or empty setting keeps the constructor's default; a bad value
        names the setting.
        """
        options = {name: value for name, value in (
            (option, _setting(config, setting, kind)) for option, setting, kind in _SETTINGS)
            if value is not None}
        if "timeout" in options:
            options["connect_timeout"] = min(3.05, options["timeout"])
        return cls(config.get("EXTERNAL_API_BASE_URL") or "", config.get("EXTERNAL_API_KEY") or "",
                   **options)

    def __repr__(self) -> str:
        return f"VendorClient({self.base_url!r})"

    def __enter__(self) -> "VendorClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Close the session and its pooled connections (and stop listings never read)."""
        listings, self._first_pages = self._first_pages, {}
        for listing in listings.values():
            listing.close()
        self.session.close()

    # -- hooks called by VendorAdapter and RetryPolicy ----------------------

    def _count_attempt(self) -> None:
        """Count one attempt, process-wide for this client and per request for the log."""
        with self._count_lock:
            self.requests_sent += 1
        self._local.attempts = getattr(self._local, "attempts", 0) + 1

    def before_attempt(self) -> None:
        """Called before the first attempt of every request: pool pause, rate limit, count."""
        self._local.waited_until = 0.0
        self._admit(0.0)
        self._count_attempt()

    def _admit(self, waited_until: float) -> None:
        """Wait out the pool pause, take a rate-limit token, and go only if no hold came
        meanwhile (a token reserved before a hold must not send into it); a hold longer
        than ``backoff_max`` is not waited for: RateLimited, nothing sent."""
        pause, limiter = self.pause, self.limiter
        while True:
            if pause.until > waited_until:
                left = pause.remaining()
                if left > self.retry.backoff_max:
                    raise RateLimited(
                        f"the vendor asked this client to wait {left:.0f}s (Retry-After); "
                        "the request was not sent", code="rate_limited", retry_after=left)
                waited_until = pause.wait(self.retry.pause, waited_until)
            if limiter is not None:
                limiter.acquire()
            if pause.admit(waited_until):
                self._local.sent_at = time.time()  # for the clock offset's bounds
                self._local.attempt_at = time.monotonic()  # for the attempt's metrics
                return
            if limiter is not None:
                limiter.refund()  # a hold came while this thread waited for its token

    def attempt_ended(self, method: str | None, status: int | None) -> None:
        """One attempt answered (``status``) or not (None): observed once in the metrics,
        timed from the moment it was let through to the vendor."""
        started = getattr(self._local, "attempt_at", None)
        if started is None:
            return
        self._local.attempt_at = None
        metrics.observe_vendor(method or "", status, time.monotonic() - started)

    def hold_pool(self, seconds: float) -> None:
        """Called the moment a 429/503 with Retry-After is read: every worker waits it out."""
        self._local.waited_until = self.pause.hold(seconds)

    def on_final_answer(self, response: requests.Response) -> None:
        """A 429/503 handed back without a retry (sent once, or retries spent): hold the
        pool for its Retry-After, if it has one."""
        seconds = _retry_after(response)
        if seconds is not None:
            self.pause.hold(seconds)

    def on_retry(self, method, url, cause, number, limit) -> None:
        """Called when a retry has been decided: count it and log one INFO line."""
        self._count_attempt()
        path = str(url or "").split("?", 1)[0]
        log.info("retrying %s %s after %s (retry %d of %d)", method, path, cause, number, limit)

    def before_retry(self) -> None:
        """Called after the backoff, just before a retry is sent: pool pause (beyond the
        Retry-After this thread just waited out) and rate limit."""
        self._admit(getattr(self._local, "waited_until", 0.0))
        self._local.waited_until = 0.0

    # -- low level ----------------------------------------------------------

    def url(self, path: str) -> str:
        """Absolute URL for a path relative to the base URL."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, json: Any = None,
                headers: Mapping[str, str] | None = None,
                params: Mapping[str, Any] | None = None) -> requests.Response:
        """Send one request (retried only if safe); return the 2xx response or raise VendorError."""
        method = method.upper()
        send_headers = dict(headers or {})
        body = None
        if json is not None:
            body = _JSON_ENCODER.encode(_encode(json)).encode("utf-8")
            send_headers.setdefault("Content-Type", "application/json")
        self._local.attempts = 0
        started = time.monotonic()
        try:
            response = self._send(method, path, send_headers, body, params)
        except (requests.RequestException, Urllib3Error, OSError) as exc:
            self._log_request(method, path, type(exc).__name__, started)
            raise error_from_exception(exc, (self._api_key,)) from exc
        self._log_request(method, path, response.status_code, started)
        self._sample_clock(response)
        if not 200 <= response.status_code < 300:
            raise error_from_response(response, (self._api_key,))
        return response

    def _send(self, method: str, path: str, headers: dict, body: bytes | None,
              params: Mapping[str, Any] | None) -> requests.Response:
        """Prepare with the session's headers and send through it, without
        ``Session.request``'s per-call merging (proxies and CA bundle were read from the
        environment once, in ``_settings_from_environment``); through ``QuickSend`` when the
        session has no auth, hooks or cookies for ``Session.send`` to handle."""
        if self._quick.usable():
            return self._quick.send(method, path, headers, body, params, self.timeout)
        session = self.session
        prepared = requests.PreparedRequest()
        prepared.prepare(method=method, url=self.url(path), headers={**session.headers, **headers},
                         data=body, params=params, cookies=session.cookies)
        return session.send(prepared, timeout=self.timeout, allow_redirects=False,
                            proxies=session.proxies, verify=session.verify, stream=False)

    def _log_request(self, method: str, path: str, outcome: Any, started: float) -> None:
        """One DEBUG line per request: method, path, outcome, duration, attempts."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        log.debug("%s %s -> %s in %.1f ms (%d attempt(s))", method, "/" + path.lstrip("/"),
                  outcome, (time.monotonic() - started) * 1000,
                  getattr(self._local, "attempts", 0))

    def _sample_clock(self, response: requests.Response) -> None:
        """Feed an answer's ``Date`` (the vendor's clock, whole seconds) to the offset."""
        vendor = http_date_seconds(response.headers.get("Date"))
        sent = getattr(self._local, "sent_at", None)
        if vendor is not None and sent is not None:
            self.clock.add(vendor, 1.0, sent, time.time())

    def clock_offset(self) -> float | None:
        """The vendor's clock minus ours in seconds (process-wide for this base URL), None
        until an answer with a ``Date`` header or a /health time has been seen."""
        return self.clock.offset()

    def vendor_to_local(self, dt: datetime | None) -> datetime | None:
        """A vendor timestamp (``updated_at``) corrected to our clock by the measured offset."""
        return to_local_clock(dt, self.clock.offset())

    def _json(self, response: requests.Response) -> Any:
        """The response body as JSON, or VendorError if it is not JSON."""
        try:
            return response.json()
        except ValueError:
            raise VendorError("vendor answered with a body that is not JSON",
                              status=response.status_code, code="invalid_response",
                              request_id=_request_id(response)) from None

    def _object(self, response: requests.Response) -> dict:
        """The response body as a parsed vendor object."""
        body = self._json(response)
        if not isinstance(body, dict):
            raise VendorError("vendor answered with JSON that is not an object",
                              status=response.status_code, code="invalid_response",
                              request_id=_request_id(response))
        return parse_object(body)

    # -- the contract -------------------------------------------------------

    def health(self) -> dict:
        """GET /health: the vendor's status, its clock, our round-trip latency and the
        vendor's clock offset (``clock_offset_s``: vendor minus local, None if unknown)."""
        started = time.monotonic()
        response = self.request("GET", "/health")
        received = time.time()
        latency = (time.monotonic() - started) * 1000
        body = self._json(response)
        body = body if isinstance(body, dict) else {}
        text = body.get("time")
        vendor_time = parse_timestamp(text)
        sent = getattr(self._local, "sent_at", None)
        if vendor_time is not None and sent is not None:
            resolution = 0.001 if "." in text else 1.0  # whole seconds: truncated, like Date
            self.clock.add(vendor_time.timestamp(), resolution, sent, received)
        offset = self.clock.offset()
        return {"status": body.get("status"), "time": vendor_time,
                "latency_ms": round(latency, 1),
                "clock_offset_s": None if offset is None else round(offset, 3)}

    def get(self, resource: str, id: str) -> dict:
        """GET /{resource}/{id}; NotFound when missing or deleted."""
        return self._object(self.request("GET", _item_path(resource, id)))

    def create(self, resource: str, data: dict, idempotency_key: str | None = None) -> dict:
        """POST /{resource} with an Idempotency-Key (a new uuid4 unless given)."""
        key = idempotency_key or str(uuid.uuid4())
        response = self.request("POST", _collection_path(resource), json=data,
                                headers={"Idempotency-Key": key})
        return self._object(response)

    def update(self, resource: str, id: str, data: dict, if_match: int | None = None) -> dict:
        """PATCH /{resource}/{id}; with ``if_match`` it is conditional (and retried)."""
        headers = {"If-Match": f'"{int(if_match)}"'} if if_match is not None else None
        return self._object(self.request("PATCH", _item_path(resource, id), json=data,
                                         headers=headers))

    def delete(self, resource: str, id: str, if_match: int | None = None) -> None:
        """DELETE /{resource}/{id}; NotFound when already gone (callers decide what it means)."""
        headers = {"If-Match": f'"{int(if_match)}"'} if if_match is not None else None
        self.request("DELETE", _item_path(resource, id), headers=headers)

    def iter_pages(self, resource: str, sync_token: str | None = None,
                   limit: int = 100, ahead: bool = True) -> Iterator[Page]:
        """Yield every page of a listing, following next_page_token to the end (the first
        request sends ``limit`` and ``sync_token``, later ones only ``page_token``); with
        ``ahead`` the next page is asked for while the caller works on this one.  A listing
        ``start_listings`` began is read from there.  Close it to stop early."""
        if not 1 <= int(limit) <= 500:
            raise ValueError("limit must be between 1 and 500")
        params: dict[str, Any] = {"limit": int(limit)}
        if sync_token:
            params["sync_token"] = sync_token
        path = _collection_path(resource)

        def fetch(query: dict) -> Page:
            return _page(self._json(self.request("GET", path, params=query)))

        started = self._first_pages.pop((resource, sync_token or None, int(limit)), None)
        if started is not None:  # start_listings: followed ahead already
            yield from started.pages()
            return
        seen: set[str] = set()
        future = None
        try:
            page = fetch(params)
            while True:
                token = page.next_page_token
                if token in seen:
                    raise VendorError("vendor repeated a page token; stopping the listing",
                                      code="page_token_loop")
                if token:
                    seen.add(token)
                    if ahead:
                        future = _helpers().submit(fetch, {"page_token": token})
                yield page
                if not token:
                    return
                page, future = (future.result() if future is not None
                                else fetch({"page_token": token})), None
        finally:
            if future is not None and not future.cancel():
                futures_wait([future])  # stopped early: the page in flight ends first

    def start_listings(self, listings: Iterable[tuple[str, str | None, int]]) -> None:
        """Follow every ``(resource, sync_token, limit)`` listing now, all at once, each on a
        thread of its own up to ``vendor_listing.DEPTH`` pages ahead (within the rate limit
        and the pool pause: every page goes through ``request``); ``iter_pages`` with the same
        arguments then reads it (an error, such as an expired token, is raised there).  A
        first pull lists the resources side by side while the caller applies them in order."""
        for resource, token, limit in listings:
            params: dict[str, Any] = {"limit": int(limit)}
            if token:
                params["sync_token"] = token
            path = _collection_path(resource)
            self._first_pages[(resource, token or None, int(limit))] = ListingAhead(
                lambda query, path=path: _page(self._json(self.request("GET", path,
                                                                       params=query))),
                params, lambda: VendorError("vendor repeated a page token; stopping the listing",
                                            code="page_token_loop"),
                name=f"vendor-listing-{resource}")

    def run_concurrently(self, send: Callable[[Any], Any], items: Iterable[Any],
                         stop: Callable[[], bool] = lambda: False
                         ) -> Iterator[tuple[Any, Any, BaseException | None]]:
        """``send(item)`` for each item over ``workers`` threads (keep-alive connections of
        this client's pool); yields ``(item, result, error)`` in the items' order.

        At most ``workers`` sends run at once (and as many wait their turn);
        ``stop()`` is asked before each new one is queued (true: no more are
        queued, those queued are still yielded).  Closing the iterator early
        (``contextlib.closing``) cancels the queued ones and waits for those
        running.  Every send shares the rate limit and the pool pause.  With one
        worker the sends run in the calling thread.
        """
        items = iter(items)
        if self.workers <= 1:
            for item in items:
                if stop():
                    return
                try:
                    yield item, send(item), None
                except Exception as exc:  # noqa: BLE001 - handed to the caller
                    yield item, None, exc
            return
        window: deque = deque()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="vendor-send")
        try:
            for item in items:
                if stop():
                    break
                window.append((item, pool.submit(send, item)))
                if len(window) >= 2 * self.workers:  # a few queued: no worker idles
                    yield _outcome(*window.popleft())
            while window:
                yield _outcome(*window.popleft())
        finally:  # closed early: the queued ones are never sent, those in flight finish
            pool.shutdown(wait=True, cancel_futures=True)


def _settings_from_environment(session: requests.Session, url: str) -> None:
    """Read the proxy and CA-bundle settings from the environment once, as requests would
    on every call (scanning ``os.environ`` twice per request, a fifth of its cost)."""
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True and url.lower().startswith("https:"):
        session.verify = bundle
    session.trust_env = False


_HELPERS: list = []


def _helpers() -> ThreadPoolExecutor:
    """The process's threads for listing requests sent ahead (first pages, the next page):
    kept between runs, since starting threads cost more than a no-op sync's requests."""
    with _LIMITERS_LOCK:
        if not _HELPERS:
            _HELPERS.append(ThreadPoolExecutor(8, thread_name_prefix="vendor-ahead"))
        return _HELPERS[0]


def _outcome(item: Any, future) -> tuple[Any, Any, BaseException | None]:
    """(item, result, None) or (item, None, the exception) of a finished send."""
    error = future.exception()
    return (item, None, error) if error is not None else (item, future.result(), None)


# (constructor option, setting, type) read by VendorClient.from_config
_SETTINGS = (
    ("timeout", "EXTERNAL_API_TIMEOUT_SECONDS", float),
    ("max_retries", "EXTERNAL_API_MAX_RETRIES", int),
    ("rate_limit", "EXTERNAL_API_RATE_LIMIT", float),
    ("concurrency", "EXTERNAL_API_CONCURRENCY", int),
    ("backoff_factor", "EXTERNAL_API_BACKOFF_FACTOR", float),
    ("backoff_max", "EXTERNAL_API_BACKOFF_MAX", float),
)


def _setting(config: Mapping, name: str, kind: type) -> Any:
    """A typed setting, None when unset or empty; a bad value names the setting."""
    value = config.get(name)
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _collection_path(resource: str) -> str:
    """'/events' for 'events'; ValueError for an unknown resource."""
    if resource not in RESOURCES:
        raise ValueError(f"unknown resource {resource!r}; expected one of {RESOURCES}")
    return f"/{resource}"


def _item_path(resource: str, id: str) -> str:
    """'/events/<id>' with the opaque id percent-encoded."""
    if id is None or str(id) == "":
        raise ValueError("id is required")
    return f"{_collection_path(resource)}/{quote(str(id), safe='')}"


def _page(body: Any) -> Page:
    """A listing response body as a Page (items parsed, tombstones kept)."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise VendorError("listing response has no 'data' list", code="invalid_response")
    items = [parse_object(item) for item in body["data"] if isinstance(item, dict)]
    return Page(items=items, next_page_token=body.get("next_page_token") or None,
                next_sync_token=body.get("next_sync_token") or None)
