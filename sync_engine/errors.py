"""The engine's own exceptions (imported by every other module of the package)."""
from __future__ import annotations

from typing import Optional

from models import ApiError


class SyncError(Exception):
    """Base of the engine's own errors."""


class SyncDisabled(SyncError):
    """SYNC_ENABLED is false (or the vendor is not configured)."""


class SyncInProgress(SyncError):
    """Another run holds the lease; `run_id` names it (None if unknown)."""

    def __init__(self, run_id: Optional[int]):
        super().__init__(f"a sync run is already in progress (run {run_id})")
        self.run_id = run_id


class LeaseLost(SyncError):
    """The lease expired or was taken over while this run was working."""


class SyncStopped(SyncError):
    """The process is shutting down (`shutdown_scheduler`): the run stopped at a safe point."""


class TickTaken(SyncError):
    """Another process already recorded the run of this interval tick: nothing to do."""


class VendorUnavailable(SyncError):
    """A request failed after the client's retries and the vendor's health check fails too:
    the run stops there (partial) instead of spending the same retries on everything left."""


class DayTaken(RuntimeError):
    """The vendor's version of a schedule would give an employee a second live schedule on
    a local day (a rule the vendor does not know)."""


class NothingHeld(SyncError):
    """An apply or restore of a resource with no deletion held."""


class WebhookRejected(ApiError):
    """A webhook answer other than 2xx: status, code and message (answered as an ApiError)."""
