"""The one error path (error_handlers.py): JSON for /api/, pages otherwise; logging without
secrets.  The CLI commands are in test_cli.py."""
import logging

import pytest

import history
from error_handlers import SecretFilter
from models import Employee, db


@pytest.fixture
def boom_app(app):
    """The app with a route that writes, then fails."""

    def boom():
        db.session.add(Employee(name="half written"))
        db.session.flush()
        raise RuntimeError("kaboom with Bearer sk_live_abcdef123456 inside")

    app.add_url_rule("/api/boom", "api_boom", boom)
    app.add_url_rule("/boom", "page_boom", boom)
    return app


def test_api_500_is_json_with_error_id_in_the_log(boom_app, client, admin_headers, caplog):
    caplog.set_level(logging.INFO, logger="app.errors")
    response = client.get("/api/boom", headers=admin_headers)
    assert response.status_code == 500
    error = response.get_json()["error"]
    assert error["code"] == "internal_error"
    assert error["error_id"] in caplog.text
    with boom_app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Employee)) == 0


def test_page_500_is_html_with_error_id(boom_app, client, auth):
    auth.login()
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    assert "error id" in response.get_data(as_text=True)


def test_unknown_api_route_is_json_404(client, admin_headers):
    response = client.get("/api/nothing-here", headers=admin_headers)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert response.get_json()["error"]["error_id"]


def test_unknown_page_is_html_404(client, auth):
    auth.login()
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "text/html"


def test_api_without_credentials_is_401_json(client):
    response = client.get("/api/employees")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_wrong_basic_password_is_401(client):
    from tests.conftest import AuthActions

    response = client.get("/api/employees", headers=AuthActions.basic("admin", "wrong-password"))
    assert response.status_code == 401


def test_page_without_login_redirects_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("text, secret", [
    ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
    ("calling with key=supersecretvalue", "supersecretvalue"),
    ("secret whsec_QUJDREVGR0hJSktMTU5PUA== used", "QUJDREVGR0hJSktMTU5PUA=="),
    ("password=hunter2hunter2 in form", "hunter2hunter2"),
    ("the configured value my-configured-key appears", "my-configured-key"),
])
def test_secret_filter_redacts(text, secret):
    record = logging.LogRecord("x", logging.INFO, __file__, 1, text, (), None)
    SecretFilter(["my-configured-key"]).filter(record)
    assert secret not in record.getMessage()


def test_configured_secrets_never_reach_the_log_output(database_url, capfd):
    from tests.conftest import make_app

    application = make_app(database_url, EXTERNAL_API_KEY="vendor-key-0123456789")
    logging.getLogger("app").warning("about to call with vendor-key-0123456789")
    err = capfd.readouterr().err
    assert "vendor-key-0123456789" not in err
    assert application is not None


class _PgError(Exception):
    def __init__(self, sqlstate):
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate,status,code", [
    ("40P01", 503, "busy"),            # deadlock_detected: another transaction won
    ("40001", 503, "busy"),            # serialization_failure
    ("42P01", 500, "internal_error"),  # undefined_table: a fault, not contention
])
def test_database_contention_is_503_with_retry_after_and_nothing_saved(app, client, admin_headers,
                                                                         sqlstate, status, code):
    from sqlalchemy.exc import OperationalError

    def contended():
        with history.source("api"):
            db.session.add(Employee(name="half written"))
            db.session.flush()
        raise OperationalError("UPDATE employees ...", {}, _PgError(sqlstate))

    app.add_url_rule("/api/contended", "api_contended", contended)
    response = client.get("/api/contended", headers=admin_headers)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert (response.headers.get("Retry-After") == "1") is (status == 503)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Employee)) == 0
