"""Webhooks: verify, record and apply one vendor message (`handle_webhook`).

The message is verified (Standard Webhooks), recorded once under its webhook-id and
applied with `apply.apply_items`; rejected and repeated deliveries are counted one row
a minute (`count_rejected`, `count_delivery`).  The fields' rules
(`vendor_field_problems`) are the ones local input follows.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

import history
import inputs
import metrics
from api_service import TIMESTAMP_FIELDS, parse_object, parse_timestamp
import fields
from models import WebhookMessage, db, utcnow

from .errors import WebhookRejected
from .context import ACTIONS, DATETIME_FIELDS, FIELDS, PLURAL, apply_lock, is_enabled, log
from .soon import ask_soon
from .mapping import vendor_version
from .apply import apply_items


def handle_webhook(app, raw_body: bytes, headers: dict) -> dict:
    """Verify, record and apply one webhook message; returns {"outcome", ...}.

    Raises WebhookRejected(503 when sync is off, 401 bad signature, 400 not
    a message); those deliveries are logged and counted (`count_rejected`),
    never stored one row each.  A verified message whose fields break the
    rules local input follows is recorded under its webhook-id as "rejected"
    with the reasons (2xx: a retry cannot make it valid, and counts as a
    repeat).  No vendor calls: anything needing one becomes "deferred" plus
    a coalesced background pull.
    """
    claimed = _verify(app, raw_body, headers)
    if not is_enabled(app):
        raise WebhookRejected(503, "sync_disabled", "sync is off here; retry later")
    delivery = _read_message(raw_body, claimed)
    for attempt in range(3):
        if db.session.scalar(select(WebhookMessage.id)
                             .where(WebhookMessage.webhook_id == claimed)) is not None:
            count_delivery("duplicate", claimed, "already received, nothing changed",
                           delivery.message)
            return {"outcome": "duplicate"}
        try:
            outcome, detail = _record(app, delivery)
            break
        except IntegrityError:
            db.session.rollback()
    else:
        raise WebhookRejected(503, "busy", "could not record the message; retry")
    metrics.observe_delivery(outcome)
    if outcome == "deferred":
        ask_soon(app, "pull")
    if outcome == "rejected":
        return {"outcome": outcome, "detail": detail}
    return {"outcome": outcome}


@dataclass
class Delivery:
    """A verified webhook message: its webhook-id, body, what it is about, its problems."""

    webhook_id: str
    message: dict
    resource: str
    action: str
    data: dict
    problems: list


def _verify(app, raw_body: bytes, headers: dict) -> str:
    """The message's webhook-id once its signature checks out (WebhookRejected 503 without
    a secret, 401 on a bad signature, counted)."""
    from standardwebhooks import Webhook

    secret = app.config.get("WEBHOOK_SECRET")
    if not secret:
        raise WebhookRejected(503, "sync_disabled", "no WEBHOOK_SECRET is set here; retry later")
    claimed = str({k.lower(): v for k, v in headers.items()}.get("webhook-id") or "?")
    try:
        Webhook(secret).verify(raw_body, headers, json_parse=False)
    except Exception as exc:  # noqa: BLE001 - any verification failure is a 401
        count_rejected("invalid_signature",
                       f"401: verification failed: {exc} (webhook-id {claimed[:80]!r})")
        raise WebhookRejected(401, "invalid_signature",
                              f"webhook verification failed: {exc}") from None
    return claimed


def _read_message(raw_body: bytes, claimed: str) -> Delivery:
    """The body as a Delivery (WebhookRejected 400, counted, when it is not a message)."""
    import json

    try:
        message = json.loads(raw_body)
        resource, action, data = _parse_message(message)
    except (ValueError, RecursionError, WebhookRejected) as exc:
        reason = exc.message if isinstance(exc, WebhookRejected) else "the body is not JSON"
        count_rejected("not_a_message", f"400: {reason} (webhook-id {claimed[:80]!r})")
        if isinstance(exc, WebhookRejected):
            raise
        raise WebhookRejected(400, "bad_request", reason) from None
    problems = vendor_field_problems(resource, data, deleted=action == "deleted")
    return Delivery(claimed, message, resource, action, data, problems)


def _record(app, delivery: Delivery) -> tuple[str, Optional[str]]:
    """Apply the message (unless its fields are refused) and record it under its
    webhook-id, in one transaction; IntegrityError when another delivery recorded it."""
    webhook_id = delivery.webhook_id
    with apply_lock, history.source("webhook", actor=None, ref=webhook_id[:255]):
        if delivery.problems:
            outcome, detail = "rejected", "invalid fields: " + "; ".join(delivery.problems)
            log.warning("webhook %s rejected: %s", webhook_id[:80], detail[:500])
        else:
            delivery.data = parse_object(delivery.data)
            if delivery.action == "deleted":
                delivery.data["deleted"] = True
            outcome, detail = _apply_webhook(app, delivery.resource, delivery.action,
                                             delivery.data)
        db.session.add(WebhookMessage(
            webhook_id=webhook_id[:255], type=delivery.message["type"][:64],
            object_id=str(delivery.data["id"])[:64], version=vendor_version(delivery.data),
            outcome=outcome, detail=detail[:1000] if detail else detail))
        db.session.commit()
    return outcome, detail


def count_rejected(reason: str, detail: str) -> None:
    """Log a rejected delivery and count it in the row of this minute and reason."""
    log.warning("webhook delivery rejected (%s): %s", reason, detail[:500])
    count_delivery("rejected", reason, detail)


def count_delivery(outcome: str, key: str, detail: str, message: Optional[dict] = None) -> None:
    """Count a rejected or repeated delivery for the admin page: one row per minute and
    `key` (the reason, or the repeated webhook-id), whose `count` goes up by one.

    The row's webhook_id is `<key>#<outcome>-<minute>`, so the message's own
    webhook-id stays free for the real, verified message, and a flood of junk
    adds one row a minute, not one per request.
    """
    metrics.observe_delivery(outcome)
    now = utcnow()
    row_id = f"{key[:200]}#{outcome}-{now:%Y%m%dT%H%MZ}"
    data = message.get("data") if isinstance(message, dict) else None
    data = data if isinstance(data, dict) else {}
    values = {"detail": detail[:1000], "received_at": now}
    for attempt in range(3):
        try:
            counted = db.session.execute(
                update(WebhookMessage).where(WebhookMessage.webhook_id == row_id)
                .values(count=WebhookMessage.count + 1, **values)
                .execution_options(synchronize_session=False)).rowcount
            if not counted:
                db.session.add(WebhookMessage(
                    webhook_id=row_id, outcome=outcome, count=1,
                    type=str((message or {}).get("type") or "?")[:64] if message else "?",
                    object_id=str(data["id"])[:64] if data.get("id") else None,
                    version=data.get("version") if isinstance(data.get("version"), int) else None,
                    **values))
            db.session.commit()
            return
        except IntegrityError:  # another process inserted this minute's row first
            db.session.rollback()
        except Exception:  # noqa: BLE001 - the log must never change the answer
            db.session.rollback()
            log.exception("could not record a %s webhook delivery", outcome)
            return


def _parse_message(message: Any) -> tuple[str, str, dict]:
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise WebhookRejected(400, "bad_request", "not a webhook message: no type")
    name, _, action = message["type"].partition(".")
    if name not in PLURAL or action not in ACTIONS:
        raise WebhookRejected(400, "bad_request",
                              f"unknown message type {message['type'][:64]!r}")
    data = message.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise WebhookRejected(400, "bad_request", "data must be an object with an id")
    return PLURAL[name], action, data


# The vendor contract's rules for an object's fields, which are also the rules local
# input follows (the JSON API's checks and the columns' sizes).
REQUIRED_FIELDS = {"employees": ("name",),
                   "events": ("project_ref_num", "project_name", "start_datetime", "due_datetime"),
                   "schedules": ("event_id", "employee_id", "start_datetime")}
VENDOR_ID_LENGTH = 64

# The instants local input may carry too (inputs.py): shown in any zone, a week added, still a date.
EARLIEST, LATEST = inputs.MIN_INSTANT, inputs.MAX_INSTANT - timedelta(microseconds=1)


def vendor_field_problems(resource: str, data: dict, deleted: bool = False) -> list[str]:
    """What is wrong with a vendor object's fields (empty when nothing is)."""
    problems = [f"id must be at most {VENDOR_ID_LENGTH} characters"] \
        if len(data["id"]) > VENDOR_ID_LENGTH else []
    for name in TIMESTAMP_FIELDS:
        value = data.get(name)
        if value is None:
            continue
        try:
            parsed = parse_timestamp(value)
        except (TypeError, ValueError, OverflowError):
            problems.append(f"{name} is not an RFC 3339 timestamp within the calendar")
            continue
        if not EARLIEST <= parsed <= LATEST:
            problems.append(f"{name} is outside the dates this app can store")
    if deleted:
        return problems
    for name in FIELDS[resource]:
        value = data.get(name)
        if value is None:
            if name in REQUIRED_FIELDS[resource]:
                problems.append(f"{name} is required")
            continue
        if name in DATETIME_FIELDS:
            continue  # checked above
        if resource == "schedules" and name != "start_datetime":
            if not isinstance(value, str) or not 0 < len(value) <= VENDOR_ID_LENGTH:
                problems.append(f"{name} must be a vendor id of 1-{VENDOR_ID_LENGTH} characters")
            continue
        if isinstance(value, str):
            try:
                inputs.check_text(value, name)
            except inputs.BadInput as exc:
                problems.append(exc.message)
                continue
        problems.extend(fields.problems(resource, name, value, vendor=True))
    return problems


def _apply_webhook(app, resource: str, action: str, data: dict) -> tuple[str, Optional[str]]:
    results = apply_items(resource, [data], None, source="webhook")
    res = results[0]
    outcome = {"local_wins": "conflict", "skipped": "stale"}.get(res.outcome, res.outcome)
    if res.outcome == "local_wins":
        ask_soon(app, "push")
    return outcome, res.detail
