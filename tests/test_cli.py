"""The `flask` commands (cli.py): users create, demo seed.  `sync run` is in
test_sync_engine.py, `schedules recompute-days` in test_local_days.py."""
from models import User, db


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
