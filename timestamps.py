"""RFC 3339 timestamps, read and written in one place: the vendor's stamps (api_service)
and a client's (models.parse_api_datetime) go through `parse_timestamp`; what the app
sends is written by `format_timestamp` (UTC, `Z`).  The standard library only.
"""
from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$"
)

_FROMISO_Z = sys.version_info >= (3, 11)
_PLAIN_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)


def parse_timestamp(value: str | datetime | None, keep_offset: bool = False) -> datetime | None:
    """Parse an RFC 3339 timestamp into an aware UTC datetime (None stays None);
    `keep_offset`: in the offset it was written with (its calendar day as written)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: an offset or Z is required")
        return value.astimezone(timezone.utc)
    if not isinstance(value, str):
        raise TypeError(f"timestamp must be a string, not {type(value).__name__}")
    if len(value) == 20 and value[19] == "Z" and _PLAIN_UTC.match(value):  # the usual shape, fast
        if _FROMISO_Z:  # Python 3.11+ reads the Z itself (tzinfo is timezone.utc)
            return datetime.fromisoformat(value)
        return datetime.fromisoformat(value[:19]).replace(tzinfo=timezone.utc)
    match = _RFC3339.match(value.strip())
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    if not zulu and not sign:
        raise ValueError(f"naive timestamp (no offset or Z): {value!r}")
    micro = int((frac or "0")[:6].ljust(6, "0"))
    offset = 0 if zulu else (int(off_h) * 60 + int(off_m)) * (1 if sign == "+" else -1)
    tz = timezone.utc if offset == 0 else timezone(timedelta(minutes=offset))
    parsed = datetime(int(year), int(month), int(day), int(hour), int(minute),
                      int(second), micro, tzinfo=tz)
    return parsed if keep_offset else parsed.astimezone(timezone.utc)


def format_timestamp(dt: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with Z (microseconds only if non-zero)."""
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a datetime, not {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("naive datetime: attach a timezone before sending it to the vendor")
    utc = dt.astimezone(timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"
