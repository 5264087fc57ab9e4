"""The lease: one sync run at a time across processes and hosts (a row in sync_lease).

Taken with one conditional UPDATE (`acquire_lease`), renewed at checkpoints
(`renew_lease`), given back at the end (`release_lease`).  A holder on this host whose
process is gone is taken over at once; one on another host only once it expired.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from models import SyncLease, db, utcnow

from .errors import LeaseLost


log = logging.getLogger("sync_engine")
LEASE_NAME = "sync"


def new_owner() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _read_first_line(path: str) -> str:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.readline().strip()
    except OSError:
        return ""


def _host_identity() -> str:
    """This host as the lease records it: its name, plus on Linux the boot id and the PID
    namespace, so two containers that share a name but not a process table never judge
    each other's pids."""
    parts = [socket.gethostname()[:100], _read_first_line("/proc/sys/kernel/random/boot_id")]
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    return " ".join(p for p in parts if p)[:255]


HOST_IDENTITY = _host_identity()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (signal 0 sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, as another user's process
        return True
    return True


def _dead_local_holder(now: datetime) -> Optional[str]:
    """The owner of a live lease whose holder ran on this host and is gone, else None."""
    held = db.session.execute(
        select(SyncLease.owner, SyncLease.holder_host, SyncLease.holder_pid)
        .where(SyncLease.name == LEASE_NAME, SyncLease.owner.is_not(None),
               SyncLease.expires_at >= now)).first()
    db.session.rollback()
    if held is None or held.holder_host != HOST_IDENTITY or not held.holder_pid:
        return None
    if held.holder_pid == os.getpid() or pid_alive(held.holder_pid):
        return None
    return held.owner


def acquire_lease(owner: str, ttl: float, run_id: Optional[int] = None) -> bool:
    """Take the lease with one conditional UPDATE (inserting the row the first time).

    Free means: nobody holds it, its holder let it expire, or its holder ran on this
    host and that process is gone (taken at once; a holder on another host is only
    ever taken over once its lease expires).
    """
    now = utcnow()
    values = {"owner": owner, "expires_at": now + timedelta(seconds=ttl), "run_id": run_id,
              "holder_host": HOST_IDENTITY, "holder_pid": os.getpid()}
    free = or_(SyncLease.owner.is_(None), SyncLease.expires_at < now)
    dead = _dead_local_holder(now)
    if dead is not None:
        free = or_(free, SyncLease.owner == dead)  # still that dead holder's, or no takeover
    stmt = (update(SyncLease).where(SyncLease.name == LEASE_NAME, free)
            .values(**values).execution_options(synchronize_session=False))
    if db.session.execute(stmt).rowcount == 1:
        db.session.commit()
        if dead is not None:
            log.warning("took over the sync lease of %s: that process on this host is gone",
                        dead)
        return True
    db.session.rollback()
    if db.session.get(SyncLease, LEASE_NAME) is not None:
        return False
    try:
        db.session.add(SyncLease(name=LEASE_NAME, **values))
        db.session.commit()
        return True
    except IntegrityError:  # another process inserted it first
        db.session.rollback()
        return False


def renew_lease(owner: str, ttl: float, run_id: Optional[int] = None) -> None:
    """Push the expiry forward; LeaseLost if another owner holds it now."""
    values: dict = {"expires_at": utcnow() + timedelta(seconds=ttl)}
    if run_id is not None:
        values["run_id"] = run_id
    stmt = (update(SyncLease).where(SyncLease.name == LEASE_NAME, SyncLease.owner == owner)
            .values(**values).execution_options(synchronize_session=False))
    if db.session.execute(stmt).rowcount != 1:
        db.session.rollback()
        raise LeaseLost("the sync lease was lost (expired and taken by another run)")
    db.session.commit()


def release_lease(owner: str) -> None:
    """Give the lease back (only if still ours)."""
    stmt = (update(SyncLease).where(SyncLease.name == LEASE_NAME, SyncLease.owner == owner)
            .values(owner=None, expires_at=None, run_id=None, holder_host=None, holder_pid=None)
            .execution_options(synchronize_session=False))
    db.session.execute(stmt)
    db.session.commit()


def lease_held() -> bool:
    lease = db.session.get(SyncLease, LEASE_NAME)
    return bool(lease is not None and lease.owner and lease.expires_at
                and lease.expires_at >= utcnow())


def lease_holder_run_id() -> Optional[int]:
    """The run id of the live lease, if any."""
    lease = db.session.get(SyncLease, LEASE_NAME)
    if lease is None or lease.owner is None or lease.expires_at is None \
            or lease.expires_at < utcnow():
        return None
    return lease.run_id


class LeaseHeartbeat:
    """Renews a run's lease on a thread of its own every SYNC_LEASE_RENEW_SECONDS (at most a
    third of the TTL), however long one request or page takes; `lost` once another owner
    took it (the run's next checkpoint stops it).  It dies with its process: a killed run's
    lease then expires, or is taken at once on this host."""

    def __init__(self, app, owner: str, run_id: int, conf: dict):
        self.app, self.owner, self.run_id = app, owner, run_id
        self.ttl = float(conf["lease_ttl"])
        self.interval = max(0.05, min(float(conf["lease_renew"]), self.ttl / 3))
        self.lost = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"sync-lease-{run_id}",
                                        daemon=True)

    def __enter__(self) -> "LeaseHeartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join(timeout=self.interval + 10)

    def _loop(self) -> None:
        """Renew until the run ends or the lease is lost (errors logged, tried again)."""
        with self.app.app_context():
            while not self._done.wait(self.interval):
                try:
                    renew_lease(self.owner, self.ttl, self.run_id)
                except LeaseLost:
                    self.lost = True
                    return
                except Exception:  # noqa: BLE001 - a busy database: the next beat tries again
                    db.session.rollback()
                    log.warning("sync run %s: could not renew its lease", self.run_id,
                                exc_info=True)
                finally:
                    db.session.remove()
