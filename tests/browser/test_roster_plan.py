"""The roster's "Plan this week" in a real browser (Playwright + Debian's Chromium): the
proposal shows as dashed "Proposed" cards with its totals and unplaced reasons and writes
nothing; dropping a proposal keeps it out of Apply; Apply creates the kept ones (history
source planner) and shows what it refused and why; proposals for employees not on the page
are counted and listed; the keyboard path.  Screenshots go to /tmp/roster-shots/; with
DOC_SCREENSHOTS=1 the screenshot test also writes docs/screenshots/plan-preview.png and
plan-applied.png (the README shows them):

    DOC_SCREENSHOTS=1 .venv/bin/python -m pytest -q tests/browser/test_roster_plan.py -k screenshots
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.factories import make_employee, make_event, make_schedule, utc
from tests.helpers import db_call
from tests.browser.test_sync_ui import browser, login, page, sync_settings, tab_to  # noqa: F401

pytestmark = pytest.mark.vendor_sync

SHOTS = Path("/tmp/roster-shots")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WEEK = "2026-12-07"  # a Monday; APP_TIMEZONE is UTC in the tests
MON_TO_SAT = 0b0111111  # workdays: bit 0 Monday … bit 6 Sunday


@pytest.fixture
def week(app) -> dict:
    """Ana, Ben and Cy work Monday to Saturday; Ana already has Tuesday's Dairy Count.  Three
    unscheduled events the planner can place, and a Sunday-only one it cannot."""
    with app.app_context():
        ana, ben, cy = (make_employee(n, workdays=MON_TO_SAT) for n in ("Ana Lopez", "Ben Okafor", "Cy Park"))
        dairy = make_event(project_name="CORE - Dairy Count", start_datetime=utc(2026, 12, 7, 6),
                           due_datetime=utc(2026, 12, 13, 20))
        out = {
            "ana": ana.id, "ben": ben.id, "cy": cy.id,
            "dairy": make_schedule(dairy, ana, utc(2026, 12, 8, 10)).id,
            "snack": make_event(project_name="CORE - Snack Reset", store_number=1204, estimated_minutes=90,
                                start_datetime=utc(2026, 12, 7, 6), due_datetime=utc(2026, 12, 11, 18)).id,
            "cooler": make_event(project_name="CORE - Cooler Audit", store_number=77,
                                 start_datetime=utc(2026, 12, 7, 6), due_datetime=utc(2026, 12, 13, 20)).id,
            "juicer": make_event(project_name="JUICER - Demo", store_number=1300,
                                 start_datetime=utc(2026, 12, 9, 13), due_datetime=utc(2026, 12, 12, 18)).id,
            "sunday": make_event(project_name="CORE - Sunday Count", store_number=1204,
                                 start_datetime=utc(2026, 12, 13, 6), due_datetime=utc(2026, 12, 13, 20)).id,
        }
        return out


def live_schedules(app) -> dict[int, int]:
    """{event id: employee id} of the live schedules."""
    from sqlalchemy import select

    from models import Schedule, db

    return db_call(app, lambda: dict(db.session.execute(
        select(Schedule.event_id, Schedule.employee_id).where(Schedule.deleted_at.is_(None))).all()))


def sources(app, event_ids) -> set[str]:
    """The history sources of the schedules' creation, for these events."""
    from sqlalchemy import select

    from models import RecordHistory, Schedule, db

    def read():
        ids = select(Schedule.id).where(Schedule.event_id.in_(event_ids))
        return set(db.session.scalars(select(RecordHistory.source).where(
            RecordHistory.resource == "schedules", RecordHistory.record_id.in_(ids),
            RecordHistory.action == "created")))

    return db_call(app, read)


def plan_week(page, path: str = f"/calendar?week={WEEK}"):  # noqa: F811
    page.goto(path)
    page.get_by_role("button", name="Plan this week").click()
    panel = page.locator("[data-plan-panel]")
    panel.locator("[data-plan-totals]").wait_for()
    return panel


def proposal(page, event: int):  # noqa: F811
    return page.locator(f'[data-proposal][data-event-id="{event}"]')


def shot(page, name: str, docs: bool = False) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if docs and os.environ.get("DOC_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)


def test_the_preview_shows_dashed_proposals_and_totals_and_writes_nothing(app, page, week):  # noqa: F811
    login(page)
    panel = plan_week(page)
    assert panel.locator("[data-plan-totals]").inner_text() == "Placed 3 · unplaced 1. Nothing is saved until you apply it."
    assert page.get_by_role("status").filter(has_text="Proposal:").inner_text() == (
        "Proposal: 3 events placed, 1 unplaced. Nothing is saved until you apply it.")
    cards = page.locator("[data-proposal]")
    assert cards.count() == 3
    for i in range(3):
        card = cards.nth(i)
        assert card.inner_text().startswith("PROPOSED")  # in words, not only by its look
        assert card.evaluate("el => getComputedStyle(el).borderTopStyle") == "dashed"
        assert card.get_by_role("button", name=re.compile(r"^Drop ")).count() == 1
    # each in its employee's cell for a day of its window; the real card keeps its look
    assert page.locator(".shift[data-schedule-id]").evaluate("el => getComputedStyle(el).borderTopStyle") == "solid"
    snack = proposal(page, week["snack"])
    assert "CORE - Snack Reset" in snack.inner_text() and "1204" in snack.inner_text()
    assert snack.evaluate("el => el.closest('td').dataset.date") <= "2026-12-11"
    juicer_day = proposal(page, week["juicer"]).evaluate("el => el.closest('td').dataset.date")
    assert "2026-12-09" <= juicer_day <= "2026-12-12"
    # the unplaced one, under its reason in words
    reasons = panel.locator(".plan-reasons > li")
    assert reasons.count() == 1
    assert re.match(r"No active employee works and is free on any day of its window \(1\)\s+"
                    rf"CORE - Sunday Count \(#{week['sunday']}, store 1204\): window 13 Dec – 13 Dec",
                    reasons.first.inner_text())
    assert panel.get_by_role("button", name="Apply 3").is_visible()
    shot(page, "plan-preview-small")
    assert live_schedules(app) == {db_call(app, lambda: _event_of(week["dairy"])): week["ana"]}  # nothing written
    panel.get_by_role("button", name="Discard").click()
    assert page.locator("[data-proposal]").count() == 0 and panel.is_hidden()
    assert "Proposal discarded: nothing was saved." in page.locator("[data-plan-status]").inner_text()
    assert len(live_schedules(app)) == 1


def _event_of(schedule_id: int) -> int:
    from models import Schedule, db

    return db.session.get(Schedule, schedule_id).event_id


def test_a_dropped_proposal_is_not_applied_and_apply_creates_the_rest(app, page, week):  # noqa: F811
    login(page)
    panel = plan_week(page)
    juicer = proposal(page, week["juicer"])
    juicer.get_by_role("button", name=re.compile(r"^Drop JUICER - Demo for ")).click()
    assert proposal(page, week["juicer"]).count() == 0
    assert panel.locator("[data-plan-totals]").inner_text().startswith("Placed 3 · unplaced 1 · dropped 1.")
    assert "Dropped JUICER - Demo for " in page.locator("[data-plan-status]").inner_text()
    assert page.evaluate("document.activeElement.textContent").startswith("×Drop ")  # the next proposal's ×
    assert len(live_schedules(app)) == 1
    panel.get_by_role("button", name="Apply 2").click()
    result = page.locator("[data-plan-result]")
    result.wait_for()
    assert result.inner_text() == "Created 2 schedules; none refused."
    placed = live_schedules(app)
    assert set(placed) - {_event_of_in(app, week["dairy"])} == {week["snack"], week["cooler"]}
    assert sources(app, [week["snack"], week["cooler"]]) == {"planner"}
    # the real cards are on the roster now (the page reloaded), and no proposal is left
    for event in (week["snack"], week["cooler"]):
        page.locator(f'.shift[data-schedule-id][data-event-id="{event}"]').wait_for()
    assert page.locator("[data-proposal]").count() == 0
    assert page.locator(f'.shift[data-event-id="{week["juicer"]}"]').count() == 0
    page.get_by_role("button", name="Close").click()
    assert page.locator("[data-plan-panel]").is_hidden()


def _event_of_in(app, schedule_id: int) -> int:
    return db_call(app, lambda: _event_of(schedule_id))


def test_a_refusal_at_apply_is_shown_with_its_reason(app, page, week):  # noqa: F811
    login(page)
    panel = plan_week(page)
    bens = page.locator(f'tr[data-employee-id="{week["ben"]}"] [data-proposal]')
    assert bens.count() == 1  # three events, three people: an even spread
    ben_event = int(bens.first.get_attribute("data-event-id"))
    ben_day = bens.first.evaluate("el => el.closest('td').dataset.date")
    ben_name = bens.first.locator(".shift-event").inner_text()

    def ben_stops_working():  # between the preview and Apply
        from models import Employee, db

        db.session.get(Employee, week["ben"]).workdays = 0
        db.session.commit()

    db_call(app, ben_stops_working)
    panel.get_by_role("button", name="Apply 3").click()
    result = page.locator("[data-plan-result]")
    result.wait_for()
    assert result.inner_text() == "Created 2 schedules; 1 proposal was refused."
    refused = page.locator(".plan-refused li")
    assert refused.count() == 1
    weekday = {"2026-12-07": "Mondays", "2026-12-08": "Tuesdays", "2026-12-09": "Wednesdays",
               "2026-12-10": "Thursdays", "2026-12-11": "Fridays", "2026-12-12": "Saturdays"}[ben_day]
    assert refused.first.inner_text().startswith(f"{ben_name} for Ben Okafor on ")
    assert refused.first.inner_text().endswith(f": Ben Okafor does not work on {weekday}")
    assert "1 proposal was refused" in page.locator("[data-plan-status]").inner_text()
    assert ben_event not in live_schedules(app)
    assert len(live_schedules(app)) == 3  # the Dairy Count and the two others


def test_proposals_for_employees_not_on_the_page_are_listed_and_applied(app, page, week):  # noqa: F811
    login(page)
    panel = plan_week(page, f"/calendar?week={WEEK}&name=Ana")
    assert page.locator("tbody tr").count() == 1
    on_page = page.locator("[data-proposal]").count()
    assert on_page == 1  # Ana's; Ben's and Cy's are in the summary
    outside = panel.locator("[data-plan-outside]")
    assert outside.inner_text().startswith("2 proposals are for employees not shown on this page of the roster")
    outside.click()  # opens the list
    lines = panel.locator(".plan-outside li")
    assert lines.count() == 2
    assert {re.match(r"(\w+ \w+),", lines.nth(i).inner_text()).group(1) for i in range(2)} == {"Ben Okafor", "Cy Park"}
    lines.first.get_by_role("button", name=re.compile(r"^Drop ")).click()
    assert outside.inner_text().startswith("1 proposal is for employees not shown")
    panel.get_by_role("button", name="Apply 2").click()
    page.locator("[data-plan-result]").wait_for()
    assert page.locator("[data-plan-result]").inner_text() == "Created 2 schedules; none refused."
    assert len(live_schedules(app)) == 3


def test_planning_from_the_keyboard(app, page, week):  # noqa: F811
    login(page)
    page.goto(f"/calendar?week={WEEK}")
    page.locator("body").focus()
    assert tab_to(page, r"^Plan this week$", limit=40)
    page.keyboard.press("Enter")
    page.locator("[data-plan-totals]").wait_for()
    assert page.evaluate("document.activeElement.textContent") == "Apply 3"  # the next step
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Discard"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    page.locator("[data-plan-result]").wait_for()
    assert page.evaluate("document.activeElement.textContent") == "Plan applied"
    assert len(live_schedules(app)) == 4


def test_without_javascript_the_plan_button_is_hidden(app, browser, live, week):  # noqa: F811
    context = browser.new_context(base_url=live, java_script_enabled=False)
    tab = context.new_page()
    try:
        login(tab)
        tab.goto(f"/calendar?week={WEEK}")
        assert tab.get_by_role("button", name="Plan this week").count() == 0  # hidden: it needs the script
        assert tab.locator(f'td[data-employee-id="{week["ben"]}"] a.add-here').count() == 6  # the roster as before
    finally:
        context.close()


@pytest.fixture
def busy_week(app) -> dict:
    """The screenshots' week: six people (one off on Thursday, one working four days at
    most), a dozen events across four stores, two of them impossible this week."""
    from models import TimeOff, db

    with app.app_context():
        names = ("Ana Lopez", "Ben Okafor", "Cy Park", "Dee Ward", "Eli Moss", "Fay Chen")
        people = [make_employee(n, workdays=MON_TO_SAT) for n in names]
        people[4].max_days_per_week = 4
        db.session.add(TimeOff(employee_id=people[3].id, start_date=utc(2026, 12, 10).date(),
                               end_date=utc(2026, 12, 10).date(), note="dentist"))
        db.session.commit()
        stores = [(1204, "Springfield"), (77, "Shelbyville"), (1300, "Ogdenville"), (415, "Capital City")]
        kinds = ["CORE - Snack Reset", "JUICER - Demo", "CORE - Cooler Audit", "SUPERVISOR - Walk",
                 "DIGITAL - Price Tags", "FREEOSK - Refill", "CORE - Dairy Count", "CORE - Endcap Set"]
        for i in range(16):
            number, store = stores[i % 4]
            first = 7 + (i % 5)
            make_event(project_name=kinds[i % len(kinds)], store_number=number, store_name=store,
                       start_datetime=utc(2026, 12, first, 8 + i % 4), due_datetime=utc(2026, 12, min(first + 2, 12), 18),
                       estimated_minutes=60 + 30 * (i % 4))
        for day in (8, 9):  # already scheduled
            make_schedule(make_event(project_name="CORE - Bakery Reset", store_number=1204, store_name="Springfield",
                                     start_datetime=utc(2026, 12, day, 6), due_datetime=utc(2026, 12, day, 18)),
                          people[day - 8], utc(2026, 12, day, 9))
        make_event(project_name="CORE - Sunday Count", store_number=77, store_name="Shelbyville",
                   start_datetime=utc(2026, 12, 13, 6), due_datetime=utc(2026, 12, 13, 20))
        make_event(project_name="JUICER - Night Demo", store_number=1300, store_name="Ogdenville",
                   start_datetime=utc(2026, 12, 13, 8), due_datetime=utc(2026, 12, 13, 18))
        return {"people": [p.id for p in people]}


def test_screenshots_of_the_plan(app, page, busy_week):  # noqa: F811
    """The README's two screenshots: the preview, and the roster after Apply (one refusal:
    Fay's Friday is taken between the preview and Apply)."""
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page)
    panel = plan_week(page)
    assert page.locator("[data-proposal]").count() == 16
    assert "unplaced 2" in panel.locator("[data-plan-totals]").inner_text()
    panel.locator(".plan-reasons").wait_for()
    page.locator("[data-proposal] .proposal-drop").last.click()  # the scheduler drops one
    page.mouse.move(0, 0)  # no hover, no focus ring: the page as it reads
    page.evaluate("document.activeElement.blur()")
    shot(page, "plan-preview", docs=True)
    fay = busy_week["people"][5]
    fays = page.locator(f'tr[data-employee-id="{fay}"] [data-proposal]')
    fay_day = fays.first.evaluate("el => el.closest('td').dataset.date")

    def fay_is_off():  # meanwhile, someone gives Fay that day off
        from datetime import date

        from models import TimeOff, db

        day = date.fromisoformat(fay_day)
        db.session.add(TimeOff(employee_id=fay, start_date=day, end_date=day, note="training"))
        db.session.commit()

    db_call(app, fay_is_off)
    panel.get_by_role("button", name="Apply 15").click()
    page.locator("[data-plan-result]").wait_for()
    assert page.locator("[data-plan-result]").inner_text() == "Created 14 schedules; 1 proposal was refused."
    assert "Fay Chen is off" in page.locator(".plan-refused").inner_text()
    page.evaluate("document.activeElement.blur()")
    shot(page, "plan-applied", docs=True)
