"""Production refuses to start with one line naming what is missing: no traceback,
for `flask` commands and for gunicorn (checked in its master before a worker boots)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def production_env(**settings) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SYNC_", "EXTERNAL_API_", "GUNICORN_"))}
    env.update({"APP_CONFIG": "production", "SECRET_KEY": "", "DATABASE_URL": "",
                "WEBHOOK_SECRET": "", "SYNC_ENABLED": "false", "PYTHONPATH": str(ROOT)})
    env.update(settings)
    return env


def refusal(command: list[str], env: dict) -> tuple[int, list[str]]:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return done.returncode, lines


COMMANDS = {
    "flask": lambda: [str(BIN / "flask"), "--app", "app", "users", "create", "boss", "--role",
                      "admin", "--password-stdin"],
    "flask run": lambda: [str(BIN / "flask"), "--app", "app", "run", "--port", "0"],
    "gunicorn": lambda: [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "-b", "127.0.0.1:0",
                         "app:create_app()"],
}


@pytest.mark.parametrize("name", COMMANDS)
def test_missing_secret_key_and_database_are_named_on_one_line(name):
    code, lines = refusal(COMMANDS[name](), production_env())
    assert code == 1, lines
    assert len(lines) == 1, lines
    line = lines[0]
    assert "Not starting: Production configuration is incomplete" in line
    assert "SECRET_KEY" in line and "DATABASE_URL" in line
    assert "Traceback" not in line


@pytest.mark.parametrize("name", ["flask", "gunicorn"])
def test_only_what_is_missing_is_named(name):
    env = production_env(SECRET_KEY="a-real-secret-key-value", SYNC_ENABLED="true",
                         DATABASE_URL="postgresql://app@127.0.0.1:1/none")
    code, lines = refusal(COMMANDS[name](), env)
    assert code == 1, lines
    assert len(lines) == 1, lines
    assert "set: WEBHOOK_SECRET (sync is on)." in lines[0]
    assert "SECRET_KEY" not in lines[0] and "DATABASE_URL" not in lines[0]
    assert "a-real-secret-key-value" not in lines[0]
