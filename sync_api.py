"""The sync API (/api/sync/*) and the vendor's webhook (/api/webhook/schedule_update).

The contract is docs/openapi.yaml; the vendor side is docs/vendor-api.md.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user, login_required
from werkzeug.exceptions import RequestEntityTooLarge

import security
import sync_engine
from auth import admin_required
from bodies import Body, boolean, json_object
from models import SYNCED_MODELS, ApiError, DomainError, SyncRun, db
from paging import listing_json, page_args, page_json, page_of_items

bp = Blueprint("sync_api", __name__, url_prefix="/api/sync")
security.throttle_signin(bp)


def _sync_error(exc: Exception) -> ApiError:
    """SyncDisabled / SyncInProgress as the API's 409 answers."""
    if isinstance(exc, sync_engine.SyncInProgress):
        run = db.session.get(SyncRun, exc.run_id) if exc.run_id else None
        return ApiError(409, "sync_in_progress", "a sync run is already in progress",
                        {"run_id": exc.run_id}, {"run": run.to_dict() if run else None})
    return ApiError(409, "sync_disabled", "sync is disabled (SYNC_ENABLED is false)")


def _sync_body() -> dict:
    """The optional JSON object body of a sync POST."""
    return json_object(optional=True)


def _resources(value, name: str) -> list:
    """A trigger's `resources`: a list of resource names ([] for all); null is refused."""
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise DomainError(f"{name} must be a list of resource names")
    unknown = [r for r in value if r not in sync_engine.RESOURCES]
    if unknown:
        raise DomainError(f"unknown resource(s) {', '.join(unknown)}; "
                          f"use {', '.join(sync_engine.RESOURCES)}")
    return value


def _direction(value, name: str) -> str:
    """A trigger's `direction`: both, push or pull."""
    if value not in sync_engine.DIRECTIONS:
        raise DomainError(f"{name} must be one of {', '.join(sync_engine.DIRECTIONS)}")
    return value


def _run_request(body: dict) -> dict:
    """The trigger's fields, each checked by name (an absent one keeps its default), else
    one 422 naming every bad field."""
    fields = Body(body, partial=True)
    fields.take("resources", _resources)
    fields.take("direction", _direction)
    fields.take("wait", boolean)
    fields.take("full", boolean)
    return fields.done()


@bp.get("/health")
def sync_health():
    """Sync health: status for everyone, details for signed-in users."""
    status, body = sync_engine.health(current_app._get_current_object(),
                                      detailed=current_user.is_authenticated)
    return jsonify(body), status


@bp.get("/status")
@login_required
def sync_status():
    """Enabled, running, policy, last run, next run, counts per resource."""
    return jsonify(sync_engine.sync_status(current_app._get_current_object()))


@bp.post("/trigger")
@admin_required
def sync_trigger():
    """Start a run (202), or run it and answer when done (200 with wait)."""
    asked = _run_request(_sync_body())
    resources, direction = asked.get("resources"), asked.get("direction", "both")
    wait, full = asked.get("wait", False), asked.get("full", False)
    try:
        run = sync_engine.start_run(current_app._get_current_object(), trigger="manual",
                                    resources=resources, direction=direction, full=full,
                                    wait=wait)
    except (sync_engine.SyncDisabled, sync_engine.SyncInProgress) as exc:
        raise _sync_error(exc) from None
    return jsonify({"run": run.to_dict()}), (200 if wait else 202)


@bp.get("/runs")
@login_required
def sync_runs():
    """Run history, newest first, paged."""
    return page_json(SyncRun, (SyncRun.id.desc(),))


@bp.get("/runs/<int:run_id>")
@login_required
def sync_run(run_id: int):
    """One run."""
    run = db.session.get(SyncRun, run_id)
    if run is None:
        raise ApiError(404, "not_found", f"no sync run {run_id}")
    return jsonify(run.to_dict())


@bp.get("/conflicts")
@login_required
def sync_conflicts():
    """Records in conflict, local and vendor versions side by side, paged."""
    page, per_page = page_args()
    data = sync_engine.list_conflicts(current_app._get_current_object())
    return listing_json(page_of_items(data, page, per_page), row=lambda item: item)


@bp.post("/conflicts/<resource>/<int:record_id>/resolve")
@admin_required
def sync_resolve(resource: str, record_id: int):
    """Resolve a conflict: {"keep": "local" | "remote"}."""
    keep = _sync_body().get("keep")
    if keep not in ("local", "remote"):
        raise ApiError(422, "validation_failed", "keep must be 'local' or 'remote'",
                       [{"field": "keep", "message": "must be 'local' or 'remote'"}])
    try:
        row = sync_engine.resolve_conflict(current_app._get_current_object(), resource,
                                           record_id, keep)
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc).strip("'\"")) from None
    except sync_engine.DayTaken as exc:
        raise ApiError(409, "employee_busy", str(exc)) from None
    except RuntimeError as exc:
        raise ApiError(409, "not_in_conflict", str(exc)) from None
    return jsonify({"resource": resource, "keep": keep, "record": row.to_dict()})


@bp.post("/retry_failed")
@admin_required
def sync_retry_failed():
    """Every failed record back to pending (and a push soon)."""
    return jsonify({"retried": sync_engine.retry_failed(current_app._get_current_object())})


@bp.get("/held")
@login_required
def sync_held():
    """Deletions held by SYNC_DELETE_GUARD per resource (resources with none left out)."""
    return jsonify({resource: {"count": item["count"], "run_id": item["run_id"],
                               "sample": [record.to_dict() for record in item["sample"]]}
                    for resource, item in sync_engine.held_deletions().items()})


@bp.post("/held/<resource>")
@admin_required
def sync_resolve_held(resource: str):
    """Apply or restore one resource's held deletions: {"action": "apply" | "restore"}."""
    if resource not in SYNCED_MODELS:
        raise ApiError(404, "not_found", f"no resource {resource!r}; use "
                                         f"{', '.join(SYNCED_MODELS)}")
    action = _sync_body().get("action")
    if action not in sync_engine.HELD_ACTIONS:
        raise ApiError(422, "validation_failed", "action must be 'apply' or 'restore'",
                       [{"field": "action", "message": "must be 'apply' or 'restore'"}])
    try:
        result = sync_engine.resolve_held(current_app._get_current_object(), resource, action)
    except sync_engine.NothingHeld as exc:
        raise ApiError(409, "nothing_held", str(exc)) from None
    return jsonify(result)


@bp.post("/records/<resource>/<int:record_id>/retry")
@admin_required
def api_retry_record(resource: str, record_id: int):
    """Retry one failed record: {"retried": bool, "record": {...}}."""
    model = SYNCED_MODELS.get(resource)
    record = db.session.get(model, record_id) if model is not None else None
    if record is None:
        raise ApiError(404, "not_found", f"no {resource} record {record_id}")
    retried = sync_engine.retry_record(current_app._get_current_object(), record)
    return jsonify({"retried": retried, "record": record.to_dict()})


# -- the vendor's webhook (/api/webhook/schedule_update) ----------------------

webhook = Blueprint("webhook", __name__, url_prefix="/api/webhook")


@webhook.post("/schedule_update")
def webhook_schedule_update():
    """The vendor's signed change message: verified, recorded once, applied.

    The body is read only up to WEBHOOK_MAX_BYTES: a larger Content-Length is
    refused unread, and a chunked body is refused at the first byte past the
    limit (inputs.Request; 413 either way).
    """
    limit = current_app.config["WEBHOOK_MAX_BYTES"]
    request.max_content_length = limit
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        sync_engine.count_rejected("too_large", f"413: the body is over {limit} bytes")
        raise ApiError(413, "too_large", f"the body must be at most {limit} bytes") from None
    result = sync_engine.handle_webhook(current_app._get_current_object(), raw,
                                        dict(request.headers))
    return jsonify({"ok": True, **result}), 200
