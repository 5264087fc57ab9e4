"""Pages a newcomer understands: our own error pages, a favicon, plain-words webhook outcomes."""
import re
from datetime import timedelta

import pytest

from tests.conftest import SCHEDULER

WERKZEUG_WORDING = ("You don't have the permission", "The requested URL was not found",
                    "The server encountered an internal error")


def visible_text(html: str) -> str:
    """The page's words without tags (roughly what a reader sees)."""
    inline = re.sub(r"</?(span|strong|code|a|time|em)\b[^>]*>", "", html)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", inline))


def test_scheduler_opening_sync_admin_sees_our_admins_only_page(client, auth):
    auth.login_scheduler()
    response = client.get("/sync/admin")
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    text = visible_text(response.get_data(as_text=True))
    assert "This page is for admins" in text
    assert f"signed in as {SCHEDULER[0]}, a scheduler" in text
    assert "Back to the dashboard" in text
    assert re.search(r"error id: [0-9a-f]{12}", text)
    for words in WERKZEUG_WORDING:
        assert words not in text


def test_scheduler_calling_an_admin_api_still_gets_json(client, scheduler_headers):
    response = client.post("/api/sync/retry_failed", headers=scheduler_headers)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_unknown_page_is_our_404(client, auth):
    auth.login()
    response = client.get("/no/such/page")
    assert response.status_code == 404
    text = visible_text(response.get_data(as_text=True))
    assert "Page not found" in text
    assert "/no/such/page" in text
    assert "The requested URL was not found" not in text


def test_unknown_api_route_is_json_404_in_our_words(client, admin_headers):
    response = client.get("/api/no-such-thing", headers=admin_headers)
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]["message"].startswith("Nothing here")


@pytest.fixture
def failing_page(app):
    def boom():
        raise RuntimeError("kaboom")

    app.add_url_rule("/explode", "explode", boom)
    return app


def test_page_crash_is_our_500(failing_page, client, auth):
    auth.login()
    response = client.get("/explode")
    assert response.status_code == 500
    text = visible_text(response.get_data(as_text=True))
    assert "Something went wrong on our side" in text
    assert "nothing was saved" in text
    assert "kaboom" not in text
    assert re.search(r"error id: [0-9a-f]{12}", text)


def test_error_pages_carry_no_inline_script_or_style(client, auth):
    auth.login_scheduler()
    html = client.get("/sync/admin").get_data(as_text=True)
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)


def test_favicon_is_linked_and_served(client, auth):
    auth.login()
    html = client.get("/").get_data(as_text=True)
    links = re.findall(r'<link rel="icon" href="([^"]+)"', html)
    assert links, "the page links no icon"
    for href in links + ["/favicon.ico"]:
        response = client.get(href)
        assert response.status_code == 200, href
        assert response.mimetype.startswith("image/"), (href, response.mimetype)
        assert len(response.data) > 100
    login_page = client.get("/login").get_data(as_text=True)
    assert 'rel="icon"' in login_page


# -- the sync admin page in people's words ----------------------------------------

def webhooks_section(html: str) -> str:
    return html.split('id="webhooks"', 1)[1].split("</section>", 1)[0]


@pytest.mark.vendor_sync
def test_webhook_table_says_already_had_this_version_and_folds_message_ids(
        app, client, auth, webhook_secret):
    from tests.helpers import START, fmt, signed

    def message(version, name):
        return {"type": "employee.updated", "timestamp": fmt(START),
                "data": {"id": "emp_words", "name": name, "email": None, "active": True,
                         "version": version, "updated_at": fmt(START + timedelta(minutes=version))}}

    url = "/api/webhook/schedule_update"
    outcomes = []
    for version, name, msg_id in ((2, "Second", "msg_first"), (2, "Second", "msg_again"),
                                  (1, "First", "msg_late")):
        raw, headers = signed(webhook_secret, message(version, name), msg_id)
        outcomes.append(client.post(url, data=raw, headers=headers).get_json()["outcome"])
    raw, headers = signed(webhook_secret, message(2, "Second"), "msg_first")
    outcomes.append(client.post(url, data=raw, headers=headers).get_json()["outcome"])
    assert outcomes == ["applied", "stale", "stale", "duplicate"]
    auth.login()
    section = webhooks_section(client.get("/sync/admin").get_data(as_text=True))
    text = visible_text(section)
    assert "Ignored: already had this version" in text
    assert "Ignored: older than the version here (version 2)" in text
    assert "Repeat delivery: already received, nothing changed" in text
    assert "Employee updated emp_words version 2" in text
    assert "not newer than" not in text
    for msg_id in ("msg_first", "msg_again", "msg_late"):
        folded = re.search(r"<details[^>]*><summary>Message id</summary><code>" + msg_id
                           + r"</code></details>", section)
        assert folded, msg_id
    assert "#duplicate-" not in section


def test_runs_chart_shows_moved_and_failed_per_run_of_the_last_day(app, client, auth):
    from models import SyncRun, db, utcnow

    now = utcnow()
    with app.app_context():
        db.session.add_all([
            SyncRun(status="succeeded", trigger="interval", pushed=9, pulled=90, failed=0,
                    started_at=now - timedelta(hours=30), finished_at=now - timedelta(hours=30)),
            SyncRun(status="partial", trigger="interval", pushed=3, pulled=4, failed=2,
                    started_at=now - timedelta(hours=5), finished_at=now - timedelta(hours=5)),
            SyncRun(status="succeeded", trigger="manual", pushed=10, pulled=1, failed=0,
                    started_at=now - timedelta(hours=1), finished_at=now - timedelta(hours=1)),
        ])
        db.session.commit()
    auth.login()
    html = client.get("/sync/admin").get_data(as_text=True)
    chart = html.split('<figure class="sync-chart">', 1)[1].split("</figure>", 1)[0]
    assert "Records moved and failures per run, last 24 hours" in chart
    desc = visible_text(re.search(r"<desc[^>]*>(.*?)</desc>", chart, re.S).group(1))
    # the 30-hour-old run (99 moved) is outside the day
    assert "2 runs in the last 24 hours" in desc
    assert "records moved (pushed + pulled) 18 in all, at most 11 in one run" in desc
    assert "failures 2 in all, at most 2 in one run" in desc
    assert chart.count("<polyline") == 1  # moved: a line; failures: marks where they happened
    assert chart.count("<polygon") == 2  # the one failing run's mark, and the legend's
    assert "records moved (pushed + pulled) (line, circle)" in visible_text(chart)
    assert "failures (triangles)" in visible_text(chart)
    # the axis spans the runs shown: the first run at the left edge, the last at the right
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', chart)]
    assert xs == [40.0, 626.0]


def test_runs_chart_says_when_no_run_finished_today(app, client, auth):
    auth.login()
    html = client.get("/sync/admin").get_data(as_text=True)
    assert "No sync run finished in the last 24 hours." in html
    assert '<figure class="sync-chart">' not in html
