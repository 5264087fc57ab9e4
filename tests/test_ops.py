"""The probes: /healthz and /readyz need no sign-in and reveal nothing (ops.py)."""
from __future__ import annotations

from sqlalchemy.exc import OperationalError


def test_healthz_answers_without_sign_in(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_answers_when_the_database_does(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_503_when_the_database_does_not(client, monkeypatch):
    from models import db

    def broken(*_args, **_kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused to secret-host"))

    monkeypatch.setattr(db.session, "execute", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable"}
    assert b"secret-host" not in response.data



def test_probes_reveal_nothing_and_carry_a_request_id(client):
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert set(response.get_json()) == {"status"}
        assert response.headers["X-Request-ID"]


def test_the_probes_answer_405_to_other_methods(client):
    for path in ("/healthz", "/readyz", "/metrics"):
        response = client.put(path)
        assert response.status_code == 405, path
        assert "GET" in response.headers["Allow"]
