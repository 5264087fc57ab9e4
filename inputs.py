"""Bad input becomes a 4xx here, before any query: one set of rules for every path.

What a client sends (path and query parameters, JSON bodies, form fields, CSV
cells) is checked against what the database and the calendar can hold:

* whole numbers against the INTEGER columns' range (32-bit on PostgreSQL);
* dates and instants against the calendar the time helpers can shift, with a
  year of margin at each end (a zone shift, a week or a day added never leaves
  Python's years 1..9999);
* text for NUL characters (PostgreSQL refuses them) and unpaired surrogates
  (no database can encode them), so both databases answer alike;
* JSON for its nesting depth.

Each rule raises `BadInput` (field, message, status); error_handlers.py turns
it into the answer (JSON for the API, an error page for pages) and the CSV
reader into a problem line.  Also here: the `<int:...>` URL converter that
stops at the INTEGER range (a larger id matches no route: 404) and the request
class whose size limit is larger for the routes marked `@large_upload`.
Imports nothing of the app.
"""
from __future__ import annotations

import io
import json
import re
from datetime import date, datetime, timezone
from typing import IO, Any, Optional

import flask
from flask import current_app
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import IntegerConverter
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream

INT_MAX = 2**31 - 1  # INTEGER columns are 32-bit on PostgreSQL
MIN_DAY = date(2, 1, 1)  # a year of margin: zone shifts and week arithmetic stay in 1..9999
MAX_DAY = date(9998, 12, 31)
MIN_INSTANT = datetime(2, 1, 1, tzinfo=timezone.utc)
MAX_INSTANT = datetime(9999, 1, 1, tzinfo=timezone.utc)  # exclusive
JSON_MAX_DEPTH = 32
_DIGITS = re.compile(r"[0-9]+")
_UNCLEAN = re.compile("[\x00\ud800-\udfff]")


class BadInput(ValueError):
    """An input the app refuses: which field, why, and the status that fits."""

    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(message)
        self.field, self.message, self.status = field, message, status

    def detail(self) -> dict:
        return {"field": self.field, "message": self.message}


# -- whole numbers -------------------------------------------------------------

def whole_number(text: Optional[str], field: str, default: Optional[int] = None,
                 low: int = 1, high: int = INT_MAX) -> Optional[int]:
    """A decimal query parameter in low..high ("" or missing gives `default`), else BadInput."""
    text = (text or "").strip()
    if not text:
        if default is None:
            raise BadInput(field, f"{field} must not be empty")
        return default
    number = int(text) if _DIGITS.fullmatch(text) and len(text) <= 12 else None
    if number is None or not low <= number <= high:
        raise BadInput(field, f"{field} must be a whole number from {low} to {high}, got {text[:40]!r}")
    return number


def in_int_range(value: int) -> bool:
    """Whether an integer fits the INTEGER columns."""
    return -INT_MAX - 1 <= value <= INT_MAX


# -- dates and instants ----------------------------------------------------------

def check_day(day: date, field: str) -> date:
    """A calendar day the app can shift and add weeks to, else BadInput."""
    if not MIN_DAY <= day <= MAX_DAY:
        raise BadInput(field, f"{field} must be a date from {MIN_DAY.isoformat()} to "
                              f"{MAX_DAY.isoformat()}, got {day.isoformat()}")
    return day


def check_instant(moment: datetime, field: str) -> datetime:
    """An aware instant (any offset) → UTC inside the supported range, else BadInput.

    An offset that would push the time past year 9999 or before year 1 is
    refused like any other instant out of range, never raised.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BadInput(field, f"{field} has no UTC offset")
    try:
        utc = moment.astimezone(timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or not MIN_INSTANT <= utc < MAX_INSTANT:
        raise BadInput(field, f"{field} must fall between {MIN_DAY.isoformat()} and "
                              f"{MAX_DAY.isoformat()} (UTC)")
    return utc


# -- text ------------------------------------------------------------------------

def check_text(value: str, field: str) -> str:
    """Text with no NUL character and no unpaired surrogate, else BadInput."""
    found = _UNCLEAN.search(value)
    if found is not None:
        what = "a NUL character" if found.group() == "\x00" else "an unpaired surrogate (not valid Unicode)"
        raise BadInput(field, f"{field} contains {what}")
    return value


def check_mapping(items, prefix: str = "") -> None:
    """Every (name, value) pair of a form or query string: clean names and values."""
    for name, value in items:
        name = name or ""  # a multipart part may come without a name
        check_text(name, "parameter name")
        if isinstance(value, str):
            check_text(value, prefix + name)


# -- JSON ------------------------------------------------------------------------

def parse_json(data: bytes, max_depth: int = JSON_MAX_DEPTH) -> Any:
    """A JSON document, at most `max_depth` deep and with clean strings, else BadInput.

    A syntax error, a document nested deeper than the parser itself can go,
    or one that is not UTF-8 is a 400; a nesting deeper than `max_depth` is a
    400 too; a string with NUL or an unpaired surrogate is a 422 naming where.
    """
    if _too_deep(data, max_depth):
        raise BadInput("body", f"the JSON body is nested more than {max_depth} levels deep", 400)
    try:
        document = json.loads(data)
    except RecursionError:
        raise BadInput("body", f"the JSON body is nested more than {max_depth} levels deep", 400) from None
    except (ValueError, TypeError) as exc:
        raise BadInput("body", f"the body is not valid JSON: {str(exc)[:200]}", 400) from None
    _walk(document, max_depth)
    return document


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


def _too_deep(data: Any, max_depth: int) -> bool:
    """Whether brackets outside strings nest deeper than `max_depth`, checked before parsing.

    json.loads on a very deep document raises RecursionError, and on CPython 3.11 before
    3.11.8 that leaves the interpreter's AST recursion counter wrong, so the process's next
    compile() fails with SystemError: the parser must never be given such a document."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    depth = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub(b'""', bytes(data))):
        depth += 1 if match.group() in (b"[", b"{") else -1
        if depth > max_depth:
            return True
    return False


def _walk(document: Any, max_depth: int) -> None:
    """Check depth and strings without recursion (a deep document cannot blow the stack)."""
    stack = [(document, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            check_text(value, path or "body")
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth >= max_depth:
            raise BadInput("body", f"the JSON body is nested more than {max_depth} levels deep", 400)
        if isinstance(value, dict):
            for key, item in value.items():
                name = f"{path}.{key}" if path else key
                check_text(key, name)
                stack.append((item, name, depth + 1))
        else:
            for index, item in enumerate(value):
                stack.append((item, f"{path}[{index}]", depth + 1))


def lenient_number(text: Optional[str], field: str, default: Optional[int] = None,
                   low: int = 1, high: int = INT_MAX) -> Optional[int]:
    """A page's optional number: `default` when missing or not a number in range,
    but a number past the INTEGER range is BadInput (it would reach a query)."""
    text = (text or "").strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()):
        return default
    if len(digits) > 12 or not -INT_MAX - 1 <= int(text) <= INT_MAX:
        raise BadInput(field, f"{field} must be a whole number up to {INT_MAX}, got {text[:40]!r}")
    number = int(text)
    return number if low <= number <= high else default


# -- routes: ids in paths, and the size of a body ------------------------------------

def _digits_up_to(limit: int) -> str:
    """A regex for the decimal numbers 0..limit (no sign, no leading zeros needed)."""
    text = str(limit)
    parts = [f"[0-9]{{1,{len(text) - 1}}}"] if len(text) > 1 else []
    for i, digit in enumerate(text):
        if digit != "0":
            low = "1" if i == 0 else "0"
            if int(digit) - 1 >= int(low):
                rest = len(text) - i - 1
                parts.append(text[:i] + f"[{low}-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    parts.append(text)
    return "(?:" + "|".join(parts) + ")"


class IdConverter(IntegerConverter):
    """`<int:...>` whose pattern matches only ids the INTEGER columns can hold.

    A larger id matches no route at all (404 for every method), so it never
    reaches a query; checking it after the match instead would make werkzeug
    answer 405 for the methods the path has.
    """

    regex = _digits_up_to(INT_MAX)


def large_upload(view):
    """Mark a view that takes a CSV upload: MAX_CSV_UPLOAD_LENGTH instead of MAX_CONTENT_LENGTH."""
    view.large_upload = True
    return view


class _UpToLimit(io.RawIOBase):
    """A streamed (chunked) body read up to `limit` bytes: a byte past it is 413.

    werkzeug's LimitedStream with a maximum stops reading at the limit and
    returns what it read, so a body cut there would be parsed as if whole; this
    asks for one byte more and refuses the body when it comes.
    """

    def __init__(self, stream, limit: int):
        super().__init__()
        self._inner = LimitedStream(stream, limit + 1, is_max=True)
        self._limit, self._read = limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._inner.read(len(buffer))
        self._read += len(data)
        if self._read > self._limit:
            raise RequestEntityTooLarge()
        buffer[:len(data)] = data
        return len(data)


class Request(flask.Request):
    """A request whose body limits depend on its route (413 past them, before reading on)."""

    @cached_property
    def stream(self) -> IO[bytes]:
        """The body stream; a streamed body past the route's limit is 413, never cut short."""
        limit = self.max_content_length
        if (limit is not None and self.content_length is None and not self.shallow
                and "wsgi.input_terminated" in self.environ):
            return io.BufferedReader(_UpToLimit(self.environ["wsgi.input"], limit))
        return super().stream

    def _large_upload(self) -> bool:
        view = current_app.view_functions.get(self.endpoint) if self.url_rule is not None else None
        return bool(getattr(view, "large_upload", False))

    def _for_uploads(self, own: Optional[int], inherited: Optional[int]) -> Optional[int]:
        """MAX_CSV_UPLOAD_LENGTH for a large-upload view, unless this request set its own."""
        if own is None and current_app and self._large_upload():
            return current_app.config["MAX_CSV_UPLOAD_LENGTH"]
        return inherited

    max_content_length = property(
        lambda self: self._for_uploads(self._max_content_length, super(Request, self).max_content_length),
        lambda self, value: setattr(self, "_max_content_length", value))
    # a `file` part sent without a filename is a form field: it may be as large as a file
    max_form_memory_size = property(
        lambda self: self._for_uploads(self._max_form_memory_size,
                                       super(Request, self).max_form_memory_size),
        lambda self, value: setattr(self, "_max_form_memory_size", value))
