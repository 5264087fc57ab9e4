"""Load: schedulers doing their daily round, and an API client polling the sync.

Run by `python -m tests.load` (gunicorn, PostgreSQL, the vendor sandbox, then this
file headless and the checks afterwards), or by hand against a served app:

    LOAD_USER=scheduler LOAD_PASSWORD=... LOAD_TOKEN=sch_... \\
        .venv/bin/locust -f locustfile.py --headless -u 51 -r 5 -t 60s --host http://127.0.0.1:8000

A scheduler signs in through the form, then: opens the dashboard, opens the roster
week, opens a free cell, schedules an event from it (the pre-filled schedule page,
confirmed), drags a shift to another free cell, unschedules one.  A refusal the app is right to give (the day
was taken by another scheduler a moment ago: 409, 422) counts as a success: 50
people work on the same week.  Anything else (a 5xx, a 4xx the round cannot
cause) is a failure.
"""
from __future__ import annotations

import os
import random
import re
from datetime import date, timedelta

from locust import HttpUser, between, task

CSRF = re.compile(r'name="csrf[-_]token"[^>]*(?:value|content)="([^"]+)"')
SHIFT = re.compile(r'<details class="shift[^"]*"[^>]*?data-schedule-id="(\d+)"[^>]*?data-time="([0-9:]+)"')
CHOOSE = re.compile(r'href="/schedule/(\d+)\?([^"]+)"')
FREE_CELL = re.compile(r'class="roster-cell[^"]*\bfree\b[^"]*" data-date="([0-9-]+)" data-employee-id="(\d+)"')
EXPECTED_REFUSALS = (409, 422)


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


class Scheduler(HttpUser):
    """A person at the scheduling desk."""

    wait_time = between(0.2, 1.0)  # a busy desk: each person acts every 0.2–1 s

    def on_start(self) -> None:
        page = self.client.get("/login", name="/login")
        token = CSRF.search(page.text).group(1)
        answer = self.client.post("/login", name="/login [POST]", data={
            "username": os.environ.get("LOAD_USER", "scheduler"),
            "password": os.environ.get("LOAD_PASSWORD", "scheduler-load-123"), "csrf_token": token})
        if answer.status_code >= 400 or "/login" in answer.url:
            raise RuntimeError(f"sign-in failed: {answer.status_code}")
        self.week = monday(date.today()) + timedelta(weeks=random.randint(0, 2))
        self.csrf = token

    def _week(self) -> str:
        return self.week.isoformat()

    def _roster(self):
        page = self.client.get(f"/calendar?week={self._week()}", name="/calendar")
        match = CSRF.search(page.text)
        if match:
            self.csrf = match.group(1)
        return page.text

    def _pick(self, pattern: re.Pattern) -> tuple | None:
        """One match of `pattern` (a shift, a free cell) on the roster week, at random."""
        found = pattern.findall(self._roster())
        return random.choice(found) if found else None

    def _free_cell(self, day: str, employee: str) -> str:
        """Open a free cell's page; 409 (taken a moment ago) is a right answer too."""
        with self.client.get(f"/calendar/free?employee_id={employee}&date={day}",
                             name="/calendar/free", catch_response=True) as answer:
            if answer.status_code == 200 or answer.status_code in EXPECTED_REFUSALS:
                answer.success()
            return answer.text

    @task(3)
    def dashboard(self) -> None:
        self.client.get("/", name="/")

    @task(4)
    def roster_week(self) -> None:
        self._roster()

    @task(2)
    def free_cell(self) -> None:
        cell = self._pick(FREE_CELL)
        if cell:
            self._free_cell(*cell)

    @task(3)
    def schedule(self) -> None:
        """From a free cell of the roster: choose an event, confirm the pre-filled form."""
        cell = self._pick(FREE_CELL)
        if not cell:
            return
        day, employee = cell
        choices = CHOOSE.findall(self._free_cell(day, employee))
        if not choices:
            return
        event_id, query = random.choice(choices)
        page = self.client.get(f"/schedule/{event_id}?{query.replace('&amp;', '&')}", name="/schedule/<id>")
        token = CSRF.search(page.text)
        if token is None:
            return
        args = dict(pair.split("=", 1) for pair in query.replace("&amp;", "&").split("&"))
        form = {"date": args.get("date", day), "time": args.get("time", "09:00").replace("%3A", ":"),
                "employee_id": employee, "back": "calendar", "csrf_token": token.group(1)}
        with self.client.post(f"/schedule/{event_id}", data=form, name="/schedule/<id> [POST]",
                              catch_response=True, allow_redirects=False) as answer:
            if answer.status_code in (302, 303) or answer.status_code in EXPECTED_REFUSALS:
                answer.success()

    @task(2)
    def drag(self) -> None:
        text = self._roster()
        shifts, cells = SHIFT.findall(text), FREE_CELL.findall(text)
        if not shifts or not cells:
            return
        (schedule_id, at), (day, employee) = random.choice(shifts), random.choice(cells)
        with self.client.post(f"/calendar/{schedule_id}/reschedule", name="/calendar/<id>/reschedule",
                              data={"date": day, "time": at, "employee_id": employee,
                                    "csrf_token": self.csrf},
                              headers={"Accept": "application/json", "X-CSRFToken": self.csrf},
                              catch_response=True) as answer:
            if answer.status_code == 200 or answer.status_code in EXPECTED_REFUSALS + (404,):
                answer.success()  # 404: another scheduler unscheduled it a moment ago

    @task(1)
    def unschedule(self) -> None:
        """Take a shift off the week (404: another scheduler did a moment ago)."""
        shift = self._pick(SHIFT)
        if shift:
            with self.client.post(f"/calendar/{shift[0]}/unschedule", name="/calendar/<id>/unschedule",
                                  data={"csrf_token": self.csrf}, allow_redirects=False,
                                  catch_response=True) as answer:
                if answer.status_code in (302, 303, 404):
                    answer.success()


class ApiClient(HttpUser):
    """A script with an API token polling the sync's status."""

    wait_time = between(0.5, 1.5)
    fixed_count = 1  # one script beside the schedulers (-u 51: 50 people and it)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {os.environ['LOAD_TOKEN']}"

    @task
    def status(self) -> None:
        self.client.get("/api/sync/status", name="/api/sync/status (token)")
