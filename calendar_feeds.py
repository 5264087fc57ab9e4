"""Calendar apps' room: an employee's private feed, `/feeds/<token>.ics` (feeds.py).

No sign-in: the token in the address is the key; an unknown or revoked one is 404.  The
answer carries an ETag (the body's hash, so it changes with anything the feed shows); a
poll sending it back as If-None-Match gets 304 without the body.  No Last-Modified: an
unscheduled or renamed event changes the feed without a newer row to date it by.
"""
from __future__ import annotations

from flask import Blueprint, Response, abort, request

import feeds

bp = Blueprint("calendar_feeds", __name__)


@bp.get("/feeds/<token>.ics")
def employee_feed(token: str):
    """The employee's schedules as iCalendar (RFC 5545), for any calendar app."""
    if len(token) > 100:
        abort(404)
    body = feeds.feed_ics(token)
    if body is None:
        abort(404)
    response = Response(body, content_type="text/calendar; charset=utf-8",
                        headers={"Cache-Control": "private, max-age=300"})
    response.add_etag()  # the body's hash: a poll with If-None-Match gets 304 if unchanged
    return response.make_conditional(request)
