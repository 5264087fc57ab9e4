"""/metrics (ops.py, metrics.py): admins only, Prometheus names and bounded labels, the
database's figures at scrape time, and every gunicorn worker's counts added up."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path



ROOT = Path(__file__).resolve().parent.parent


def sample(text: str, name: str, **labels) -> float:
    """The value of one sample in the text format (labels in any order)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if found == {k: str(v) for k, v in labels.items()}:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{labels}")


def test_anonymous_is_401_json_and_a_scheduler_403(client, scheduler_headers):
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"]["code"] == "unauthorized"
    assert client.get("/metrics", headers=scheduler_headers).status_code == 403


def test_an_admin_reads_the_text_format(client, admin_headers):
    response = client.get("/metrics", headers=admin_headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = response.get_data(as_text=True)
    for name in ("scheduler_http_requests_total", "scheduler_http_request_duration_seconds",
                 "scheduler_vendor_requests_total", "scheduler_vendor_request_duration_seconds",
                 "scheduler_sync_runs_total", "scheduler_sync_run_duration_seconds",
                 "scheduler_webhook_deliveries_total", "scheduler_sync_records",
                 "scheduler_sync_oldest_pending_age_seconds",
                 "scheduler_sync_last_success_timestamp_seconds", "scheduler_sync_held_deletions",
                 "scheduler_alerts_firing"):
        assert f"# TYPE {name}" in text or f"# TYPE {name.removesuffix('_total')}" in text, name


def test_requests_are_counted_by_endpoint_name_never_the_raw_path(client, admin_headers):
    before = client.get("/metrics", headers=admin_headers).get_data(as_text=True)
    try:
        start = sample(before, "scheduler_http_requests_total", endpoint="api.get_employee",
                       method="GET", status="404")
    except AssertionError:
        start = 0.0
    for record_id in (101, 202, 303):
        assert client.get(f"/api/employees/{record_id}", headers=admin_headers).status_code == 404
    client.get("/no/such/path/qqxyz", headers=admin_headers)
    text = client.get("/metrics", headers=admin_headers).get_data(as_text=True)
    assert sample(text, "scheduler_http_requests_total", endpoint="api.get_employee",
                  method="GET", status="404") == start + 3
    assert "/api/employees/101" not in text and "qqxyz" not in text
    assert sample(text, "scheduler_http_requests_total", endpoint="unmatched",
                  method="GET", status="404") >= 1


def test_the_database_figures_are_read_at_scrape_time(app, client, admin_headers):
    from models import SyncRun, db, utcnow
    from tests.factories import make_employee

    with app.app_context():
        make_employee("Pending One")
        make_employee("Pending Two")
        finished = utcnow()
        db.session.add(SyncRun(status="succeeded", finished_at=finished))
        db.session.commit()
    text = client.get("/metrics", headers=admin_headers).get_data(as_text=True)
    assert sample(text, "scheduler_sync_records", resource="employees", status="pending") == 2
    assert sample(text, "scheduler_sync_records", resource="events", status="pending") == 0
    assert sample(text, "scheduler_sync_oldest_pending_age_seconds") >= 0
    assert abs(sample(text, "scheduler_sync_last_success_timestamp_seconds") - finished.timestamp()) < 1
    assert sample(text, "scheduler_sync_held_deletions", resource="employees") == 0
    assert sample(text, "scheduler_alerts_firing", alert="sync_failing") == 0


def test_metrics_can_be_turned_off(app, client, admin_headers):
    app.config["METRICS_ENABLED"] = False
    assert client.get("/metrics", headers=admin_headers).status_code == 404


WORKER = """
import metrics
metrics.observe_vendor("POST", 201, 0.02)
metrics.observe_run("succeeded", 1.5)
"""


def test_multiprocess_mode_adds_up_every_workers_counts(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(3):  # three "workers", each its own process
        subprocess.run([sys.executable, "-c", WORKER], cwd=ROOT, env=env, check=True, timeout=60)
    read = "import metrics, sys; sys.stdout.write(metrics.exposition().decode())"
    text = subprocess.run([sys.executable, "-c", read], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True, timeout=60).stdout
    assert sample(text, "scheduler_vendor_requests_total", method="POST", status="201") == 3
    assert sample(text, "scheduler_sync_runs_total", status="succeeded") == 3
