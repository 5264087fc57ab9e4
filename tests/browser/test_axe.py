"""Every page through axe-core (axe-playwright-python ships axe.min.js in the package: nothing
is fetched) at a laptop's 1366×900 and a phone's 390×844, and the roster with a plan's
preview on it: no serious or critical violation, and no page wider than the screen.  Screenshots go to /tmp/axe-shots/."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.factories import make_employee, make_event, make_schedule, utc
from tests.browser.test_sync_ui import browser, login  # noqa: F401
from tests.browser.test_roster import OVERFLOW

pytestmark = pytest.mark.vendor_sync

try:
    from axe_playwright_python.sync_playwright import Axe
except ImportError:  # pragma: no cover - reported by the test
    Axe = None

SHOTS = Path("/tmp/axe-shots")
VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def pages(app) -> dict:
    """A week with work, an unscheduled event, a failed run: every page has something to show."""
    from models import SyncRun, db

    with app.app_context():
        ana, ben = make_employee("Ana Lopez"), make_employee("Ben Okafor")
        snack = make_event(project_name="CORE - Snack Reset", store_number=1204, store_name="Springfield",
                           start_datetime=utc(2026, 12, 7, 6), due_datetime=utc(2026, 12, 11, 18),
                           estimated_minutes=90)
        free = make_event(project_name="JUICER - Demo", store_number=77, store_name="Shelbyville",
                          start_datetime=utc(2026, 12, 7, 6), due_datetime=utc(2026, 12, 13, 20))
        make_schedule(snack, ana, utc(2026, 12, 8, 14, 30))
        now = utc(2026, 12, 7, 12)
        run = SyncRun(status="partial", trigger="manual", pushed=3, pulled=4, failed=2,
                      started_at=now - timedelta(hours=2), finished_at=now - timedelta(hours=2) + timedelta(seconds=5))
        db.session.add(run)
        db.session.commit()
        return {"/": "dashboard", f"/schedule/{free.id}": "schedule",
                "/calendar?week=2026-12-07": "roster", "/calendar?week=2026-12-07&view=list": "list",
                f"/calendar/free?employee_id={ben.id}&date=2026-12-09": "free-cell",
                "/employees": "employees", f"/employees/{ana.id}/edit": "employee-edit",
                "/sync/admin": "sync-admin", f"/sync/admin/runs/{run.id}": "run-detail",
                "/no-such-page": "error-page"}


def serious(results) -> list[str]:
    return [f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(" ".join(n["target"]) for n in v["nodes"][:4])
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_every_page_passes_axe_and_fits_the_screen(browser, live, app, pages, size):  # noqa: F811
    if Axe is None:
        pytest.fail("axe-playwright-python is not installed (pip install -r requirements-dev.txt)")
    axe = Axe()
    context = browser.new_context(base_url=live, viewport=VIEWPORTS[size])
    tab = context.new_page()
    found: dict[str, list] = {}
    try:
        SHOTS.mkdir(parents=True, exist_ok=True)
        tab.goto("/login")
        found["/login"] = serious(axe.run(tab))
        login(tab)
        for path, name in pages.items():
            tab.goto(path)
            found[path] = serious(axe.run(tab))
            wide = tab.evaluate(OVERFLOW)
            if wide["scroll"] > wide["width"] or wide["wide"]:
                found[path].append(f"wider than the screen: {wide['scroll']} > {wide['width']}: {wide['wide'][:5]}")
            tab.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)
        # the roster with a plan's preview on it (dashed proposals, the summary, Apply)
        tab.goto("/calendar?week=2026-12-07")
        tab.get_by_role("button", name="Plan this week").click()
        tab.locator("[data-proposal]").first.wait_for()
        found["roster, plan preview"] = serious(axe.run(tab))
        wide = tab.evaluate(OVERFLOW)
        if wide["scroll"] > wide["width"] or wide["wide"]:
            found["roster, plan preview"].append(f"wider than the screen: {wide['scroll']} > {wide['width']}: {wide['wide'][:5]}")
        tab.screenshot(path=str(SHOTS / f"roster-plan-{size}.png"), full_page=True)
    finally:
        context.close()
    bad = {path: v for path, v in found.items() if v}
    assert not bad, "\n".join(f"{path}: {v}" for path, v in bad.items())
