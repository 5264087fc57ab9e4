"""Soon-runs and the scheduler as the engine sees it.

`sync_scheduler.init_app` installs each app's scheduler under
`app.extensions[SCHEDULER_EXTENSION]`; the engine only asks it for a coalesced push
or pull soon (after an admin action or a webhook) and what the status pages show.
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional

SCHEDULER_EXTENSION = "sync_scheduler"  # the key of the app's SyncScheduler in app.extensions


def _scheduler(app):
    """The app's SyncScheduler (installed by sync_scheduler.init_app), or None."""
    return app.extensions.get(SCHEDULER_EXTENSION)


def ask_soon(app, kind: str) -> None:
    """Ask for one coalesced push or pull run soon (nothing without a scheduler)."""
    scheduler = _scheduler(app)
    if scheduler is not None:
        scheduler.request(kind)


def next_run_at(app) -> Optional[datetime]:
    """When the interval job runs next (None without a running scheduler)."""
    scheduler = _scheduler(app)
    return scheduler.next_run_at() if scheduler is not None else None


def scheduler_running(app) -> bool:
    scheduler = _scheduler(app)
    return bool(scheduler is not None and scheduler.running)
