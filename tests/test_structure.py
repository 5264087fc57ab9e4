"""The layout: imports point one way (nothing below app.py imports it); the tests mirror the
modules (tests/README.md)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fresh_python(code: str) -> str:
    """What `code` prints in a new interpreter (nothing imported yet)."""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, env={"APP_CONFIG": "testing", "PATH": ""}, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_modules_below_the_app_import_without_it():
    code = ("import sys, sync_engine, csv_formats, error_handlers, models; "
            "print('app' in sys.modules)")
    assert fresh_python(code) == "False"


def test_models_import_nothing_of_the_sync():
    """models.py is the bottom: a local change reaches the scheduler through a signal the
    scheduler connects to (`models.local_change`), never through an import."""
    code = ("import models, sys; "
            "print([m for m in sys.modules if m.startswith(('sync', 'api_service'))])")
    assert fresh_python(code) == "[]"
    assert "extensions" not in (ROOT / "models.py").read_text(encoding="utf-8")


def test_the_sync_engine_modules_stay_small_and_import_one_way():
    """sync_engine/ is cut by concern: no module over 1,000 lines, and each imports only
    the package's modules below it (the order of its docstring: errors at the bottom)."""
    import re

    import sync_engine

    order = ["errors", "lease", "clock", "context", "soon", "mapping", "rows", "apply", "held", "pull",
             "store", "push", "runs", "admin", "webhooks", "status"]
    listed = re.findall(r"^\* `(\w+)`", sync_engine.__doc__, re.M)
    assert listed == order
    modules = sorted((ROOT / "sync_engine").glob("*.py"))
    assert {p.stem for p in modules} == {*order, "__init__"}
    for path in modules:
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 1000, path.name
        if path.stem == "__init__":
            continue
        below = order[:order.index(path.stem)]
        imported = re.findall(r"^from \.(\w+) import", text, re.M)
        assert [m for m in imported if m not in below] == [], path.name
    assert sorted(sync_engine.__all__) == sorted(set(sync_engine.__all__))
    assert all(hasattr(sync_engine, name) for name in sync_engine.__all__)


def test_every_setting_the_code_reads_is_declared_in_config():
    """`config[...]` / `config.get(...)` keys in the app's modules, and the settings tables of
    the engine and the client, all exist on Config."""
    import re

    from config import Config

    pattern = re.compile(r"""config(?:\[|\.get\()\s*["']([A-Z][A-Z0-9_]*)["']""")
    read = {}
    for path in sorted([*ROOT.glob("*.py"), *ROOT.glob("sync_engine/*.py")]):
        for key in pattern.findall(path.read_text(encoding="utf-8")):
            read.setdefault(key, str(path.relative_to(ROOT)))
    assert "CALENDAR_PAGE_SIZE" in read and "APP_TIMEZONE" in read  # the scan finds them
    engine = {key for path in (ROOT / "sync_engine").glob("*.py")
              for key in pattern.findall(path.read_text(encoding="utf-8"))}
    assert {"EXTERNAL_API_BASE_URL", "SYNC_DELETE_GUARD"} <= engine <= set(read)  # the package too
    import api_service
    import sync_engine

    for name, _kind in sync_engine.SETTINGS.values():  # read through a table
        read.setdefault(name, "sync_engine.SETTINGS")
    for _option, name, _kind in api_service._SETTINGS:
        read.setdefault(name, "api_service._SETTINGS")
    undeclared = {key: where for key, where in read.items() if not hasattr(Config, key)}
    assert undeclared == {}


def test_every_environment_setting_is_documented():
    """Each setting Config reads from the environment is in .env.example and the README."""
    import re

    config_source = (ROOT / "config.py").read_text(encoding="utf-8")
    names = set(re.findall(r"""(?:config|_bool)\(\s*["']([A-Z][A-Z0-9_]*)["']""", config_source))
    env_example = (ROOT / ".env.example").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "SYNC_PAGE_SIZE" in names
    assert sorted(n for n in names if not re.search(rf"^#?\s*{n}=", env_example, re.M)) == []
    assert sorted(n for n in names if f"`{n}`" not in readme) == []


def test_pyflakes_rules_pass_on_the_whole_tree():
    """Undefined names, unused imports and variables (ruff's F rules): an undefined name in
    a branch the tests rarely take (a lost race's re-check) answered 500 once."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F",
                             "--output-format", "concise", "--no-cache", str(ROOT)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# -- the layout after the split of app.py (issue 19) -------------------------------------

AUDIENCES = ("auth", "pages", "employees", "api", "sync_api", "sync_admin", "cli")


def _imports(path: Path) -> set[str]:
    """The top-level module names a file imports (anywhere in it)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _app_modules() -> list[Path]:
    """The app's modules: *.py at the top level, and sync_engine/*.py once it is a package."""
    return sorted(ROOT.glob("*.py")) + sorted(ROOT.glob("sync_engine/*.py"))


def test_nothing_imports_the_app_module():
    """app.py is the factory on top: only `flask --app app`, gunicorn and the tests ask for it."""
    importers = [path.name for path in _app_modules() if path.name != "app.py" and "app" in _imports(path)]
    assert importers == []


def test_app_py_is_the_factory_only():
    assert len((ROOT / "app.py").read_text(encoding="utf-8").splitlines()) <= 400
    for name in AUDIENCES + ("extensions", "fields", "paging", "bodies", "shared", "template_helpers"):
        assert (ROOT / f"{name}.py").exists(), name


def test_no_module_is_over_1000_lines():
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for path in _app_modules() if path.name != "sync_engine.py" or path.parent != ROOT}
    assert {name: lines for name, lines in sizes.items() if lines > 1000} == {}


def test_no_audience_module_imports_another():
    """Shared helpers go down a level; an audience module may use auth's decorators and
    create_user (auth is the sign-in audience every other one stands on), nothing else."""
    crossings = {}
    for name in AUDIENCES:
        others = _imports(ROOT / f"{name}.py") & (set(AUDIENCES) - {name, "auth"})
        if others:
            crossings[name] = sorted(others)
    assert crossings == {}


def test_the_bottom_modules_import_nothing_above_them():
    """fields.py reads the models only; extensions.py nothing of the app."""
    local = {path.stem for path in _app_modules()}
    assert _imports(ROOT / "fields.py") & local == {"models"}
    assert _imports(ROOT / "extensions.py") & local == set()
    for name in ("models", "config", "api_service", "csv_formats", "error_handlers", "inputs",
                 "security", "roster", "history", "paging", "bodies", "shared", "template_helpers"):
        assert _imports(ROOT / f"{name}.py") & (set(AUDIENCES) | {"app"}) == set(), name


# -- the tests mirror the code (issue 19; the map is tests/README.md) -----------------------

TESTS = ROOT / "tests"

# The suites that cut across modules: one file each at the top of tests/, and the browser
# tests in tests/browser/.
CROSS_CUTTING = {
    "test_bad_input.py": "no input a client can send makes the app answer 5xx (API, pages, CSV)",
    "test_contract.py": "api_service.VendorClient against the vendor sandbox over real HTTP",
    "test_fuzz.py": "Schemathesis against docs/openapi.yaml",
    "test_races.py": "concurrent requests for one thing: one winner, 409 for the others",
    "test_multiprocess.py": "two gunicorns syncing one database (the lease across processes)",
    "test_performance.py": "SQL statements per page and per pulled page, commits per batch",
    "test_timezones.py": "UTC stored, APP_TIMEZONE shown and typed, on pages and in the API",
    "test_newcomer_docs.py": "the README's commands and the docs work as written",
    "test_newcomer_pages.py": "what a newcomer meets: our error pages, the favicon, plain words",
    "test_structure.py": "the layout: imports, sizes, settings, this map",
}

# Modules without a test file of their own: where they are tested, and why there.
TESTED_ELSEWHERE = {
    "extensions": (("test_app.py",), "the extensions' objects, no rules of their own"),
    "models": (("test_local_days.py", "test_history.py", "test_planner.py"),
               "every file uses the models; their rules are tested by concern"),
    "fields": (("test_bad_input.py", "test_api.py"), "the column rules, seen through the API"),
    "inputs": (("test_bad_input.py",), "the limits on what a client sends, table-driven there"),
    "bodies": (("test_api.py", "test_bad_input.py"), "the JSON body reader, through the API"),
    "paging": (("test_api.py", "test_sync_admin.py"), "the one page reader, through its users"),
    "shared": (("test_pages.py", "test_roster.py"), "form helpers the audience modules share"),
    "template_helpers": (("test_history.py", "test_timezones.py"), "Jinja filters, on pages"),
    "vendor_http": (("test_api_service.py",), "the vendor client's connections and quick send"),
    "vendor_pacing": (("test_api_service.py", "test_api_service_concurrency.py"),
                      "the vendor client's rate limit, pool pause and clock"),
    "demo_data": (("test_cli.py", "test_newcomer_docs.py"), "the demo seed's data"),
    "gunicorn.conf": (("test_multiprocess.py", "test_config.py"), "gunicorn's settings file"),
    "timestamps": (("test_api_service.py", "test_bad_input.py"),
                   "RFC 3339 read and written: the vendor's stamps and a client's"),
    "calendar_feeds": (("test_feeds.py",), "the feed's one public route, with feeds.py's rules"),
    "locustfile": (("load.py",), "the load test's script: `make load` runs it (tests/load.py)"),
}


def _top_modules() -> set[str]:
    return {path.stem for path in ROOT.glob("*.py")} | {"sync_engine"}


def _named_after(stem: str, names: set[str]) -> bool:
    """test_<name>.py or test_<name>_<concern>.py for one of `names`."""
    return any(stem == name or stem.startswith(name + "_") for name in names)


def test_every_module_has_its_test_file():
    """A newcomer finds a module's tests by its name: tests/test_<module>.py (or
    test_<module>_<concern>.py), else the module is listed above with where and why."""
    stems = {path.stem[len("test_"):] for path in TESTS.glob("test_*.py")}
    missing = sorted(m for m in _top_modules() - set(TESTED_ELSEWHERE)
                     if not any(_named_after(stem, {m}) for stem in stems))
    assert missing == []
    assert set(TESTED_ELSEWHERE) <= _top_modules()  # no stale exception
    for module, (files, _why) in TESTED_ELSEWHERE.items():
        assert [f for f in files if not (TESTS / f).exists()] == [], module
        assert not (TESTS / f"test_{module}.py").exists(), f"{module} has its file now"


def test_every_test_file_is_named_after_a_module_or_is_a_suite():
    """At the top of tests/: a module's file (app module or a tests/ helper such as
    vendor_sandbox.py) or one of CROSS_CUTTING; below it, only tests/browser/."""
    helpers = {path.stem for path in TESTS.glob("*.py") if not path.stem.startswith("test_")}
    strays = sorted(path.name for path in TESTS.glob("test_*.py")
                    if path.name not in CROSS_CUTTING
                    and not _named_after(path.stem[len("test_"):], _top_modules() | helpers))
    assert strays == []
    assert all((TESTS / name).exists() for name in CROSS_CUTTING)
    folders = sorted({path.parent.relative_to(TESTS).as_posix()
                      for path in TESTS.rglob("test_*.py")} - {"."})
    assert folders == ["browser"]
    assert all((TESTS / folder / "__init__.py").exists() for folder in folders)


def test_the_tests_readme_maps_every_test_file():
    readme = (TESTS / "README.md").read_text(encoding="utf-8")
    unmapped = sorted(path.relative_to(TESTS).as_posix() for path in TESTS.rglob("test_*.py")
                      if path.relative_to(TESTS).as_posix() not in readme)
    assert unmapped == []
