"""A security review from outside: auth before CSRF, sign-in throttling, sessions
that end, local-only redirects, security headers, CSV formulas, webhook floods.
"""
from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest

from tests.conftest import ADMIN, SCHEDULER, AuthActions, csrf_from
from tests.factories import make_employee, make_event, make_schedule, utc
from tests.test_csv_formats import export_rows, mark_all_synced, pending, upload
from tests.helpers import signed

# Each app starts the limiter's in-memory storage afresh: no failures counted yet.
THROTTLE = {"SIGNIN_LIMIT_PER_NAME": "3 per minute", "SIGNIN_LIMIT_PER_ADDRESS": "6 per minute"}


def login_post(client, username, password, query="", address="127.0.0.1"):
    """POST the real login form (with its CSRF token) from `address`."""
    page = client.get("/login" + query, environ_base={"REMOTE_ADDR": address})
    token = csrf_from(page.get_data(as_text=True))
    return client.post("/login" + query, environ_base={"REMOTE_ADDR": address},
                       data={"username": username, "password": password, "csrf_token": token})


def basic_get(client, username, password, address="127.0.0.1"):
    return client.get("/api/employees", headers=AuthActions.basic(username, password),
                      environ_base={"REMOTE_ADDR": address})


def employee_count(app) -> int:
    from models import Employee, db

    with app.app_context():
        return db.session.scalar(db.select(db.func.count(Employee.id)))


# ---------------------------------------------------------------------------
# Authentication before CSRF on the JSON API
# ---------------------------------------------------------------------------

API_WRITES = [
    ("post", "/api/employees"), ("patch", "/api/employees/1"), ("delete", "/api/employees/1"),
    ("post", "/api/events"), ("patch", "/api/events/1"), ("delete", "/api/events/1"),
    ("post", "/api/schedules"), ("patch", "/api/schedules/1"), ("delete", "/api/schedules/1"),
    ("post", "/api/import/events"), ("post", "/api/sync/trigger"),
    ("post", "/api/sync/retry_failed"), ("post", "/api/sync/conflicts/events/1/resolve"),
]


@pytest.mark.parametrize("method,path", API_WRITES)
@pytest.mark.parametrize("authorization", [None, "Bearer junk"])
def test_an_unauthenticated_api_write_is_401_json_not_a_csrf_failure(client, method, path,
                                                                       authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = getattr(client, method)(path, json={"name": "X"}, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_a_wrong_basic_password_on_a_write_is_401(client, app):
    response = client.post("/api/employees", json={"name": "Mallory"},
                           headers=AuthActions.basic(ADMIN[0], "wrong-password"))
    assert response.status_code == 401
    assert employee_count(app) == 0


def test_basic_clients_write_without_csrf(client, app, admin_headers):
    response = client.post("/api/employees", json={"name": "Curl User"}, headers=admin_headers)
    assert response.status_code == 201
    assert employee_count(app) == 1


@pytest.mark.parametrize("authorization", ["Bearer junk", "Basic !!!", "Digest x"])
def test_a_session_with_a_junk_authorization_header_still_needs_csrf(client, auth, app,
                                                                       authorization):
    auth.login()
    response = client.post("/api/employees", json={"name": "Forged"},
                           headers={"Authorization": authorization})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "csrf_failed"
    assert employee_count(app) == 0
    token = auth.refresh_csrf("/")
    response = client.post("/api/employees", json={"name": "Real"},
                           headers={"Authorization": authorization, "X-CSRFToken": token})
    assert response.status_code == 201


def test_basic_credentials_sign_a_request_in_by_themselves_even_with_a_session(client, auth, app):
    auth.login()  # an admin's session
    wrong = AuthActions.basic(ADMIN[0], "wrong-password")
    response = client.post("/api/employees", json={"name": "Forged"}, headers=wrong)
    assert response.status_code == 401
    assert employee_count(app) == 0
    response = client.post("/api/sync/retry_failed", headers=AuthActions.basic(*SCHEDULER))
    assert response.status_code == 403  # the scheduler's Basic, not the admin's session
    response = client.post("/api/employees", json={"name": "Curl"},
                           headers=AuthActions.basic(*SCHEDULER))
    assert response.status_code == 201  # Basic: no CSRF token needed


# ---------------------------------------------------------------------------
# Redirects after sign-in stay on this site
# ---------------------------------------------------------------------------

EVIL_NEXT = [
    "//evil.example/", "///evil.example", "/%09/evil.example", "/%0a/evil.example",
    "/%0d%0a/evil.example", "/%5Cevil.example", "/%5C%5Cevil.example", "%5C%5Cevil.example",
    "/%2F/evil.example", "/%252F%252Fevil.example", "/%EF%BC%8Fevil.example",
    "https://evil.example/", "https:/evil.example", "javascript:alert(1)", "evil.example",
    "%2F%2Fevil.example", "/%00/evil.example", "/%7F/evil.example", "",
]


@pytest.mark.parametrize("raw", EVIL_NEXT)
def test_sign_in_never_redirects_off_the_site(client, raw):
    response = login_post(client, *SCHEDULER, query=f"?next={raw}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("raw,expected", [("/calendar", "/calendar"),
                                          ("/calendar%3Fweek%3D2026-12-01", "/calendar?week=2026-12-01"),
                                          ("/employees/3/edit", "/employees/3/edit")])
def test_sign_in_follows_a_local_next(client, raw, expected):
    response = login_post(client, *SCHEDULER, query=f"?next={raw}")
    assert response.headers["Location"] == expected


@pytest.mark.parametrize("target", ["//evil.example", "/\t/evil.example", "https://evil.example",
                                    "/\\evil.example", "/sync/admin#ok"])
def test_the_sync_admin_forms_next_is_local_only(client, auth, target):
    auth.login()
    token = auth.refresh_csrf("/sync/admin")
    response = client.post("/sync/admin/retry_failed", data={"csrf_token": token, "next": target})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location == (target if target == "/sync/admin#ok" else "/sync/admin")


def test_safe_next_table():
    from security import safe_next

    assert safe_next("/calendar?week=2026-12-01") == "/calendar?week=2026-12-01"
    for evil in ("/\t/evil.example", "/\\evil.example", "//evil.example", "/\x00x", "/\u0085x",
                 "/\uff0fevil.example", "http://evil.example", None, 42):
        assert safe_next(evil) is None, evil


# ---------------------------------------------------------------------------
# Throttled sign-in: per address and per user name, form and Basic
# ---------------------------------------------------------------------------

def assert_throttled_page(response):
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert "text/html" in response.content_type
    assert "too many failed sign-ins" in response.get_data(as_text=True)


def assert_throttled_json(response):
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.get_json()["error"]["code"] == "rate_limited"


@pytest.mark.parametrize("app_overrides", [THROTTLE])
def test_the_form_refuses_a_user_name_after_repeated_failures(client, app):
    from security import limiter

    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):  # one failure from each address
        assert login_post(client, SCHEDULER[0], "wrong-password", address=address).status_code == 401
    assert_throttled_page(login_post(client, *SCHEDULER, address="10.0.0.4"))
    assert_throttled_json(basic_get(client, *SCHEDULER, address="10.0.0.5"))
    assert login_post(client, *ADMIN, address="10.0.0.6").status_code == 302  # other names are free
    limiter.reset()  # the window has passed
    assert login_post(client, *SCHEDULER, address="10.0.0.4").status_code == 302


@pytest.mark.parametrize("app_overrides", [THROTTLE])
def test_basic_refuses_a_user_name_after_repeated_failures(client, app):
    from security import limiter

    for n in range(3):
        assert basic_get(client, ADMIN[0], f"wrong-{n}", address=f"10.1.0.{n}").status_code == 401
    assert_throttled_json(basic_get(client, *ADMIN, address="10.1.0.9"))
    assert_throttled_page(login_post(client, *ADMIN, address="10.1.0.9"))
    limiter.reset()
    assert basic_get(client, *ADMIN, address="10.1.0.9").status_code == 200


@pytest.mark.parametrize("app_overrides", [THROTTLE])
def test_one_address_is_refused_after_repeated_failures_whatever_the_names(client, app):
    from security import limiter

    for n in range(3):
        assert login_post(client, f"nobody-{n}", "guess", address="10.2.0.1").status_code == 401
        assert basic_get(client, f"ghost-{n}", "guess", address="10.2.0.1").status_code == 401
    assert_throttled_page(login_post(client, *ADMIN, address="10.2.0.1"))
    assert_throttled_json(basic_get(client, *ADMIN, address="10.2.0.1"))
    assert login_post(client, *ADMIN, address="10.2.0.2").status_code == 302
    limiter.reset()
    assert basic_get(client, *ADMIN, address="10.2.0.1").status_code == 200


@pytest.mark.parametrize("app_overrides", [THROTTLE])
def test_successful_sign_ins_and_api_calls_are_not_counted(client, app, admin_headers):
    for _ in range(10):
        assert client.get("/api/employees", headers=admin_headers).status_code == 200
    for _ in range(4):
        assert login_post(client, *SCHEDULER).status_code == 302


def test_unknown_and_known_names_cost_one_password_hash_each(app, monkeypatch):
    """Same work whether the user exists or not: one hash check, same method and cost."""
    import security
    import werkzeug.security
    from models import User, db

    calls = []
    real = werkzeug.security.check_password_hash

    def counting(stored, password):
        calls.append(stored.split("$")[0])
        return real(stored, password)

    monkeypatch.setattr(security, "check_password_hash", counting)
    monkeypatch.setattr("models.check_password_hash", counting)
    with app.app_context():
        assert security.authenticate("no-such-user", "guess") is None
        assert security.authenticate(ADMIN[0], "guess") is None
        assert security.authenticate(ADMIN[0], ADMIN[1]).username == ADMIN[0]
        method = db.session.scalar(db.select(User.password_hash).where(
            User.username == ADMIN[0])).split("$")[0]
    assert calls == [method, method, method]


# ---------------------------------------------------------------------------
# Signing out (or a new password) ends the session on the server
# ---------------------------------------------------------------------------

def copy_session(app, client):
    cookie = client.get_cookie("session")
    assert cookie is not None
    other = app.test_client()
    other.set_cookie("session", cookie.value)
    return other


def test_a_cookie_copied_before_sign_out_stops_working(app, client, auth):
    auth.login_scheduler()
    copy = copy_session(app, client)
    assert copy.get("/").status_code == 200
    assert copy.get("/api/employees").status_code == 200
    assert auth.logout().status_code == 302
    response = copy.get("/")
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"
    assert copy.get("/api/employees").status_code == 401


def test_sign_out_leaves_basic_clients_working(app, client, auth, scheduler_headers):
    auth.login_scheduler()
    auth.logout()
    assert client.get("/api/employees", headers=scheduler_headers).status_code == 200


def test_a_new_password_ends_existing_sessions(app, client, auth):
    from auth import create_user

    auth.login_scheduler()
    copy = copy_session(app, client)
    with app.app_context():
        create_user(SCHEDULER[0], "a-brand-new-pass", role="scheduler")
    assert copy.get("/").status_code == 302
    assert client.get("/").status_code == 302
    assert login_post(client, SCHEDULER[0], "a-brand-new-pass").status_code == 302
    assert client.get("/").status_code == 200


# ---------------------------------------------------------------------------
# Security headers on every answer
# ---------------------------------------------------------------------------

def assert_security_headers(response):
    csp = response.headers.get("Content-Security-Policy", "")
    directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'"
    assert directives.get("script-src") == "script-src 'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.headers.get("X-Frame-Options") == "DENY"
    assert response.headers.get("Referrer-Policy") == "same-origin"


@pytest.mark.parametrize("path,signed_in,status", [
    ("/login", False, 200), ("/", True, 200), ("/calendar", True, 200), ("/", False, 302),
    ("/no-such-page", True, 404), ("/api/employees", False, 401), ("/api/employees", True, 200),
    ("/api/employees/999999", True, 404), ("/api/sync/health", False, 200),
    ("/static/js/sync.js", False, 200), ("/static/css/app.css", False, 200),
    ("/logout", True, 405), ("/api/export/schedule", True, 200),
])
def test_every_answer_carries_the_security_headers(client, admin_headers, path, signed_in, status):
    response = client.get(path, headers=admin_headers if signed_in and path.startswith("/api/")
                          else {})
    if signed_in and not path.startswith("/api/"):
        AuthActions(client).login()
        response = client.get(path)
    assert response.status_code == status
    assert_security_headers(response)
    assert "Strict-Transport-Security" not in response.headers  # not in development/testing


def test_pages_have_no_inline_script_or_style(client, auth):
    auth.login()
    for path in ("/", "/calendar", "/employees", "/sync/admin", "/login"):
        page = client.get(path).get_data(as_text=True)
        assert "<script>" not in page and " style=" not in page and "<style" not in page
        assert " onclick=" not in page and " onsubmit=" not in page and " onchange=" not in page


def test_production_adds_hsts_and_secure_cookies(app, database_url):
    from app import create_app

    prod = create_app("production", {"SECRET_KEY": "x" * 32, "DATABASE_URL": "postgresql://db/x",
                                     "SQLALCHEMY_DATABASE_URI": database_url,
                                     "SYNC_ENABLED": False})
    client = prod.test_client()
    response = client.get("/login", base_url="https://scheduler.example")
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert_security_headers(response)
    assert "Secure" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]


# ---------------------------------------------------------------------------
# CSV export: spreadsheet formulas neutralised, and still a no-change import
# ---------------------------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://evil.example","click")', "@SUM(1)", "+cmd|' /C calc'!A0",
            "-2+3", "'=already quoted", "''@twice", "=", "'"]


@pytest.mark.parametrize("value", FORMULAS + ["plain", "-", "Ana O'Neil", "a=b", "\ttab", "\rcr"])
def test_formula_escaping_round_trips(value):
    from csv_formats import formula_escape, formula_unescape

    escaped = formula_escape(value)
    assert escaped[:1] not in ("=", "+", "-", "@", "\t", "\r")
    assert formula_unescape(escaped) == value


def test_the_export_neutralises_formulas_and_imports_back_as_no_change(client, admin_headers, app):
    with app.app_context():
        events = []
        for n, text in enumerate(FORMULAS):
            employee = make_employee(text, code=text if n % 2 else f"X{n}")
            event = make_event(project_name=text, project_ref_num=910000 + n, store_name=text,
                               location_mvid=text[:64], store_number=-5 - n,
                               start_datetime=utc(2025, 10, 1), due_datetime=utc(2025, 10, 5))
            make_schedule(event, employee, start=utc(2025, 10, 1, 8 + n))
            events.append(event.id)
    mark_all_synced(app)
    rows = export_rows(client, admin_headers)[1:]
    assert len(rows) == len(FORMULAS)
    for row in rows:
        for cell in row:
            assert cell[:1] not in ("=", "+", "@", "\t", "\r") and not cell.startswith("-2")
        assert row[3].startswith("-")  # numbers stay numbers: store -5, -6, ...
    assert rows[0][0] == "'" + FORMULAS[0] and rows[4][0] == "''=already quoted"
    exported = client.get("/api/export/schedule", headers=admin_headers).get_data()
    result = upload(client, admin_headers, exported)
    assert result.status_code == 200, result.get_data(as_text=True)
    assert result.get_json() == {"created": 0, "updated": 0, "unchanged": len(FORMULAS),
                                 "scheduled": 0, "employees_created": 0}
    assert pending(app) == 0


# ---------------------------------------------------------------------------
# Webhooks: bounded bodies, bounded rejection rows, validated payloads
# ---------------------------------------------------------------------------

WEBHOOK_URL = "/api/webhook/schedule_update"
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def hook_settings():
    return {"SYNC_ENABLED": True, "WEBHOOK_SECRET": SECRET, "SYNC_PUSH_ON_CHANGE": False,
            "EXTERNAL_API_BASE_URL": "http://127.0.0.1:9/api/v1", "EXTERNAL_API_KEY": "k",
            "WEBHOOK_MAX_BYTES": 200_000}


def sign(body, msg_id=None):
    return signed(SECRET, body, msg_id)


def webhook_rows(app):
    from models import WebhookMessage, db

    with app.app_context():
        return [(m.outcome, m.count, m.detail) for m in db.session.scalars(
            db.select(WebhookMessage).order_by(WebhookMessage.id))]


@pytest.fixture
def hook_app(database_url, hook_settings, app):
    from tests.conftest import make_app

    return make_app(database_url, **hook_settings)


def test_a_flood_of_junk_deliveries_is_counted_not_stored_one_by_one(hook_app):
    client = hook_app.test_client()
    for n in range(200):
        response = client.post(WEBHOOK_URL, data=f"junk {n}",
                               headers={"webhook-id": f"junk-{n}", "webhook-timestamp": "1",
                                        "webhook-signature": "v1,AAAA"})
        assert response.status_code == 401
    stored = webhook_rows(hook_app)
    assert 1 <= len(stored) <= 2  # one row per minute and reason (a minute may turn)
    assert sum(count for _, count, _ in stored) == 200
    assert {outcome for outcome, _, _ in stored} == {"rejected"}


def test_junk_deliveries_racing_each_other_share_one_row(hook_app):
    """Eight rejected deliveries released at once: one row, counted eight times."""
    import threading

    barrier = threading.Barrier(8)
    statuses = []

    def deliver(n):
        client = hook_app.test_client()
        barrier.wait(timeout=30)
        statuses.append(client.post(WEBHOOK_URL, data="{}", headers={
            "webhook-id": f"race-{n}", "webhook-timestamp": "1",
            "webhook-signature": "v1,AAAA"}).status_code)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [401] * 8
    stored = webhook_rows(hook_app)
    assert 1 <= len(stored) <= 2 and sum(count for _, count, _ in stored) == 8


def test_a_body_over_the_limit_is_413_before_it_is_read(hook_app):
    hook_app.config["WEBHOOK_MAX_BYTES"] = 4096
    client = hook_app.test_client()
    raw, headers = sign({"type": "employee.created", "data": {"id": "e1", "name": "x" * 5000}})
    response = client.post(WEBHOOK_URL, data=raw, headers=headers)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_large"
    chunked = client.post(WEBHOOK_URL, input_stream=io.BytesIO(raw.encode()),
                          headers=dict(headers, **{"Transfer-Encoding": "chunked"}),
                          environ_overrides={"wsgi.input_terminated": True})
    assert chunked.status_code == 413
    stored = webhook_rows(hook_app)
    assert 1 <= len(stored) <= 2 and sum(count for _, count, _ in stored) == 2
    assert all(outcome == "rejected" and "413" in detail for outcome, _, detail in stored)


def vendor_employee_message(**data):
    obj = {"id": "emp_v1", "name": "Vera", "email": None, "active": True, "version": 1,
           "updated_at": "2026-11-25T14:30:00Z"}
    obj.update(data)
    return {"type": "employee.created", "timestamp": "2026-11-25T14:30:00Z", "data": obj}


def vendor_event_message(**data):
    obj = {"id": "evt_v1", "project_ref_num": 555001, "project_name": "CORE - Reset",
           "event_type": "Core", "store_number": 12, "store_name": "Store", "location_mvid": "m1",
           "start_datetime": "2026-12-01T00:00:00Z", "due_datetime": "2026-12-07T23:59:00Z",
           "estimated_minutes": 60, "version": 1, "updated_at": "2026-11-25T14:30:00Z"}
    obj.update(data)
    return {"type": "event.created", "timestamp": "2026-11-25T14:30:00Z", "data": obj}


BAD_PAYLOADS = {
    "huge name": (vendor_employee_message(name="n" * 100_000), "name"),
    "empty name": (vendor_employee_message(name="  "), "name"),
    "name not text": (vendor_employee_message(name=42), "name"),
    "NUL in name": (vendor_employee_message(name="a\u0000b"), "name"),
    "long email": (vendor_employee_message(email="a" * 300 + "@x.example"), "email"),
    "active not boolean": (vendor_employee_message(active="yes"), "active"),
    "ref 2^40": (vendor_event_message(project_ref_num=2**40), "project_ref_num"),
    "ref zero": (vendor_event_message(project_ref_num=0), "project_ref_num"),
    "store number 2^31": (vendor_event_message(store_number=2**31), "store_number"),
    "minutes negative": (vendor_event_message(estimated_minutes=-1), "estimated_minutes"),
    "unknown type": (vendor_event_message(event_type="Party"), "event_type"),
    "long store name": (vendor_event_message(store_name="s" * 201), "store_name"),
    "date past the calendar": (vendor_event_message(due_datetime="9999-12-31T23:59:59-01:00"),
                               "due_datetime"),
    "date before the calendar": (vendor_event_message(start_datetime="0001-01-01T00:00:00+01:00"),
                                 "start_datetime"),
}


@pytest.mark.parametrize("case", list(BAD_PAYLOADS))
def test_a_verified_payload_that_fails_validation_is_recorded_as_rejected(hook_app, case):
    message, field = BAD_PAYLOADS[case]
    client = hook_app.test_client()
    raw, headers = sign(message, msg_id="msg_bad_" + case.replace(" ", "_"))
    response = client.post(WEBHOOK_URL, data=raw, headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["outcome"] == "rejected" and field in body["detail"]
    [(outcome, count, detail)] = webhook_rows(hook_app)
    assert (outcome, count) == ("rejected", 1) and field in detail
    from models import Employee, Event, db

    with hook_app.app_context():
        assert db.session.scalar(db.select(db.func.count(Employee.id))) == 0
        assert db.session.scalar(db.select(db.func.count(Event.id))) == 0
    again = client.post(WEBHOOK_URL, data=raw, headers=headers)
    assert again.status_code == 200 and again.get_json()["outcome"] == "duplicate"


def test_a_valid_verified_payload_still_applies(hook_app):
    client = hook_app.test_client()
    raw, headers = sign(vendor_event_message(store_number=-12))
    response = client.post(WEBHOOK_URL, data=raw, headers=headers)
    assert response.status_code == 200 and response.get_json()["outcome"] == "applied"
    from models import Event, db

    with hook_app.app_context():
        event = db.session.scalar(db.select(Event))
        assert (event.project_ref_num, event.store_number) == (555001, -12)
