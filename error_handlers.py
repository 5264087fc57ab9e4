"""One error path and one logging set-up for the whole app.

`register_error_handlers(app)` answers JSON (`{"error": {"code", "message",
"error_id"}}`) for `/api/` and an HTML page otherwise; every answer carries an
error id that is also in the log line.  A 500 rolls the database session back.
`configure_logging(app)` sets the format once and installs a filter that
removes secrets (configured secret values, bearer tokens, Basic credentials,
passwords) from every record.
"""
from __future__ import annotations

import logging
import re
import uuid
from typing import Any, Optional

from flask import Flask, current_app, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

import inputs
from models import ApiError, db
from observability import RequestContextFilter, formatter_for

__all__ = ["ApiError", "configure_logging", "error_response", "invalid", "is_api_request",
           "is_transient_db_error", "register_error_handlers", "wants_json"]

log = logging.getLogger("app.errors")

CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
    422: "validation_failed", 429: "rate_limited", 500: "internal_error", 503: "unavailable",
}

# Our wording in place of Werkzeug's default descriptions (an abort() with a
# description of its own keeps it).  Pages add their own text in templates/errors/.
MESSAGES = {
    403: "This needs the admin role.",
    404: "Nothing here: the address is wrong or the record was deleted.",
    405: "This address does not accept that method.",
    413: "The upload is too large.",
    500: "Something went wrong on our side; nothing was saved.",
}


def is_api_request() -> bool:
    """Whether this request is for the JSON API (its path is under /api/) or a machine
    endpoint answered the same way (/metrics: 401/403 as JSON, never a login page)."""
    return request.path.startswith("/api/") or request.path == "/metrics"


def wants_json() -> bool:
    """JSON for the API (and for clients that ask only for JSON)."""
    if is_api_request():
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


# PostgreSQL's SQLSTATEs for a transaction that lost to another one (deadlock_detected,
# serialization_failure, lock_not_available): nothing was saved and the same request
# can succeed a moment later.
_TRANSIENT_SQLSTATES = {"40P01", "40001", "55P03"}


def is_transient_db_error(exc: BaseException) -> bool:
    """Whether a database error is contention, not a fault: a deadlock or serialization
    failure on PostgreSQL, "database is locked" past the busy timeout on SQLite."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state in _TRANSIENT_SQLSTATES or "database is locked" in str(orig)


def invalid(details: list[dict]) -> ApiError:
    """422 validation_failed naming every bad field ({field, message} each)."""
    if len(details) == 1:
        return ApiError(422, "validation_failed", details[0]["message"], details)
    fields = ", ".join(dict.fromkeys(d["field"] for d in details))
    return ApiError(422, "validation_failed", f"{len(details)} fields are invalid: {fields}", details)


def error_response(status: int, code: str, message: str, details: Any = None,
                   extra: Optional[dict] = None, exc: Optional[BaseException] = None,
                   fields: Optional[dict] = None):
    """Log the error with a fresh id and answer it as JSON or as a page."""
    error_id = uuid.uuid4().hex[:12]
    line = "error_id=%s status=%s code=%s method=%s path=%s message=%s"
    args = (error_id, status, code, request.method, request.path, message)
    if status >= 500:
        log.error(line, *args, exc_info=exc, extra={"error_id": error_id})
    else:
        log.info(line, *args, extra={"error_id": error_id})
    if wants_json():
        body: dict = {"code": code, "message": message, "error_id": error_id}
        if details is not None:
            body["details"] = details
        body.update(fields or {})
        payload = {"error": body, **(extra or {})}
        return jsonify(payload), status
    template = f"errors/{status}.html"
    context = {"status": status, "code": code, "message": message, "error_id": error_id,
               "details": details}
    try:
        return render_template([template, "errors/error.html"], **context), status
    except Exception:  # noqa: BLE001 - the error page itself must not fail
        log.exception("error_id=%s could not render the error page", error_id)
        return f"Error {status}: {message} (error id {error_id})", status


def register_error_handlers(app: Flask) -> None:
    """The single error path for ApiError, HTTP errors and anything unexpected."""

    @app.errorhandler(ApiError)
    def handle_api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.extra,
                              fields=exc.fields)

    @app.errorhandler(inputs.BadInput)
    def handle_bad_input(exc: inputs.BadInput):
        return error_response(exc.status, CODES[exc.status], exc.message, [exc.detail()])

    @app.errorhandler(HTTPException)
    def handle_http_exception(exc: HTTPException):
        status = exc.code or 500
        code = CODES.get(status, "error")
        if status == 400 and "CSRF" in (exc.description or ""):
            code = "csrf_failed"
        message = exc.description or exc.name
        if status == 413:
            message = (f"the body is over this route's limit of {request.max_content_length} bytes"
                       " (MAX_CONTENT_LENGTH, or MAX_CSV_UPLOAD_LENGTH for a CSV upload); nothing was saved")
        elif exc.description == type(exc).description and status in MESSAGES:
            message = MESSAGES[status]
        if status >= 500:
            _rollback()
        response = current_app.make_response(error_response(status, code, message))
        # keep what the exception says in its headers (Allow on a 405, Retry-After on a 429)
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(DBAPIError)
    def handle_database_error(exc: DBAPIError):
        _rollback()
        if not is_transient_db_error(exc):
            return error_response(500, "internal_error", MESSAGES[500], exc=exc)
        log.warning("database contention (%s): answered 503, nothing saved",
                    type(exc.orig).__name__)
        response = current_app.make_response(error_response(
            503, "busy", "Another change held the same records; nothing was saved. "
            "Try again in a moment."))
        response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        _rollback()
        return error_response(500, "internal_error", MESSAGES[500], exc=exc)


def _rollback() -> None:
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - never mask the original error
        log.exception("session rollback failed")


# ---------------------------------------------------------------------------
# Logging, with secrets filtered out
# ---------------------------------------------------------------------------

_PATTERNS = [
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer|basic)\s+[^\s'\",}]+"),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"whsec_[A-Za-z0-9+/=]+"),
    re.compile(r"(?i)((?:password|passwd|secret|api_key|apikey|key|token)['\"]?\s*[:=]\s*['\"]?)[^\s'\",&}]+"),
    re.compile(r"sch_[A-Za-z0-9_-]{8,}"),  # API tokens (tokens.PREFIX)
]


class SecretFilter(logging.Filter):
    """Replace configured secret values and credential patterns with ***."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = _PATTERNS[0].sub(lambda m: m.group(1) + m.group(2) + " ***", text)
        text = _PATTERNS[1].sub(lambda m: m.group(1) + " ***", text)
        text = _PATTERNS[2].sub("whsec_***", text)
        text = _PATTERNS[3].sub(lambda m: m.group(1) + "***", text)
        text = _PATTERNS[4].sub("sch_***", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - leave broken records alone
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        clean = self.redact(message)
        record.msg, record.args = clean, ()
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


_installed: dict[int, SecretFilter] = {}
_formatted: set[int] = set()  # the handlers configure_logging made (their format is ours)


def configure_logging(app: Flask) -> None:
    """Format and level for the app's loggers, plus the secret filter."""
    level = logging.DEBUG if app.debug else logging.INFO
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        root.addHandler(handler)
        _formatted.add(id(handler))
    for handler in root.handlers:
        if id(handler) in _formatted:
            handler.setFormatter(formatter_for(app.config.get("LOG_FORMAT", "text")))
    root.setLevel(min(root.level or logging.WARNING, level) if root.level else level)
    for name in ("app", "api_service", "sync_engine", "werkzeug"):
        logging.getLogger(name).setLevel(logging.DEBUG if name == "api_service" and app.debug else level)
    secrets = [str(app.config.get(name) or "") for name in app.config["SECRET_SETTINGS"]]
    new = SecretFilter(secrets)
    for handler in root.handlers:
        old = _installed.get(id(handler))
        if old is not None:
            old.secrets = sorted(set(old.secrets) | set(new.secrets))
        else:
            handler.addFilter(new)
            handler.addFilter(RequestContextFilter())
            _installed[id(handler)] = new
