"""Pages a newcomer understands, in a real browser: the admins-only page a scheduler
meets, the favicon every page loads, and the sync admin's webhook table and runs chart.
Screenshots go to /tmp/screens/ (newcomer-*.png)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import SCHEDULER
from tests.browser.test_sync_ui import browser, login, page, screenshot, sync_settings  # noqa: F401

pytestmark = pytest.mark.vendor_sync


def test_scheduler_meets_our_admins_only_page(page):  # noqa: F811
    icons = []
    page.on("response", lambda r: icons.append((r.url, r.status)) if "favicon" in r.url else None)
    login(page, *SCHEDULER)
    assert page.get_by_role("link", name="Sync admin").count() == 0
    response = page.goto("/sync/admin")
    assert response.status == 403
    heading = page.get_by_role("heading", level=1)
    assert heading.inner_text() == "This page is for admins"
    body = page.locator("main").inner_text()
    assert (f"You are signed in as {SCHEDULER[0]}, a scheduler. "
            "Only admins can open this page.") in body
    assert "permission" not in body.lower()
    screenshot(page, "newcomer-403-scheduler")
    page.get_by_role("link", name="Back to the dashboard").click()
    page.wait_for_url("**/")
    assert page.get_by_role("heading", name="Unscheduled events").is_visible()
    page.wait_for_function("() => document.readyState === 'complete'")
    assert icons and all(status == 200 for _url, status in icons), icons


def test_not_found_page_and_admin_chart(app, page):  # noqa: F811
    from models import SyncRun, db, utcnow

    login(page)
    response = page.goto("/events/does-not-exist")
    assert response.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Page not found"
    screenshot(page, "newcomer-404")
    now = utcnow()
    with app.app_context():
        for hours, moved, failed in ((20, 40, 0), (14, 12, 3), (8, 25, 1), (2, 5, 0)):
            db.session.add(SyncRun(status="partial" if failed else "succeeded",
                                   trigger="interval", pushed=moved // 2,
                                   pulled=moved - moved // 2, failed=failed,
                                   started_at=now - timedelta(hours=hours),
                                   finished_at=now - timedelta(hours=hours, seconds=-3)))
        db.session.commit()
    page.goto("/sync/admin")
    chart = page.locator("figure.sync-chart")
    assert chart.is_visible()
    assert "records moved (pushed + pulled)" in chart.inner_text()
    box = chart.locator("svg").first.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 80
    screenshot(page, "newcomer-sync-admin")
    chart.screenshot(path="/tmp/screens/newcomer-runs-chart.png")
