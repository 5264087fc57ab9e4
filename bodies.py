"""JSON request bodies: read as an object, fields checked with every problem collected.

`json_object()` reads the body (depth-limited, clean text; 413 past the
route's limit); `Body` takes fields one by one with a parser and raises one
422 naming every bad field; `field(resource)` is the parser of a model field
(its limits come from fields.py).  Read-only fields (`id`, the sync fields)
and unknown fields are ignored.
"""
from __future__ import annotations

from typing import Any, Callable

from flask import request

import fields
import inputs
from error_handlers import invalid
from models import ApiError, DomainError


def json_object(optional: bool = False) -> dict:
    """The request body as a JSON object (depth-limited, clean text), else 400/422 (413 when too big)."""
    data = request.get_data(cache=True)
    if optional and not data.strip():
        return {}
    document = inputs.parse_json(data)
    if not isinstance(document, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return document


class Body:
    """Checks the fields of a JSON body, collecting every problem."""

    def __init__(self, data: dict, partial: bool):
        self.data, self.partial = data, partial
        self.values: dict[str, Any] = {}
        self.errors: list[dict] = []

    def take(self, name: str, parse: Callable[[Any, str], Any], required: bool = False) -> None:
        """Parse `name` if given; a missing required field is a problem on create."""
        if name not in self.data:
            if required and not self.partial:
                self.fail(name, f"{name} is required")
            return
        try:
            self.values[name] = parse(self.data[name], name)
        except DomainError as exc:
            self.fail(name, exc.message)

    def fail(self, name: str, message: str) -> None:
        """Note one field's problem."""
        self.errors.append({"field": name, "message": message})

    def done(self) -> dict:
        """The parsed values, or one 422 naming every bad field."""
        if self.errors:
            raise invalid(self.errors)
        return self.values


def field(resource: str) -> Callable[[Any, str], Any]:
    """The parser of a resource's fields: fields.clean's verdict for the named field."""
    return lambda value, name: fields.clean(resource, name, value)


def boolean(value: Any, name: str) -> bool:
    """A JSON true or false (a flag that is not a column, e.g. `wait`)."""
    if not isinstance(value, bool):
        raise DomainError(f"{name} must be true or false")
    return value
