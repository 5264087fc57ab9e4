"""A fake vendor scheduling API that honours the contract in docs/vendor-api.md.

The sandbox serves the vendor's REST API (``/api/v1``) with the same auth,
validation, versions, idempotency keys, paged and incremental listings and
signed webhooks as the real vendor, in memory, so the app's two-way sync can
be run, demoed and tested over real HTTP without a vendor account. It also
injects faults reproducibly (errors, dropped connections, latency, 429s,
"applied then 500") from a seeded random generator.

Standalone::

    python tests/vendor_sandbox.py --port 5001 --api-key KEY \\
        [--webhook-url URL --webhook-secret whsec_...] [--seed-demo] [--seed N] \\
        [--state-file instance/vendor_sandbox.json]

With ``--state-file`` (``state_file=`` in Python) the data survives restarts:
objects, tombstones, the change sequence, idempotency keys and the key that
signs sync tokens are written to the file atomically after every change and
read back at start, so clients' sync tokens stay valid. Without it (the
default, and what tests use) everything lives in memory and nothing is written.

From tests::

    sb = VendorSandbox(api_key="test-key").start()
    sb.base_url      # http://127.0.0.1:PORT/api/v1
    sb.control_url   # http://127.0.0.1:PORT/_control
    sb.stop()

The control API under ``/_control`` (no auth, JSON, never faulted) mirrors
the Python helpers for other processes (demo runner, benchmarks, browser tests):

    POST   /_control/reset                      -> {"ok": true}
    POST   /_control/seed       {"kind": "demo"|"bulk", "employees", "events",
                                 "schedules"}   -> live counts
    GET|POST|DELETE /_control/faults            POST body = set_faults kwargs,
                                 "rate_limit": [rps, burst] or null
    POST   /_control/faults/script {"method", "path", "fault"}   the next request
                                 matching answers with that fault, once (see script_fault)
    POST   /_control/expire_tokens              every sync token issued so far -> 410
    GET|POST /_control/clock {"skew_seconds"}   the vendor clock runs that far ahead
                                 (updated_at, /health time, webhook timestamps, Date)
    GET|POST /_control/webhooks {"url", "secret", "mode", "delay_seconds",
                                 "retry_backoff", "max_attempts", "reorder_window",
                                 "timeout"} (only the keys given change)
    POST   /_control/webhooks/wait_idle {"timeout": 10} -> {"idle": bool}
    GET    /_control/webhooks/log               -> {"data": [attempt, ...]}
    GET    /_control/objects/<resource>[?include_deleted=1] -> {"data": [...]}
    POST   /_control/objects/<resource>         vendor-user create -> 201 object
    PATCH  /_control/objects/<resource>/<id>    vendor-user change -> 200 object
    DELETE /_control/objects/<resource>/<id>    vendor-user delete -> 200 tombstone
    GET    /_control/stats                      counters
    GET    /_control                            this list

Seeding sends no webhooks; every other change (API or vendor user) does.

Strict mode (``VendorSandbox(strict=True)``, ``--strict``) uses, on purpose,
every freedom the vendor contract leaves a server, so a client that assumes
more than the contract promises fails its tests here instead of at a real
vendor (the knobs are the fields of ``Strictness``, on ``sb.strict``):

* listing pages shorter than the ``limit`` asked for (some empty, with a
  ``next_page_token``), objects in a stable order that is not creation order
  (by id), for full and incremental listings;
* every timestamp on the wire with fractional seconds (``.000Z``,
  ``.123456Z`` or ``.123456000Z``);
* ``If-Match`` only in the form the contract names, ``"<version>"``; any
  other form (unquoted, ``W/"3"``, ``*``) is ``400 bad_request``;
* sync tokens that go stale (``410``) from one run to the next (a share of
  them, drawn from the seed);
* webhook deliveries late, repeated and out of order (in mode ``normal``);
* now and then a ``429`` with ``Retry-After`` or a ``503`` (half of them
  with ``Retry-After``) that a retry gets past.
Werkzeug's server closes the connection after every answer (no keep-alive);
it serves roughly 700 requests a second on a laptop.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import contextlib
import hashlib
import heapq
import hmac
import itertools
import json
import math
import os
import random
import re
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
from flask import Flask, Response, g, request
from standardwebhooks import Webhook
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

API_PREFIX = "/api/v1"
CONTROL_PREFIX = "/_control"
RESOURCES = {"employees": "employee", "events": "event", "schedules": "schedule"}
ID_PREFIXES = {"employees": "emp", "events": "evt", "schedules": "sch"}
EVENT_TYPES = ("Core", "Juicer", "Supervisor", "Digital", "Freeosk", "Other")
WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE"})
REMEMBERED_STATUSES = frozenset({201, 409, 422})
DEFAULT_LIMIT, MAX_LIMIT = 100, 500
MAX_IDEMPOTENCY_KEY = 255
WEBHOOK_MODES = ("normal", "duplicate", "reorder", "delay", "drop", "bad_signature")
FAULT_STATUSES = (
    (500, "internal_error", "The vendor had an internal error."),
    (502, "bad_gateway", "Bad gateway."),
    (503, "service_unavailable", "The vendor is temporarily unavailable."),
    (504, "gateway_timeout", "Gateway timeout."),
)
SCRIPTED_FAULTS = ("500", "502", "503", "504", "drop", "apply_then_500", "apply_then_drop")
_UNSET = object()
STATE_FORMAT = "vendor-sandbox-state/1"


class SandboxError(Exception):
    """An API error answer: status, machine code, message, optional details."""

    def __init__(self, status, code, message, details=None, extra=None, headers=None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details, self.extra, self.headers = details, extra, headers or {}

    def body(self) -> dict:
        """The contract's error body ``{"error": {...}}`` (plus extras)."""
        error = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error, **(self.extra or {})}


class SandboxStateError(Exception):
    """The state file exists but cannot be read back."""


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?$"
)


_CLOCK_SKEW = [0.0]  # seconds the sandbox clock runs ahead of the host's (set_clock_skew)


def utcnow() -> datetime:
    """The sandbox clock (aware UTC): the host's plus the skew ``set_clock_skew`` set."""
    now = datetime.now(timezone.utc)
    return now + timedelta(seconds=_CLOCK_SKEW[0]) if _CLOCK_SKEW[0] else now


def format_ts(dt: datetime) -> str:
    """RFC 3339 UTC with ``Z``; fractional seconds only when non-zero."""
    naive = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return naive.isoformat() + "Z"


def format_ts_fraction(dt: datetime) -> str:
    """RFC 3339 UTC with ``Z`` and always fractional seconds (strict mode's wire form):
    3 digits for whole milliseconds, else 6, or 9 (nanoseconds) for a third of values."""
    dt = dt.astimezone(timezone.utc)
    if dt.microsecond % 1000 == 0:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    if dt.microsecond % 3 == 0:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


TIMESTAMP_FIELDS = ("start_datetime", "due_datetime", "updated_at")


def with_fractions(obj: dict) -> dict:
    """A copy of an object (or tombstone) with its timestamps in strict mode's wire form."""
    out = dict(obj)
    for name in TIMESTAMP_FIELDS:
        if isinstance(out.get(name), str):
            out[name] = format_ts_fraction(parse_ts(out[name]))
    return out


def parse_ts(value: str) -> datetime:
    """Parse an RFC 3339 timestamp with an offset; ValueError names the problem."""
    match = _RFC3339.match(value)
    if not match:
        raise ValueError("must be an RFC 3339 timestamp, e.g. 2026-11-25T14:30:00Z")
    y, mo, d, h, mi, s, frac, zulu, sign, oh, om = match.groups()
    if not zulu and not sign:
        raise ValueError("naive timestamp: add Z or a UTC offset")
    micro = int((frac or "0")[:6].ljust(6, "0"))
    offset = timedelta(0)
    if sign:
        offset = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro,
                      tzinfo=timezone(offset))
    except ValueError as exc:
        raise ValueError(f"not a valid date or time ({exc})") from None
    return dt.astimezone(timezone.utc)


# --------------------------------------------------------------------------
# Field validation
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One field's rules: kind (str|int|bool|ts|enum|ref), bounds, default."""

    kind: str
    required: bool = False
    nullable: bool = True
    default: object = None
    min: int | None = None
    max: int | None = None


FIELDS = {
    "employees": {
        "name": Field("str", required=True, nullable=False, min=1, max=120),
        "email": Field("str"),
        "active": Field("bool", nullable=False, default=True),
    },
    "events": {
        "project_ref_num": Field("int", required=True, nullable=False, min=1),
        "project_name": Field("str", required=True, nullable=False, min=1, max=200),
        "event_type": Field("enum", nullable=False, default="Other"),
        "store_number": Field("int"),
        "store_name": Field("str"),
        "location_mvid": Field("str"),
        "start_datetime": Field("ts", required=True, nullable=False),
        "due_datetime": Field("ts", required=True, nullable=False),
        "estimated_minutes": Field("int", min=0),
    },
    "schedules": {
        "event_id": Field("ref", required=True, nullable=False),
        "employee_id": Field("ref", required=True, nullable=False),
        "start_datetime": Field("ts", required=True, nullable=False),
    },
}


def check_value(spec: Field, value):
    """Return the cleaned value or raise ValueError with a field message."""
    if spec.kind in ("str", "ref"):
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if spec.min is not None and len(value) < spec.min:
            raise ValueError(f"must be at least {spec.min} characters")
        if spec.max is not None and len(value) > spec.max:
            raise ValueError(f"must be at most {spec.max} characters")
        return value
    if spec.kind == "int":
        if type(value) is not int:  # bool is not an int here
            raise ValueError("must be an integer")
        if spec.min is not None and value < spec.min:
            raise ValueError("must be greater than 0" if spec.min == 1
                             else f"must be at least {spec.min}")
        return value
    if spec.kind == "bool":
        if type(value) is not bool:
            raise ValueError("must be a boolean")
        return value
    if spec.kind == "enum":
        if value not in EVENT_TYPES:
            raise ValueError("must be one of " + ", ".join(EVENT_TYPES))
        return value
    if not isinstance(value, str):  # ts
        raise ValueError("must be a timestamp string")
    return format_ts(parse_ts(value))


def validate_fields(resource: str, data: dict, partial: bool):
    """Check the known fields of a body; unknown fields are ignored."""
    clean, errors = {}, {}
    for name, spec in FIELDS[resource].items():
        if name not in data:
            if partial:
                continue
            if spec.required:
                errors[name] = "is required"
            else:
                clean[name] = spec.default
            continue
        value = data[name]
        if value is None:
            if spec.nullable:
                clean[name] = None
            else:
                errors[name] = "is required" if spec.required else "must not be null"
            continue
        try:
            clean[name] = check_value(spec, value)
        except ValueError as exc:
            errors[name] = str(exc)
    return clean, errors


# --------------------------------------------------------------------------
# Store: objects, change sequence, rules
# --------------------------------------------------------------------------


class Collection:
    """One resource's objects with two sorted indexes for O(log n) paging.

    ``order`` holds the creation sequence numbers of live objects (the stable
    order of full listings); ``changes`` holds each object's latest change
    sequence number, tombstones included (the order of incremental listings).
    """

    def __init__(self, name: str):
        self.name = name
        self.live: dict[str, dict] = {}
        self.tombstones: dict[str, dict] = {}
        self.order: list[int] = []
        self.by_created: dict[int, str] = {}
        self.created_seq: dict[str, int] = {}
        self.changes: list[int] = []
        self.by_change: dict[int, str] = {}
        self.change_seq: dict[str, int] = {}

    def _touch(self, oid: str, seq: int) -> None:
        """Move the object's change entry to the end of the change order."""
        old = self.change_seq.get(oid)
        if old is not None:
            del self.changes[bisect.bisect_left(self.changes, old)]
            del self.by_change[old]
        self.changes.append(seq)
        self.by_change[seq] = oid
        self.change_seq[oid] = seq

    def add(self, rec: dict, seq: int) -> None:
        """Insert a new live object created at ``seq``."""
        oid = rec["id"]
        self.live[oid] = rec
        self.order.append(seq)
        self.by_created[seq] = oid
        self.created_seq[oid] = seq
        self._touch(oid, seq)

    def replace(self, rec: dict, seq: int) -> None:
        """Store a changed object (records are never mutated in place)."""
        self.live[rec["id"]] = rec
        self._touch(rec["id"], seq)

    def remove(self, tomb: dict, seq: int) -> None:
        """Turn a live object into its tombstone."""
        oid = tomb["id"]
        del self.live[oid]
        created = self.created_seq.pop(oid)
        del self.order[bisect.bisect_left(self.order, created)]
        del self.by_created[created]
        self.tombstones[oid] = tomb
        self._touch(oid, seq)

    def latest(self, oid: str) -> dict:
        """The live object or its tombstone."""
        return self.live.get(oid) or self.tombstones[oid]

    def dump(self) -> list:
        """Every object as ``[created_seq or None, change_seq, object]`` (for the state file)."""
        return [[self.created_seq.get(oid), seq, self.latest(oid)]
                for seq, oid in self.by_change.items()]

    def load(self, entries: list) -> None:
        """Rebuild from ``dump()``: live objects, tombstones and both orders."""
        for created, changed, rec in sorted(entries, key=lambda e: e[1]):
            oid = rec["id"]
            if created is None:
                self.tombstones[oid] = rec
            else:
                self.live[oid] = rec
                self.by_created[created] = oid
                self.created_seq[oid] = created
            self.changes.append(changed)
            self.by_change[changed] = oid
            self.change_seq[oid] = changed
        self.order = sorted(self.by_created)


class Store:
    """The vendor's data and business rules. Callers hold the sandbox lock."""

    def __init__(self, id_rng: random.Random, seq_start: int = 0):
        self.collections = {name: Collection(name) for name in RESOURCES}
        self.seq = seq_start
        self.id_rng = id_rng
        self.schedule_of_event: dict[str, str] = {}
        self.schedules_of_employee: dict[str, set[str]] = {}
        self.ref_nums: dict[int, str] = {}
        self.out = lambda rec: rec  # how an object goes on the wire (the sandbox sets it)

    def dump(self) -> dict:
        """The store as JSON-ready data: sequence, id generator and objects."""
        version, internal, gauss = self.id_rng.getstate()
        return {"seq": self.seq, "id_rng": [version, list(internal), gauss],
                "collections": {name: c.dump() for name, c in self.collections.items()}}

    @classmethod
    def load(cls, data: dict) -> "Store":
        """The store ``dump()`` described, with its indexes rebuilt."""
        version, internal, gauss = data["id_rng"]
        rng = random.Random()
        rng.setstate((version, tuple(internal), gauss))
        store = cls(rng, seq_start=data["seq"])
        for name, entries in data["collections"].items():
            coll = store.collections[name]
            coll.load(entries)
            for rec in coll.live.values():
                store._index(name, rec)
        return store

    # -- helpers ----------------------------------------------------------

    def next_seq(self) -> int:
        """Advance the global change sequence."""
        self.seq += 1
        return self.seq

    def new_id(self, resource: str) -> str:
        """An opaque id: resource prefix plus 16 hex digits from the id RNG."""
        coll = self.collections[resource]
        while True:
            oid = f"{ID_PREFIXES[resource]}_{self.id_rng.getrandbits(64):016x}"
            if oid not in coll.live and oid not in coll.tombstones:
                return oid

    def get_live(self, resource: str, oid: str) -> dict:
        """The live object or a 404."""
        rec = self.collections[resource].live.get(oid)
        if rec is None:
            raise SandboxError(404, "not_found", f"No {RESOURCES[resource]} with id {oid}.")
        return rec

    def check_if_match(self, rec: dict, if_match: int | None) -> None:
        """412 with the current object when If-Match names another version."""
        if if_match is not None and if_match != rec["version"]:
            raise SandboxError(
                412, "version_mismatch",
                f"If-Match names version {if_match}; the current version is {rec['version']}.",
                extra={"current": self.out(rec)})

    # -- rules ------------------------------------------------------------

    def check_relations(self, resource, merged, old, errors) -> None:
        """Cross-field and cross-object rules that answer 422."""
        if resource == "events":
            self._check_window(merged, errors)
        elif resource == "schedules":
            self._check_schedule(merged, old, errors)

    @staticmethod
    def _check_window(event, errors) -> None:
        """due_datetime must not be before start_datetime."""
        if "start_datetime" in errors or "due_datetime" in errors:
            return
        if parse_ts(event["due_datetime"]) < parse_ts(event["start_datetime"]):
            errors["due_datetime"] = "must not be before start_datetime"

    def _check_schedule(self, sched, old, errors) -> None:
        """Event and employee must be live; employee active when newly given."""
        event = None
        if "event_id" not in errors:
            event = self.collections["events"].live.get(sched["event_id"])
            if event is None:
                errors["event_id"] = "no live event has this id"
        if "employee_id" not in errors:
            emp = self.collections["employees"].live.get(sched["employee_id"])
            if emp is None:
                errors["employee_id"] = "no live employee has this id"
            elif not emp["active"] and (old is None or old["employee_id"] != emp["id"]):
                errors["employee_id"] = "the employee is not active"
        if event is not None and "start_datetime" not in errors:
            start = parse_ts(sched["start_datetime"])
            if not parse_ts(event["start_datetime"]) <= start <= parse_ts(event["due_datetime"]):
                errors["start_datetime"] = (
                    "must be within the event's window "
                    f"({event['start_datetime']} to {event['due_datetime']})")

    def check_unique(self, resource, merged, oid) -> None:
        """409 duplicate: project_ref_num among live events; one schedule per event."""
        if resource == "events":
            other = self.ref_nums.get(merged["project_ref_num"])
            if other is not None and other != oid:
                raise SandboxError(409, "duplicate",
                                   "Another live event has this project_ref_num.",
                                   {"existing_id": other})
        elif resource == "schedules":
            other = self.schedule_of_event.get(merged["event_id"])
            if other is not None and other != oid:
                raise SandboxError(409, "duplicate", "The event already has a live schedule.",
                                   {"existing_id": other})

    def check_not_in_use(self, resource, oid) -> None:
        """409 in_use: an event or employee with a live schedule."""
        if resource == "events":
            sched = self.schedule_of_event.get(oid)
        elif resource == "employees":
            scheds = self.schedules_of_employee.get(oid)
            sched = min(scheds) if scheds else None
        else:
            return
        if sched:
            raise SandboxError(409, "in_use",
                               f"The {RESOURCES[resource]} has a live schedule; delete it first.",
                               {"schedule_id": sched})

    # -- indexes ----------------------------------------------------------

    def _index(self, resource, rec) -> None:
        """Add an object's unique keys and links to the indexes."""
        if resource == "events":
            self.ref_nums[rec["project_ref_num"]] = rec["id"]
        elif resource == "schedules":
            self.schedule_of_event[rec["event_id"]] = rec["id"]
            self.schedules_of_employee.setdefault(rec["employee_id"], set()).add(rec["id"])

    def _unindex(self, resource, rec) -> None:
        """Remove an object's unique keys and links from the indexes."""
        if resource == "events":
            self.ref_nums.pop(rec["project_ref_num"], None)
        elif resource == "schedules":
            self.schedule_of_event.pop(rec["event_id"], None)
            self.schedules_of_employee.get(rec["employee_id"], set()).discard(rec["id"])

    # -- writes -----------------------------------------------------------

    def create(self, resource: str, data: dict) -> dict:
        """Validate and create an object; returns it."""
        clean, errors = validate_fields(resource, data, partial=False)
        self.check_relations(resource, clean, None, errors)
        if errors:
            raise SandboxError(422, "validation_failed", "Some fields are invalid.", errors)
        self.check_unique(resource, clean, None)
        return self.insert(resource, clean, format_ts(utcnow()))

    def insert(self, resource: str, fields: dict, updated_at: str) -> dict:
        """Insert an already valid object (also used by the seeders)."""
        rec = {"id": self.new_id(resource), **fields, "version": 1, "updated_at": updated_at}
        self.collections[resource].add(rec, self.next_seq())
        self._index(resource, rec)
        return rec

    def update(self, resource: str, oid: str, data: dict, if_match=None):
        """Apply a PATCH; returns (object, changed)."""
        old = self.get_live(resource, oid)
        self.check_if_match(old, if_match)
        clean, errors = validate_fields(resource, data, partial=True)
        merged = {**old, **clean}
        self.check_relations(resource, merged, old, errors)
        if errors:
            raise SandboxError(422, "validation_failed", "Some fields are invalid.", errors)
        self.check_unique(resource, merged, oid)
        if all(old[k] == v for k, v in clean.items()):
            return old, False
        new = {**merged, "version": old["version"] + 1, "updated_at": format_ts(utcnow())}
        self._unindex(resource, old)
        self.collections[resource].replace(new, self.next_seq())
        self._index(resource, new)
        return new, True

    def delete(self, resource: str, oid: str, if_match=None) -> dict:
        """Delete an object; returns its tombstone."""
        old = self.get_live(resource, oid)
        self.check_if_match(old, if_match)
        self.check_not_in_use(resource, oid)
        tomb = {"id": oid, "deleted": True, "version": old["version"] + 1,
                "updated_at": format_ts(utcnow())}
        self._unindex(resource, old)
        self.collections[resource].remove(tomb, self.next_seq())
        return tomb

    # -- reads ------------------------------------------------------------

    def page(self, resource: str, full: bool, snapshot: int, cursor: int, limit: int):
        """One listing page: (items, more, last_seq). O(log n + limit)."""
        coll = self.collections[resource]
        seqs = coll.order if full else coll.changes
        i = bisect.bisect_right(seqs, cursor)
        j = bisect.bisect_right(seqs, snapshot)
        chunk = seqs[i:min(i + limit, j)]
        if full:
            items = [coll.live[coll.by_created[s]] for s in chunk]
        else:
            items = [coll.latest(coll.by_change[s]) for s in chunk]
        return items, i + limit < j, (chunk[-1] if chunk else cursor)


    def page_by_id(self, resource: str, full: bool, snapshot: int, since: int, after: str,
                   size: int):
        """Strict mode's listing page: objects ordered by id (not creation), ``size`` of them
        at most: (items, more, last_id).  Full: live objects created up to ``snapshot``;
        incremental: objects whose latest change is in (``since``, ``snapshot``]."""
        coll = self.collections[resource]
        if full:
            ids = [oid for oid, seq in coll.created_seq.items() if seq <= snapshot]
        else:
            lo = bisect.bisect_right(coll.changes, since)
            hi = bisect.bisect_right(coll.changes, snapshot)
            ids = [coll.by_change[s] for s in coll.changes[lo:hi]]
        ids = sorted(oid for oid in ids if oid > after)
        chunk = ids[:size]
        items = [coll.live[oid] if full else coll.latest(oid) for oid in chunk]
        return items, len(ids) > size, (chunk[-1] if chunk else after)


# --------------------------------------------------------------------------
# Opaque tokens
# --------------------------------------------------------------------------


class TokenCodec:
    """base64url(JSON) + "." + truncated HMAC, so forged tokens are detected."""

    def __init__(self, key: bytes | None = None):
        self.key = key or secrets.token_bytes(32)

    def encode(self, payload: dict) -> str:
        """Sign and encode a payload."""
        raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        sig = hmac.new(self.key, raw, hashlib.sha256).digest()[:12]
        return f"{_b64(raw)}.{_b64(sig)}"

    def decode(self, token: str) -> dict | None:
        """The payload, or None when the token was not issued by this sandbox."""
        try:
            raw_part, sig_part = token.split(".")
            raw, sig = _unb64(raw_part), _unb64(sig_part)
        except (ValueError, TypeError):
            return None
        expected = hmac.new(self.key, raw, hashlib.sha256).digest()[:12]
        if not hmac.compare_digest(sig, expected):
            return None
        try:
            payload = json.loads(raw)
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


@dataclass
class Faults:
    """Injected faults for /api/v1; rates are probabilities per request."""

    error_rate: float = 0.0
    drop_rate: float = 0.0
    latency_ms: int = 0
    rate_limit: tuple | None = None  # (requests per second, burst)
    apply_then_500_rate: float = 0.0
    apply_then_drop_rate: float = 0.0
    retry_after_rate: float = 0.5  # share of 503s that carry Retry-After: 1
    seed: int = 0


@dataclass
class Strictness:
    """Strict mode's freedoms (see the module docstring); rates are per request/token."""

    short_pages: bool = True
    id_order: bool = True
    fractional_timestamps: bool = True
    exact_if_match: bool = True
    stale_token_rate: float = 0.3  # share of sync tokens that answer 410 when used
    webhook_chaos: bool = True  # mode "normal": late, repeated, out of order
    webhook_max_delay: float = 0.4  # seconds a delivery may be late
    webhook_repeat_rate: float = 0.3
    transient_rate: float = 0.05  # share of requests answered 429/503 (then fine on retry)


class TokenBucket:
    """Rate limiter: ``rps`` tokens per second, at most ``burst`` saved."""

    def __init__(self, rps: float, burst: float):
        self.rps, self.burst = float(rps), float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rps)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rps


@dataclass
class Decision:
    """What the fault layer decided for one request."""

    retry_after: int | None = None  # set: answer 429
    drop: bool = False
    error: tuple | None = None  # (status, code, message, retry_after or None)
    after_apply: str | None = None  # "500" or "drop" after a successful write
    latency: float = 0.0


@dataclass
class ScriptedFault:
    """One fault for the next request matching ``method`` and ``path`` (a regex over the
    path under /api/v1); ``before`` runs first, in the request's thread (tests only)."""

    method: str
    path: str
    fault: str
    before: object = None

    def matches(self, method: str, path: str) -> bool:
        return self.method == method and re.fullmatch(self.path, path) is not None


# --------------------------------------------------------------------------
# Webhooks
# --------------------------------------------------------------------------


class WebhookDispatcher:
    """Background, at-least-once delivery of signed Standard Webhooks messages."""

    def __init__(self, url=None, secret=None, strict=None, seed=0):
        self.url, self.secret = url, secret
        self.strict = strict  # a Strictness, or None
        self._rng = random.Random(seed)
        self.mode = "normal"
        self.delay_seconds = 1.0
        self.retry_backoff = 0.2
        self.max_attempts = 5
        self.reorder_window = 3
        self.reorder_flush_seconds = 0.3
        self.timeout = 5.0
        self._cond = threading.Condition()
        self._heap: list = []
        self._buffer: list = []
        self._buffer_since = 0.0
        self._inflight = 0
        self._counter = itertools.count()
        self._log: list[dict] = []
        self.stats = Counter()
        self._thread = None
        self._stopping = False
        self._session = requests.Session()

    def config(self) -> dict:
        """The current settings (the secret itself is not shown)."""
        return {"url": self.url, "secret_set": bool(self.secret), "mode": self.mode,
                "delay_seconds": self.delay_seconds, "retry_backoff": self.retry_backoff,
                "max_attempts": self.max_attempts, "reorder_window": self.reorder_window,
                "timeout": self.timeout}

    def configure(self, **settings) -> dict:
        """Change the given settings; the mode must be one of WEBHOOK_MODES."""
        mode = settings.get("mode")
        if mode is not None and mode not in WEBHOOK_MODES:
            raise ValueError(f"mode must be one of {', '.join(WEBHOOK_MODES)}")
        with self._cond:
            for name, value in settings.items():
                if not hasattr(self, name) or name.startswith("_") or name in ("stats", "strict"):
                    raise ValueError(f"unknown webhook setting {name!r}")
                setattr(self, name, value)
            if self.mode != "reorder":
                self._flush_buffer()
            self._cond.notify_all()
        return self.config()

    def reset(self) -> None:
        """Forget pending messages, the log and the counters; mode back to normal.

        A delivery already in flight is waited for (at most 10 s) so that its log
        entry cannot land in the next test's log."""
        with self._cond:
            self._heap.clear()
            self._buffer.clear()
            self._cond.wait_for(lambda: not self._inflight, timeout=10)
            self._heap.clear()
            self._buffer.clear()
            self._log.clear()
            self.stats.clear()
            self.mode = "normal"
            self._cond.notify_all()

    def emit(self, type_: str, data: dict) -> None:
        """Queue one message for ``data`` (an object or tombstone)."""
        with self._cond:
            if not self.url:
                return
            fractions = self.strict is not None and self.strict.fractional_timestamps
            stamp = (format_ts_fraction if fractions else format_ts)(utcnow())
            msg = {"id": f"msg_{uuid.uuid4().hex}", "type": type_, "object_id": data["id"],
                   "version": data["version"], "attempt": 0,
                   "bad_signature": self.mode == "bad_signature",
                   "body": json.dumps({"type": type_, "timestamp": stamp,
                                       "data": with_fractions(data) if fractions else data},
                                      separators=(",", ":"))}
            self.stats["messages"] += 1
            self._route(msg)
            self._ensure_thread()
            self._cond.notify_all()

    def _route(self, msg: dict) -> None:
        """Apply the delivery mode to a new message."""
        now = time.monotonic()
        if self.mode == "drop":
            self.stats["dropped"] += 1
            self._log.append(self._entry(msg, error="dropped by mode 'drop'"))
        elif self.mode == "duplicate":
            self._push(now, msg)
            self._push(now, dict(msg))
        elif self.mode == "reorder":
            if not self._buffer:
                self._buffer_since = now
            self._buffer.append(msg)
            if len(self._buffer) >= self.reorder_window:
                self._flush_buffer()
        elif self.mode == "delay":
            self._push(now + self.delay_seconds, msg)
        elif self.strict is not None and self.strict.webhook_chaos:
            late = self.strict.webhook_max_delay
            self._push(now + self._rng.uniform(0, late), msg)
            if self._rng.random() < self.strict.webhook_repeat_rate:
                self.stats["repeated"] += 1
                self._push(now + self._rng.uniform(0, 2 * late), dict(msg))
        else:
            self._push(now, msg)

    def _push(self, due: float, msg: dict) -> None:
        heapq.heappush(self._heap, (due, next(self._counter), msg))

    def _flush_buffer(self) -> None:
        """Release the reorder buffer, newest message first."""
        now = time.monotonic()
        for msg in reversed(self._buffer):
            self._push(now, msg)
        self._buffer.clear()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the delivery thread (pending messages stay queued)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def _next_message(self):
        """Block until a message is due; None when stopping."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                if self._buffer and now - self._buffer_since >= self.reorder_flush_seconds:
                    self._flush_buffer()
                if self._heap and self._heap[0][0] <= now:
                    self._inflight += 1
                    return heapq.heappop(self._heap)[2]
                wait = 0.5
                if self._heap:
                    wait = min(wait, self._heap[0][0] - now)
                if self._buffer:
                    wait = min(wait, self._buffer_since + self.reorder_flush_seconds - now)
                self._cond.wait(max(wait, 0.001))
            return None

    def _run(self) -> None:
        while (msg := self._next_message()) is not None:
            ok = self._deliver(msg)
            with self._cond:
                self._inflight -= 1
                if not ok:
                    self._retry_or_give_up(msg)
                self._cond.notify_all()

    def _retry_or_give_up(self, msg: dict) -> None:
        if msg["attempt"] >= self.max_attempts:
            self.stats["gave_up"] += 1
            return
        delay = self.retry_backoff * (2 ** (msg["attempt"] - 1))
        self._push(time.monotonic() + delay, msg)

    def _headers(self, msg: dict) -> dict:
        """Standard Webhooks headers for one attempt."""
        now = utcnow()
        headers = {"Content-Type": "application/json", "webhook-id": msg["id"],
                   "webhook-timestamp": str(int(now.timestamp()))}
        if self.secret:
            secret = self.secret
            if msg["bad_signature"]:
                secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
            headers["webhook-signature"] = Webhook(secret).sign(msg["id"], now, msg["body"])
        return headers

    def _deliver(self, msg: dict) -> bool:
        """One attempt; logs it and returns True on a 2xx answer."""
        msg["attempt"] += 1
        url = self.url
        status = error = None
        try:
            if not url:
                raise RuntimeError("no webhook URL configured")
            resp = self._session.post(url, data=msg["body"].encode(),
                                      headers=self._headers(msg), timeout=self.timeout)
            status = resp.status_code
        except Exception as exc:  # connection errors, timeouts
            error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        with self._cond:
            self.stats["sent"] += 1
            self.stats["delivered" if ok else "failed"] += 1
            self._log.append(self._entry(msg, status=status, error=error))
        return ok

    @staticmethod
    def _entry(msg: dict, status=None, error=None) -> dict:
        return {"webhook_id": msg["id"], "type": msg["type"], "object_id": msg["object_id"],
                "version": msg["version"], "attempt": msg["attempt"], "status": status,
                "error": error, "bad_signature": msg["bad_signature"],
                "time": format_ts(utcnow())}

    def log(self) -> list[dict]:
        """Every delivery attempt so far, oldest first."""
        with self._cond:
            return [dict(e) for e in self._log]

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued, buffered or in flight."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_buffer()
            self._cond.notify_all()
            while self._heap or self._buffer or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True


# --------------------------------------------------------------------------
# Demo and bulk data
# --------------------------------------------------------------------------

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from demo_data import (FIRST_NAMES, LAST_NAMES, PROJECTS, STORES,  # noqa: E402 - one catalogue
                       WORKDAY_END, WORKDAY_START)


def demo_employee(rng: random.Random, n: int) -> dict:
    """A realistic employee."""
    first, last = FIRST_NAMES[n % len(FIRST_NAMES)], rng.choice(LAST_NAMES)
    return {"name": f"{first} {last}", "email": f"{first}.{last}{n}@example.com".lower(),
            "active": True}


def demo_event(rng: random.Random, ref: int, today: datetime) -> dict:
    """A realistic event with a window in the coming days."""
    event_type, name = rng.choice(PROJECTS)
    store, store_name = rng.choice(STORES)
    start = today + timedelta(days=rng.randint(0, 6), hours=WORKDAY_START)
    due = start + timedelta(days=rng.randint(1, 3), hours=WORKDAY_END - WORKDAY_START)
    return {"project_ref_num": ref, "project_name": name, "event_type": event_type,
            "store_number": store, "store_name": store_name,
            "location_mvid": f"MV-{store:05d}", "start_datetime": format_ts(start),
            "due_datetime": format_ts(due),
            "estimated_minutes": rng.choice([30, 45, 60, 90, 120, 240])}


# --------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------


class VendorSandbox:
    """The fake vendor: store, faults, webhooks and a threaded WSGI server."""

    def __init__(self, api_key="test-key", webhook_url=None, webhook_secret=None, seed=0,
                 host="127.0.0.1", port=0, strict=False, state_file=None):
        """``state_file``: keep the data in this JSON file across restarts (off by default:
        a sandbox started in-process by a test keeps everything in memory)."""
        self.api_key, self.seed, self.host, self.port = api_key, seed, host, port
        self._lock = threading.RLock()
        self._codec = TokenCodec()
        self._epoch = 0
        self.strict = Strictness() if strict is True else (strict or None)
        self._strict_rng = random.Random(seed)
        self._nonce = itertools.count()  # strict page tokens: each one a new string
        self.webhooks = WebhookDispatcher(webhook_url, webhook_secret, self.strict, seed)
        self._open = threading.Event()  # cleared by hold(): /api/v1 requests wait
        self._open.set()
        self._server = self._thread = None
        self.app = create_app(self)
        self.state_file = Path(state_file) if state_file else None
        self._state_lock = threading.Lock()
        self._state_version = self._state_written = 0
        self.restored = False
        self._clear_state()
        if self.state_file is not None and self.state_file.exists():
            self._load_state()

    # -- lifecycle --------------------------------------------------------

    def start(self) -> "VendorSandbox":
        """Serve on a background thread; returns self."""
        self._server = make_server(self.host, self.port, self.app, threaded=True,
                                   request_handler=QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="vendor-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and delivering webhooks (and forget the clock skew)."""
        _CLOCK_SKEW[0] = 0.0
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None
        self.webhooks.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + API_PREFIX

    @property
    def control_url(self) -> str:
        return self.root_url + CONTROL_PREFIX

    # -- state ------------------------------------------------------------

    def _clear_state(self) -> None:
        seq = getattr(getattr(self, "store", None), "seq", 0)
        # ids go on from where they were: a vendor that lost its data (reset) does not give
        # its new objects the ids of the old ones
        ids = getattr(getattr(self, "store", None), "id_rng", None) or random.Random(self.seed)
        self.store = Store(ids, seq_start=seq)
        self._idempotency: dict[str, tuple] = {}
        self._stale_tokens: set[str] = set()
        self.store.out = self.out
        self._stats = Counter()
        self._by_method, self._by_status = Counter(), Counter()
        self._scripted: list[ScriptedFault] = []
        self._apply_faults(Faults(seed=self.seed))

    def set_clock_skew(self, seconds: float) -> float:
        """Run the vendor's clock ``seconds`` ahead of the host's (negative: behind):
        ``updated_at``, ``/health``'s time, webhook timestamps and the ``Date`` header of
        API answers.  The skew is the process's (every sandbox in it); ``reset`` and
        ``stop`` set it back to 0."""
        _CLOCK_SKEW[0] = float(seconds)
        return _CLOCK_SKEW[0]

    def clock_skew(self) -> float:
        """The sandbox clock's skew in seconds (0: the host's clock)."""
        return _CLOCK_SKEW[0]

    def reset(self) -> None:
        """Empty store, keys, tokens, faults, stats and webhook queue (URL kept); the
        clock skew back to 0."""
        _CLOCK_SKEW[0] = 0.0
        with self._lock:
            self._clear_state()
            self._epoch += 1
        self._persist()
        self.webhooks.reset()

    # -- the state file (only with ``state_file``) ------------------------

    def _load_state(self) -> None:
        """Restore objects, ids, idempotency keys and token key from the state file."""
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            if data.get("format") != STATE_FORMAT:
                raise ValueError(f"format {data.get('format')!r} is not {STATE_FORMAT!r}")
            store = Store.load(data["store"])
            codec = TokenCodec(base64.b64decode(data["token_key"]))
            idempotency = {key: tuple(entry) for key, entry in data["idempotency"].items()}
            epoch = int(data["epoch"])
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise SandboxStateError(
                f"cannot read the sandbox state file {self.state_file}: {exc}; "
                "move it away to start with an empty sandbox") from None
        with self._lock:
            self.store, self._codec, self._epoch = store, codec, epoch
            self._idempotency = idempotency
            self.restored = True

    def _persist(self) -> None:
        """Write the state file, if any, before the change is answered.

        The snapshot is taken under the sandbox lock; the file is written outside
        it, newest snapshot wins, atomically (temporary file, fsync, os.replace).
        """
        if self.state_file is None:
            return
        with self._lock:
            self._state_version += 1
            version = self._state_version
            text = json.dumps({
                "format": STATE_FORMAT, "saved_at": format_ts(utcnow()),
                "token_key": base64.b64encode(self._codec.key).decode(), "epoch": self._epoch,
                "idempotency": {key: list(entry) for key, entry in self._idempotency.items()},
                "store": self.store.dump()}, separators=(",", ":"))
        with self._state_lock:
            if version > self._state_written:
                write_atomically(self.state_file, text)
                self._state_written = version

    def _apply_faults(self, faults: Faults) -> None:
        self.faults_config = faults
        self._fault_rng = random.Random(faults.seed)
        self._bucket = TokenBucket(*faults.rate_limit) if faults.rate_limit else None

    def set_faults(self, error_rate=0.0, drop_rate=0.0, latency_ms=0, rate_limit=None,
                   apply_then_500_rate=0.0, apply_then_drop_rate=0.0, retry_after_rate=0.5,
                   seed=None) -> dict:
        """Replace the fault settings; the fault RNG restarts from ``seed``, and so do
        strict mode's draws when ``seed`` is given (a seeded fault run is reproducible)."""
        if rate_limit is not None:
            rate_limit = (float(rate_limit[0]), float(rate_limit[1]))
            if rate_limit[0] <= 0 or rate_limit[1] < 1:
                raise ValueError("rate_limit must be (rps > 0, burst >= 1)")
        faults = Faults(float(error_rate), float(drop_rate), int(latency_ms), rate_limit,
                        float(apply_then_500_rate), float(apply_then_drop_rate),
                        float(retry_after_rate), self.seed if seed is None else int(seed))
        with self._lock:
            self._apply_faults(faults)
            if seed is not None:
                self._strict_rng = random.Random(int(seed))
        return self.faults()

    def clear_faults(self) -> None:
        """No faults from now on (scripted ones included)."""
        self.set_faults()
        with self._lock:
            self._scripted.clear()

    def script_fault(self, method: str, path: str, fault: str, before=None) -> None:
        """Answer the next /api/v1 request matching ``method`` and ``path`` (a regex over
        the path under /api/v1, e.g. ``/employees/[^/]+``) with ``fault``, once: a status
        (500, 502, 503, 504) before anything is applied, ``drop``, or ``apply_then_500`` /
        ``apply_then_drop`` after a successful write.  ``before()`` runs first, in the
        request's thread: a vendor-side change made while the client waits.  Scripts
        queue up; the first that matches is used."""
        if fault not in SCRIPTED_FAULTS:
            raise ValueError(f"fault must be one of {', '.join(SCRIPTED_FAULTS)}")
        if not isinstance(method, str) or not isinstance(path, str):
            raise ValueError("method and path must be strings")
        try:
            re.compile(path)
        except re.error as exc:
            raise ValueError(f"path is not a regular expression: {exc}") from None
        with self._lock:
            self._scripted.append(ScriptedFault(method.upper(), path, fault, before))

    def scripted_faults(self) -> list[dict]:
        """The scripted faults not used yet (method, path, fault)."""
        with self._lock:
            return [{"method": f.method, "path": f.path, "fault": f.fault} for f in self._scripted]

    def take_scripted(self, method: str, path: str) -> ScriptedFault | None:
        """The first scripted fault matching this request, removed from the queue."""
        with self._lock:
            for index, fault in enumerate(self._scripted):
                if fault.matches(method, path):
                    return self._scripted.pop(index)
        return None

    def faults(self) -> dict:
        """The current fault settings."""
        with self._lock:
            return asdict(self.faults_config)

    def hold(self) -> None:
        """From now on every /api/v1 request waits (after auth) until release().

        A test uses it to keep a sync run in progress for as long as it needs,
        instead of betting on latency."""
        self._open.clear()

    def release(self) -> None:
        """Let held and later /api/v1 requests through."""
        self._open.set()

    def wait_if_held(self, timeout: float = 120.0) -> None:
        """Block a request while the sandbox is held (at most `timeout` seconds)."""
        self._open.wait(timeout)

    def expire_sync_tokens(self) -> None:
        """Every sync token (and incremental page token) issued so far answers 410."""
        with self._lock:
            self._epoch += 1
        self._persist()

    def configure_webhooks(self, url=_UNSET, secret=_UNSET, mode=_UNSET, delay_seconds=_UNSET,
                           retry_backoff=_UNSET, max_attempts=_UNSET, reorder_window=_UNSET,
                           timeout=_UNSET) -> dict:
        """Change the given webhook settings; the others stay."""
        given = {k: v for k, v in locals().items() if k != "self" and v is not _UNSET}
        return self.webhooks.configure(**given)

    def wait_webhooks_idle(self, timeout=10.0) -> bool:
        """True once every queued webhook was delivered or given up."""
        return self.webhooks.wait_idle(timeout)

    def webhook_log(self) -> list[dict]:
        """Every delivery attempt: webhook_id, type, object_id, version, status/error."""
        return self.webhooks.log()

    # -- vendor-user changes (no auth, no faults, webhooks sent) ----------

    def vendor_create(self, resource: str, data: dict) -> dict:
        """Create as a vendor user; raises SandboxError on a refused change."""
        resource = _resource(resource)
        with self._lock:
            rec = self.store.create(resource, data)
            self._stats["vendor_creates"] += 1
        self._persist()
        self.webhooks.emit(f"{RESOURCES[resource]}.created", rec)
        return dict(rec)

    def vendor_update(self, resource: str, oid: str, data: dict) -> dict:
        """Change as a vendor user; no webhook when nothing changed."""
        resource = _resource(resource)
        with self._lock:
            rec, changed = self.store.update(resource, oid, data)
            self._stats["vendor_updates"] += changed
        if changed:
            self._persist()
            self.webhooks.emit(f"{RESOURCES[resource]}.updated", rec)
        return dict(rec)

    def vendor_delete(self, resource: str, oid: str) -> dict:
        """Delete as a vendor user; returns the tombstone."""
        resource = _resource(resource)
        with self._lock:
            tomb = self.store.delete(resource, oid)
            self._stats["vendor_deletes"] += 1
        self._persist()
        self.webhooks.emit(f"{RESOURCES[resource]}.deleted", tomb)
        return dict(tomb)

    def objects(self, resource: str, include_deleted=False) -> list[dict]:
        """Live objects in creation order (then tombstones when asked)."""
        resource = _resource(resource)
        with self._lock:
            coll = self.store.collections[resource]
            out = [dict(coll.live[coll.by_created[s]]) for s in coll.order]
            if include_deleted:
                out += [dict(t) for t in coll.tombstones.values()]
        return out

    def object(self, resource: str, oid: str) -> dict | None:
        """One object or its tombstone, or None."""
        resource = _resource(resource)
        with self._lock:
            coll = self.store.collections[resource]
            rec = coll.live.get(oid) or coll.tombstones.get(oid)
            return dict(rec) if rec else None

    # -- seeding (no webhooks) -------------------------------------------

    def seed_demo(self, employees=5, events=20, schedules=5, seed=None) -> dict:
        """A small realistic retail-merchandising data set."""
        rng = random.Random(self.seed if seed is None else seed)
        today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        return self._seed(employees, events, schedules,
                          lambda n: demo_employee(rng, n),
                          lambda ref: demo_event(rng, ref, today))

    def bulk_seed(self, employees=5000, events=20000, schedules=20000) -> dict:
        """Many plain objects fast, for benchmarks.  The events' window is long enough for
        each employee to have at most one schedule a day (the app's rule)."""
        start = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
        with self._lock:
            staff = len(self.store.collections["employees"].live) + employees
        days = max(2, -(-schedules // max(1, staff)) + 1)
        window = (format_ts(start), format_ts(start + timedelta(days=days)))
        return self._seed(
            employees, events, schedules,
            lambda n: {"name": f"Employee {n:05d}", "email": f"employee{n}@example.com",
                       "active": True},
            lambda ref: {"project_ref_num": ref, "project_name": f"CORE - Reset {ref}",
                         "event_type": "Core", "store_number": 1000 + ref % 900,
                         "store_name": f"Store {1000 + ref % 900}", "location_mvid": None,
                         "start_datetime": window[0], "due_datetime": window[1],
                         "estimated_minutes": 60})

    def _seed(self, n_emp, n_evt, n_sch, make_employee, make_event) -> dict:
        """Insert employees, events and schedules for events without one."""
        with self._lock:
            store = self.store
            stamp = format_ts(utcnow().replace(microsecond=0))
            base = len(store.collections["employees"].live)
            for n in range(n_emp):
                store.insert("employees", make_employee(base + n + 1), stamp)
            ref = max(store.ref_nums, default=604100) + 1
            for n in range(n_evt):
                store.insert("events", make_event(ref + n), stamp)
            self._seed_schedules(n_sch, stamp)
        self._persist()
        return self.counts()

    def _seed_schedules(self, count: int, stamp: str) -> None:
        store = self.store
        staff = [e["id"] for e in store.collections["employees"].live.values() if e["active"]]
        free = (e for e in store.collections["events"].live.values()
                if e["id"] not in store.schedule_of_event)
        for n, event in zip(range(count if staff else 0), free):
            # a day further each time round the staff: one schedule per employee per day
            start = parse_ts(event["start_datetime"]) + timedelta(days=n // len(staff), hours=1)
            start = min(start, parse_ts(event["due_datetime"]))
            store.insert("schedules", {"event_id": event["id"],
                                       "employee_id": staff[n % len(staff)],
                                       "start_datetime": format_ts(start)}, stamp)

    def counts(self) -> dict:
        """Live objects per resource."""
        with self._lock:
            return {name: len(c.live) for name, c in self.store.collections.items()}

    def stats(self) -> dict:
        """Request, write, fault and webhook counters."""
        with self._lock:
            s = self._stats
            return {
                "requests": sum(self._by_method.values()),
                "requests_by_method": dict(self._by_method),
                "requests_by_status": dict(self._by_status),
                "creates": s["creates"], "updates": s["updates"], "deletes": s["deletes"],
                "vendor_creates": s["vendor_creates"], "vendor_updates": s["vendor_updates"],
                "vendor_deletes": s["vendor_deletes"],
                "idempotent_replays": s["idempotent_replays"],
                "rate_limited": s["rate_limited"],
                "faults_injected": {k: s[f"fault_{k}"] for k in
                                    ("error", "drop", "apply_then_500", "apply_then_drop")},
                "webhooks": {k: self.webhooks.stats[k] for k in
                             ("messages", "sent", "delivered", "failed", "gave_up", "dropped",
                              "repeated")},
                "strict": {"stale_tokens": s["stale_tokens"],
                           "transient_answers": s["strict_transient"]},
                "objects": self.counts(),
            }

    # -- request pipeline (used by the Flask app) ------------------------

    def admit(self, method: str) -> Decision:
        """Rate limit and draw this request's faults, in request order."""
        with self._lock:
            if self._bucket is not None:
                wait = self._bucket.take()
                if wait:
                    self._stats["rate_limited"] += 1
                    return Decision(retry_after=max(1, math.ceil(wait)))
            strict = self.strict
            if strict is not None and self._strict_rng.random() < strict.transient_rate:
                self._stats["strict_transient"] += 1
                if self._strict_rng.random() < 0.5:
                    return Decision(retry_after=1)
                after = 1 if self._strict_rng.random() < 0.5 else None
                return Decision(error=(503, "service_unavailable",
                                       "The vendor is temporarily unavailable.", after))
            f, rng = self.faults_config, self._fault_rng
            r_drop, r_err, r_kind, r_after, r_apply = (rng.random() for _ in range(5))
            decision = Decision(latency=f.latency_ms / 1000.0)
            if r_drop < f.drop_rate:
                decision.drop = True
                self._stats["fault_drop"] += 1
            elif r_err < f.error_rate:
                status, code, message = FAULT_STATUSES[int(r_kind * len(FAULT_STATUSES))]
                after = 1 if status == 503 and r_after < f.retry_after_rate else None
                decision.error = (status, code, message, after)
                self._stats["fault_error"] += 1
            elif method in WRITE_METHODS:
                if r_apply < f.apply_then_500_rate:
                    decision.after_apply = "500"
                elif r_apply < f.apply_then_500_rate + f.apply_then_drop_rate:
                    decision.after_apply = "drop"
            return decision

    def count_request(self, method: str, status) -> None:
        """Count an answered (or dropped) /api/v1 request."""
        with self._lock:
            self._by_method[method] += 1
            self._by_status[str(status)] += 1

    def count(self, name: str) -> None:
        with self._lock:
            self._stats[name] += 1

    def api_create(self, resource: str, data: dict, key: str | None, fingerprint: str):
        """POST with optional Idempotency-Key: (status, body_json, replayed)."""
        with self._lock:
            if key is not None and key in self._idempotency:
                stored_fp, status, body = self._idempotency[key]
                if stored_fp != fingerprint:
                    raise SandboxError(422, "idempotency_key_reused",
                                       "This Idempotency-Key was used with another request.")
                self._stats["idempotent_replays"] += 1
                return status, body, True
            try:
                rec = self.store.create(resource, data)
                status, body = 201, _dumps(self.out(rec))
                self._stats["creates"] += 1
            except SandboxError as exc:
                if exc.status not in REMEMBERED_STATUSES:
                    raise
                status, body, rec = exc.status, _dumps(exc.body()), None
            if key is not None:
                self._idempotency[key] = (fingerprint, status, body)
        if rec is not None or key is not None:
            self._persist()
        if rec is not None:
            self.webhooks.emit(f"{RESOURCES[resource]}.created", rec)
        return status, body, False

    def api_update(self, resource, oid, data, if_match) -> dict:
        """PATCH through the API."""
        with self._lock:
            rec, changed = self.store.update(resource, oid, data, if_match)
            self._stats["updates"] += changed
        if changed:
            self._persist()
            self.webhooks.emit(f"{RESOURCES[resource]}.updated", rec)
        return rec

    def api_delete(self, resource, oid, if_match) -> None:
        """DELETE through the API."""
        with self._lock:
            tomb = self.store.delete(resource, oid, if_match)
            self._stats["deletes"] += 1
        self._persist()
        self.webhooks.emit(f"{RESOURCES[resource]}.deleted", tomb)

    def api_get(self, resource, oid) -> dict:
        with self._lock:
            return self.store.get_live(resource, oid)

    def api_list(self, resource: str, args) -> dict:
        """A full or incremental listing page, with opaque tokens."""
        with self._lock:
            if "page_token" in args:
                state = self._page_state(resource, args)
            else:
                state = self._first_page_state(resource, args)
            full, snapshot, cursor, limit = state
            if self.strict is not None and (self.strict.id_order or self.strict.short_pages):
                return self._strict_page(resource, args, full, snapshot, cursor, limit)
            items, more, last = self.store.page(resource, full, snapshot, cursor, limit)
            body = {"data": items, "next_page_token": None, "next_sync_token": None}
            if more:
                body["next_page_token"] = self._codec.encode(
                    {"t": "p", "r": resource, "e": self._epoch, "f": full, "s": snapshot,
                     "c": last, "l": limit})
            else:
                body["next_sync_token"] = self._codec.encode(
                    {"t": "s", "r": resource, "e": self._epoch, "s": snapshot})
            return body

    def _strict_page(self, resource, args, full, snapshot, cursor, limit) -> dict:
        """A strict listing page: by id, and (with short_pages) often shorter than
        ``limit``, sometimes empty with a next_page_token."""
        if "page_token" in args:
            token = self._codec.decode(args["page_token"])
            since, after = token.get("k", 0), token["c"]
        else:
            since, after = cursor, ""
        size = limit
        if self.strict.short_pages:
            draw = self._strict_rng.random()
            size = 0 if draw < 0.1 else limit if draw > 0.6 else self._strict_rng.randint(1, limit)
        items, more, last = self.store.page_by_id(resource, full, snapshot, since, after, size)
        body = {"data": [self.out(rec) for rec in items], "next_page_token": None,
                "next_sync_token": None}
        if more:
            body["next_page_token"] = self._codec.encode(
                {"t": "p", "r": resource, "e": self._epoch, "f": full, "s": snapshot,
                 "c": last, "k": since, "l": limit, "n": next(self._nonce)})
        else:
            body["next_sync_token"] = self._codec.encode(
                {"t": "s", "r": resource, "e": self._epoch, "s": snapshot})
        return body

    def out(self, rec: dict) -> dict:
        """An object as the API sends it (strict mode: timestamps with fractions)."""
        if self.strict is not None and self.strict.fractional_timestamps:
            return with_fractions(rec)
        return rec

    def _first_page_state(self, resource, args):
        limit = _parse_limit(args.get("limit"))
        snapshot = self.store.seq
        if "sync_token" not in args:
            return True, snapshot, 0, limit
        token = self._codec.decode(args["sync_token"])
        if (not token or token.get("t") != "s" or token.get("r") != resource
                or token.get("e") != self._epoch):
            raise SandboxError(410, "sync_token_expired",
                               "The sync token is unknown or expired; do a full listing.")
        if self.strict is not None and (
                args["sync_token"] in self._stale_tokens
                or self._strict_rng.random() < self.strict.stale_token_rate):
            self._stale_tokens.add(args["sync_token"])
            self._stats["stale_tokens"] += 1
            raise SandboxError(410, "sync_token_expired",
                               "The sync token is too old; do a full listing.")
        return False, snapshot, token["s"], limit

    def _page_state(self, resource, args):
        if "limit" in args or "sync_token" in args:
            raise SandboxError(400, "invalid_page_token",
                               "A page_token must be used alone, without limit or sync_token.")
        token = self._codec.decode(args["page_token"])
        if not token or token.get("t") != "p" or token.get("r") != resource:
            raise SandboxError(400, "invalid_page_token",
                               "This page_token was not issued by this server.")
        if not token["f"] and token["e"] != self._epoch:
            raise SandboxError(410, "sync_token_expired",
                               "The sync token behind this page expired; do a full listing.")
        return token["f"], token["s"], token["c"], token["l"]


def _resource(name: str) -> str:
    """Accept "events" or "event"; KeyError-free SandboxError otherwise."""
    if name in RESOURCES:
        return name
    for plural, singular in RESOURCES.items():
        if name == singular:
            return plural
    raise SandboxError(404, "not_found", f"No resource {name!r}.")


def _parse_limit(raw) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT:
        return int(raw)
    raise SandboxError(422, "validation_failed", "Invalid query parameter.",
                       {"limit": f"must be an integer from 1 to {MAX_LIMIT}"})


def _dumps(body) -> str:
    return json.dumps(body, separators=(",", ":"))


# --------------------------------------------------------------------------
# HTTP: the Flask app
# --------------------------------------------------------------------------


class QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without a log line per request."""

    def log_request(self, *args, **kwargs):
        pass

    def date_time_string(self, timestamp=None):
        """The ``Date`` header from the sandbox clock (skewed by ``set_clock_skew``)."""
        if timestamp is None and _CLOCK_SKEW[0]:
            timestamp = time.time() + _CLOCK_SKEW[0]
        return super().date_time_string(timestamp)


def json_response(body, status=200, headers=None) -> Response:
    """A JSON answer; ``body`` may already be serialized."""
    text = body if isinstance(body, str) else _dumps(body)
    return Response(text, status, headers=headers, mimetype="application/json")


def error_response(exc: SandboxError) -> Response:
    return json_response(exc.body(), exc.status, exc.headers)


def drop_connection(sb: VendorSandbox) -> None:
    """Close the client's connection without any HTTP answer."""
    request.get_data()  # read the body first so the client sees a clean EOF
    sb.count_request(request.method, "dropped")  # before the client can notice
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    g.dropped = True


def read_json_object() -> dict:
    """The request body as a JSON object, else 400 bad_request."""
    try:
        data = json.loads(request.get_data() or b"")
    except ValueError:
        raise SandboxError(400, "bad_request", "The body is not JSON.") from None
    if not isinstance(data, dict):
        raise SandboxError(400, "bad_request", "The body must be a JSON object.")
    return data


def read_if_match(sb: "VendorSandbox") -> int | None:
    """The If-Match version, quoted or not; None when absent or ``*``.

    Strict mode takes only the contract's form, ``"<version>"``."""
    raw = request.headers.get("If-Match")
    if raw is not None and sb.strict is not None and sb.strict.exact_if_match:
        match = re.fullmatch(r'"(\d+)"', raw)
        if not match:
            raise SandboxError(400, "bad_request",
                               'If-Match must be a quoted version number, e.g. "3".')
        return int(match.group(1))
    if raw is None or raw.strip() == "*":
        return None
    text = raw.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise SandboxError(400, "bad_request", 'If-Match must be a version, e.g. "3".')
    return int(text)


def read_idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise SandboxError(400, "bad_request",
                           f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters.")
    return key


def create_app(sb: VendorSandbox) -> Flask:
    """The sandbox's WSGI app: /api/v1 (the contract) and /_control."""
    app = Flask("vendor_sandbox")
    register_pipeline(app, sb)
    register_api(app, sb)
    register_control(app, sb)
    register_errors(app)
    return app


def register_pipeline(app: Flask, sb: VendorSandbox) -> None:
    """Request ids, auth, rate limit and faults around every /api/v1 request."""

    @app.before_request
    def gate():
        g.request_id = f"req_{uuid.uuid4().hex[:20]}"
        g.api = request.path.startswith(API_PREFIX + "/") or request.path == API_PREFIX
        g.dropped, g.after_apply = False, None
        if not g.api:
            return None
        if not authorized(request.headers.get("Authorization", ""), sb.api_key):
            sb.count("unauthorized")
            return error_response(SandboxError(401, "unauthorized", "Missing or wrong API key."))
        sb.wait_if_held()
        scripted = sb.take_scripted(request.method, request.path[len(API_PREFIX):])
        decision = sb.admit(request.method) if scripted is None else scripted_decision(scripted)
        if decision.retry_after is not None:
            return error_response(SandboxError(
                429, "rate_limited", "Too many requests.",
                headers={"Retry-After": str(decision.retry_after)}))
        if decision.latency:
            time.sleep(decision.latency)
        if decision.drop:
            drop_connection(sb)
            return Response(b"", 500)
        if decision.error:
            status, code, message, after = decision.error
            headers = {"Retry-After": str(after)} if after else None
            return error_response(SandboxError(status, code, message, headers=headers))
        g.after_apply = decision.after_apply
        return None

    @app.after_request
    def finish(resp):
        resp.headers["X-Request-Id"] = g.get("request_id", "")
        if not g.get("api"):
            return resp
        if g.after_apply and 200 <= resp.status_code < 300:
            sb.count(f"fault_apply_then_{g.after_apply}")
            if g.after_apply == "drop":
                drop_connection(sb)
            else:
                resp = error_response(SandboxError(500, "internal_error",
                                                   "The vendor had an internal error."))
                resp.headers["X-Request-Id"] = g.request_id
        if not g.dropped:
            sb.count_request(request.method, resp.status_code)
        return resp


def scripted_decision(fault: ScriptedFault) -> Decision:
    """Run a scripted fault's ``before`` and turn it into the pipeline's Decision."""
    if fault.before is not None:
        fault.before()
    if fault.fault == "drop":
        return Decision(drop=True)
    if fault.fault.startswith("apply_then_"):
        return Decision(after_apply=fault.fault[len("apply_then_"):])
    status = int(fault.fault)
    _, code, message = next(f for f in FAULT_STATUSES if f[0] == status)
    return Decision(error=(status, code, message, None))


def authorized(header: str, api_key: str) -> bool:
    """``Bearer <api_key>``, compared in constant time."""
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                              api_key.encode())


def register_api(app: Flask, sb: VendorSandbox) -> None:
    """The vendor's REST API as docs/vendor-api.md describes it."""

    def resource_or_404(resource):
        if resource not in RESOURCES:
            raise SandboxError(404, "not_found", f"No resource {resource!r}.")
        return resource

    @app.get(API_PREFIX + "/health")
    def health():
        """Liveness, behind the same auth as everything else."""
        fractions = sb.strict is not None and sb.strict.fractional_timestamps
        return json_response({"status": "ok",
                              "time": (format_ts_fraction if fractions else format_ts)(utcnow())})

    @app.get(API_PREFIX + "/<resource>")
    def list_objects(resource):
        """Full or incremental listing."""
        return json_response(sb.api_list(resource_or_404(resource), request.args))

    @app.post(API_PREFIX + "/<resource>")
    def create(resource):
        """Create, with Idempotency-Key replay."""
        resource = resource_or_404(resource)
        key = read_idempotency_key()
        data = read_json_object()
        fingerprint = hashlib.sha256(
            f"{resource}\n{json.dumps(data, sort_keys=True)}".encode()).hexdigest()
        status, body, replayed = sb.api_create(resource, data, key, fingerprint)
        if replayed:
            return json_response(body, status, {"Idempotent-Replayed": "true"})
        return json_response(body, status)

    @app.get(API_PREFIX + "/<resource>/<oid>")
    def get_one(resource, oid):
        """One live object."""
        return json_response(sb.out(sb.api_get(resource_or_404(resource), oid)))

    @app.patch(API_PREFIX + "/<resource>/<oid>")
    def update(resource, oid):
        """Change some fields, optionally guarded by If-Match."""
        resource = resource_or_404(resource)
        if_match = read_if_match(sb)
        sb.api_get(resource, oid)  # 404 before looking at the body
        return json_response(sb.out(sb.api_update(resource, oid, read_json_object(), if_match)))

    @app.delete(API_PREFIX + "/<resource>/<oid>")
    def delete(resource, oid):
        """Delete, optionally guarded by If-Match."""
        sb.api_delete(resource_or_404(resource), oid, read_if_match(sb))
        return Response(status=204)


def register_control(app: Flask, sb: VendorSandbox) -> None:
    """/_control: the Python helpers over HTTP, for other processes."""
    c = CONTROL_PREFIX

    def body() -> dict:
        return read_json_object() if request.get_data() else {}

    @app.get(c)
    def control_index():
        """A list of the control endpoints."""
        return json_response({"endpoints": sorted(
            f"{','.join(sorted(r.methods - {'HEAD', 'OPTIONS'}))} {r.rule}"
            for r in app.url_map.iter_rules() if r.rule.startswith(c))})

    @app.post(c + "/reset")
    def control_reset():
        """Empty everything."""
        sb.reset()
        return json_response({"ok": True})

    @app.post(c + "/seed")
    def control_seed():
        """{"kind": "demo"|"bulk", "employees", "events", "schedules"}."""
        opts = body()
        kind = opts.pop("kind", "demo")
        if kind not in ("demo", "bulk"):
            raise SandboxError(422, "validation_failed", "Bad seed.",
                               {"kind": "must be demo or bulk"})
        seeder = sb.seed_demo if kind == "demo" else sb.bulk_seed
        return json_response(call_with(seeder, opts))

    @app.route(c + "/faults", methods=["GET", "POST", "DELETE"])
    def control_faults():
        """GET the faults, POST new ones (replacing all), DELETE them."""
        if request.method == "POST":
            return json_response(call_with(sb.set_faults, body()))
        if request.method == "DELETE":
            sb.clear_faults()
        return json_response(sb.faults())

    @app.route(c + "/faults/script", methods=["GET", "POST"])
    def control_script_fault():
        """POST {"method", "path", "fault"}: the next matching request gets it, once."""
        if request.method == "POST":
            opts = body()
            call_with(sb.script_fault, {k: opts.get(k) for k in ("method", "path", "fault")})
        return json_response({"data": sb.scripted_faults()})

    @app.route(c + "/clock", methods=["GET", "POST"])
    def control_clock():
        """{"skew_seconds": s}: the vendor's clock runs s seconds ahead of the host's."""
        if request.method == "POST":
            opts = body()
            try:
                sb.set_clock_skew(float(opts.get("skew_seconds", 0)))
            except (TypeError, ValueError):
                raise SandboxError(422, "validation_failed", "Bad clock skew.",
                                   {"skew_seconds": "must be a number"}) from None
        return json_response({"skew_seconds": sb.clock_skew()})

    @app.post(c + "/expire_tokens")
    def control_expire_tokens():
        """Every sync token issued so far answers 410."""
        sb.expire_sync_tokens()
        return json_response({"ok": True})

    @app.route(c + "/webhooks", methods=["GET", "POST"])
    def control_webhooks():
        """GET or change (partially) the webhook settings."""
        if request.method == "GET":
            return json_response(sb.webhooks.config())
        return json_response(call_with(sb.configure_webhooks, body()))

    @app.post(c + "/webhooks/wait_idle")
    def control_wait_idle():
        """{"timeout": s} -> {"idle": bool}."""
        return json_response({"idle": sb.wait_webhooks_idle(float(body().get("timeout", 10)))})

    @app.get(c + "/webhooks/log")
    def control_webhook_log():
        """Every delivery attempt."""
        return json_response({"data": sb.webhook_log()})

    @app.get(c + "/stats")
    def control_stats():
        """Counters."""
        return json_response(sb.stats())

    @app.get(c + "/objects/<resource>")
    def control_objects(resource):
        """?include_deleted=1 adds tombstones."""
        deleted = request.args.get("include_deleted", "").lower() in ("1", "true", "yes")
        return json_response({"data": sb.objects(resource, include_deleted=deleted)})

    @app.post(c + "/objects/<resource>")
    def control_create(resource):
        """Create as a vendor user."""
        return json_response(sb.vendor_create(resource, read_json_object()), 201)

    @app.patch(c + "/objects/<resource>/<oid>")
    def control_update(resource, oid):
        """Change as a vendor user."""
        return json_response(sb.vendor_update(resource, oid, read_json_object()))

    @app.delete(c + "/objects/<resource>/<oid>")
    def control_delete(resource, oid):
        """Delete as a vendor user; answers the tombstone."""
        return json_response(sb.vendor_delete(resource, oid))


def call_with(func, opts: dict):
    """Call a helper with JSON options; a bad option answers 422."""
    try:
        return func(**opts)
    except (TypeError, ValueError) as exc:
        raise SandboxError(422, "validation_failed", str(exc)) from None


def register_errors(app: Flask) -> None:
    """Every error answers the contract's JSON error body."""

    @app.errorhandler(SandboxError)
    def sandbox_error(exc):
        return error_response(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.code, "bad_request")
        return json_response({"error": {"code": code, "message": exc.description}}, exc.code)

    @app.errorhandler(Exception)
    def internal_error(exc):
        app.logger.exception("sandbox bug")
        return json_response({"error": {"code": "internal_error", "message": str(exc)}}, 500)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def main(argv=None) -> None:
    """Serve the sandbox until Ctrl-C."""
    p = argparse.ArgumentParser(description="Fake vendor scheduling API (sandbox).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5001)
    p.add_argument("--api-key", required=True)
    p.add_argument("--webhook-url")
    p.add_argument("--webhook-secret")
    p.add_argument("--webhook-mode", choices=WEBHOOK_MODES, default="normal")
    p.add_argument("--seed-demo", action="store_true", help="load a small demo data set")
    p.add_argument("--bulk", type=int, metavar="N",
                   help="load N events and N schedules (N/4 employees)")
    p.add_argument("--seed", type=int, default=0, help="seed for ids, demo data and faults")
    p.add_argument("--strict", action="store_true",
                   help="use every freedom the vendor contract leaves (see the module docstring)")
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--latency-ms", type=int, default=0)
    p.add_argument("--rate-limit", metavar="RPS,BURST")
    p.add_argument("--state-file", metavar="PATH",
                   help="keep the data in this JSON file across restarts (rewritten atomically "
                        "after every change); --seed-demo and --bulk then seed only a new file")
    args = p.parse_args(argv)
    try:
        sb = VendorSandbox(api_key=args.api_key, webhook_url=args.webhook_url,
                           webhook_secret=args.webhook_secret, seed=args.seed,
                           host=args.host, port=args.port, strict=args.strict,
                           state_file=args.state_file)
    except SandboxStateError as exc:
        sys.exit(str(exc))
    sb.configure_webhooks(mode=args.webhook_mode)
    rate_limit = tuple(float(x) for x in args.rate_limit.split(",")) if args.rate_limit else None
    sb.set_faults(error_rate=args.error_rate, drop_rate=args.drop_rate,
                  latency_ms=args.latency_ms, rate_limit=rate_limit)
    if sb.restored:
        counts = ", ".join(f"{n} {name}" for name, n in sb.counts().items())
        print(f"Vendor sandbox data restored from {sb.state_file}: {counts}", flush=True)
    else:
        if args.seed_demo:
            sb.seed_demo()
        if args.bulk:
            sb.bulk_seed(employees=max(1, args.bulk // 4), events=args.bulk, schedules=args.bulk)
    # SIGTERM stops the sandbox like Ctrl-C does: the server closes its port, exit status 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    sb.start()
    print(f"Vendor sandbox API: {sb.base_url}", flush=True)
    print(f"Control API:        {sb.control_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sb.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
