"""The `flask` commands (cli.py): users create, demo seed, sync run (against the vendor
sandbox).  `schedules recompute-days` is in test_local_days.py."""
import pytest

from models import User, db
from tests.factories import make_employee
from tests.test_sync_engine import local


def test_cli_users_create_with_password_stdin(app, runner):
    result = runner.invoke(args=["users", "create", "carol", "--role", "admin", "--password-stdin"],
                           input="carol-pass-123\n")
    assert result.exit_code == 0, result.output
    assert "carol" in result.output
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.username == "carol"))
        assert user.role == "admin" and user.check_password("carol-pass-123")


def test_cli_users_create_prompts_for_the_password(app, runner):
    result = runner.invoke(args=["users", "create", "dave"], input="dave-pass-123\ndave-pass-123\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.username == "dave"))
        assert user.role == "scheduler" and user.check_password("dave-pass-123")


def test_cli_users_create_refuses_a_short_password(app, runner):
    result = runner.invoke(args=["users", "create", "erin", "--password-stdin"], input="short\n")
    assert result.exit_code != 0
    assert "at least 8 characters" in result.output


def test_cli_demo_seed_fills_an_empty_database_once(app, runner):
    from models import Event

    first = runner.invoke(args=["demo", "seed"])
    assert first.exit_code == 0, first.output
    with app.app_context():
        count = db.session.scalar(db.select(db.func.count()).select_from(Event))
        assert count == 12
    again = runner.invoke(args=["demo", "seed"])
    assert "not added" in again.output


@pytest.mark.vendor_sync
def test_cli_sync_run(app, runner, sandbox):
    local(app, make_employee, "Cli Carla")
    result = runner.invoke(args=["sync", "run", "--resources", "employees", "--direction", "push"])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "pushed 1" in result.output
    assert runner.invoke(args=["sync", "run", "--resources", "nope"]).exit_code != 0
    app.config["SYNC_ENABLED"] = False
    assert runner.invoke(args=["sync", "run"]).exit_code == 1
    app.config["SYNC_ENABLED"] = True
    app.config["EXTERNAL_API_KEY"] = "sk-wrong-1"
    failed = runner.invoke(args=["sync", "run"])
    assert failed.exit_code == 1 and "401" in failed.output
