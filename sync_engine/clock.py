"""The vendor's clock offset, the same in every process: measured by the client, shared in the DB.

The vendor stamps `updated_at` with its clock. Wherever the engine compares or stores one of
those stamps it corrects it by `vendor_offset()` (vendor minus our clock, seconds; the value
nearest zero its proven bounds allow, see `correction`): the process's own measurement
(`vendor_pacing.shared_clock`, fed by every answer's `Date`) when it has one, else the latest
one any process saved in the `vendor_clock` table (read at most every `CACHE_SECONDS`). `save_offset` writes the measurement after a run, or sooner when it moved by
more than `CHANGE_SECONDS` since the last save. Within `one_offset()` (a page being applied)
the offset is asked once and every stamp of the page is corrected by that value.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from flask import current_app, has_app_context

from models import VendorClockRow, db, utcnow
from vendor_pacing import shared_clock

log = logging.getLogger("sync_engine")

ROW = "vendor"
CACHE_SECONDS = 3.0
CHANGE_SECONDS = 0.5

_lock = threading.Lock()
_cache: dict = {}  # base URL → (offset or None, monotonic time read) from the table
_saved: dict = {}  # base URL → the offset this process last wrote
_fixed = threading.local()  # .offset: vendor_offset()'s answer inside one_offset()
_UNSET = object()


def _base_url(app) -> str:
    """The key the client's shared clock uses for this app's vendor."""
    return str(app.config.get("EXTERNAL_API_BASE_URL") or "").rstrip("/").lower()


def correction(bounds: Optional[tuple]) -> Optional[float]:
    """The offset to correct by, from its proven bounds: the value nearest zero that they
    allow (0 when the clocks may agree: whole-second `Date` headers bound the offset to
    about a second, and a stamp must not move for nothing); None when unmeasured."""
    if bounds is None:
        return None
    lower, upper = bounds
    return lower if lower > 0 else upper if upper < 0 else 0.0


def measured_offset(app) -> Optional[float]:
    """This process's own measurement of the vendor's offset, None if it has none."""
    key = _base_url(app)
    return correction(shared_clock(key).bounds()) if key else None


def stored_offset(app) -> Optional[float]:
    """The offset some process saved in `vendor_clock` (cached CACHE_SECONDS), None if none
    (or no vendor is configured here)."""
    key = _base_url(app)
    if not key:
        return None
    with _lock:
        hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[1] < CACHE_SECONDS:
        return hit[0]
    try:
        row = db.session.get(VendorClockRow, ROW)
        value = None if row is None else row.offset_s
    except Exception:  # noqa: BLE001 — a missing table (before the migration) is no offset
        log.debug("vendor clock: could not read the stored offset", exc_info=True)
        value = None
    with _lock:
        _cache[key] = (value, time.monotonic())
    return value


def vendor_offset(app=None) -> Optional[float]:
    """Vendor minus our clock in seconds: this process's measurement, else the stored one."""
    if app is None:
        fixed = getattr(_fixed, "offset", _UNSET)
        if fixed is not _UNSET:
            return fixed
        if not has_app_context():
            return None
        app = current_app._get_current_object()
    own = measured_offset(app)
    return own if own is not None else stored_offset(app)


@contextmanager
def one_offset() -> Iterator[Optional[float]]:
    """Within: `vendor_offset()` (of the current app) answers the value it had on entry, so
    that a page's objects are judged by one clock, asked once a page instead of once an
    object (45,000 times in a first pull of 45,000 objects)."""
    before = getattr(_fixed, "offset", _UNSET)
    _fixed.offset = vendor_offset() if before is _UNSET else before
    try:
        yield _fixed.offset
    finally:
        _fixed.offset = before


def save_offset(app, force: bool = False) -> Optional[float]:
    """Write this process's measurement to `vendor_clock` (after a run: `force`; otherwise only
    when it moved by more than CHANGE_SECONDS). Returns the offset written, None if none."""
    key = _base_url(app)
    clock = shared_clock(key) if key else None
    offset = correction(clock.bounds()) if clock else None
    if offset is None:
        return None
    last = _saved.get(key)
    if not force and last is not None and abs(offset - last) <= CHANGE_SECONDS:
        return None
    lower, upper = clock.bounds() or (None, None)
    try:
        row = db.session.get(VendorClockRow, ROW) or VendorClockRow(name=ROW)
        row.offset_s, row.lower_s, row.upper_s, row.measured_at = offset, lower, upper, utcnow()
        db.session.add(row)
        db.session.commit()
    except Exception:  # noqa: BLE001 — another process inserted it first: the next save wins
        db.session.rollback()
        log.debug("vendor clock: could not save the offset", exc_info=True)
        return None
    _saved[key] = offset
    with _lock:
        _cache.pop(key, None)
    return offset


def stored_row(app) -> Optional[dict]:
    """The shared row as a dict (offset, bounds, measured_at) for health pages, None if none."""
    row = db.session.get(VendorClockRow, ROW)
    if row is None:
        return None
    return {"offset_s": round(row.offset_s, 3), "lower_s": row.lower_s, "upper_s": row.upper_s,
            "measured_at": row.measured_at}
