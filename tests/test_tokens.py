"""API tokens (tokens.py, account.py, `flask --app app users token`): Bearer acts as
its user, is stored only as a hash, and stops working when revoked or expired."""
from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.conftest import ADMIN, SCHEDULER


def _cli_token(runner, name: str, label: str = "") -> str:
    args = ["users", "token", name] + (["--label", label] if label else [])
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    assert token.startswith("sch_") and len(token) > 40
    return token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_cli_token_reads_and_writes_the_api_without_csrf(client, runner):
    token = _cli_token(runner, ADMIN[0], "nightly export")
    assert client.get("/api/employees", headers=bearer(token)).status_code == 200
    made = client.post("/api/employees", json={"name": "Tok En"}, headers=bearer(token))
    assert made.status_code == 201, made.get_json()


def test_a_token_acts_with_its_users_role(client, runner):
    token = _cli_token(runner, SCHEDULER[0])
    assert client.get("/api/sync/status", headers=bearer(token)).status_code == 200
    refused = client.post("/api/sync/trigger", json={}, headers=bearer(token))
    assert refused.status_code == 403


@pytest.mark.parametrize("sent", ["sch_notarealtoken000000000000000000000000", "garbage", "", "sch_"])
def test_an_unknown_token_is_401(client, sent):
    response = client.get("/api/employees", headers={"Authorization": f"Bearer {sent}"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_only_a_hash_is_stored(app, runner):
    from models import ApiToken, db

    token = _cli_token(runner, ADMIN[0])
    with app.app_context():
        row = db.session.scalar(select(ApiToken))
        assert token not in (row.token_hash, row.prefix, row.label)
        assert re.fullmatch(r"[0-9a-f]{64}", row.token_hash)
        assert token.startswith(row.prefix)


def test_revoked_expired_and_inactive_tokens_are_401(app, client, runner):
    from models import ApiToken, User, db, utcnow

    revoked, expired, inactive = (_cli_token(runner, ADMIN[0]), _cli_token(runner, ADMIN[0]),
                                  _cli_token(runner, SCHEDULER[0]))
    for token in (revoked, expired, inactive):
        assert client.get("/api/employees", headers=bearer(token)).status_code == 200
    with app.app_context():
        rows = db.session.scalars(select(ApiToken).order_by(ApiToken.id)).all()
        rows[0].revoked_at = utcnow()
        rows[1].expires_at = utcnow() - timedelta(seconds=1)
        db.session.scalar(select(User).where(User.username == SCHEDULER[0])).active = False
        db.session.commit()
    for token in (revoked, expired, inactive):
        assert client.get("/api/employees", headers=bearer(token)).status_code == 401


def test_last_use_is_recorded(app, client, runner):
    from models import ApiToken, db

    token = _cli_token(runner, ADMIN[0])
    with app.app_context():
        assert db.session.scalar(select(ApiToken)).last_used_at is None
    client.get("/api/employees", headers=bearer(token))
    with app.app_context():
        assert db.session.scalar(select(ApiToken)).last_used_at is not None


def test_tokens_expire_after_api_token_days(app, runner):
    from models import ApiToken, db, utcnow

    app.config["API_TOKEN_DAYS"] = 30
    _cli_token(runner, ADMIN[0])
    app.config["API_TOKEN_DAYS"] = 0
    _cli_token(runner, ADMIN[0])
    with app.app_context():
        month, forever = db.session.scalars(select(ApiToken).order_by(ApiToken.id)).all()
        assert abs((month.expires_at - utcnow()) - timedelta(days=30)) < timedelta(minutes=1)
        assert forever.expires_at is None


def test_the_cli_refuses_an_unknown_user(runner):
    result = runner.invoke(args=["users", "token", "nobody"])
    assert result.exit_code == 1
    assert "no active user 'nobody'" in result.output


def test_tokens_never_reach_the_logs(client, runner, caplog):
    from error_handlers import SecretFilter

    token = _cli_token(runner, ADMIN[0])
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "got %s", (f"Bearer {token}",), None)
    SecretFilter([]).filter(record)
    assert token not in record.getMessage()
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "token=%s", (token,), None)
    SecretFilter([]).filter(record)
    assert token not in record.getMessage()
