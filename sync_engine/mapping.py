"""Local rows ⇄ vendor objects: payloads, field differences, versions and timestamps.

Nothing here writes: `local_payload` (what a push sends), `remote_values` (the
columns for a vendor object), `differing_fields`/`field_differences`, `vendor_version`,
`remote_updated`, `is_newer`; and two query helpers the look-ups share (`in_`,
`rows_of`).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import select
from sqlalchemy.orm import defer

from api_service import format_timestamp, parse_timestamp
from models import Event

from vendor_pacing import to_local_clock

from .clock import vendor_offset
from .context import DATETIME_FIELDS, FIELDS


def local_payload(resource: str, row) -> dict:
    """The vendor fields of a local row (schedules name their event/employee by vendor id)."""
    if resource == "schedules":
        return {"event_id": row.event.external_id, "employee_id": row.employee.external_id,
                "start_datetime": row.start_datetime}
    return {name: getattr(row, name) for name in FIELDS[resource]}


def normalize(name: str, value: Any) -> Any:
    if name in DATETIME_FIELDS and isinstance(value, str):
        value = parse_timestamp(value)
    if isinstance(value, datetime):
        if value.tzinfo is timezone.utc:  # what parse_timestamp gives: already normal
            return value
        return value.astimezone(timezone.utc).replace(microsecond=value.microsecond)
    return value


def _remote_field(resource: str, obj: dict, name: str) -> Any:
    """A vendor field with the contract's defaults for absent optional fields."""
    if name == "active":
        return obj.get("active", True)
    value = obj.get(name)
    if name == "event_type":
        return value or "Other"
    if name in DATETIME_FIELDS or isinstance(value, datetime):  # what normalize changes
        return normalize(name, value)
    return value


def differing_fields(resource: str, row, obj: dict) -> list[str]:
    """Names of the vendor fields whose values differ between `row` and `obj` ("deleted"
    alone when the vendor deleted it)."""
    if obj.get("deleted"):
        return ["deleted"]
    return field_differences(resource, row, obj)


def field_differences(resource: str, row, obj: dict) -> list[str]:
    """Names of the vendor fields whose values differ, field by field (timestamps by instant)."""
    mine = local_payload(resource, row)
    return [name for name in FIELDS[resource]
            if normalize(name, mine[name]) != _remote_field(resource, obj, name)]


def remote_values(resource: str, obj: dict, refs) -> dict:
    """The local column values for a vendor object (refs map schedule links to local ids)."""
    if resource == "schedules":
        return {"event_id": refs.events[obj["event_id"]],
                "employee_id": refs.employees[obj["employee_id"]],
                "start_datetime": normalize("start_datetime", obj.get("start_datetime"))}
    return {name: _remote_field(resource, obj, name) for name in FIELDS[resource]}


def jsonable(obj: dict) -> dict:
    """A vendor object with datetimes as RFC 3339 text (for JSON columns and answers)."""
    return {k: (format_timestamp(v) if isinstance(v, datetime) else v) for k, v in obj.items()}


def vendor_version(obj: dict) -> Optional[int]:
    try:
        return int(obj.get("version"))
    except (TypeError, ValueError):
        return None


def remote_updated(obj: dict) -> Optional[datetime]:
    """The vendor's `updated_at` on our clock (corrected by the measured offset: see clock.py)."""
    value = obj.get("updated_at")
    if isinstance(value, str):
        try:
            value = parse_timestamp(value)
        except ValueError:
            return None
    return to_local_clock(value, vendor_offset()) if value is not None else None


def is_newer(obj: dict, known: Optional[int]) -> bool:
    """Is the vendor object's version newer than the version we last saw?"""
    version = vendor_version(obj)
    return known is None or version is None or version > known


def rows_of(model):
    """select(model) without Event.is_scheduled: the engine never reads it, and its EXISTS
    made PostgreSQL hash every schedule for each page's look-up (EXPLAIN ANALYZE)."""
    return select(model).options(defer(Event.is_scheduled)) if model is Event else select(model)
