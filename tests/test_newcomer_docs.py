"""What a newcomer reads works as written: the README's import command and example file,
the sandbox's control endpoints, docs that stay inside the repo, one company's demo data."""
from __future__ import annotations

import re
import shlex
from datetime import timedelta
from pathlib import Path

import requests

from tests.conftest import ADMIN

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_command(fragment: str) -> list[str]:
    """The README's (one-line) command containing `fragment`, split as a shell would."""
    lines = [line.strip() for line in README.splitlines()
             if fragment in line and line.startswith("    ")]  # in a code block
    assert lines, f"the README has no command with {fragment!r}"
    return shlex.split(lines[0])


def test_the_readme_import_command_imports_the_example_file(app, client):
    from models import Employee, Event, Schedule, db

    args = readme_command("/api/import/events")
    assert args[0] == "curl"
    assert args[args.index("-H") + 1] == "$AUTH"  # the token the README makes first
    token_line = readme_command("users token")
    from devserver import DEMO_ADMIN

    assert token_line[token_line.index("token") + 1].rstrip(")") == DEMO_ADMIN[0]
    user, password = ADMIN  # the same admin, as the test app knows it
    field = args[args.index("-F") + 1]
    name, path = field.split("=@", 1)
    example = ROOT / path  # relative to the repository root, where the README's commands run
    assert example.is_file(), path
    url = args[-1]
    assert url.startswith("http://127.0.0.1:5000/")
    with example.open("rb") as handle:
        response = client.post(url.removeprefix("http://127.0.0.1:5000"),
                               data={name: (handle, example.name)},
                               headers=_basic(user, password), content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    rows = example.read_text(encoding="utf-8").strip().splitlines()[1:]
    with app.app_context():
        events = db.session.scalars(db.select(Event)).all()
        assert len(events) == len(rows) == 7
        assert db.session.scalar(db.select(db.func.count()).select_from(Schedule)) == 2
        assert {e.code for e in db.session.scalars(db.select(Employee))} >= {"US100001",
                                                                            "US100002"}
        assert {e.event_type for e in events} == {"Core", "Juicer", "Supervisor", "Digital",
                                                  "Freeosk", "Other"}
    again = client.post("/api/import/events", data={name: (example.open("rb"), example.name)},
                        headers=_basic(user, password), content_type="multipart/form-data")
    assert again.status_code == 200  # importing it twice is harmless


def _basic(user: str, password: str) -> dict:
    from tests.conftest import AuthActions

    return AuthActions.basic(user, password)


def test_docs_stay_inside_the_repository():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    names = {path.name for path in docs}
    assert {"vendor-api.md", "csv-formats.md"} <= names
    for path in docs:
        text = path.read_text(encoding="utf-8")
        assert "../shared" not in text and "external-api.md" not in text, path.name
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if not target.startswith("http"):
                assert (path.parent / target).exists(), (path.name, target)
    assert "](docs/vendor-api.md)" in README and "](docs/csv-formats.md)" in README


def test_the_readme_says_how_to_create_the_first_user():
    args = readme_command("users create NAME --role admin")
    assert args == [".venv/bin/flask", "--app", "app", "users", "create", "NAME", "--role", "admin"]
    assert "The first user" in README


def test_the_sandbox_control_endpoints_in_the_readme_answer(sandbox):
    base = sandbox.control_url.removesuffix("/_control")
    found = re.findall(r"http://127\.0\.0\.1:5001(/_control[\w/]*)", README)
    paths = sorted({path.rstrip("/") for path in found})
    assert {"/_control", "/_control/objects/employees", "/_control/webhooks/log",
            "/_control/faults"} <= set(paths)
    for path in paths:
        response = requests.get(base + path, timeout=30)
        assert response.status_code == 200, path
    created = requests.post(base + "/_control/objects/employees", timeout=30,
                            json={"name": "Vera Vendor", "email": None, "active": True})
    assert created.status_code == 201
    changed = requests.patch(f"{base}/_control/objects/employees/{created.json()['id']}",
                             json={"name": "Vera V. Vendor"}, timeout=30)
    assert changed.status_code == 200 and changed.json()["version"] == 2
    assert requests.post(base + "/_control/faults", json={"error_rate": 0.5},
                         timeout=30).status_code == 200
    assert requests.delete(base + "/_control/faults", timeout=30).status_code == 200
    listed = requests.get(sandbox.base_url + "/events?limit=5", timeout=30,
                          headers={"Authorization": f"Bearer {sandbox.api_key}"})
    assert listed.status_code == 200


def test_demo_data_looks_like_one_company(app):
    from demo_data import STORES, WORKDAY_END, WORKDAY_START
    from models import Event, db, event_type_for, to_local
    from tests.vendor_sandbox import VendorSandbox

    from cli import seed_demo_data

    assert len({number for number, _ in STORES}) == len({name for _, name in STORES}) == len(STORES)
    with app.app_context():
        seed_demo_data()
        local = [(e.store_number, e.store_name, e.project_name, e.event_type,
                  to_local(e.start_datetime), to_local(e.due_datetime))
                 for e in db.session.scalars(db.select(Event))]
    vendor = VendorSandbox(api_key="k", seed=3)
    vendor.seed_demo(events=40)
    from tests.vendor_sandbox import parse_ts

    remote = [(e["store_number"], e["store_name"], e["project_name"], e["event_type"],
               parse_ts(e["start_datetime"]), parse_ts(e["due_datetime"]))
              for e in vendor.objects("events")]
    names_of = {}
    for number, store, project, kind, start, due in local + remote:
        names_of.setdefault(number, set()).add(store)
        assert kind == event_type_for(project), project
        assert re.fullmatch(r"[A-Z]+ - [A-Z][\w -]+", project), project
        assert (start.hour, start.minute) == (WORKDAY_START, 0), (project, start)
        assert (due.hour, due.minute) == (WORKDAY_END, 0), (project, due)
        assert due - start >= timedelta(hours=WORKDAY_END - WORKDAY_START)
    assert all(len(names) == 1 for names in names_of.values()), names_of
    assert set(names_of) <= {number for number, _ in STORES}


def test_make_test_with_pytest_args_keeps_the_summary_line():
    """`make test PYTEST_ARGS=-q` must not become `pytest -q -q` (which hides "N passed")."""
    import subprocess
    import sys

    target = "tests/test_structure.py::test_every_setting_the_code_reads_is_declared_in_config"
    for extra in ("-q", "-qq --quiet -x"):
        dry = subprocess.run(["make", "-n", "test", f"PYTEST_ARGS={extra} {target}".strip()],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, dry.stderr
        line = [line for line in dry.stdout.splitlines() if "-m pytest" in line][-1]
        args = shlex.split(line)
        assert sum(arg in ("-q", "--quiet") for arg in args) + 2 * args.count("-qq") == 1, line
        done = subprocess.run([sys.executable, *args[1:]], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:]
        assert re.search(r"^1 passed in [\d.]+s", done.stdout, re.M), (extra, done.stdout)
