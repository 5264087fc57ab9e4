"""CPU per request of the load test's pages, in-process: `python -m tests.bench_pages`.

Run after `make load` (its database keeps the load's data: 200 employees, 2,000 events,
~600 schedules, the users `scheduler` and `admin`).  Signs in as the scheduler with the
Flask test client, then times `/`, `/calendar` (this week), `/calendar/free` (a free cell
of it) and `/api/sync/status` with a fresh API token of the admin: the CPU time of this
process per request (min, p25, p50; what decides at saturation) and its wall time (p50,
the database's answers included).  `--profile` prints cProfile's top functions for each.

    python -m tests.bench_pages [--database URL] [--requests 60] [--profile] [PAGE ...]
"""
from __future__ import annotations

import argparse
import os
import cProfile
import io
import pstats
import re
import statistics
import sys
import time
from datetime import date, timedelta

from tests.load import SCHEDULER

CSRF = re.compile(r'name="csrf[-_]token"[^>]*(?:value|content)="([^"]+)"')
FREE = re.compile(r'class="roster-cell[^"]*\bfree\b[^"]*" data-date="([0-9-]+)" data-employee-id="(\d+)"')


def cases(app) -> dict:
    """{name: (client, url, headers)} for the four requests the load is made of."""
    import tokens
    from models import User, db
    from sqlalchemy import select

    with app.app_context():
        admin = db.session.scalar(select(User).where(User.username == "admin"))
        plain, _ = tokens.issue(admin, "bench_pages", 1)
        db.session.commit()
    person = app.test_client()
    page = person.get("/login").get_data(as_text=True)
    answer = person.post("/login", data={"username": SCHEDULER[0], "password": SCHEDULER[1],
                                         "csrf_token": CSRF.search(page).group(1)})
    if answer.status_code not in (302, 303):
        raise SystemExit(f"bench_pages: sign-in as {SCHEDULER[0]} failed: run `make load` first")
    week = (date.today() - timedelta(days=date.today().weekday())).isoformat()
    cells = FREE.findall(person.get(f"/calendar?week={week}").get_data(as_text=True))
    day, employee = cells[len(cells) // 2]
    return {"/": (person, "/", {}),
            "/calendar": (person, f"/calendar?week={week}", {}),
            "/calendar/free": (person, f"/calendar/free?employee_id={employee}&date={day}", {}),
            "/api/sync/status": (app.test_client(), "/api/sync/status",
                                 {"Authorization": f"Bearer {plain}"})}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pages", nargs="*", help="only these (e.g. /calendar)")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/load")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    from app import create_app
    from config import normalize_database_url

    app = create_app("development", {"SQLALCHEMY_DATABASE_URI": normalize_database_url(args.database),
                                     "SECRET_KEY": "bench-pages-" + "x" * 40,
                                     "SYNC_ENABLED": False, "SCHEDULER_ENABLED": False})
    print(f"{'request':20} {'cpu min':>8} {'p25':>6} {'p50':>6} {'wall p50':>9} {'bytes':>8}")
    for name, (client, url, headers) in cases(app).items():
        if args.pages and name not in args.pages:
            continue
        for _ in range(5):
            assert client.get(url, headers=headers).status_code == 200, name
        cpu, wall = [], []
        for _ in range(args.requests):
            c0, w0 = time.process_time(), time.perf_counter()
            size = len(client.get(url, headers=headers).data)
            cpu.append((time.process_time() - c0) * 1000)
            wall.append((time.perf_counter() - w0) * 1000)
        cpu.sort()
        print(f"{name:20} {cpu[0]:8.2f} {cpu[len(cpu) // 4]:6.2f} {statistics.median(cpu):6.2f} "
              f"{statistics.median(wall):9.2f} {size:8}")
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(20):
                client.get(url, headers=headers)
            profile.disable()
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats(os.environ.get("SORT", "cumulative")).print_stats(40)
            print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
