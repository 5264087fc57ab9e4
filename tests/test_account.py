"""The account pages (account.py): a user's API tokens, made on /account/tokens (shown
once), listed and revoked there."""
from __future__ import annotations

import re

from sqlalchemy import select

from tests.conftest import ADMIN, csrf_from
from tests.test_tokens import _cli_token, bearer


def test_the_tokens_page_shows_a_new_token_once_and_revokes_it(app, client, auth):
    auth.login()
    page = client.get("/account/tokens")
    assert page.status_code == 200 and "No tokens yet." in page.get_data(as_text=True)
    made = client.post("/account/tokens", data={"label": "laptop script",
                                                 "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert made.status_code == 201
    assert made.headers["Cache-Control"] == "no-store"
    html = made.get_data(as_text=True)
    token = re.search(r'id="new-token"[^>]*>(sch_[^<]+)<', html).group(1)
    script = app.test_client()  # a script: no session cookie, only the token
    assert script.get("/api/employees", headers=bearer(token)).status_code == 200
    listing = client.get("/account/tokens").get_data(as_text=True)
    assert token not in listing and "laptop script" in listing and token[:8] in listing
    token_id = re.search(r'data-token-id="(\d+)"', listing).group(1)
    done = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_from(listing)},
                       follow_redirects=True)
    assert "The token is revoked" in done.get_data(as_text=True)
    assert "Revoked" in done.get_data(as_text=True)
    assert script.get("/api/employees", headers=bearer(token)).status_code == 401


def test_a_label_too_long_is_refused_with_the_field(client, auth):
    auth.login()
    page = client.get("/account/tokens").get_data(as_text=True)
    refused = client.post("/account/tokens", data={"label": "x" * 81, "csrf_token": csrf_from(page)})
    assert refused.status_code == 422
    assert "label must be at most 80 characters" in refused.get_data(as_text=True)
    assert "No tokens yet." in refused.get_data(as_text=True)


def test_nobody_revokes_another_users_token(app, client, auth, runner):
    from models import ApiToken, db

    token = _cli_token(runner, ADMIN[0])
    auth.login_scheduler()
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
    page = client.get("/account/tokens").get_data(as_text=True)
    done = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_from(page)},
                       follow_redirects=True)
    assert "No such token of yours" in done.get_data(as_text=True)
    assert app.test_client().get("/api/employees", headers=bearer(token)).status_code == 200


def test_the_tokens_page_needs_sign_in(client):
    response = client.get("/account/tokens")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
