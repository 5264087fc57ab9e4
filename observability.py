"""Request ids and log formats: what an operator reads in the logs.

* Every request gets an id: the client's `X-Request-ID` when it sent a sane one
  (1-128 visible ASCII letters, digits and `-_.:`), else a fresh one.  The answer
  carries it back in `X-Request-ID`, and every log line written while the request
  runs carries it as `request_id`.
* Work that leaves the request (a sync run it started in another thread) keeps
  the id: `current_request_id()` reads it, `bound_request_id(rid)` sets it for a
  block of code in any thread.
* `LOG_FORMAT=text` (the default) writes `time level logger [request_id]: message`;
  `LOG_FORMAT=json` writes one JSON object per line with `time`, `level`, `logger`,
  `message`, `request_id`, `user` and `error_id` (the last three null when unknown).

Secrets are removed before any formatter sees a record (error_handlers.SecretFilter
runs on the handler first), so both formats are equally clean.

This module imports nothing of the app: error_handlers.configure_logging installs
the formatter and the filter; app.py registers the request hooks.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator, Optional

from flask import Flask, g, has_request_context, request

__all__ = ["LOG_FORMATS", "RequestContextFilter", "JsonFormatter", "TextFormatter",
           "bound_request_id", "current_request_id", "formatter_for", "register_request_ids"]

HEADER = "X-Request-ID"
LOG_FORMATS = ("text", "json")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_request_id: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("request_id", default=None)


def new_request_id() -> str:
    """A fresh request id (32 hex digits)."""
    return uuid.uuid4().hex


def sane_request_id(value: Optional[str]) -> Optional[str]:
    """The client's id when it is safe to log and echo, else None."""
    if value and _SANE_ID.fullmatch(value):
        return value
    return None


def current_request_id() -> Optional[str]:
    """The id of the request being served, or of the work it started (None outside both)."""
    if has_request_context():
        rid = g.get("request_id")
        if rid:
            return rid
    return _request_id.get()


@contextmanager
def bound_request_id(request_id: Optional[str]) -> Iterator[None]:
    """Carry `request_id` into the log lines of a block (e.g. a sync run's thread)."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def _current_user_name() -> Optional[str]:
    """The signed-in user's name inside a request, else None (never raises)."""
    if not has_request_context():
        return None
    user = g.get("_login_user")
    name = getattr(user, "username", None) if user is not None else None
    return name if isinstance(name, str) else None


class RequestContextFilter(logging.Filter):
    """Stamp each record with `request_id` and `user` (None where unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        if getattr(record, "user", None) is None:
            record.user = _current_user_name()
        return True


class TextFormatter(logging.Formatter):
    """`2026-12-07 12:00:00,123 INFO app.errors [3f2a…]: message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        record.rid = f" [{rid}]" if rid else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, RFC 3339), level, logger, message, ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "user": getattr(record, "user", None),
            "error_id": getattr(record, "error_id", None),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter of a LOG_FORMAT value (config.py has already checked it)."""
    return JsonFormatter() if log_format == "json" else TextFormatter()


def register_request_ids(app: Flask) -> None:
    """Give each request an id, echo it in X-Request-ID and keep it for the logs."""

    @app.before_request
    def _take_request_id() -> None:
        g.request_id = sane_request_id(request.headers.get(HEADER)) or new_request_id()

    @app.after_request
    def _echo_request_id(response):
        response.headers[HEADER] = g.get("request_id") or new_request_id()
        return response
