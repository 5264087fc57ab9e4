"""`make run`: migrate, add demo data, start the vendor sandbox if needed, serve.

With no `EXTERNAL_API_BASE_URL` configured (environment or `.env`), the
vendor sandbox (tests/vendor_sandbox.py) starts beside the app with demo
data, sync is switched on and its webhooks point at the app, so a first run
shows records syncing both ways; the sandbox keeps its data in
`instance/vendor_sandbox.json` (`SANDBOX_STATE_FILE`), so a restart shows the
same records on both sides.  With a real vendor configured, only the app
starts.  Ends in `flask --app app run`.

SIGTERM or SIGINT (Ctrl-C) stops everything it started: the app first (so a
sync run in progress ends cleanly), then the sandbox; each gets SIGINT, then
SIGTERM, then SIGKILL if it does not exit in time.  Both run in their own
process groups, so nothing is left holding a port; the exit status is 0.
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
STATE_FILE = ROOT / "instance" / "vendor_sandbox.json"
STOP_GRACE_SECONDS = 15.0


class Stopped(BaseException):
    """SIGTERM or SIGINT arrived: stop what was started and exit 0."""


def _stop(signum, frame) -> None:
    raise Stopped(signum)


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
CHILDREN: list[tuple[str, subprocess.Popen]] = []  # what to stop on the way out, in start order


def spawn(name: str, command: list[str], **kwargs) -> subprocess.Popen:
    """Start a long-running child in its own process group and remember it.

    The stop signals are blocked until it is remembered (so a signal cannot orphan
    it) and unblocked in the child before it runs.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    unblock = lambda: signal.pthread_sigmask(signal.SIG_SETMASK, old)  # noqa: E731
    try:
        process = subprocess.Popen(command, cwd=ROOT, start_new_session=True,
                                   preexec_fn=unblock, **kwargs)
        CHILDREN.append((name, process))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return process


def stop_process(name: str, process: subprocess.Popen) -> None:
    """Stop a child started in its own process group: SIGINT, SIGTERM, then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            print(f" * {name} did not stop on {sig.name}", file=sys.stderr)
    process.wait()


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> bool:
    """Wait until something listens on 127.0.0.1:port (False if `process` exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if not port_free(port):
            return True
        time.sleep(0.1)
    return False


def start_sandbox(env: dict, app_port: int) -> subprocess.Popen:
    """Start the vendor sandbox and point the app's settings at it."""
    port = int(os.environ.get("SANDBOX_PORT", "5001"))
    if not port_free(port):
        sys.exit(f"port {port} is taken: set SANDBOX_PORT to a free port")
    key = "demo-" + secrets.token_hex(8)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    state_file = os.environ.get("SANDBOX_STATE_FILE") or str(STATE_FILE)
    command = [sys.executable, str(ROOT / "tests" / "vendor_sandbox.py"), "--port", str(port),
               "--api-key", key, "--webhook-url",
               f"http://127.0.0.1:{app_port}/api/webhook/schedule_update",
               "--webhook-secret", secret, "--seed-demo", "--state-file", state_file]
    process = spawn("the vendor sandbox", command)
    if not wait_for_port(port, process):
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
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        if not config("EXTERNAL_API_BASE_URL", default=""):
            start_sandbox(env, app_port)
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
        return spawn("the app", FLASK + ["run", "--port", str(app_port)], env=env).wait()
    except Stopped:
        print("\n * stopping", flush=True)
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl-C must not cut the clean-up
            signal.signal(sig, signal.SIG_IGN)
        for name, process in reversed(CHILDREN):  # the app first, then the sandbox
            stop_process(name, process)


if __name__ == "__main__":
    sys.exit(main())
