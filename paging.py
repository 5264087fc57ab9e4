"""Pages of a list: the one reader of the page arguments and the query that pages.

`page_number(name)` reads one `?page=`-like argument, `page_args()` the JSON
lists' `?page=` and `?per_page=` (at most MAX_PER_PAGE); an empty value is a
422 naming it, like any other bad one.  `paginate` runs one COUNT and one
LIMIT/OFFSET query; `page_of_items` pages a list already in memory;
`page_json` answers a JSON page as `{data, page, per_page, total}`.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from flask import current_app, jsonify, request
from sqlalchemy import func, select

import inputs
from error_handlers import invalid
from models import db

MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 50


class PageOf:
    """One page of a list: its rows, its number and the totals."""

    def __init__(self, items: list, page: int, per_page: int, total: int):
        self.items, self.page, self.per_page, self.total = items, page, per_page, total
        self.pages = max(1, -(-total // per_page))
        self.has_prev, self.has_next = page > 1, page < self.pages


def _read(name: str, default: int, high: int, lenient: bool) -> int:
    """The one reader: `?<name>=` as a whole number from 1 to `high` (missing: `default`).

    Empty is BadInput (422 naming it).  Strict (the JSON lists, the roster): anything
    else that is not such a number is BadInput too; lenient (the pages' pagers):
    `default`, except a number past the INTEGER range (it would reach a query).
    """
    text = request.args.get(name)
    if text is not None and not text.strip():
        raise inputs.BadInput(name, f"{name} is empty: leave it out or give a value")
    if lenient:
        return inputs.lenient_number(text, name, default=default, high=high)
    return inputs.whole_number(text, name, default, high=high)


def page_number(name: str = "page", lenient: bool = True) -> int:
    """A page's `?page=` (or `?runs_page=`, `?history_page=`...): 1 when missing."""
    return _read(name, 1, inputs.INT_MAX, lenient)


def page_args(default_per_page: int = DEFAULT_PER_PAGE) -> tuple[int, int]:
    """A JSON list's `?page=` and `?per_page=` (1..MAX_PER_PAGE), else 422 naming each bad one."""
    problems, result = [], []
    for name, default, high in (("page", 1, inputs.INT_MAX),
                                ("per_page", default_per_page, MAX_PER_PAGE)):
        try:
            result.append(_read(name, default, high, lenient=False))
        except inputs.BadInput as exc:
            problems.append(exc.detail())
    if problems:
        raise invalid(problems)
    return result[0], result[1]


def paginate(model, conditions: list, order_by: list, page: int,
             per_page: Optional[int] = None) -> PageOf:
    """One COUNT and one LIMIT/OFFSET query over `model` rows matching `conditions`
    (every list: pages, JSON API, sync API)."""
    per_page = per_page or current_app.config["PAGE_SIZE"]
    total = db.session.scalar(select(func.count(model.id)).where(*conditions)) or 0
    query = select(model).where(*conditions).order_by(*order_by)
    items = list(db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)))
    return PageOf(items, page, per_page, total)


def page_of_items(items: list, page: int, per_page: int) -> PageOf:
    """One page of a list already in memory."""
    return PageOf(items[(page - 1) * per_page:page * per_page], page, per_page, len(items))


def listing_json(listing: PageOf, row: Callable[[Any], Any] = lambda record: record.to_dict()):
    """A JSON page: {data, page, per_page, total}."""
    return jsonify({"data": [row(item) for item in listing.items], "page": listing.page,
                    "per_page": listing.per_page, "total": listing.total})


def page_json(model, order_by: tuple, *conditions):
    """A JSON page of `model` rows, as `?page=` and `?per_page=` ask."""
    page, per_page = page_args()
    return listing_json(paginate(model, list(conditions), list(order_by), page, per_page))
