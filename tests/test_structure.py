"""The layout: imports point one way (nothing below app.py imports it)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_modules_below_the_app_import_without_it():
    code = ("import sys, sync_engine, csv_formats, error_handlers, models; "
            "print('app' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, env={"APP_CONFIG": "testing", "PATH": ""}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
