"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py "app:create_app()"`.

Every worker builds its own app and its own interval job (do not use
`preload_app`: the scheduler's thread would start in the master and not
survive the fork).  The sync itself runs once at a time across workers and
hosts because a run holds a lease row in the database (see sync_engine/lease.py).
Override with the environment variables named below.
"""
import multiprocessing
import os

# (not `import config`: gunicorn reads every name here as a setting, and `config` is one)
from config import check_startup

# Refuse to start with one line naming what is missing (e.g. SECRET_KEY), before the
# master binds or forks: a worker would otherwise die with a traceback, again and again.
check_startup()

# Metrics from every worker: prometheus_client's multiprocess mode keeps each worker's
# counts in files under PROMETHEUS_MULTIPROC_DIR, set here in the master before any
# worker imports prometheus_client (a fresh folder per start unless one is given).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="scheduler-metrics-")

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2 + 1)))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
# Pages never wait for the vendor, so requests are short; a webhook must be
# answered within 15 s by contract.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = 50

# Access log to stdout without query strings or headers: `%(U)s` is the path
# only, so nothing a client put in a query (or an Authorization header) is logged.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # "" turns it off
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms "%(a)s"'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


def post_worker_init(worker):
    """The app is built: move what it holds now (modules, the mapper, templates: about
    130,000 objects) out of the garbage collector's sight.  A full collection walked them
    all, ~100 ms of one request every few hundred; what requests allocate is collected as
    before (gc.freeze, as the Python docs advise for long-lived servers)."""
    import gc

    gc.collect()
    gc.freeze()


def worker_exit(server, worker):
    """Stop this worker's interval job; a sync run in progress stops at its next
    checkpoint (after a committed page or pushed record) and releases the lease."""
    try:
        import sync_scheduler

        sync_scheduler.shutdown_scheduler()
    except Exception:  # noqa: BLE001 - never block a worker's exit
        server.log.exception("scheduler shutdown failed")


def child_exit(server, worker):
    """A worker that is gone: its live gauges are dropped; its counts stay summed."""
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
    except Exception:  # noqa: BLE001 - never block the master
        server.log.exception("metrics clean-up for worker %s failed", worker.pid)
