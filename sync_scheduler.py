"""Process plumbing around the sync engine: the interval job, soon-runs, shutdown.

`init_app(app)` (called by `create_app`) installs a `SyncScheduler` in
`app.extensions[sync_engine.SCHEDULER_EXTENSION]`: the app's coalesced soon-runs
(one push SYNC_PUSH_DELAY_SECONDS after local changes, one pull after deferred
webhooks) and, where it should run, the APScheduler interval job.  A local change
reaches it through the `models.local_change` signal it connects to (models know
nothing of the sync); the engine asks for soon-runs through that extension, so it
never imports this module; `shutdown_scheduler()` (gunicorn's worker_exit) stops every job in
the process and makes a run in progress stop at its next checkpoint.
"""
from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Optional

from flask import Flask

import sync_engine
from models import db, local_change, utcnow

log = logging.getLogger("sync_engine")

JOB_ID = "vendor-sync"
FIRST_JOB_ID = "vendor-sync-first"  # the one run SYNC_FIRST_RUN_DELAY_SECONDS after start
ALERTS_IDLE_SECONDS = 60.0  # the alerts thread ends after this long without a request
STALE_PENDING_SECONDS = 60.0  # a soon-run armed this long ago and not started was lost: re-arm
TICK_ORIGIN = datetime(1970, 1, 1, tzinfo=timezone.utc)  # interval ticks count from here
EXTENSION = sync_engine.SCHEDULER_EXTENSION

# The schedulers running in this process, for shutdown_scheduler().
_running: set = set()
_running_lock = threading.Lock()


class SyncScheduler:
    """One app's interval job and soon-runs (at most one pending push and one pull)."""

    def __init__(self, app: Flask):
        self.app = app
        self.scheduler = None  # an APScheduler BackgroundScheduler once started
        self._pending: dict = {}  # kind → monotonic time its soon-run was armed
        self._job_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._alerts_due = threading.Event()  # set after a run and on each tick
        self._alerts_thread: Optional[threading.Thread] = None

    @property
    def running(self) -> bool:
        return bool(self.scheduler is not None and self.scheduler.running)

    def request(self, kind: str) -> None:
        """ONE push ("push") or pull ("pull") run soon, coalesced; nothing when sync is off."""
        conf = sync_engine.settings(self.app)
        if not conf["enabled"] or (kind == "push" and not conf["push_on_change"]):
            return
        delay = conf["push_delay"] if kind == "push" else max(conf["push_delay"], 0.2)
        self._soon(kind, delay)

    def on_local_change(self, sender) -> None:
        """`models.local_change` of this app (a local write committed): a push soon."""
        self.request("push")

    def _soon(self, kind: str, delay: float) -> None:
        """Arm ONE soon-run of `kind`: the pending mark and its job are one state.

        The mark is set here and cleared when the job STARTS (`_fire`), so a change during
        the run arms the next one.  Each job has its own id: APScheduler never skips it as
        a second running instance of the previous one, nor refuses it as a duplicate id.
        A mark older than its delay + STALE_PENDING_SECONDS (a job that was lost) is re-armed.
        """
        now = time.monotonic()
        with self._lock:
            armed = self._pending.get(kind)
            if armed is not None and now - armed < delay + STALE_PENDING_SECONDS:
                return
            self._pending[kind] = now
        if self.running and self._add_job(kind, delay):
            return
        timer = threading.Timer(delay, self._fire, args=(kind,))
        timer.daemon = True
        timer.start()

    def _add_job(self, kind: str, delay: float) -> bool:
        """The soon-run as an APScheduler date job; False if the scheduler refused it."""
        try:
            self.scheduler.add_job(self._fire, "date", run_date=utcnow() + timedelta(seconds=delay),
                                   id=f"vendor-{kind}-soon-{next(self._job_ids)}", args=[kind],
                                   misfire_grace_time=None, max_instances=1)
            return True
        except Exception:  # noqa: BLE001 - a scheduler shutting down: a plain timer does it
            log.warning("could not schedule the %s soon-run; using a timer", kind, exc_info=True)
            return False

    def _fire(self, kind: str) -> None:
        """The soon-run: clear the mark first (a change from now on arms another), then run."""
        with self._lock:
            self._pending.pop(kind, None)
        trigger, direction = ("change", "push") if kind == "push" else ("webhook", "pull")
        try:
            self._in_context(sync_engine.run_sync, trigger=trigger, direction=direction)
        except sync_engine.SyncInProgress:
            self._soon(kind, sync_engine.settings(self.app)["busy_retry"])
        except sync_engine.SyncDisabled:
            pass
        except Exception:  # noqa: BLE001 - a background job logs and lives on
            log.exception("the %s run after a change failed", kind)
        finally:
            self._after_run()

    def _after_run(self) -> None:
        """After a run or a tick: the alerts thread evaluates and delivers (never in a run)."""
        with self._lock:
            self._alerts_due.set()
            if self._alerts_thread is None:
                self._alerts_thread = threading.Thread(target=self._alerts_loop,
                                                       name="sync-alerts", daemon=True)
                self._alerts_thread.start()

    def _alerts_loop(self) -> None:
        """The scheduler's alerts thread: one check per request; ends when idle a while."""
        while True:
            asked = self._alerts_due.wait(timeout=ALERTS_IDLE_SECONDS)
            with self._lock:
                if not asked and not self._alerts_due.is_set():
                    self._alerts_thread = None
                    return
                self._alerts_due.clear()
            self.check_alerts()

    def check_alerts(self) -> None:
        """alerts.evaluate (with the vendor clock's offset) then alerts.deliver; never raises."""
        import alerts

        try:
            with self.app.app_context():
                try:
                    offset = sync_engine.vendor_offset(self.app)
                    alerts.evaluate(self.app.config, clock_offset_s=offset)
                    alerts.deliver(self.app.config)
                finally:
                    db.session.remove()
        except Exception:  # noqa: BLE001 - alerts never stop the scheduler
            log.exception("alerts: evaluating or delivering failed")

    def _in_context(self, func, **kwargs):
        with self.app.app_context():
            try:
                return func(self.app, **kwargs)
            finally:
                db.session.remove()

    def _scheduled_run(self) -> None:
        """The interval job: this tick's run, unless another process recorded it.  While
        another run (manual, after a change) holds the lease, it tries again within the tick."""
        try:
            self._run_tick()
        finally:
            self._after_run()

    def _run_tick(self) -> None:
        """This tick's run (and pruning), retried within the tick while another run holds the lease."""
        conf = sync_engine.settings(self.app)
        tick = current_tick(conf["interval"])
        while True:
            try:
                self._in_context(sync_engine.run_sync, trigger="schedule", tick_at=tick)
                self._in_context(sync_engine.prune_history)
                return
            except sync_engine.TickTaken:
                log.debug("interval run skipped: another process recorded tick %s", tick)
                return
            except sync_engine.SyncInProgress:
                if (sync_engine.wait_stopping(conf["busy_retry"])
                        or current_tick(conf["interval"]) != tick):
                    log.info("scheduled sync skipped: another run was in progress all the tick")
                    return
            except sync_engine.SyncDisabled:
                return
            except Exception:  # noqa: BLE001
                log.exception("scheduled sync failed")
                return

    def start(self):
        """The interval job ("vendor-sync"); None when it should not run in this process."""
        app = self.app
        conf = sync_engine.settings(app)
        if not conf["enabled"] or not app.config["SCHEDULER_ENABLED"] or app.testing:
            return None
        if app.debug and os.environ.get("WERKZEUG_RUN_MAIN") != "true":
            return None  # the reloader's watcher process: only its child runs jobs
        if _is_cli_command_other_than_run():
            return None
        if self.scheduler is not None:
            return self.scheduler
        from apscheduler.schedulers.background import BackgroundScheduler

        sync_engine.allow_runs()
        scheduler = BackgroundScheduler(timezone=timezone.utc)
        # Every process fires on the same wall-clock ticks (multiples of the interval since
        # TICK_ORIGIN); the first to record a tick's run takes it (sync_engine.start_run).
        # A fire that comes late (a busy process) still runs: its tick is the one it finds.
        scheduler.add_job(self._scheduled_run, "interval", seconds=conf["interval"] * 60,
                          id=JOB_ID, start_date=TICK_ORIGIN, max_instances=1, coalesce=True,
                          replace_existing=True, misfire_grace_time=None)
        scheduler.add_job(self._scheduled_run, "date", id=FIRST_JOB_ID, misfire_grace_time=None,
                          run_date=utcnow() + timedelta(seconds=conf["first_run_delay"]))
        scheduler.start()
        self.scheduler = scheduler
        with _running_lock:
            _running.add(self)
        atexit.register(self.stop)
        log.info("sync scheduler started: every %s minutes", conf["interval"])
        return scheduler

    def stop(self, wait: bool = False) -> None:
        scheduler, self.scheduler = self.scheduler, None
        with _running_lock:
            _running.discard(self)
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=wait)

    def next_run_at(self) -> Optional[datetime]:
        """When the interval job (or the first run) runs next (None without a scheduler)."""
        if not self.running:
            return None
        times = [job.next_run_time for job in self.scheduler.get_jobs()
                 if job.id in (JOB_ID, FIRST_JOB_ID) and job.next_run_time is not None]
        return min(times, default=None)


def current_tick(interval_minutes: float, now: Optional[datetime] = None) -> datetime:
    """The start of the interval tick `now` falls in: a multiple of the interval since
    TICK_ORIGIN, the same in every process (exact integer microseconds)."""
    step = max(1, round(interval_minutes * 60_000_000))
    elapsed = ((now or utcnow()) - TICK_ORIGIN) // timedelta(microseconds=1)
    return TICK_ORIGIN + timedelta(microseconds=elapsed // step * step)


def _is_cli_command_other_than_run() -> bool:
    """Inside `flask <command>` that is not `flask run` (e.g. `sync run`, `db upgrade`)."""
    import click
    from flask.cli import run_command

    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.command is not run_command


def init_app(app: Flask) -> SyncScheduler:
    """Install the app's SyncScheduler and start the interval job where it should run."""
    state = SyncScheduler(app)
    app.extensions[EXTENSION] = state
    local_change.connect(state.on_local_change, sender=app)  # weak: lives as long as the app's state
    if app.config["SYNC_ENABLED"] and app.config["SCHEDULER_ENABLED"]:
        state.start()
    return state


def _state(app: Flask) -> SyncScheduler:
    return app.extensions[EXTENSION]


def start_scheduler(app: Flask):
    """The app's interval job (started once); None when it should not run here."""
    return _state(app).start()


def stop_scheduler(app: Flask) -> None:
    """Stop the scheduler of this app (tests and clean shutdown)."""
    _state(app).stop()


def shutdown_scheduler(wait: bool = True) -> None:
    """Process shutdown (gunicorn's worker_exit): stop every scheduler; a run in progress
    stops at its next checkpoint, records why and releases the lease (waited for)."""
    sync_engine.stop_runs()
    with _running_lock:
        states = list(_running)
    for state in states:
        state.stop(wait=wait)


def next_run_at(app: Flask) -> Optional[datetime]:
    return _state(app).next_run_at()


def scheduler_running(app: Flask) -> bool:
    return _state(app).running


def request_push(app: Flask) -> None:
    """Schedule ONE push-only run SYNC_PUSH_DELAY_SECONDS from now (coalesced)."""
    _state(app).request("push")


def request_pull(app: Flask) -> None:
    """Schedule ONE pull run soon (trigger "webhook"), coalesced like request_push."""
    _state(app).request("pull")
