"""An employee's calendar feed (feeds.py, calendar_feeds.py): made and revoked through
the API, read without sign-in as iCalendar (parsed here with `icalendar`), following the
roster (a reschedule moves the VEVENT, an unschedule removes it); one query per feed; a
poll with its ETag is 304 until the feed changes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from icalendar import Calendar

from tests.factories import make_employee, make_event, make_schedule


def soon(days: int, hour: int = 9) -> datetime:
    """An instant `days` from now (the feed covers 30 days back to 180 ahead)."""
    today = datetime.now(timezone.utc).replace(hour=hour, minute=0, second=0, microsecond=0)
    return today + timedelta(days=days)


def setup(app) -> dict:
    with app.app_context():
        ana = make_employee("Ana")
        event = make_event(project_name="CORE - Reset", start_datetime=soon(-1, 0),
                           due_datetime=soon(10, 23), estimated_minutes=90, store_number=77,
                           store_name="Springfield")
        short = make_event(project_name="Juicer", start_datetime=soon(-1, 0),
                           due_datetime=soon(10, 23), estimated_minutes=None)
        far = make_event(start_datetime=soon(200, 0), due_datetime=soon(201, 23))
        first = make_schedule(event, ana, soon(2))
        make_schedule(short, ana, soon(3))
        make_schedule(far, ana, soon(200))  # beyond 180 days: left out
        return {"ana": ana.id, "schedule": first.id}


def vevents(client, url: str) -> dict:
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    calendar = Calendar.from_ical(response.data)
    return {str(c["uid"]): c for c in calendar.walk("VEVENT")}


def test_the_feed_follows_the_roster_and_revoking_it_is_404(client, admin_headers, app):
    w = setup(app)
    made = client.post(f"/api/employees/{w['ana']}/feed", headers=admin_headers)
    assert made.status_code == 201
    url = made.get_json()["url"].split("localhost", 1)[-1]
    assert url.startswith("/feeds/") and url.endswith(".ics")
    anonymous = app.test_client()
    events = vevents(anonymous, url)
    assert len(events) == 2
    uid = f"schedule-{w['schedule']}@merch-scheduler"
    first = events[uid]
    assert first["dtstart"].dt == soon(2) and first["dtend"].dt == soon(2) + timedelta(minutes=90)
    assert str(first["summary"]) == "CORE - Reset (77 Springfield)"
    assert str(first["location"]) == "Store 77 Springfield"
    other = next(e for k, e in events.items() if k != uid)
    assert other["dtend"].dt - other["dtstart"].dt == timedelta(hours=1)

    moved = client.patch(f"/api/schedules/{w['schedule']}", headers=admin_headers,
                         json={"start_datetime": soon(4).strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert moved.status_code == 200
    assert vevents(anonymous, url)[uid]["dtstart"].dt == soon(4)
    assert client.delete(f"/api/schedules/{w['schedule']}", headers=admin_headers).status_code == 204
    assert uid not in vevents(anonymous, url)

    again = client.post(f"/api/employees/{w['ana']}/feed", headers=admin_headers).get_json()["url"]
    assert anonymous.get(url).status_code == 404  # replaced
    url = again.split("localhost", 1)[-1]
    assert client.delete(f"/api/employees/{w['ana']}/feed", headers=admin_headers).status_code == 204
    assert anonymous.get(url).status_code == 404
    assert client.delete(f"/api/employees/{w['ana']}/feed", headers=admin_headers).status_code == 404
    assert anonymous.get("/feeds/nothing-like-it.ics").status_code == 404


def test_only_the_hash_of_the_token_is_stored_and_the_feed_is_one_query(client, admin_headers, app):
    from feeds import EmployeeFeed, feed_ics, token_hash
    from models import db
    from tests.helpers import statements

    w = setup(app)
    token = client.post(f"/api/employees/{w['ana']}/feed", headers=admin_headers).get_json()["token"]
    with app.app_context():
        stored = db.session.scalar(db.select(EmployeeFeed))
        assert stored.token_hash == token_hash(token) != token
        db.session.expire_all()
        with statements(app) as seen:
            assert feed_ics(token) is not None
        assert len(seen) == 1


def test_a_poll_with_the_etag_is_304_until_anything_the_feed_shows_changes(client, admin_headers, app):
    """Phone calendars poll: an unchanged feed answers 304 with no body; renaming the event
    (its schedule untouched) or moving the schedule gives the new feed and a new ETag."""
    w = setup(app)
    url = client.post(f"/api/employees/{w['ana']}/feed", headers=admin_headers).get_json()["url"]
    url, phone = url.split("localhost", 1)[-1], app.test_client()
    first = phone.get(url)
    tag = first.headers["ETag"]
    assert first.status_code == 200 and tag
    unchanged = phone.get(url, headers={"If-None-Match": tag})
    assert unchanged.status_code == 304 and unchanged.data == b""
    with app.app_context():
        from models import Schedule, db

        event_id = db.session.get(Schedule, w["schedule"]).event_id
    renamed = client.patch(f"/api/events/{event_id}", headers=admin_headers,
                           json={"project_name": "CORE - Reset, renamed"})
    assert renamed.status_code == 200
    changed = phone.get(url, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    uid = f"schedule-{w['schedule']}@merch-scheduler"
    summary = {str(c["uid"]): str(c["summary"]) for c in Calendar.from_ical(changed.data).walk("VEVENT")}
    assert summary[uid] == "CORE - Reset, renamed (77 Springfield)"
    moved = client.patch(f"/api/schedules/{w['schedule']}", headers=admin_headers,
                         json={"start_datetime": soon(5).strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert moved.status_code == 200
    again = phone.get(url, headers={"If-None-Match": changed.headers["ETag"]})
    assert again.status_code == 200
    assert {str(c["uid"]): c["dtstart"].dt for c in Calendar.from_ical(again.data).walk("VEVENT")}[uid] == soon(5)


def test_a_feed_with_no_schedules_is_an_empty_calendar(client, admin_headers, app):
    with app.app_context():
        ben = make_employee("Ben").id
    url = client.post(f"/api/employees/{ben}/feed", headers=admin_headers).get_json()["url"]
    assert vevents(app.test_client(), url.split("localhost", 1)[-1]) == {}


def test_the_feeds_migration_goes_down_and_up(app):
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import inspect

    import models
    from models import db

    directory = str(models.__file__).rsplit("/", 1)[0] + "/migrations"
    with app.app_context():
        db.session.remove()
        try:
            downgrade(directory=directory, revision="c5e7a9b1d3f2")
            db.engine.dispose()
            assert "employee_feeds" not in inspect(db.engine).get_table_names()
        finally:
            upgrade(directory=directory)
        db.engine.dispose()
        assert "employee_feeds" in inspect(db.engine).get_table_names()
