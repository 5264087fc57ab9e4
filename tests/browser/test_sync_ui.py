"""The sync UI in a real browser: Playwright driving Debian's Chromium.

The app is served for real (tests.live_server.LiveServer) with the vendor
sandbox behind it, sync on, the scheduler off, a webhook secret set and the
conflict policy `manual`.  Nothing is fetched from the internet: every request
the page makes to a host other than 127.0.0.1 is aborted and fails the test.
Screenshots go to /tmp/screens/.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import ADMIN
from tests.factories import make_employee, make_event, utc
from tests.helpers import db_call, run, vendor_event, wait_for
from tests.needs import missing

pytestmark = pytest.mark.vendor_sync

try:
    from playwright import sync_api
except ImportError:  # reported by the browser fixture: a skip locally, a failure in CI
    sync_api = None

CHROMIUM = os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT = "install Debian's chromium: apt-get install chromium"
SCREENS = Path("/tmp/screens")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]

# Every text the live regions showed, so a short "running…" state is not missed.
RECORD_LIVE_TEXTS = """
window.__liveTexts = [];
document.addEventListener('DOMContentLoaded', () => {
  document.querySelectorAll('[data-sync-live]').forEach((el) => {
    new MutationObserver(() => window.__liveTexts.push(el.textContent))
      .observe(el, {childList: true, characterData: true, subtree: true});
  });
});
"""


@pytest.fixture(scope="module")
def browser():
    """Chromium through Playwright; missing or broken: a skip locally, a failure in CI."""
    if sync_api is None:
        missing("the playwright package is not installed (pip install -r requirements-dev.txt)")
    if not os.path.exists(CHROMIUM):
        missing(f"Chromium is not at {CHROMIUM} (TEST_CHROMIUM): {INSTALL_HINT}")
    playwright = sync_api.sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=LAUNCH_ARGS)
    except Exception as exc:  # noqa: BLE001 - any launch failure means: no usable chromium
        failure = f"{exc.__class__.__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
        chromium = None
    if chromium is None:
        playwright.stop()
        missing(f"Chromium at {CHROMIUM} did not start ({failure}): {INSTALL_HINT}")
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture
def sync_settings() -> dict:
    """Conflicts wait for an admin, so the page has something to resolve."""
    return {"SYNC_CONFLICT_POLICY": "manual"}


@pytest.fixture
def page(browser, live):
    context = browser.new_context(base_url=live, viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def only_local(route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    context.add_init_script(RECORD_LIVE_TEXTS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    refused: list[str] = []  # what the Content-Security-Policy blocked
    tab.on("console", lambda msg: refused.append(msg.text)
           if "Content Security Policy" in msg.text else None)
    yield tab
    context.close()
    assert not outside, f"the page tried to fetch from the internet: {outside}"
    assert not errors, f"JavaScript errors: {errors}"
    assert not refused, f"the Content-Security-Policy blocked: {refused}"


def login(page, username: str = ADMIN[0], password: str = ADMIN[1]) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/$"))


def count_cell(page, key: str):
    return page.locator(f'[data-count="{key}"]').first


def screenshot(page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)


def tab_to(page, pattern: str, limit: int = 120) -> str:
    """Press Tab until the focused control's accessible name matches; return that name."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        name = page.evaluate("""() => {
            const el = document.activeElement;
            return el ? (el.getAttribute('aria-label') || el.textContent || '').trim() : '';
        }""")
        if re.search(pattern, name):
            return name
    raise AssertionError(f"Tab never reached a control named like {pattern!r}")


def local(app, model_name: str, record_id: int):
    import models

    return db_call(app, lambda: models.db.session.get(getattr(models, model_name),
                                                      record_id).to_dict())


# -- the dashboard ---------------------------------------------------------------

def test_sync_now_shows_progress_then_updated_counts(app, page, sandbox):
    with app.app_context():
        for n in range(4):
            make_event(project_name=f"CORE - Snack Reset {n}", project_ref_num=606200 + n,
                       start_datetime=utc(2026, 12, 1, 8), due_datetime=utc(2026, 12, 6, 8))
    vendor_event(sandbox, 606300, name="Juicer Production")
    sandbox.set_faults(latency_ms=250)  # slow enough for the page to show the run going on

    login(page)
    section = page.locator("#sync-status")
    assert section.get_by_role("heading", name="Vendor sync").is_visible()
    assert count_cell(page, "events.pending").inner_text() == "4"
    rows_list = page.locator("#event-list")
    assert rows_list.locator(".badge-pending").count() == 4

    page.get_by_role("button", name="Sync now").click()
    live = page.locator("[data-sync-live]")
    live.filter(has_text=re.compile(r"Run #\d+ (succeeded|partial|failed)")).wait_for(timeout=30000)
    texts = page.evaluate("window.__liveTexts")
    assert any("running…" in text for text in texts), texts
    assert "succeeded" in live.inner_text(), live.inner_text()
    page.wait_for_function(
        "document.querySelector('[data-count=\"events.synced\"]').textContent.trim() === '5'")
    assert count_cell(page, "events.pending").inner_text() == "0"
    assert "pushed 4" in page.locator("[data-last-run]").inner_text()
    # the event rows were re-rendered: no row is pending any more, the pulled one is listed
    assert page.locator("#event-list .badge-pending").count() == 0
    assert "Juicer Production" in page.locator("#event-list").inner_text()
    assert {e["project_ref_num"] for e in sandbox.objects("events")} >= {606200, 606203}
    page.get_by_role("button", name="Sync now").focus()  # the state a keyboard user sees
    screenshot(page, "dashboard")


def test_keyboard_reaches_sync_now_with_its_name(app, page):
    login(page)
    assert tab_to(page, r"^Sync now$") == "Sync now"
    assert page.get_by_role("button", name="Sync now").count() == 1


def test_dashboard_works_without_javascript(browser, live, app):
    context = browser.new_context(base_url=live, java_script_enabled=False)
    tab = context.new_page()
    try:
        login(tab)
        tab.get_by_role("button", name="Sync now").click()
        tab.wait_for_url(re.compile(r".*/$"))
        assert re.search(r"Sync run #\d+ started", tab.locator(".flashes").inner_text())
    finally:
        context.close()


# -- the admin page -----------------------------------------------------------------

def _failed_and_conflicts(app, sandbox) -> dict:
    """One record the vendor refuses (422), one failed record to retry, two conflicts."""
    with app.app_context():
        refused = make_event(project_name="CORE - Backwards Window", project_ref_num=606400,
                             start_datetime=utc(2026, 12, 6, 8), due_datetime=utc(2026, 12, 1, 8))
        employee = make_employee("Ana Lopez", email="ana@example.com")
        event = make_event(project_name="DIGITAL - Shelf Tags", project_ref_num=606401,
                           start_datetime=utc(2026, 12, 1, 8), due_datetime=utc(2026, 12, 6, 8))
        ids = {"refused": refused.id, "employee": employee.id, "event": event.id}
    result = run(app)
    assert result["failed"] == 1, result
    emp = local(app, "Employee", ids["employee"])
    evt = local(app, "Event", ids["event"])
    def change_here():
        from models import Employee, Event, db

        row = db.session.get(Employee, ids["employee"])
        row.name = "Ana Lopez-Local"
        row.mark_changed()
        row = db.session.get(Event, ids["event"])
        row.estimated_minutes = 95
        row.project_name = "DIGITAL - Local Tags"
        row.mark_changed()
        db.session.commit()

    # the same records changed on both sides: here first, so the vendor's
    # webhook finds a local change it must not overwrite
    db_call(app, change_here)
    sandbox.vendor_update("employees", emp["external_id"], {"name": "Ana López-Vendor"})
    sandbox.vendor_update("events", evt["external_id"], {"project_name": "DIGITAL - Vendor Tags"})
    assert sandbox.wait_webhooks_idle(30), "the vendor's webhooks were not all answered"
    run(app)
    wait_for(lambda: local(app, "Employee", ids["employee"])["sync_status"] == "conflict"
             and local(app, "Event", ids["event"])["sync_status"] == "conflict",
             message="both records in conflict")
    with app.app_context():
        retry = make_event(project_name="FREEOSK - Sampling Kiosk", project_ref_num=606402,
                           start_datetime=utc(2026, 12, 1, 8), due_datetime=utc(2026, 12, 6, 8),
                           sync_status="failed", sync_attempts=3,
                           sync_error="the vendor refused it (503): try later")
        ids["retry"] = retry.id
    return ids


def test_admin_retries_a_failed_record_and_resolves_conflicts(app, page, sandbox):
    ids = _failed_and_conflicts(app, sandbox)
    login(page)
    page.goto("/sync/admin")
    failed = page.locator("#failed")
    assert "CORE - Backwards Window #606400" in failed.inner_text()
    assert "the vendor refused it (422)" in failed.inner_text()
    conflicts = page.locator("#conflicts")
    assert "Ana López-Vendor" in conflicts.inner_text()
    assert conflicts.locator("tr.differs").count() >= 3  # name; project_name, estimated_minutes
    screenshot(page, "admin")

    # retry one failed record, then push it
    page.get_by_role("button", name="Retry event FREEOSK - Sampling Kiosk #606402").click()
    failed.locator('[data-record="events/%d"]' % ids["retry"]).get_by_text("Queued for retry").wait_for()
    assert local(app, "Event", ids["retry"])["sync_status"] == "pending"

    # keep the vendor's employee, keep our event
    page.get_by_role("button", name=re.compile(r"^Keep vendor version of employee Ana Lopez-Local")).click()
    conflicts.get_by_text("Resolved: kept the vendor version").wait_for()
    page.get_by_role("button", name=re.compile(r"^Keep local version of event DIGITAL - Local Tags")).click()
    conflicts.get_by_text("Resolved: kept the local version").wait_for()
    assert local(app, "Employee", ids["employee"])["name"] == "Ana López-Vendor"

    page.get_by_role("button", name="Sync everything").click()
    page.locator("[data-sync-live]").filter(
        has_text=re.compile(r"Run #\d+ (succeeded|partial|failed)")).wait_for(timeout=30000)
    refs = {e["project_ref_num"]: e for e in sandbox.objects("events")}
    assert 606402 in refs, "the retried event reached the vendor"
    assert refs[606401]["project_name"] == "DIGITAL - Local Tags"
    assert refs[606401]["estimated_minutes"] == 95
    employee = local(app, "Employee", ids["employee"])
    assert sandbox.object("employees", employee["external_id"])["name"] == "Ana López-Vendor"
    assert employee["sync_status"] == "synced"
    page.reload()
    screenshot(page, "admin-after")


def test_keyboard_reaches_conflict_buttons_with_their_names(app, page, sandbox):
    _failed_and_conflicts(app, sandbox)
    login(page)
    page.goto("/sync/admin")
    name = tab_to(page, r"^Keep local version of employee")
    assert "Ana Lopez-Local" in name
    assert re.match(r"^Keep vendor version of employee", tab_to(page, r"^Keep vendor", limit=3))
    for pattern in (r"^Keep local version of event", r"^Keep vendor version of event"):
        assert page.get_by_role("button", name=re.compile(pattern)).count() == 1
    assert page.get_by_role("button", name="Retry all failed").count() == 1


# -- the schedule page (static/js/schedule.js) -------------------------------------

def test_schedule_page_refreshes_free_employees_when_the_day_changes(app, page):
    from tests.factories import make_schedule

    with app.app_context():
        free, busy = make_employee("Fay Free"), make_employee("Bo Busy")
        event = make_event(project_name="CORE - Cooler Reset", project_ref_num=707001,
                           start_datetime=utc(2026, 12, 1, 0), due_datetime=utc(2026, 12, 5, 23))
        other = make_event(project_name="Juicer Production", project_ref_num=707002,
                           start_datetime=utc(2026, 12, 2, 0), due_datetime=utc(2026, 12, 2, 23))
        make_schedule(other, busy, utc(2026, 12, 2, 9))
        event_id, free_id = event.id, free.id

    login(page)
    page.goto(f"/schedule/{event_id}")
    day = page.get_by_label(re.compile("^Day"))
    assert day.get_attribute("min") == "2026-12-01" and day.get_attribute("max") == "2026-12-05"
    assert not page.locator("#refresh-employees").is_visible()  # JS replaces the button
    employee = page.get_by_label(re.compile("^Employee"))

    def names():
        return [t.strip() for t in employee.locator("option").all_inner_texts()][1:]

    day.fill("2026-12-01")
    wait_for(lambda: names() == ["Bo Busy", "Fay Free"], timeout=5, message="both free on Dec 1")
    day.fill("2026-12-02")
    wait_for(lambda: names() == ["Fay Free"], timeout=5, message="only Fay free on Dec 2")
    assert "1 free on 2026-12-02" in page.locator("#employees-status").inner_text()
    employee.select_option(str(free_id))
    page.get_by_label(re.compile("^Time")).fill("09:30")
    page.locator(".actions button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/$"))
    assert "Scheduled “CORE - Cooler Reset” for Fay Free on 2026-12-02 09:30" in \
        page.locator(".flash").first.inner_text()
    assert page.get_by_text("No unscheduled events.").is_visible()  # it left the dashboard
    screenshot(page, "after-scheduling")
