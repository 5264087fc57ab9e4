"""Pages a newcomer understands: our own error pages, a favicon, plain-words webhook outcomes."""
import re

import pytest

from tests.conftest import SCHEDULER

WERKZEUG_WORDING = ("You don't have the permission", "The requested URL was not found",
                    "The server encountered an internal error")


def visible_text(html: str) -> str:
    """The page's words without tags (roughly what a reader sees)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_scheduler_opening_sync_admin_sees_our_admins_only_page(client, auth):
    auth.login_scheduler()
    response = client.get("/sync/admin")
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    text = visible_text(response.get_data(as_text=True))
    assert "This page is for admins" in text
    assert f"signed in as {SCHEDULER[0]} , a scheduler" in text
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
