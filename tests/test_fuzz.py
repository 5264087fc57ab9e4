"""Schemathesis against docs/openapi.yaml: no 5xx, no status or schema the spec does not name.

Every operation of the spec, every built-in check, a fixed seed and a bounded
number of examples per operation, as an admin (HTTP Basic) and anonymously, on
the suite's database (SQLite, or PostgreSQL with TEST_DATABASE_URL).  The same
run from the command line against a served app is in the README.

Where a request can be valid by its schema yet break a domain rule the schema
cannot express (an event id that does not exist, a window, a taken day, a CSV
whose cells are wrong), `positive_data_acceptance` also accepts the 409/422
the contract names for it; nothing else is relaxed.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from flask import request as flask_request
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from tests.conftest import ADMIN, AuthActions

SPEC = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
SEED = 20261204
EXAMPLES = 12  # per operation and phase: the whole file runs in about a minute per database
ACCEPTED = ["2xx", "401", "403", "404", "409"]
# Operations whose schema-valid requests may still break a rule the schema cannot express.
DOMAIN_RULES = (r"^/api/(employees|events|schedules)(/\{\w+\})?$|^/api/import/events$|^/api/sync/conflicts/"
                r"|^/api/plan(/apply)?$|^/api/employees/\{\w+\}/time_off$|^/api/sync/held/")  # 31 days; an end
# before a start; a NUL in any key of the body (inputs.py: 422 wherever it is)
SYNC_OFF = r"^/api/webhook/"  # with sync off (the suite's default) the webhook answers 503 sync_disabled
REQUESTS = {"sent": 0, "operations": set()}


def fuzz_config() -> SchemathesisConfig:
    """All checks on; the documented exceptions above, nothing more."""
    return SchemathesisConfig.from_dict({
        "seed": SEED,
        "generation": {"max-examples": EXAMPLES},
        "operations": [
            {"include-path-regex": DOMAIN_RULES,
             "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED + ["422"]}}},
            {"include-path-regex": SYNC_OFF,
             "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "4xx", "503"]},
                        "positive_data_acceptance": {"expected-statuses": ACCEPTED + ["503"]},
                        "missing_required_header": {"expected-statuses": ["400", "401", "503"]}}},
        ],
    })


def spec_with_clean_names() -> dict:
    """docs/openapi.yaml with its prose rule on names made a schema: a JSON member name
    with a NUL character is 422 everywhere (info.description), which each body's
    schema would otherwise leave open (`additionalProperties` defaults to true)."""
    import yaml

    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    for path in spec["paths"].values():
        for operation in path.values():
            content = (operation.get("requestBody") or {}).get("content", {}) \
                if isinstance(operation, dict) else {}
            body = content.get("application/json", {}).get("schema", {})
            if body.get("type") == "object":
                body.setdefault("propertyNames", {"pattern": "^[^\\u0000]*$"})
    return spec


@pytest.fixture
def app_overrides() -> dict:
    """Checks such as ignored_auth send wrong credentials on purpose: the sign-in
    throttle (tested in test_security.py) must not turn the admin's calls into 429s."""
    return {"SIGNIN_LIMIT_PER_ADDRESS": "100000 per minute", "SIGNIN_LIMIT_PER_NAME": "100000 per minute"}


@pytest.fixture
def api_schema(app, request):
    """The spec, sending its requests to the app under test (WSGI, no server)."""
    from werkzeug.security import generate_password_hash

    from models import User, db

    with app.app_context():  # hashing cost is not under test here: a cheap hash keeps the run short
        admin = db.session.scalar(db.select(User).where(User.username == ADMIN[0]))
        admin.password_hash = generate_password_hash(ADMIN[1], method="pbkdf2:sha256:1")
        db.session.commit()
    loaded = schemathesis.openapi.from_dict(spec_with_clean_names(), config=fuzz_config())
    loaded.app = app

    @app.before_request
    def count_request():
        REQUESTS["sent"] += 1
        rule = flask_request.url_rule
        if rule is not None and rule.rule.startswith("/api/"):
            REQUESTS["operations"].add((flask_request.method, rule.rule))

    REQUESTS["sent"], REQUESTS["operations"] = 0, set()
    yield loaded
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:  # the figure the README quotes
        reporter.write_line(f"\n{request.node.name}: {REQUESTS['sent']} requests "
                            f"({len(REQUESTS['operations'])} routed /api/ operations reached)")


schema = schemathesis.pytest.from_fixture("api_schema")


FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))


@schema.parametrize()
@FUZZ_SETTINGS
def test_the_api_honours_its_spec_as_admin(case):
    case.call_and_validate(headers=AuthActions.basic(*ADMIN))


@schema.parametrize()
@FUZZ_SETTINGS
def test_the_api_honours_its_spec_anonymously(case):
    case.call_and_validate()
