"""The calendar's roster in a real browser (Playwright + Debian's Chromium): schedules in
the right cells, scheduling from a free cell, moving a schedule by drag and drop (and a
refused drop that moves nothing), the keyboard path, and a phone's width.
Screenshots go to /tmp/roster-shots/."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.factories import make_employee, make_event, make_schedule, utc
from tests.helpers import db_call
from tests.browser.test_sync_ui import browser, login, page, sync_settings, tab_to  # noqa: F401

pytestmark = pytest.mark.vendor_sync

SHOTS = Path("/tmp/roster-shots")
WEEK = "2026-12-07"  # a Monday; APP_TIMEZONE is UTC in the tests


def shot(page, name: str, full_page: bool = True) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


@pytest.fixture
def week(app) -> dict:
    """Ana (Tuesday), Cy (Thursday), Ben free, Dee inactive with Friday's work; an
    unscheduled event whose window opens on Wednesday afternoon."""
    with app.app_context():
        ana, ben, cy, dee = (make_employee(n) for n in ("Ana Lopez", "Ben Okafor", "Cy Park", "Dee Ward"))
        snack = make_event(project_name="CORE - Snack Reset", store_number=1204, store_name="Springfield",
                           start_datetime=utc(2026, 12, 7, 6), due_datetime=utc(2026, 12, 11, 18),
                           estimated_minutes=90)
        cooler = make_event(project_name="CORE - Cooler Audit", store_number=77, store_name="Shelbyville",
                            start_datetime=utc(2026, 12, 7, 6), due_datetime=utc(2026, 12, 13, 20))
        dairy = make_event(project_name="CORE - Dairy Count", start_datetime=utc(2026, 12, 7, 6),
                           due_datetime=utc(2026, 12, 13, 20))
        juicer = make_event(project_name="CORE - Juicer Demo", store_number=1300, store_name="Ogdenville",
                            start_datetime=utc(2026, 12, 9, 13), due_datetime=utc(2026, 12, 12, 18))
        make_event(project_name="CORE - Monday Only", start_datetime=utc(2026, 12, 7, 6),
                   due_datetime=utc(2026, 12, 7, 18))
        out = {"ana": ana.id, "ben": ben.id, "cy": cy.id, "dee": dee.id, "juicer": juicer.id,
               "snack": make_schedule(snack, ana, utc(2026, 12, 8, 14, 30)).id,
               "cooler": make_schedule(cooler, cy, utc(2026, 12, 10, 9, 0)).id}
        make_schedule(dairy, dee, utc(2026, 12, 11, 10, 0))
        dee.active = False
        from models import db

        db.session.commit()
        return out


def cell(page, employee: int, day: str):  # noqa: F811
    return page.locator(f'td[data-employee-id="{employee}"][data-date="{day}"]')


def shift(page, schedule: int):  # noqa: F811
    return page.locator(f'.shift[data-schedule-id="{schedule}"]')


def stored(app, schedule: int | None = None, event: int | None = None) -> tuple:
    """(employee id, start) of a live schedule, by its id or its event's."""
    from sqlalchemy import select

    from models import Schedule, db

    def read():
        query = select(Schedule.employee_id, Schedule.start_datetime).where(Schedule.deleted_at.is_(None))
        query = query.where(Schedule.id == schedule) if schedule else query.where(Schedule.event_id == event)
        return tuple(db.session.execute(query).one())

    return db_call(app, read)


def test_the_roster_shows_the_weeks_schedules_in_the_right_cells(app, page, week):  # noqa: F811
    login(page)
    page.goto(f"/calendar?week={WEEK}")
    assert page.get_by_role("heading", level=1).inner_text() == "Week of Mon 07 Dec 2026"
    tuesday = cell(page, week["ana"], "2026-12-08")
    assert re.match(r"14:30\s*–16:00\s+C\b[\s\S]*?CORE - Snack Reset\s+1204", tuesday.inner_text().strip())
    assert tuesday.locator("summary").get_attribute("title") == "CORE - Snack Reset"  # the whole name on hover
    assert "CORE - Cooler Audit" in cell(page, week["cy"], "2026-12-10").inner_text()
    dee_row = page.locator(f'tr[data-employee-id="{week["dee"]}"]')
    assert "(inactive)" in dee_row.inner_text() and "CORE - Dairy Count" in dee_row.inner_text()
    assert page.locator(f'tr[data-employee-id="{week["ana"]}"] .roster-total').inner_text() == "1 · 1.5 h"
    assert cell(page, week["ben"], "2026-12-09").get_by_role("link", name=re.compile("Schedule here")).count() == 1
    assert page.locator("[data-drag-help]").is_visible()  # with JavaScript: the drag hint
    shot(page, "roster-week")


def test_scheduling_from_a_free_cell(app, page, week):  # noqa: F811
    login(page)
    page.goto(f"/calendar?week={WEEK}")
    cell(page, week["ben"], "2026-12-09").get_by_role("link", name=re.compile("Schedule here")).click()
    page.wait_for_url(re.compile(r"/calendar/free\?"))
    assert page.get_by_role("heading", level=1).inner_text() == "Schedule Ben Okafor on Wednesday 09 December 2026"
    rows = page.locator("table.free-events tbody tr")
    assert rows.count() == 1  # the others are scheduled, or their window misses Wednesday
    assert "CORE - Juicer Demo" in rows.first.inner_text()
    shot(page, "roster-free-cell")
    page.get_by_role("link", name="Choose CORE - Juicer Demo").click()
    page.wait_for_url(re.compile(rf"/schedule/{week['juicer']}\?"))
    assert page.locator("#date").input_value() == "2026-12-09"
    assert page.locator("#time").input_value() == "13:00"  # the window opens at 13:00 that day
    assert page.locator("#employee_id").input_value() == str(week["ben"])
    page.locator("#time").fill("15:45")
    page.get_by_role("button", name="Schedule", exact=True).click()
    page.wait_for_url(re.compile(r"/calendar\?week=2026-12-09"))
    assert "Scheduled “CORE - Juicer Demo” for Ben Okafor" in page.locator(".flashes").inner_text()
    assert re.match(r"15:45\s*–\d\d:\d\d\s+C\b[\s\S]*?CORE - Juicer Demo", cell(page, week["ben"], "2026-12-09").inner_text())
    assert stored(app, event=week["juicer"]) == (week["ben"], utc(2026, 12, 9, 15, 45))


def test_dragging_a_schedule_to_another_employee_and_day(app, page, week):  # noqa: F811
    login(page)
    page.goto(f"/calendar?week={WEEK}")
    status = page.locator("[data-roster-status]")
    # onto Cy's Thursday: Cy already works that day
    shift(page, week["snack"]).drag_to(cell(page, week["cy"], "2026-12-10"))
    status.filter(has_text="Not moved").wait_for()
    assert "Cy Park already has work on 2026-12-10." in status.inner_text()
    shot(page, "roster-drop-refused-busy", full_page=False)
    assert cell(page, week["ana"], "2026-12-08").locator(".shift").count() == 1
    assert stored(app, week["snack"]) == (week["ana"], utc(2026, 12, 8, 14, 30))
    # onto Ben's Saturday: outside the event's window (it is due on Friday)
    shift(page, week["snack"]).drag_to(cell(page, week["ben"], "2026-12-12"))
    status.filter(has_text="Pick a day between").wait_for()
    assert "Pick a day between 2026-12-07 and 2026-12-11." in status.inner_text()
    assert stored(app, week["snack"]) == (week["ana"], utc(2026, 12, 8, 14, 30))
    assert cell(page, week["ben"], "2026-12-12").locator(".shift").count() == 0
    # onto Ben's Thursday: moves, keeping 14:30
    shift(page, week["snack"]).drag_to(cell(page, week["ben"], "2026-12-10"))
    cell(page, week["ben"], "2026-12-10").locator(f'.shift[data-schedule-id="{week["snack"]}"]').wait_for()
    assert re.match(r"14:30\s*–16:00\s+C\b[\s\S]*?CORE - Snack Reset", cell(page, week["ben"], "2026-12-10").inner_text())
    assert cell(page, week["ana"], "2026-12-08").locator(".shift").count() == 0
    assert "Rescheduled “CORE - Snack Reset”: Ben Okafor" in page.locator(".flashes").inner_text()
    assert stored(app, week["snack"]) == (week["ben"], utc(2026, 12, 10, 14, 30))
    shot(page, "roster-after-drag")


def test_the_keyboard_path_is_the_reschedule_link(app, page, week):  # noqa: F811
    login(page)
    page.goto(f"/calendar?week={WEEK}")
    page.locator("body").focus()
    assert tab_to(page, r"^09:00", limit=200)  # the card: Enter opens its menu
    page.keyboard.press("Enter")
    assert tab_to(page, r"^Reschedule\s+CORE - Cooler Audit$", limit=3)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/calendar/{week['cooler']}/reschedule"))
    page.locator("#date").fill("2026-12-12")
    page.locator("#date").dispatch_event("change")
    page.locator("#employees-status").filter(has_text="free on 2026-12-12").wait_for()
    page.locator("#employee_id").focus()
    page.locator("#employee_id").select_option(str(week["ben"]))
    page.locator("#time").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/calendar\?week=2026-12-12"))
    assert re.match(r"09:00\s*–11:00\s+C\b[\s\S]*?CORE - Cooler Audit", cell(page, week["ben"], "2026-12-12").inner_text())
    assert stored(app, week["cooler"]) == (week["ben"], utc(2026, 12, 12, 9, 0))


OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.querySelectorAll('body *')) {
    // inside a box that scrolls sideways; the skip link waits off-screen until focused
    if (el.parentElement.closest('.roster-wrap, .table-wrap') || el.matches('.skip-link')) continue;
    const box = el.getBoundingClientRect();
    if (box.width && (box.right > width + 1 || box.left < -1)) {
      wide.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : '') + ' ' + Math.round(box.right));
    }
  }
  return {width, scroll: document.documentElement.scrollWidth, wide};
}"""


def test_on_a_phone_the_grid_scrolls_in_its_box_and_nothing_clips(browser, live, app, week):  # noqa: F811
    context = browser.new_context(base_url=live, viewport={"width": 390, "height": 844},
                                  device_scale_factor=2, is_mobile=True, has_touch=True)
    tab = context.new_page()
    try:
        login(tab)
        for name, path in (("roster-phone", f"/calendar?week={WEEK}"),
                           ("roster-phone-list", f"/calendar?week={WEEK}&view=list"),
                           ("roster-phone-dashboard", "/"),
                           ("roster-phone-free-cell", f"/calendar/free?employee_id={week['ben']}&date=2026-12-09")):
            tab.goto(path)
            found = tab.evaluate(OVERFLOW)
            shot(tab, name)
            assert found["scroll"] <= found["width"], (path, found)
            assert not found["wide"], (path, found["wide"][:10])
        tab.goto(f"/calendar?week={WEEK}")
        wrap = tab.locator(".roster-wrap")
        sizes = wrap.evaluate("el => [el.scrollWidth, el.clientWidth]")
        assert sizes[0] > sizes[1] <= 390  # the grid is wider than the phone: it scrolls in its box
        name_cell = tab.locator(f'tr[data-employee-id="{week["ana"]}"] th.roster-employee')
        before = name_cell.bounding_box()["x"]
        wrap.evaluate("el => { el.scrollLeft = 400; }")
        tab.wait_for_function("() => document.querySelector('.roster-wrap').scrollLeft > 0")
        assert abs(name_cell.bounding_box()["x"] - before) < 1  # the employee column stays (sticky)
        assert cell(tab, week["ana"], "2026-12-08").bounding_box()["x"] < before + 200
        shot(tab, "roster-phone-scrolled", full_page=False)
    finally:
        context.close()


def test_a_cards_menu_opens_by_click_and_by_keyboard(app, page, week):  # noqa: F811
    login(page)
    page.goto(f"/calendar?week={WEEK}")
    card = shift(page, week["snack"])
    menu = card.locator(".shift-menu")
    assert not menu.is_visible()
    box = card.bounding_box()
    assert box["height"] < 48  # two lines, not a column of links
    card.locator("summary").click()
    assert menu.is_visible()
    assert menu.get_by_role("link", name=re.compile("^Reschedule")).is_visible()
    assert menu.get_by_role("button", name=re.compile("^Unschedule")).is_visible()
    assert menu.get_by_role("link", name=re.compile("^History")).is_visible()
    assert "Store 1204 Springfield" in menu.inner_text()
    shot(page, "roster-card-menu", full_page=False)
    from axe_playwright_python.sync_playwright import Axe

    found = [v["id"] for v in Axe().run(page).response["violations"] if v["impact"] in ("serious", "critical")]
    assert not found, found  # the open menu too
    page.keyboard.press("Escape")
    assert not menu.is_visible()
    card.locator("summary").focus()
    page.keyboard.press("Enter")
    assert menu.is_visible()
    # the focus ring: a dark 3px outline (#0b1f3a, 16:1 on white) around a white ring
    ring = card.locator("summary").evaluate(
        "el => { const s = getComputedStyle(el); return [s.outlineStyle, s.outlineWidth, s.outlineColor, s.boxShadow]; }")
    assert ring[:3] == ["solid", "3px", "rgb(11, 31, 58)"] and "rgb(255, 255, 255)" in ring[3]


def test_plus_only_where_work_exists_and_the_day_totals(app, page, week):  # noqa: F811
    login(page)
    page.goto(f"/calendar?week={WEEK}")
    # open work: Juicer Demo (Wed–Sat) and Monday Only; none on Sunday
    assert page.locator('th[data-day="2026-12-13"]').get_attribute("data-open") == "0"
    assert "0 to schedule" in page.locator('th[data-day="2026-12-13"]').inner_text()
    assert page.locator('th[data-day="2026-12-09"]').get_attribute("data-open") == "1"
    assert cell(page, week["ben"], "2026-12-13").locator("a").count() == 0
    assert cell(page, week["ben"], "2026-12-13").inner_text().strip() == ""
    plus = cell(page, week["ben"], "2026-12-09").locator("a.add-here")
    assert plus.evaluate("el => getComputedStyle(el).opacity") == "0"  # shown on hover and focus
    cell(page, week["ben"], "2026-12-09").hover()
    page.wait_for_function("el => getComputedStyle(el).opacity === '1'", arg=plus.element_handle())
    foot = page.locator("tfoot td[data-count]")
    assert foot.nth(1).inner_text() == "1 · 1.5 h · 1 person"  # Tuesday: Ana's 90 minutes
    assert foot.nth(4).get_attribute("data-people") == "1"  # Friday: Dee (inactive, still working)


def test_a_refused_drop_says_why_next_to_the_cell(app, page, week):  # noqa: F811
    login(page)
    page.goto(f"/calendar?week={WEEK}")
    target = cell(page, week["cy"], "2026-12-10")
    shift(page, week["snack"]).drag_to(target)
    toast = page.locator("[data-roster-status]")
    toast.filter(has_text="Not moved").wait_for()
    assert toast.get_attribute("role") == "status" and toast.get_attribute("aria-live") == "polite"
    near, at = target.bounding_box(), toast.bounding_box()
    assert abs(at["y"] - (near["y"] + near["height"])) < 12 and abs(at["x"] - near["x"]) < 12
    assert cell(page, week["ana"], "2026-12-08").locator(".shift").count() == 1  # back where it was
    shot(page, "roster-drop-refused-toast", full_page=False)


def test_unschedule_offers_an_undo(app, page, week):  # noqa: F811
    login(page)
    page.goto(f"/calendar?week={WEEK}")
    card = shift(page, week["snack"])
    card.locator("summary").click()
    card.get_by_role("button", name=re.compile("^Unschedule")).click()
    toast = page.locator("[data-roster-status]")
    toast.filter(has_text="Unscheduled “CORE - Snack Reset”").wait_for()
    assert cell(page, week["ana"], "2026-12-08").locator(".shift").count() == 0
    undo = toast.get_by_role("button", name="Undo")
    assert undo.evaluate("el => el === document.activeElement")
    shot(page, "roster-undo", full_page=False)
    with pytest.raises(Exception):
        stored(app, week["snack"])  # gone meanwhile
    undo.click()
    page.locator(".flashes").filter(has_text="Scheduled “CORE - Snack Reset” for Ana Lopez").wait_for()
    assert re.match(r"14:30", cell(page, week["ana"], "2026-12-08").inner_text())
    snack_event = db_call(app, lambda: __import__("models").db.session.get(
        __import__("models").Schedule, week["snack"]).event_id)
    assert stored(app, event=snack_event) == (week["ana"], utc(2026, 12, 8, 14, 30))


def test_moving_a_card_with_the_keyboard(app, page, week):  # noqa: F811
    login(page)
    page.goto(f"/calendar?week={WEEK}")
    card = shift(page, week["snack"])
    card.locator("summary").focus()
    page.keyboard.press("m")
    status = page.locator("[data-roster-status]")
    status.filter(has_text="Arrow keys choose").wait_for()
    page.keyboard.press("ArrowRight")  # Ana, Wednesday
    assert "2026-12-09" in status.inner_text()
    page.keyboard.press("Escape")  # cancel: nothing moves, focus back on the card
    status.filter(has_text="Move cancelled").wait_for()
    assert card.locator("summary").evaluate("el => el === document.activeElement")
    page.keyboard.press("m")
    page.keyboard.press("ArrowDown")  # Ben, Tuesday
    page.keyboard.press("ArrowRight")  # Ben, Wednesday
    assert "Ben Okafor, 2026-12-09" in status.inner_text()
    assert cell(page, week["ben"], "2026-12-09").evaluate("el => el.classList.contains('move-target')")
    page.keyboard.press("Enter")
    cell(page, week["ben"], "2026-12-09").locator(f'.shift[data-schedule-id="{week["snack"]}"]').wait_for()
    assert stored(app, week["snack"]) == (week["ben"], utc(2026, 12, 9, 14, 30))


def test_sync_marks_follow_the_server_without_a_reload(app, page, week):  # noqa: F811
    login(page)
    page.goto(f"/calendar?week={WEEK}")
    mark = shift(page, week["cooler"]).locator("[data-sync-icon]")
    assert "pending" in mark.get_attribute("class")

    def synced():
        from models import Schedule, db
        db.session.get(Schedule, week["cooler"]).sync_status = "synced"
        db.session.commit()

    db_call(app, synced)
    page.wait_for_function("el => el.classList.contains('s-synced')", arg=mark.element_handle(), timeout=15000)
    assert mark.inner_text().endswith("synced")


FOCUS_CLEAR = """() => {
  const el = document.activeElement, wrap = document.querySelector('.roster-wrap');
  const column = document.querySelector('tbody th.roster-employee').getBoundingClientRect();
  const head = document.querySelector('thead th').getBoundingClientRect();
  const foot = document.querySelector('tfoot th').getBoundingClientRect();
  const box = el.getBoundingClientRect();
  const inGrid = wrap.contains(el) && el !== wrap && !el.closest('th');
  return {inGrid, box: [box.left, box.top, box.bottom], column: column.right, head: head.bottom, foot: foot.top, text: (el.textContent || '').trim().slice(0, 30),
          clear: !inGrid || (box.left >= column.right - 1 && box.top >= head.bottom - 1 && box.bottom <= foot.top + 1)};
}"""


def test_on_a_phone_focus_is_never_hidden_behind_the_sticky_column(browser, live, app, week):  # noqa: F811
    context = browser.new_context(base_url=live, viewport={"width": 390, "height": 844})
    tab = context.new_page()
    try:
        login(tab)
        tab.goto(f"/calendar?week={WEEK}")
        assert tab.locator(".roster-wrap").bounding_box()["y"] < 844  # the grid starts on the first screen
        tab.locator("body").focus()
        assert tab_to(tab, r"^Skip to the grid$", limit=3)  # the second Tab stop
        tab.keyboard.press("Enter")
        seen = 0
        for _ in range(40):
            tab.keyboard.press("Tab")
            found = tab.evaluate(FOCUS_CLEAR)
            if found["inGrid"]:
                seen += 1
                assert found["clear"], found
        assert seen >= 6  # cards and "+" links across the week, each scrolled clear of the sticky parts
        shot(tab, "roster-phone-focus", full_page=False)
    finally:
        context.close()
