"""What a test needs from the machine (Chromium, PostgreSQL, gunicorn).

Locally a missing tool skips the test with the reason shown (`pytest -ra`
lists it).  In CI (the environment variable CI is "true" or "1") it FAILS the
test instead, with the same message, so a green CI run never hides tests that
did not run.
"""
from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """True when the CI environment variable says so (CI=true, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(message: str) -> None:
    """Skip (locally) or fail (in CI) the current test because `message` is missing."""
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)
