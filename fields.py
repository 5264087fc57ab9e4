"""Each field's limits, read from the model columns: one home for the rules every input path
checks (the JSON API, the page forms, the CSV import; the webhook can use it too).

`limits(resource)` gives {field: Limits} for the fields a client may write:
the kind of value, whether null is allowed, a text column's `String(n)`
length, an integer column's range (the database's 32-bit INTEGER, narrowed
by `MINIMUMS`) and a closed set of choices.  `clean(resource, field, value)`
checks one JSON value against them and returns it as stored (text trimmed,
"" as null where null is allowed, a whole number written 1.0 as 1), else
raises `FieldError`; `problems(resource, field, value)` gives the same
verdict as a list of messages.  The contract is docs/openapi.yaml.
Imports models only.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any, Optional

from sqlalchemy import BigInteger, SmallInteger

from models import EVENT_TYPES, SYNCED_MODELS, DomainError, is_email, parse_api_datetime

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1  # INTEGER columns are 32-bit on PostgreSQL
# The range of each integer column type (checked most specific first; Integer is the rest)
INTEGER_RANGES = ((BigInteger, (-2**63, 2**63 - 1)), (SmallInteger, (-2**15, 2**15 - 1)))

# Writable fields per resource (ids, sync and bookkeeping columns are read-only).
WRITABLE = {
    "employees": ("name", "code", "email", "active"),
    "events": ("project_ref_num", "project_name", "event_type", "store_number", "store_name",
               "location_mvid", "start_datetime", "due_datetime", "estimated_minutes"),
    "schedules": ("event_id", "employee_id", "start_datetime"),
}
# What the columns cannot say: the smallest value that makes sense, and closed sets.
MINIMUMS = {
    "events": {"project_ref_num": 1, "estimated_minutes": 0},
    "schedules": {"event_id": 1, "employee_id": 1},
}
CHOICES = {("events", "event_type"): EVENT_TYPES}
EMAILS = {("employees", "email")}


class FieldError(DomainError):
    """A value a field refuses: which field and why (422)."""

    def __init__(self, field: str, message: str):
        super().__init__(message, field=field)


@dataclass(frozen=True)
class Limits:
    """What one field accepts."""

    kind: type  # str, int, bool or datetime
    nullable: bool
    max_length: Optional[int] = None
    minimum: Optional[int] = None
    maximum: Optional[int] = None
    choices: Optional[tuple] = None
    email: bool = False


@lru_cache(maxsize=None)
def limits(resource: str) -> dict[str, Limits]:
    """{field: Limits} for a resource's writable fields, from its model's columns."""
    columns = SYNCED_MODELS[resource].__table__.columns
    return {name: _column_limits(resource, name, columns[name]) for name in WRITABLE[resource]}


def limit(resource: str, field: str) -> Limits:
    """One field's Limits."""
    return limits(resource)[field]


def _column_limits(resource: str, name: str, column) -> Limits:
    """A column's Limits: its type, nullability, length or INTEGER range, and choices."""
    try:
        kind = column.type.python_type
    except NotImplementedError:  # models.UTCDateTime
        kind = datetime
    choices = CHOICES.get((resource, name))
    nullable = bool(column.nullable) and choices is None
    if kind is int:
        low, high = next((span for type_, span in INTEGER_RANGES if isinstance(column.type, type_)),
                         (INT32_MIN, INT32_MAX))
        return Limits(int, nullable, minimum=max(low, MINIMUMS.get(resource, {}).get(name, low)),
                      maximum=high)
    if kind is str:
        return Limits(str, nullable, max_length=getattr(column.type, "length", None),
                      choices=choices, email=(resource, name) in EMAILS)
    return Limits(kind, nullable)


def clean(resource: str, field: str, value: Any, vendor: bool = False) -> Any:
    """A JSON value checked against the field's limits, as it is stored; else FieldError.

    `vendor`: the value comes from the vendor, whose contract sets no email format
    (a vendor's record is never refused for a rule only this app has)."""
    rule = limit(resource, field)
    if vendor and rule.email:
        rule = replace(rule, email=False)
    if value is None and rule.nullable:
        return None
    or_null = " or null" if rule.nullable else ""
    if rule.kind is bool:
        if not isinstance(value, bool):
            raise FieldError(field, f"{field} must be true or false")
        return value
    if rule.kind is int:
        return _clean_integer(field, value, rule, or_null)
    if rule.kind is datetime:
        return parse_api_datetime(value, field)
    if rule.choices is not None:
        if value not in rule.choices:
            raise FieldError(field, f"{field} must be one of {', '.join(rule.choices)}")
        return value
    return _clean_text(field, value, rule, or_null)


def problems(resource: str, field: str, value: Any, vendor: bool = False) -> list[str]:
    """What is wrong with a value for a field ([] when `clean` takes it)."""
    try:
        clean(resource, field, value, vendor)
    except DomainError as exc:
        return [exc.message]
    return []


def whole(value: Any) -> Optional[int]:
    """A JSON number that is a whole number (1 or 1.0: OpenAPI 3.1 counts both) as an int,
    else None (booleans, 1.5, strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _clean_integer(field: str, value: Any, rule: Limits, or_null: str) -> int:
    """A whole number inside the field's range."""
    number = whole(value)
    if number is None:
        raise FieldError(field, f"{field} must be an integer{or_null}")
    if number < rule.minimum:
        raise FieldError(field, f"{field} must be at least {rule.minimum}")
    if number > rule.maximum:
        raise FieldError(field, f"{field} is too large (at most {rule.maximum})")
    return number


def _clean_text(field: str, value: Any, rule: Limits, or_null: str) -> Optional[str]:
    """Trimmed text within the column's length ("" is null where null is allowed)."""
    if not isinstance(value, str):
        raise FieldError(field, f"{field} must be a string{or_null}")
    value = value.strip()
    if not value:
        if rule.nullable:
            return None
        raise FieldError(field, f"{field} must not be empty")
    if rule.max_length is not None and len(value) > rule.max_length:
        raise FieldError(field, f"{field} must be at most {rule.max_length} characters")
    if rule.email and not is_email(value):
        raise FieldError(field, f"{field} is not an email address")
    return value
