"""`make run`: migrate, add demo data, start the vendor sandbox if needed, serve.

With no `EXTERNAL_API_BASE_URL` configured (environment or `.env`), the
vendor sandbox (tests/vendor_sandbox.py) starts beside the app with demo
data, sync is switched on and its webhooks point at the app, so a first run
shows records syncing both ways.  With a real vendor configured, only the app
starts.  Ends in `flask --app app run`.
"""
from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from decouple import config

ROOT = Path(__file__).resolve().parent
FLASK = [sys.executable, "-m", "flask", "--app", "app"]
DEMO_ADMIN = ("admin", "admin-demo-123")
DEMO_SCHEDULER = ("scheduler", "scheduler-demo-123")


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_for_port(port: int, timeout: float = 15.0) -> bool:
    """Wait until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_free(port):
            return True
        time.sleep(0.1)
    return False


def start_sandbox(env: dict, app_port: int) -> subprocess.Popen | None:
    """Start the vendor sandbox and point the app's settings at it."""
    port = int(os.environ.get("SANDBOX_PORT", "5001"))
    if not port_free(port):
        sys.exit(f"port {port} is taken: set SANDBOX_PORT to a free port")
    key = "demo-" + secrets.token_hex(8)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    command = [sys.executable, str(ROOT / "tests" / "vendor_sandbox.py"), "--port", str(port),
               "--api-key", key, "--webhook-url",
               f"http://127.0.0.1:{app_port}/api/webhook/schedule_update",
               "--webhook-secret", secret, "--seed-demo"]
    process = subprocess.Popen(command, cwd=ROOT)
    if not wait_for_port(port):
        process.terminate()
        sys.exit("the vendor sandbox did not start; see its output above")
    env.update({
        "EXTERNAL_API_BASE_URL": f"http://127.0.0.1:{port}/api/v1",
        "EXTERNAL_API_KEY": key,
        "WEBHOOK_SECRET": secret,
        "SYNC_ENABLED": "true",
        "SYNC_INTERVAL_MINUTES": os.environ.get("SYNC_INTERVAL_MINUTES", "1"),
    })
    print(f" * vendor sandbox on http://127.0.0.1:{port}/api/v1 (control API at /_control)")
    print(f" * vendor API key: {key}  (README.md, 'The vendor sandbox': watching the vendor side)")
    return process


def main() -> int:
    """Prepare and serve; the sandbox (if started) stops with the app."""
    env = dict(os.environ)
    app_port = int(os.environ.get("PORT", "5000"))
    if not port_free(app_port):
        sys.exit(f"port {app_port} is taken: set PORT to a free port")
    if not config("ADMIN_USERNAME", default="") or not config("ADMIN_PASSWORD", default=""):
        env["ADMIN_USERNAME"], env["ADMIN_PASSWORD"] = DEMO_ADMIN
    sandbox = None
    if not config("EXTERNAL_API_BASE_URL", default=""):
        sandbox = start_sandbox(env, app_port)
    try:
        quiet = {**env, "SYNC_ENABLED": "false"}  # set-up commands never talk to the vendor
        subprocess.run(FLASK + ["db", "upgrade"], env=quiet, cwd=ROOT, check=True)
        subprocess.run(FLASK + ["demo", "seed"], env=quiet, cwd=ROOT, check=True)
        subprocess.run(FLASK + ["users", "create", DEMO_SCHEDULER[0], "--role", "scheduler",
                                "--password-stdin"], env=quiet, cwd=ROOT, check=True,
                       input=DEMO_SCHEDULER[1] + "\n", text=True, stdout=subprocess.DEVNULL)
        print(f"\n * open http://127.0.0.1:{app_port}/")
        print(f" * sign in as {env['ADMIN_USERNAME']} / "
              f"{env['ADMIN_PASSWORD'] if env['ADMIN_USERNAME'] == DEMO_ADMIN[0] else '(your ADMIN_PASSWORD)'}"
              f"  (admin), or {DEMO_SCHEDULER[0]} / {DEMO_SCHEDULER[1]} (scheduler)\n")
        server = subprocess.Popen(FLASK + ["run", "--port", str(app_port)], env=env, cwd=ROOT)
        try:
            return server.wait()
        except KeyboardInterrupt:
            server.send_signal(signal.SIGINT)
            return server.wait()
    finally:
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
