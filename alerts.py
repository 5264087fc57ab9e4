"""Operational alerts: raised from what the database knows, told once when they start
and once when they end.

The conditions (each one alert, by name):

* `sync_failing`: the last SYNC_ALERT_AFTER_FAILURES finished runs all failed or
  were partial (one good run in between resets it: a flapping sync never fires);
* `pending_too_long`: a record has been pending longer than SYNC_ALERT_PENDING_MINUTES;
* `deletions_held`: deletions are held for an admin (SYNC_DELETE_GUARD);
* `vendor_clock_skew`: the vendor's clock is more than 60 s off ours.

`evaluate()` compares them with the stored state (table `alerts`) and, for each
alert that starts or ends, writes a notification to the outbox
(`alert_notifications`) in the same transaction, the change of state being one
conditional UPDATE: two processes evaluating at once record one start.  `deliver()`
POSTs what the outbox holds to ALERT_WEBHOOK_URL (`{"text", "status", "alert",
"since"}`: `text` makes it a Slack-compatible message), oldest first, claiming
each row before sending so that two processes never send the same one; a failed
POST is tried again later with a growing delay.  Neither is called inside a sync
run's work: the scheduler calls them after a run and on each tick, in its own
thread.  The banner on the admin pages reads `firing()`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Optional

import requests
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

import sync_engine
from models import SYNCED_MODELS, Alert, AlertNotification, SyncRun, db, iso, utcnow

__all__ = ["ALERT_NAMES", "CLOCK_SKEW_LIMIT_S", "deliver", "evaluate", "firing", "oldest_pending_at"]

log = logging.getLogger("app.alerts")

ALERT_NAMES = ("sync_failing", "pending_too_long", "deletions_held", "vendor_clock_skew")
CLOCK_SKEW_LIMIT_S = 60.0
CLAIM_SECONDS = 30  # a claimed notification another process may take over after this
RETRY_BASE_S, RETRY_MAX_S = 5.0, 600.0
BATCH = 20  # notifications sent per deliver() call at most


@dataclass(frozen=True)
class Settings:
    """What the conditions read (from the app's config)."""

    failures: int
    pending_minutes: float
    webhook_url: Optional[str]

    @classmethod
    def of(cls, config) -> "Settings":
        return cls(int(config.get("SYNC_ALERT_AFTER_FAILURES", 3)),
                   float(config.get("SYNC_ALERT_PENDING_MINUTES", 60)),
                   config.get("ALERT_WEBHOOK_URL") or None)


# -- the conditions: each returns the alert's text while it holds, else None ---------

def _sync_failing(conf: Settings, now: datetime, _offset) -> Optional[str]:
    runs = db.session.execute(select(SyncRun.id, SyncRun.status, SyncRun.message)
                              .where(SyncRun.status != "running")
                              .order_by(SyncRun.id.desc()).limit(max(conf.failures, 1))).all()
    if len(runs) < conf.failures or any(r.status not in ("failed", "partial") for r in runs):
        return None
    last = runs[0]
    why = f": {last.message}" if last.message else ""
    return f"The sync has failed {conf.failures} runs in a row (last: run {last.id}, {last.status}{why})."


def oldest_pending_at() -> Optional[datetime]:
    """When the longest-waiting pending record was changed (None: nothing pending)."""
    stamps = [db.session.scalar(select(func.min(model.updated_at))
                                .where(model.sync_status == "pending"))
              for model in SYNCED_MODELS.values()]
    stamps = [s for s in stamps if s is not None]
    return min(stamps) if stamps else None


def _pending_too_long(conf: Settings, now: datetime, _offset) -> Optional[str]:
    oldest = oldest_pending_at()
    if oldest is None or now - oldest <= timedelta(minutes=conf.pending_minutes):
        return None
    minutes = int((now - oldest).total_seconds() // 60)
    return (f"A local change has waited {minutes} minutes to reach the vendor "
            f"(limit {conf.pending_minutes:g}); the oldest pending record changed at {iso(oldest)}.")


def _deletions_held(_conf: Settings, _now: datetime, _offset) -> Optional[str]:
    held = {resource: n for resource, n in sync_engine.held_counts().items() if n}
    if not held:
        return None
    counts = ", ".join(f"{n} {resource}" for resource, n in held.items())
    return f"Deletions are held for an admin ({counts}): see /sync/admin."


def _vendor_clock_skew(_conf: Settings, _now: datetime, offset: Optional[float]) -> Optional[str]:
    if offset is None or abs(offset) <= CLOCK_SKEW_LIMIT_S:
        return None
    side = "ahead of" if offset > 0 else "behind"
    return f"The vendor's clock is {abs(offset):.0f} s {side} ours (limit {CLOCK_SKEW_LIMIT_S:.0f} s)."


CONDITIONS: dict[str, Callable] = {
    "sync_failing": _sync_failing, "pending_too_long": _pending_too_long,
    "deletions_held": _deletions_held, "vendor_clock_skew": _vendor_clock_skew,
}


# -- state changes -------------------------------------------------------------------

def _ensure_rows() -> None:
    """One row per alert (inserted once; a racing insert is harmless)."""
    known = set(db.session.scalars(select(Alert.name)))
    for name in ALERT_NAMES:
        if name in known:
            continue
        try:
            with db.session.begin_nested():
                db.session.add(Alert(name=name, firing=False))
        except IntegrityError:
            pass
    db.session.commit()


def _switch(name: str, text: Optional[str], now: datetime) -> Optional[str]:
    """Move one alert to firing (text) or resolved (None); the new status if it moved."""
    start = text is not None
    moved = db.session.execute(
        update(Alert).where(Alert.name == name, Alert.firing.is_(not start))
        .values(firing=start, since=now if start else Alert.since, text=text or Alert.text,
                updated_at=now).execution_options(synchronize_session=False)).rowcount
    if not moved:
        if start:  # still firing: keep its words current
            db.session.execute(update(Alert).where(Alert.name == name, Alert.firing.is_(True))
                               .values(text=text).execution_options(synchronize_session=False))
        return None
    row = db.session.get(Alert, name, populate_existing=True)
    status = "firing" if start else "resolved"
    words = text if start else f"Resolved: {row.text}"
    db.session.add(AlertNotification(alert=name, status=status, text=words, since=row.since or now,
                                     created_at=now))
    return status


def evaluate(config, clock_offset_s: Optional[float] = None,
             now: Optional[datetime] = None) -> dict[str, str]:
    """Check every condition; {alert: "firing" | "resolved"} for those that moved."""
    conf, now = Settings.of(config), now or utcnow()
    _ensure_rows()
    moved = {}
    for name, condition in CONDITIONS.items():
        status = _switch(name, condition(conf, now, clock_offset_s), now)
        if status:
            moved[name] = status
            log.warning("alert %s %s", name, status)
    db.session.commit()
    return moved


def firing() -> list[Alert]:
    """The alerts firing now, oldest first (the admin pages' banner)."""
    return list(db.session.scalars(select(Alert).where(Alert.firing.is_(True))
                                   .order_by(Alert.since, Alert.name)))


# -- delivery --------------------------------------------------------------------------

def _claim(note_id: int, now: datetime) -> bool:
    """Take one unsent notification for CLAIM_SECONDS (one sender across processes)."""
    taken = db.session.execute(
        update(AlertNotification).where(
            AlertNotification.id == note_id, AlertNotification.sent_at.is_(None),
            (AlertNotification.next_attempt_at.is_(None)) | (AlertNotification.next_attempt_at <= now))
        .values(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return bool(taken)


def _post(url: str, note: AlertNotification, timeout: float) -> Optional[str]:
    """POST one notification; None when the receiver took it, else why not."""
    body = {"text": note.text, "status": note.status, "alert": note.alert, "since": iso(note.since)}
    try:
        response = requests.post(url, json=body, timeout=timeout)
    except requests.RequestException as exc:
        return type(exc).__name__
    return None if response.status_code < 300 else f"HTTP {response.status_code}"


def _record(note_id: int, error: Optional[str], attempts: int, now: datetime) -> None:
    """Mark a notification sent, or due again after a growing delay."""
    values: dict = {"attempts": attempts + 1}
    if error is None:
        values.update(sent_at=now, last_error=None)
    else:
        delay = min(RETRY_BASE_S * 2 ** attempts, RETRY_MAX_S)
        values.update(next_attempt_at=now + timedelta(seconds=delay), last_error=error)
    db.session.execute(update(AlertNotification).where(AlertNotification.id == note_id)
                       .values(**values).execution_options(synchronize_session=False))
    db.session.commit()


def deliver(config, timeout: float = 5.0, now: Optional[Callable[[], datetime]] = None) -> int:
    """POST the outbox's due notifications in order; how many the receiver took."""
    url = Settings.of(config).webhook_url
    if not url:
        return 0
    clock = now or utcnow
    due = db.session.scalars(select(AlertNotification).where(AlertNotification.sent_at.is_(None))
                             .order_by(AlertNotification.id).limit(BATCH)).all()
    sent = 0
    for note in due:
        if not _claim(note.id, clock()):
            break  # not due yet or another process has it: keep the order
        error = _post(url, note, timeout)
        _record(note.id, error, note.attempts, clock())
        if error is not None:
            log.warning("alert notification %s not delivered: %s", note.id, error)
            break
        sent += 1
    return sent
