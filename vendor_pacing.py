"""Pacing the vendor's requests, shared by every client and thread of this process:
the client-side rate limit, the pause a `Retry-After` imposes, and the vendor's clock.

* rate limit: ``TokenBucket`` and the process-wide registry ``shared_limiter``;
* ``PoolPause``: a ``Retry-After`` one answer carried holds every attempt of every
  thread and client of that vendor in the process (``shared_pause``) until it ends;
* vendor clock: ``VendorClock`` (per base URL, ``shared_clock``) bounds the vendor's
  clock offset from every answer's ``Date`` and ``/health``'s time;
  ``to_local_clock`` corrects a vendor stamp (``updated_at``) by it.

Knows no HTTP library and nothing of the app: api_service.py uses it.
"""
from __future__ import annotations

import email.utils
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

# --------------------------------------------------------------------------
# Client-side rate limit (shared by every client and thread in the process)
# --------------------------------------------------------------------------

class TokenBucket:
    """Token bucket: ``rate`` tokens/second, bursts of ``max(1, rate)``; thread-safe.

    ``clock`` and ``sleep`` are attributes so tests can use a fake clock.
    A caller reserves a token under the lock and sleeps outside it, so
    waiting callers queue fairly without holding the lock.
    """

    def __init__(self, rate: float, clock=time.monotonic, sleep=time.sleep):
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self.rate = float(rate)
        self._tokens = self.capacity
        self._updated = clock()

    @property
    def capacity(self) -> float:
        """Largest burst: one second's worth of tokens, at least one."""
        return max(1.0, self.rate)

    def set_rate(self, rate: float) -> None:
        """Change the rate (the most recent client configuration wins)."""
        with self._lock:
            self.rate = float(rate)
            self._tokens = min(self._tokens, self.capacity)

    def reserve(self) -> float:
        """Take one token; return how long the caller must wait before using it."""
        with self._lock:
            now = self.clock()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            self._updated = now
            self._tokens -= 1.0
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def refund(self) -> None:
        """Give back a token that was not used (its request was held back by a pause)."""
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + 1.0)

    def acquire(self) -> float:
        """Block until a token is available; return the time waited."""
        wait = self.reserve()
        if wait > 0:
            self.sleep(wait)
        return wait


_LIMITERS: dict[str, TokenBucket] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(key: str, rate: float) -> TokenBucket | None:
    """The process-wide bucket for ``key`` (a base URL); None when ``rate <= 0``."""
    if not rate or rate <= 0:
        return None
    with _LIMITERS_LOCK:
        bucket = _LIMITERS.get(key)
        if bucket is None:
            bucket = _LIMITERS[key] = TokenBucket(rate)
        elif bucket.rate != rate:
            bucket.set_rate(rate)
        return bucket


class PoolPause:
    """A pause that every thread sending to one vendor honours before every attempt.

    The vendor's rate limit is per key, so a ``429`` (or ``503``) with
    ``Retry-After`` ``hold``s it the moment the answer is read, whatever the
    request (retried or not, waited out or surfaced): from then on no attempt
    of any thread, retry, page-ahead fetch or other client of the same vendor
    in this process starts before it ends.  A request passes ``admit`` as the
    last step before it is handed to the connection (after its rate-limit
    token), so a token reserved before the hold cannot smuggle a request into
    the window: only requests already admitted when the answer arrived land
    inside it.  ``clock`` is an attribute for tests; ``wait`` sleeps through
    the caller's sleep function (the retry policy's ``pause``, which tests replace).
    """

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self.until = 0.0
        self.held_at: float | None = None

    def hold(self, seconds: float) -> float:
        """No attempt starts before ``seconds`` from now (the longest hold wins); returns
        the end of this hold (the caller that waits it out itself passes it to ``wait``)."""
        with self._lock:
            now = self.clock()
            mine = now + max(0.0, float(seconds))
            self.held_at = now
            if mine > self.until:
                self.until = mine  # one attribute store: admit() reads it without the lock
            return mine

    def remaining(self) -> float:
        """Seconds left of the hold (0 when none)."""
        return max(0.0, self.until - self.clock())

    def wait(self, sleep: Callable[[float], None], waited_until: float = 0.0) -> float:
        """Sleep until the hold ends, again if it was extended meanwhile; return the end
        waited for.  A hold ending by ``waited_until`` was already waited out by the caller."""
        while True:
            until = self.until
            if until <= waited_until:
                return waited_until
            left = until - self.clock()
            if left <= 0:
                return until
            sleep(left)
            waited_until = until

    def admit(self, waited_until: float = 0.0) -> bool:
        """The last check before an attempt is sent: no hold beyond ``waited_until`` runs now."""
        until = self.until
        return until <= waited_until or until <= self.clock()


_PAUSES: dict[str, PoolPause] = {}


def shared_pause(key: str) -> PoolPause:
    """The process-wide pause for ``key`` (a base URL): the vendor limits per key."""
    with _LIMITERS_LOCK:
        return _PAUSES.setdefault(key, PoolPause())


# --------------------------------------------------------------------------
# The vendor's clock (``updated_at`` is stamped by it, not by ours)
# --------------------------------------------------------------------------

class VendorClock:
    """The vendor's clock offset (vendor minus local, seconds), from the answers' times.

    An answer whose ``Date`` says ``D`` (whole seconds, truncated) was stamped at
    a vendor time in ``[D, D + 1)`` at a local instant between sending (``t0``)
    and receiving (``t1``), so the offset lies in ``[D - t1, D + 1 - t0]``; a
    ``/health`` time with fractions narrows the second to a millisecond.  Every
    sample's bounds are intersected (the tightest from answers of the last
    ``horizon`` seconds), so many 1 s samples pin the offset to about a round
    trip.  When the bounds cross (a clock was stepped) the older samples are
    forgotten.  ``offset()`` is the middle of the bounds; None until measured.
    """

    def __init__(self, horizon: float = 600.0, keep: int = 16):
        self.horizon = horizon
        self._lock = threading.Lock()
        self._samples: deque = deque(maxlen=keep)  # (lower, upper, t1) that tightened a bound
        self.lower = float("-inf")
        self.upper = float("inf")

    def add(self, vendor_time: float, resolution: float, sent: float, received: float) -> None:
        """One answer stamped ``vendor_time`` (epoch s, true time within ``resolution``
        after it), sent and received at local epoch times ``sent`` and ``received``."""
        lower, upper = vendor_time - received, vendor_time + resolution - sent
        with self._lock:
            fresh = self._samples and received - self._samples[-1][2] < self.horizon / 8
            if fresh and lower <= self.lower and upper >= self.upper:
                return  # nothing new: the usual case, kept cheap
            self._samples.append((lower, upper, received))
            self._recompute(received)

    def _recompute(self, now: float) -> None:
        """The intersection of recent samples, newest first, stopping where it would cross."""
        lower, upper = float("-inf"), float("inf")
        for s_lower, s_upper, at in reversed(self._samples):
            if now - at > self.horizon or max(lower, s_lower) > min(upper, s_upper):
                break
            lower, upper = max(lower, s_lower), min(upper, s_upper)
        self.lower, self.upper = lower, upper

    def bounds(self) -> tuple[float, float] | None:
        """The offset's proven range ``(lower, upper)`` in seconds, None until measured."""
        lower, upper = self.lower, self.upper
        if lower == float("-inf") or upper == float("inf"):
            return None
        return lower, upper

    def offset(self) -> float | None:
        """Vendor minus local clock in seconds (middle of the bounds), None until measured."""
        lower, upper = self.lower, self.upper
        if lower == float("-inf") or upper == float("inf"):
            return None
        return (lower + upper) / 2


_CLOCKS: dict[str, VendorClock] = {}


def shared_clock(key: str) -> VendorClock:
    """The process-wide clock estimate for ``key`` (a base URL)."""
    clock = _CLOCKS.get(key)  # the usual case: no lock, and no new clock built to be dropped
    if clock is not None:
        return clock
    with _LIMITERS_LOCK:
        return _CLOCKS.setdefault(key, VendorClock())


def to_local_clock(dt: datetime | None, offset: float | None) -> datetime | None:
    """A vendor timestamp corrected to our clock (``offset``: vendor minus local, seconds);
    unchanged while the offset is unknown, None stays None."""
    if dt is None or not offset:
        return dt
    return dt - timedelta(seconds=offset)


_DATE_CACHE: dict[str, float] = {}


def http_date_seconds(value: str | None) -> float | None:
    """An HTTP ``Date`` header as epoch seconds (None when absent or unreadable); cached,
    since every answer within a second carries the same text."""
    if not value:
        return None
    seconds = _DATE_CACHE.get(value)
    if seconds is None:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)  # HTTP dates are GMT
        if len(_DATE_CACHE) > 64:
            _DATE_CACHE.clear()
        seconds = _DATE_CACHE[value] = parsed.timestamp()
    return seconds
