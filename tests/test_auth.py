"""Signing in and out, who may see which page, CSRF on every form."""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from tests.conftest import SCHEDULER, csrf_from

PAGES = ["/", "/calendar", "/employees", "/schedule/1", "/employees/1/edit",
         "/calendar/1/reschedule", "/calendar?week=2026-12-01"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_redirect_to_login_when_signed_out(client, path):
    response = client.get(path)
    assert response.status_code == 302
    location = urlparse(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == [path]


@pytest.mark.parametrize("path", ["/import", "/calendar/1/unschedule", "/employees/1/active", "/employees"])
def test_posts_need_sign_in_too(client, auth, path):
    token = auth.refresh_csrf()
    response = client.post(path, data={"csrf_token": token})
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_login_page_has_labelled_fields(client):
    page = client.get("/login").get_data(as_text=True)
    assert '<label for="username">' in page and '<label for="password">' in page
    assert 'name="csrf_token"' in page


def test_bad_password_shows_an_error_with_401(client, auth):
    response = auth.login(SCHEDULER[0], "wrong-password")
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    assert 'role="alert"' in page and "wrong password" in page
    assert client.get("/").status_code == 302


def test_login_goes_back_to_next(client):
    token = csrf_from(client.get("/login?next=/calendar").get_data(as_text=True))
    response = client.post("/login?next=/calendar",
                           data={"username": SCHEDULER[0], "password": SCHEDULER[1], "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/calendar")


def test_login_refuses_an_outside_next(client):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login?next=//evil.example/",
                           data={"username": SCHEDULER[0], "password": SCHEDULER[1], "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_login_without_csrf_is_refused(client):
    response = client.post("/login", data={"username": SCHEDULER[0], "password": SCHEDULER[1]})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_logout_needs_post_with_csrf(client, auth):
    auth.login_scheduler()
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200
    response = auth.logout()
    assert response.status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("path", ["/", "/calendar", "/employees"])
def test_a_scheduler_can_use_the_pages(client, auth, path):
    auth.login_scheduler()
    response = client.get(path)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'href="/calendar"' in page and 'href="/employees"' in page
    assert 'href="/sync/admin"' not in page


def test_admins_see_the_sync_admin_link(client, auth):
    auth.login()
    assert 'href="/sync/admin"' in client.get("/").get_data(as_text=True)


def test_a_scheduler_gets_a_403_page_on_admin_pages(client, auth):
    auth.login_scheduler()
    response = client.get("/sync/admin")
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "403" in page and "error-id" in page
