"""The sync UI through the Flask test client: the dashboard's sync section and /sync/admin.

Who sees and may do what, the configuration without secret values, failed
records and conflicts with their errors, retry and resolve (page forms and
the JSON retry route), paging, and a constant number of SQL queries however
many records failed.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import insert

from tests.conftest import SCHEDULER
from tests.factories import make_employee, make_event, make_schedule, utc
from tests.helpers import statements


# -- helpers -----------------------------------------------------------------

def html_of(response) -> str:
    return response.get_data(as_text=True)


def post_form(client, auth, path: str, data: dict | None = None, page: str = "/sync/admin"):
    """POST a page form with a fresh CSRF token, as the browser would."""
    token = auth.refresh_csrf(page)
    return client.post(path, data={"csrf_token": token, **(data or {})})


def bulk_failed_events(count: int, start_ref: int = 700000) -> None:
    """Insert `count` failed events in one statement (call inside an app context)."""
    from models import Event, db

    start = utc(2026, 12, 1)
    rows = [{"project_ref_num": start_ref + n, "project_name": f"CORE - Reset {n}",
             "event_type": "Core", "store_number": 1000 + n % 50, "store_name": "Store",
             "start_datetime": start, "due_datetime": start + timedelta(days=6),
             "sync_status": "failed", "sync_attempts": 3,
             "sync_error": f"the vendor refused it (422): project_name bad {n}",
             "created_at": start, "updated_at": start}
            for n in range(count)]
    db.session.execute(insert(Event), rows)
    db.session.commit()


def failed_rows(html: str) -> int:
    section = html.split('id="failed"', 1)[1].split("</section>", 1)[0]
    return section.count("data-record=")


VENDOR_EMPLOYEE = {"id": "emp_900", "version": 4, "updated_at": "2026-11-20T10:00:00Z",
                   "name": "Dana Vendor-Side", "email": "dana@vendor.example", "active": True}


def make_conflict():
    """An employee changed here and at the vendor (call inside an app context)."""
    return make_employee("Dana Local-Side", email="dana@example.com", external_id="emp_900",
                         remote_version=3, sync_status="conflict",
                         sync_error="changed here and at the vendor",
                         conflict_remote=dict(VENDOR_EMPLOYEE))


# -- who sees what --------------------------------------------------------------

def test_anonymous_is_sent_to_login(client):
    for path in ("/sync/admin", "/sync/admin/runs/1"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]


def test_api_retry_without_valid_credentials_is_401(client, auth):
    response = client.post("/api/sync/records/events/1/retry", headers=auth.basic("admin", "wrong"))
    assert response.status_code == 401


def test_scheduler_sees_status_without_sync_now(client, auth):
    auth.login_scheduler()
    html = html_of(client.get("/"))
    assert 'id="sync-status"' in html
    assert "Vendor sync" in html
    assert "Sync now" not in html
    assert "/sync/admin/run" not in html
    for resource in ("Employees", "Events", "Schedules"):
        assert f'<th scope="row">{resource}</th>' in html


def test_scheduler_is_refused_the_admin_page_and_its_actions(app, client, auth):
    with app.app_context():
        event = make_event(sync_status="failed", sync_error="refused")
        event_id = event.id
    auth.login_scheduler()
    assert client.get("/sync/admin").status_code == 403
    token = auth.refresh_csrf("/")
    for path in ("/sync/admin/run", "/sync/admin/retry_failed",
                 f"/sync/admin/retry/events/{event_id}",
                 f"/sync/admin/conflicts/events/{event_id}/resolve"):
        response = client.post(path, data={"csrf_token": token, "keep": "local"})
        assert response.status_code == 403, path
    response = client.post(f"/api/sync/records/events/{event_id}/retry",
                           headers=auth.basic(*SCHEDULER))
    assert response.status_code == 403
    with app.app_context():
        from models import Event, db
        assert db.session.get(Event, event_id).sync_status == "failed"


def test_admin_sees_sync_now_and_the_admin_page(client, auth):
    auth.login()
    html = html_of(client.get("/"))
    assert re.search(r'<form method="post" action="/sync/admin/run"[^>]*data-sync-run', html)
    assert ">Sync now</button>" in html
    assert 'role="status" aria-live="polite"' in html
    page = client.get("/sync/admin")
    assert page.status_code == 200
    html = html_of(page)
    for heading in ("Health", "Configuration in force", "Actions", "Recent runs",
                    "Failed records", "Conflicts", "Recent webhook messages"):
        assert heading in html
    for button in ("Sync everything", "Pull only", "Push only", "Retry all failed",
                   "Sync this resource", "Full resync"):
        assert f">{button}</button>" in html


def test_dashboard_section_shows_counts_and_last_run(app, client, auth):
    from models import SyncRun, db

    with app.app_context():
        make_event(sync_status="failed", sync_error="refused")
        make_event(sync_status="pending")
        make_event(sync_status="synced")
        db.session.add(SyncRun(status="partial", trigger="schedule", pushed=4, pulled=7, failed=1,
                               started_at=utc(2026, 11, 25, 14, 30),
                               finished_at=utc(2026, 11, 25, 14, 31)))
        db.session.commit()
    auth.login_scheduler()
    html = html_of(client.get("/"))
    assert 'data-count="events.failed">1<' in html
    assert 'data-count="events.pending">1<' in html
    assert 'data-count="events.synced">1<' in html
    assert "pushed 4, pulled 7, failed 1" in html
    assert "2026-11-25 14:30" in html  # APP_TIMEZONE is UTC under testing
    assert "Sync off" in html  # SYNC_ENABLED is false under testing


def test_last_run_keeps_a_partial_run_until_a_run_succeeds_with_work(app, client, auth):
    """Zero-work interval runs after a partial one never hide it (page and status API)."""
    from models import SyncRun, db

    def add(status, minute, **counts):
        with app.app_context():
            run = SyncRun(status=status, trigger="schedule", started_at=utc(2026, 11, 25, 14, minute),
                          finished_at=utc(2026, 11, 25, 14, minute), **counts)
            if status == "partial":
                run.message = "the vendor is unavailable"
            db.session.add(run)
            db.session.commit()
            return run.id

    def shown():
        auth.login()
        html = html_of(client.get("/"))
        status = client.get("/api/sync/status").get_json()["last_run"]
        number = re.search(r"Last run: .*?Run #(\d+)", html, re.S)
        return int(number.group(1)), status["id"]

    first = add("succeeded", 0)
    assert shown() == (first, first)  # nothing did work yet: the newest run
    partial = add("partial", 1, pushed=2, failed=1)
    add("succeeded", 2)
    add("succeeded", 3)
    assert shown() == (partial, partial)
    auth.login()
    assert "the vendor is unavailable" in html_of(client.get("/"))
    failed = add("failed", 4)
    add("succeeded", 5)
    assert shown() == (failed, failed)  # a later failure shows instead
    worked = add("succeeded", 6, pulled=3)
    add("succeeded", 7)
    assert shown() == (worked, worked)


@pytest.mark.parametrize("app_overrides", [{"APP_TIMEZONE": "America/Chicago"}])
def test_times_are_shown_in_app_timezone(app, client, auth):
    from models import SyncRun, db

    with app.app_context():
        db.session.add(SyncRun(status="succeeded", started_at=utc(2026, 11, 25, 14, 30),
                               finished_at=utc(2026, 11, 25, 14, 31)))
        db.session.commit()
    auth.login()
    assert "2026-11-25 08:30" in html_of(client.get("/"))


# -- configuration --------------------------------------------------------------

@pytest.mark.parametrize("app_overrides", [{
    "EXTERNAL_API_BASE_URL": "https://vendor.example/api/v1",
    "EXTERNAL_API_KEY": "sk_live_NEVER_SHOW_THIS_KEY",
    "WEBHOOK_SECRET": "whsec_NEVER_SHOW_THIS_SECRET",
    "SYNC_CONFLICT_POLICY": "manual",
}])
def test_config_says_set_without_the_values(client, auth):
    auth.login()
    html = html_of(client.get("/sync/admin"))
    assert "https://vendor.example/api/v1" in html
    assert "<dt>API key</dt><dd>set</dd>" in html
    assert "<dt>Webhook secret</dt><dd>set</dd>" in html
    assert "manual" in html
    assert "NEVER_SHOW" not in html
    assert "sk_live" not in html and "whsec_" not in html


def test_config_says_not_set(client, auth):
    auth.login()
    html = html_of(client.get("/sync/admin"))
    assert "<dt>API key</dt><dd>not set</dd>" in html
    assert "<dt>Webhook secret</dt><dd>not set</dd>" in html
    assert "<strong>off</strong>" in html


# -- failed records, conflicts, webhooks, runs ---------------------------------------

def test_failed_records_are_listed_with_their_errors(app, client, auth):
    with app.app_context():
        employee = make_employee("Ana Lopez", sync_status="failed", sync_attempts=2,
                                 sync_error="the vendor refused it (422): email: invalid")
        event = make_event(project_name="CORE - Snack Reset", project_ref_num=606101,
                           sync_status="failed", sync_attempts=5,
                           sync_error="the vendor refused it (422): due before start",
                           next_attempt_at=utc(2026, 11, 26, 9, 0))
        event_id = event.id
        ok_event = make_event(project_name="Juicer Production")
        make_schedule(ok_event, employee, sync_status="failed", sync_error="event not on vendor")
    auth.login()
    html = html_of(client.get("/sync/admin"))
    assert "Failed records (3)" in html
    assert "Ana Lopez" in html and "email: invalid" in html
    assert "CORE - Snack Reset #606101" in html and "due before start" in html
    assert "2026-11-26 09:00" in html
    assert "Juicer Production" in html and "event not on vendor" in html
    assert 'aria-label="Retry event CORE - Snack Reset #606101"' in html
    assert f'action="/sync/admin/retry/events/{event_id}"' in html


def test_conflicts_show_both_versions_and_the_differences(app, client, auth):
    with app.app_context():
        make_conflict()
    auth.login()
    html = html_of(client.get("/sync/admin"))
    section = html.split('id="conflicts"', 1)[1].split("</section>", 1)[0]
    assert "Dana Local-Side" in section and "Dana Vendor-Side" in section
    assert "changed here and at the vendor" in section
    rows = re.findall(r'<tr class="(differs)?">\s*<th scope="row">(\w+)', section)
    differing = {field for mark, field in rows if mark}
    assert differing == {"name", "email"}
    assert ">Keep local</button>" in section and ">Keep vendor</button>" in section
    assert 'data-api="/api/sync/conflicts/employees/' in section


def test_webhook_messages_are_listed_with_their_outcome(app, client, auth):
    from models import WebhookMessage, db

    with app.app_context():
        db.session.add_all([
            WebhookMessage(webhook_id="msg_stale", type="event.updated", object_id="evt_1",
                           version=3, outcome="stale", detail="have version 4"),
            WebhookMessage(webhook_id="msg_bad", type="thing.exploded", outcome="rejected",
                           detail="unknown message type"),
        ])
        db.session.commit()
    auth.login()
    html = html_of(client.get("/sync/admin"))
    assert "msg_stale" in html and ">Ignored</span>: have version 4" in html
    assert "msg_bad" in html and ">Refused</span>: unknown message type" in html


def test_runs_table_chart_and_run_detail(app, client, auth):
    from models import SyncRun, db

    with app.app_context():
        event = make_event(project_name="CORE - Snack Reset", project_ref_num=606101)
        for n in range(3):
            db.session.add(SyncRun(status="partial", trigger="manual", pushed=n, pulled=2,
                                   failed=1, started_at=utc(2026, 11, 25, 10, n),
                                   finished_at=utc(2026, 11, 25, 10, n, 5),
                                   errors=[{"resource": "events", "id": event.id,
                                            "message": "the vendor refused it (422): bad"}]))
        db.session.commit()
        run_id = db.session.scalar(db.select(SyncRun.id).order_by(SyncRun.id.desc()))
    auth.login()
    html = html_of(client.get("/sync/admin"))
    assert "No sync run finished in the last 24 hours" in html  # these runs are older
    assert "<script src=\"http" not in html and "fonts.googleapis" not in html
    assert f'href="/sync/admin/runs/{run_id}"' in html
    assert "5.0 s" in html
    detail = html_of(client.get(f"/sync/admin/runs/{run_id}"))
    assert "CORE - Snack Reset #606101" in detail
    assert "the vendor refused it (422): bad" in detail
    assert client.get("/sync/admin/runs/999999").status_code == 404


# -- actions --------------------------------------------------------------------

def test_retry_one_puts_the_record_back_to_pending(app, client, auth):
    from models import Event, db

    with app.app_context():
        event = make_event(sync_status="failed", sync_error="refused", sync_attempts=4)
        other = make_event(sync_status="failed", sync_error="refused too")
        event_id, other_id = event.id, other.id
    auth.login()
    response = post_form(client, auth, f"/sync/admin/retry/events/{event_id}",
                         {"next": "/sync/admin#failed"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/sync/admin#failed")
    with app.app_context():
        retried = db.session.get(Event, event_id)
        assert (retried.sync_status, retried.sync_attempts) == ("pending", 0)
        assert db.session.get(Event, other_id).sync_status == "failed"
    assert "will be sent again" in html_of(client.get("/sync/admin"))


def test_retry_one_json_route(app, client, auth, admin_headers):
    with app.app_context():
        event_id = make_event(sync_status="failed", sync_error="refused").id
    response = client.post(f"/api/sync/records/events/{event_id}/retry", headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json()["retried"] is True
    assert response.get_json()["record"]["sync_status"] == "pending"
    again = client.post(f"/api/sync/records/events/{event_id}/retry", headers=admin_headers)
    assert again.get_json()["retried"] is False
    missing = client.post("/api/sync/records/events/999999/retry", headers=admin_headers)
    assert missing.status_code == 404


def test_retry_one_json_route_needs_csrf_in_a_session(app, client, auth):
    with app.app_context():
        event_id = make_event(sync_status="failed", sync_error="refused").id
    auth.login()
    assert client.post(f"/api/sync/records/events/{event_id}/retry").status_code == 400
    token = auth.refresh_csrf("/sync/admin")
    ok = client.post(f"/api/sync/records/events/{event_id}/retry", headers={"X-CSRFToken": token})
    assert ok.status_code == 200


def test_retry_all_puts_every_failed_record_back_to_pending(app, client, auth):
    from models import Employee, Event, db

    with app.app_context():
        make_employee(sync_status="failed", sync_error="x")
        for _ in range(3):
            make_event(sync_status="failed", sync_error="y")
        make_event(sync_status="conflict")
    auth.login()
    response = post_form(client, auth, "/sync/admin/retry_failed")
    assert response.status_code == 302
    with app.app_context():
        for model in (Employee, Event):
            assert db.session.scalar(db.select(db.func.count()).select_from(model)
                                     .where(model.sync_status == "failed")) == 0
        assert db.session.scalar(db.select(db.func.count()).select_from(Event)
                                 .where(Event.sync_status == "conflict")) == 1
    assert "4 failed records will be sent again" in html_of(client.get("/sync/admin"))


@pytest.mark.parametrize("app_overrides", [{"SYNC_CONFLICT_POLICY": "manual"}])
def test_resolve_keep_vendor_applies_the_vendor_version(app, client, auth):
    from models import Employee, db

    with app.app_context():
        employee_id = make_conflict().id
    auth.login()
    response = post_form(client, auth, f"/sync/admin/conflicts/employees/{employee_id}/resolve",
                         {"keep": "remote"})
    assert response.status_code == 302
    with app.app_context():
        employee = db.session.get(Employee, employee_id)
        assert employee.name == "Dana Vendor-Side"
        assert employee.sync_status == "synced"
    assert "kept the vendor version" in html_of(client.get("/sync/admin"))


@pytest.mark.parametrize("app_overrides", [{"SYNC_CONFLICT_POLICY": "manual"}])
def test_resolve_keep_local_queues_the_local_version(app, client, auth):
    from models import Employee, db

    with app.app_context():
        employee_id = make_conflict().id
    auth.login()
    post_form(client, auth, f"/sync/admin/conflicts/employees/{employee_id}/resolve",
              {"keep": "local"})
    with app.app_context():
        employee = db.session.get(Employee, employee_id)
        assert (employee.name, employee.sync_status) == ("Dana Local-Side", "pending")
        assert employee.conflict_remote is None


def test_resolve_refuses_a_record_not_in_conflict(app, client, auth):
    with app.app_context():
        event_id = make_event(sync_status="synced").id
    auth.login()
    post_form(client, auth, f"/sync/admin/conflicts/events/{event_id}/resolve", {"keep": "local"})
    assert "Could not resolve" in html_of(client.get("/sync/admin"))
    assert post_form(client, auth, "/sync/admin/conflicts/nope/1/resolve",
                     {"keep": "local"}).status_code == 404


def test_sync_now_without_js_when_sync_is_off(client, auth):
    auth.login()
    response = post_form(client, auth, "/sync/admin/run", {"next": "/"}, page="/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/")
    assert "Sync is off" in html_of(client.get("/"))


def test_next_must_be_a_local_path(client, auth):
    auth.login()
    response = post_form(client, auth, "/sync/admin/retry_failed", {"next": "https://evil.example/"})
    assert response.headers["Location"].endswith("/sync/admin")


# -- paging and cost ------------------------------------------------------------------

def test_failed_records_are_paged_across_resources(app, client, auth):
    with app.app_context():
        for _ in range(5):
            make_employee(sync_status="failed", sync_error="employee refused")
        bulk_failed_events(30)
    auth.login()
    first = html_of(client.get("/sync/admin"))
    assert failed_rows(first) == 25
    assert first.count("employee refused") == 5
    assert "Page 1 of 2 (35 in all)" in first
    assert 'href="/sync/admin?failed_page=2#failed"' in first
    second = html_of(client.get("/sync/admin?failed_page=2"))
    assert failed_rows(second) == 10 and "employee refused" not in second
    assert "project_name bad 29" in second
    assert failed_rows(html_of(client.get("/sync/admin?failed_page=99"))) == 0
    assert client.get("/sync/admin?failed_page=abc").status_code == 200


def test_runs_and_webhooks_are_paged(app, client, auth):
    from models import SyncRun, WebhookMessage, db

    with app.app_context():
        for n in range(45):
            db.session.add(SyncRun(status="succeeded", started_at=utc(2026, 11, 1) + timedelta(hours=n),
                                   finished_at=utc(2026, 11, 1) + timedelta(hours=n, seconds=3)))
            db.session.add(WebhookMessage(webhook_id=f"msg_{n:03d}", type="event.updated",
                                          outcome="applied",
                                          received_at=utc(2026, 11, 1) + timedelta(minutes=n)))
        db.session.commit()
    auth.login()
    html = html_of(client.get("/sync/admin?runs_page=3&webhooks_page=2"))
    runs = html.split('id="runs"', 1)[1].split("</section>", 1)[0]
    assert runs.count('<th scope="row"><a href="/sync/admin/runs/') == 5
    assert "Page 3 of 3 (45 in all)" in runs
    assert 'href="/sync/admin?runs_page=2&amp;webhooks_page=2#runs"' in runs
    hooks = html.split('id="webhooks"', 1)[1].split("</section>", 1)[0]
    assert "msg_024" in hooks and "msg_044" not in hooks and "msg_004" not in hooks


def _admin_page_queries(app, client, failed: int) -> int:
    with app.app_context():
        bulk_failed_events(failed, start_ref=800000 + failed)
    with statements(app) as seen:
        assert client.get("/sync/admin").status_code == 200
    return len(seen)


def test_admin_page_queries_do_not_grow_with_failed_records(app, client, auth):
    from models import Event, db

    auth.login()
    few = _admin_page_queries(app, client, 10)
    with app.app_context():
        db.session.execute(db.delete(Event))
        db.session.commit()
    many = _admin_page_queries(app, client, 1000)
    assert few == many
    assert many <= 20


def test_admin_page_with_ten_thousand_failed_records_pages_them(app, client, auth):
    """Every page of 10,000 failed records answers (the times: `python -m tests.bench`)."""
    with app.app_context():
        bulk_failed_events(10_000)
    auth.login()
    for page in ("/sync/admin", "/sync/admin?failed_page=200", "/sync/admin?failed_page=400"):
        assert "Failed records (10000)" in html_of(client.get(page))
