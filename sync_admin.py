"""The sync admin pages (/sync/admin) and the dashboard's sync section.

Server-rendered first: every figure comes from the models (one GROUP BY per
model for the counts, one query per resource for a page of records), and the
vendor is never called inside a page request.  static/js/sync.js then adds
live refresh and in-page actions through the /api/sync/* routes (sync_api.py);
every action also works as a plain form POST here (flash, redirect back).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Optional

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

import security
import sync_engine
from api_service import parse_object
from auth import admin_required
from models import (
    SYNCED_MODELS,
    DomainError,
    RecordHistory,
    SyncRun,
    WebhookMessage,
    db,
    fmt_local,
    parse_api_datetime,
    to_local,
    utcnow,
)
from paging import PageOf, page_number, page_of_items, paginate

log = logging.getLogger("app")

bp = Blueprint("sync_admin", __name__)

ADMIN_PAGERS = ("runs_page", "failed_page", "conflicts_page", "webhooks_page")
SYNC_RESOURCE_LABELS = {"employees": "Employee", "events": "Event", "schedules": "Schedule"}
HEALTH_LABELS = {"ok": "OK", "degraded": "Degraded", "down": "Down", "disabled": "Sync off",
                 "unknown": "Not checked yet"}
# Webhook outcomes in words an admin reads (the detail, also in words, follows).
WEBHOOK_OUTCOMES = {"applied": "Applied", "duplicate": "Repeat delivery",
                    "stale": "Ignored", "skipped": "Ignored",
                    "conflict": "Conflict, waiting for an admin",
                    "local_wins": "Our newer change kept",
                    "deferred": "Waiting, applied after the next pull", "rejected": "Refused"}


def sync_health_view(last_run: Optional[SyncRun], counts: dict) -> dict:
    """Health for a page without calling the vendor: derived from the last run and the counts."""
    if not current_app.config.get("SYNC_ENABLED"):
        return {"status": "disabled", "label": HEALTH_LABELS["disabled"], "derived": False}
    status = sync_engine.health_status(last_run, counts)
    offset = sync_engine.vendor_offset(current_app._get_current_object())
    return {"status": status, "label": HEALTH_LABELS[status], "derived": True,
            "clock_offset_s": None if offset is None else round(offset, 1)}


def sync_next_run_at() -> Optional[datetime]:
    """When the scheduler runs next (None when it is not running)."""
    return sync_engine.next_run_at(current_app._get_current_object())


def sync_overview() -> dict:
    """Everything the dashboard's sync section shows, from the database only."""
    last_run, counts = sync_engine.last_run_shown(), sync_engine.status_counts()
    return {
        "enabled": bool(current_app.config.get("SYNC_ENABLED")),
        "policy": current_app.config.get("SYNC_CONFLICT_POLICY"),
        "last_run": last_run,
        "running": last_run is not None and last_run.status == "running",
        "next_run_at": sync_next_run_at(),
        "scheduler_running": sync_engine.scheduler_running(current_app._get_current_object()),
        "health": sync_health_view(last_run, counts),
        "counts": counts,
    }


bp.add_app_template_global(sync_overview, "sync_overview")


def sync_record_label(resource: str, record) -> str:
    """A name a person recognises: employee name, event project + ref, schedule's event + employee."""
    if resource == "employees":
        return record.name
    if resource == "events":
        return f"{record.project_name} #{record.project_ref_num}"
    return (f"{record.event.project_name} #{record.event.project_ref_num} → "
            f"{record.employee.name}")


class SpanningPage(PageOf):
    """A page of (resource, record) rows in one sync status, across the three models."""


def records_in_status(status: str, counts: dict, page: int, per_page: int) -> SpanningPage:
    """Employees, then events, then schedules in `status`, one query per model on the page.

    The totals come from `counts` (the GROUP BY already run), so a page costs
    at most one query per resource however many records there are.
    """
    total = sum(counts[name][status] for name in SYNCED_MODELS)
    first, last = (page - 1) * per_page, page * per_page
    items, offset = [], 0
    for name, model in SYNCED_MODELS.items():
        size = counts[name][status]
        low, high = max(first, offset), min(last, offset + size)
        if low < high:
            query = (select(model).where(model.sync_status == status).order_by(model.id)
                     .offset(low - offset).limit(high - low))
            items += [(name, record) for record in db.session.scalars(query)]
        offset += size
    return SpanningPage(items, page, per_page, total)


def _shown_time(text: Optional[str]) -> Optional[str]:
    """An RFC 3339 timestamp as people read it (APP_TIMEZONE), or the text as it came."""
    if not text:
        return text
    try:
        return fmt_local(parse_api_datetime(text, "time"))
    except DomainError:
        return text


def _vendor_names(conflicts: list) -> dict:
    """{vendor id: readable name} for the events and employees the page's schedule conflicts name."""
    ids = {"events": set(), "employees": set()}
    for resource, record in conflicts:
        remote = record.conflict_remote or {}
        if resource == "schedules":
            ids["events"].add(remote.get("event_id"))
            ids["employees"].add(remote.get("employee_id"))
    names = {}
    for resource, wanted in ids.items():
        wanted.discard(None)
        if wanted:
            model = SYNCED_MODELS[resource]
            for record in db.session.scalars(select(model).where(model.external_id.in_(wanted))):
                names[record.external_id] = sync_record_label(resource, record)
    return names


def conflict_rows(resource: str, record, names: dict) -> list[dict]:
    """Field by field, the local and the vendor version of a record in conflict."""
    remote = record.conflict_remote or {}
    local = record.to_dict()
    if resource == "schedules":
        local["event_id"] = record.event.external_id
        local["employee_id"] = record.employee.external_id
    differing = (set(sync_engine.field_differences(resource, record, parse_object(remote)))
                 if remote else set())
    rows = []
    for field in sync_engine.FIELDS[resource]:
        mine, theirs = local.get(field), remote.get(field)
        shown_mine, shown_theirs = mine, theirs
        if resource == "schedules" and field != "start_datetime":
            owner = record.event if field == "event_id" else record.employee
            shown_mine = sync_record_label(field[:-3] + "s", owner)
            shown_theirs = names.get(theirs, theirs)
        if field in sync_engine.DATETIME_FIELDS:
            shown_mine, shown_theirs = _shown_time(mine), _shown_time(theirs)
        rows.append({"field": field, "local": shown_mine, "remote": shown_theirs,
                     "differs": field in differing})
    return rows


def sync_chart(hours: int = 24, limit: int = 500) -> dict:
    """Coordinates for the server-drawn SVG chart: records moved (pushed + pulled) and
    failures of each finished run of the last `hours` (at most the newest `limit` runs, so a
    busy day stays one bounded query).  The time axis spans the runs it shows (first to
    last start, at least an hour), so a fresh install's few runs spread over the width; a
    failure is marked at the run where it happened (runs without one get no mark)."""
    now = utcnow()
    runs = list(db.session.scalars(select(SyncRun).where(SyncRun.status != "running",
                                                         SyncRun.started_at >= now - timedelta(hours=hours))
                                   .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
                                   .limit(limit)))[::-1]
    width, height, left, right, bottom, top = 640, 200, 40, 14, 24, 12
    values = {"moved": [(run.pushed or 0) + (run.pulled or 0) for run in runs],
              "failed": [run.failed or 0 for run in runs]}
    peak = max([1] + values["moved"] + values["failed"])
    plot_w, plot_h = width - left - right, height - bottom - top
    first = runs[0].started_at if runs else now - timedelta(hours=1)
    last = runs[-1].started_at if runs else now
    pad = max(timedelta(hours=1) - (last - first), timedelta(0)) / 2
    since, until = first - pad, last + pad
    span = max((until - since).total_seconds(), 1.0)

    def x_at(moment) -> float:
        return round(left + plot_w * (moment - since).total_seconds() / span, 1)

    series = []
    for name, numbers in values.items():
        shown = [(run, value) for run, value in zip(runs, numbers) if name == "moved" or value > 0]
        points = [(x_at(run.started_at), round(top + plot_h - plot_h * value / peak, 1), run, value)
                  for run, value in shown]
        series.append({"name": name, "points": points, "values": numbers, "line": name == "moved",
                       "path": " ".join(f"{x},{y}" for x, y, _, _ in points)})
    marks = [since + (until - since) * i / 4 for i in range(5)]
    day_fmt = "%d %b %H:%M" if (until - since) > timedelta(hours=20) else "%H:%M"
    return {"runs": runs, "series": series, "width": width, "height": height, "left": left,
            "right": width - right, "top": top, "bottom": height - bottom, "peak": peak,
            "hours": hours, "ticks": sorted({0, peak // 2, peak}),
            "times": [(x_at(m), to_local(m).strftime(day_fmt)) for m in marks],
            "markers": len(runs) <= 60}


def sync_config_view() -> dict:
    """The configuration in force, secrets reduced to set / not set."""
    config = current_app.config
    url = config.get("EXTERNAL_API_BASE_URL") or ""
    if "@" in url.split("//", 1)[-1].split("/", 1)[0]:  # never show credentials in a URL
        scheme, rest = url.split("//", 1) if "//" in url else ("", url)
        url = scheme + "//" + rest.split("@", 1)[1]
    return {
        "enabled": bool(config.get("SYNC_ENABLED")), "base_url": url or None,
        "interval": config.get("SYNC_INTERVAL_MINUTES"), "policy": config.get("SYNC_CONFLICT_POLICY"),
        "key_set": bool(config.get("EXTERNAL_API_KEY")), "webhook_secret_set": bool(config.get("WEBHOOK_SECRET")),
        "timeout": config.get("EXTERNAL_API_TIMEOUT_SECONDS"), "max_retries": config.get("EXTERNAL_API_MAX_RETRIES"),
        "rate_limit": config.get("EXTERNAL_API_RATE_LIMIT"),
        "scheduler_enabled": bool(config.get("SCHEDULER_ENABLED")),
        "delete_guard": config["SYNC_DELETE_GUARD"], "delete_guard_min": config["SYNC_DELETE_GUARD_MIN"],
    }


@bp.route("/sync/admin")
@admin_required
def sync_admin():
    """The sync admin page: config, health, actions, runs, failed records, conflicts, webhooks."""
    overview = sync_overview()
    counts, per_page = overview["counts"], 25
    failed = records_in_status("failed", counts, page_number("failed_page"), per_page)
    conflicts = records_in_status("conflict", counts, page_number("conflicts_page"), 10)
    names = _vendor_names(conflicts.items)
    conflict_views = [(resource, record, conflict_rows(resource, record, names))
                      for resource, record in conflicts.items]
    runs = paginate(SyncRun, [], [SyncRun.started_at.desc(), SyncRun.id.desc()],
                    page_number("runs_page"), 20)
    webhooks = paginate(WebhookMessage, [], [WebhookMessage.received_at.desc(),
                                             WebhookMessage.id.desc()],
                        page_number("webhooks_page"), 20)
    return render_template("sync_admin.html", sync=overview, sync_config=sync_config_view(),
                           failed=failed, conflicts=conflicts, conflict_views=conflict_views,
                           runs=runs, webhooks=webhooks, chart=sync_chart(),
                           resources=SYNCED_MODELS, labels=SYNC_RESOURCE_LABELS,
                           record_label=sync_record_label, outcomes=WEBHOOK_OUTCOMES,
                           page_args=_admin_page_args(), held=sync_engine.held_deletions())


def _admin_page_args() -> dict:
    """The admin page's current ?*_page= arguments past the first, so one pager keeps the others."""
    pages = {name: page_number(name) for name in ADMIN_PAGERS}
    return {name: page for name, page in pages.items() if page > 1}


@bp.route("/sync/admin/runs/<int:run_id>")
@admin_required
def sync_admin_run_detail(run_id: int):
    """One run: what it moved and every per-record error."""
    run = db.session.get(SyncRun, run_id) or abort(404)
    per_page = 50
    listing = page_of_items(run.errors or [], page_number(), per_page)
    changed = paginate(RecordHistory, [RecordHistory.ref == str(run.id),
                                       RecordHistory.source.in_(("pull", "restore"))],
                       [RecordHistory.at.desc(), RecordHistory.id.desc()],
                       page_number("changed_page"), per_page)
    return render_template("sync_run.html", run=run, errors=listing, labels=SYNC_RESOURCE_LABELS,
                           names=_record_names(listing.items), changed=changed,
                           links=_record_links(changed.items))


def _record_links(entries: list) -> dict:
    """{(resource, id): (label, url of the page with its history)} for a page of history
    entries, one query per resource: an employee's edit page, an event's (or a schedule's
    event's) schedule page; a deleted employee's history in the JSON API."""
    wanted: dict = {}
    for entry in entries:
        wanted.setdefault(entry.resource, set()).add(entry.record_id)
    links = {}
    for resource, ids in wanted.items():
        model = SYNCED_MODELS[resource]
        for record in db.session.scalars(select(model).where(model.id.in_(ids))):
            if resource == "employees":
                url = (url_for("employees.edit_employee", employee_id=record.id)
                       if record.deleted_at is None else
                       url_for("api.employees_history", record_id=record.id))
            else:
                url = url_for("pages.schedule_event", event_id=record.id if resource == "events"
                              else record.event_id)
            links[(resource, record.id)] = (sync_record_label(resource, record), url + "#history")
    return links


def _record_names(errors: list) -> dict:
    """{(resource, id): readable name} for a page of run errors, one query per resource."""
    wanted: dict = {}
    for error in errors:
        if error.get("resource") in SYNCED_MODELS and isinstance(error.get("id"), int):
            wanted.setdefault(error["resource"], set()).add(error["id"])
    names = {}
    for resource, ids in wanted.items():
        model = SYNCED_MODELS[resource]
        for record in db.session.scalars(select(model).where(model.id.in_(ids))):
            names[(resource, record.id)] = sync_record_label(resource, record)
    return names


def _back(default_endpoint: str = "sync_admin.sync_admin"):
    """Redirect to the form's `next` (a local path) or to the admin page."""
    target = request.form.get("next")
    return redirect(security.safe_next(target) or url_for(default_endpoint))


def _run_request(form) -> tuple[list, str, bool]:
    """Resources, direction and full flag from an action form."""
    resource = form.get("resource", "all")
    resources = [resource] if resource in SYNCED_MODELS else list(SYNCED_MODELS)
    direction = form.get("direction", "both")
    if direction not in ("both", "push", "pull"):
        direction = "both"
    return resources, direction, form.get("full") in ("1", "true", "on")


@bp.route("/sync/admin/run", methods=["POST"])
@admin_required
def sync_admin_start_run():
    """No-JS fallback of Sync now and the admin actions: start a run, flash, go back."""
    resources, direction, full = _run_request(request.form)
    try:
        run = sync_engine.start_run(current_app._get_current_object(), "manual", resources,
                                    direction, wait=False, full=full)
    except sync_engine.SyncDisabled:
        flash("Sync is off (SYNC_ENABLED is false): no run was started.", "warning")
    except sync_engine.SyncInProgress as exc:
        flash(f"Run #{exc.run_id} is already running; wait for it to finish.", "warning")
    except ValueError as exc:
        flash(f"No run started: {exc}", "error")
    else:
        run_id = getattr(run, "id", None)
        what = "everything" if len(resources) == len(SYNCED_MODELS) else ", ".join(resources)
        flash(f"Sync run #{run_id} started ({what}, {direction}{', full resync' if full else ''}). "
              "Its result appears under Recent runs.", "success")
    return _back()


def _synced_record(resource: str, record_id: int):
    """A synced model's row, or 404."""
    model = SYNCED_MODELS.get(resource) or abort(404)
    return db.session.get(model, record_id) or abort(404)


@bp.route("/sync/admin/retry/<resource>/<int:record_id>", methods=["POST"])
@admin_required
def sync_admin_retry(resource: str, record_id: int):
    """Retry one failed record (no-JS form)."""
    record = _synced_record(resource, record_id)
    label = sync_record_label(resource, record)
    if sync_engine.retry_record(current_app._get_current_object(), record):
        flash(f"{SYNC_RESOURCE_LABELS[resource]} {label} will be sent again.", "success")
    else:
        flash(f"{SYNC_RESOURCE_LABELS[resource]} {label} is not failed ({record.sync_status}).", "info")
    return _back()


@bp.route("/sync/admin/retry_failed", methods=["POST"])
@admin_required
def sync_admin_retry_failed():
    """Retry every failed record (no-JS form)."""
    count = sync_engine.retry_failed(current_app._get_current_object())
    flash(f"{count} failed record{'s' if count != 1 else ''} will be sent again.", "success")
    return _back()


@bp.route("/sync/admin/held/<resource>", methods=["POST"])
@admin_required
def sync_admin_held(resource: str):
    """Apply or restore one resource's held deletions (no-JS form of the banner)."""
    if resource not in SYNCED_MODELS:
        abort(404)
    action = request.form.get("action")
    if action not in sync_engine.HELD_ACTIONS:
        flash("Choose Apply the deletions or Restore them to the vendor.", "error")
        return _back()
    try:
        result = sync_engine.resolve_held(current_app._get_current_object(), resource, action)
    except sync_engine.NothingHeld as exc:
        flash(str(exc), "info")
    else:
        flash(result["message"], "success")
    return _back()


@bp.route("/sync/admin/conflicts/<resource>/<int:record_id>/resolve", methods=["POST"])
@admin_required
def sync_admin_resolve(resource: str, record_id: int):
    """Keep the local or the vendor version of a record in conflict (no-JS form)."""
    record = _synced_record(resource, record_id)
    keep = request.form.get("keep")
    if keep not in ("local", "remote"):
        flash("Choose Keep local or Keep vendor.", "error")
        return _back()
    label = sync_record_label(resource, record)
    try:
        sync_engine.resolve_conflict(current_app._get_current_object(), resource,
                                              record_id, keep)
    except (LookupError, RuntimeError, ValueError) as exc:
        db.session.rollback()
        log.warning("resolve %s/%s failed: %s", resource, record_id, exc)
        flash(f"Could not resolve {label}: {exc}", "error")
        return _back()
    kept = "local" if keep == "local" else "vendor"
    flash(f"{SYNC_RESOURCE_LABELS[resource]} {label}: kept the {kept} version.", "success")
    return _back()

