"""Two-way sync between the app's database and the vendor's scheduling API.

The package knows both sides' data and the rules of sync, nothing about Flask
requests: `app.py`'s routes, the CLI, `sync_scheduler.py` and the webhook call
the names below (`__all__` is the interface); `api_service.py` does the HTTP,
`models.py` holds the rows.  The vendor's contract is `docs/vendor-api.md`,
the app's API `docs/openapi.yaml`.

Modules, bottom up (each imports only modules above it in this list):

* `errors`   the engine's exceptions (`SyncDisabled`, `SyncInProgress`, `DayTaken`...)
* `lease`    one run at a time across processes and hosts (`acquire_lease`, the run's
             `LeaseHeartbeat`...)
* `clock`    the vendor clock's offset, corrected for and shared through the database
             (`vendor_offset`, `save_offset`)
* `context`  names and settings (`RESOURCES`, `FIELDS`, `settings`), the vendor client,
             a run's `RunStats`/`RunContext`, the apply lock, process shutdown
* `soon`     asking the app's scheduler for a coalesced push or pull soon
* `mapping`  local rows ⇄ vendor objects (`local_payload`, `remote_values`,
             `differing_fields`, versions and `updated_at`)
* `rows`     a page's bulk look-ups: its local rows, link candidates, day slots
* `apply`    applying vendor objects with the version and conflict rules
             (`apply_items`); its named interface is used by the modules below
* `held`     the deletion guard of a full listing and the admin's held deletions
* `pull`     listings, page by page (`pull_resource`)
* `store`    storing push answers (`PushResult`, `queue_result`, `store_batch`...)
* `push`     sending pending records (`push_all`, `push_resource`)
* `runs`     a run: lease, SyncRun row, pull then push (`start_run`, `run_sync`)
* `admin`    retry failed records, list and resolve conflicts
* `webhooks` verify, record and apply a webhook message (`handle_webhook`)
* `status`   status counts, health, history pruning

The interval job and the soon-runs live in `sync_scheduler.py`, which imports
this package; the engine asks for a soon-run through `soon.ask_soon`.

Rules in one place (see the docstrings): a pulled change never makes a
record pending; a version not newer than `remote_version` is skipped; both
sides changed → `SYNC_CONFLICT_POLICY` (last_write_wins by `updated_at`, or
manual); nothing is ever hard-deleted; bookmarks (sync tokens) move only when
a listing has been fully applied; a full listing never deletes more than
SYNC_DELETE_GUARD of a resource (it holds them for an admin); a push re-reads
its record under the apply lock before acting on the vendor's answer, so a
decision taken meanwhile (a vendor delete applied, a conflict) stands.
"""
from .errors import (DayTaken, LeaseLost, NothingHeld, SyncDisabled, SyncError,
                     SyncInProgress, SyncStopped, TickTaken, VendorUnavailable,
                     WebhookRejected)
from .lease import (HOST_IDENTITY, acquire_lease, lease_holder_run_id, new_owner, pid_alive,
                    release_lease, renew_lease)
from .context import (ACTIONS, DATETIME_FIELDS, DIRECTIONS, FIELDS, RESOURCES, SETTINGS,
                      SINGULAR, RunContext, RunStats, allow_runs, backoff_delay, is_enabled,
                      make_client, settings, stop_runs, wait_stopping)
from .clock import save_offset, vendor_offset
from .soon import SCHEDULER_EXTENSION, next_run_at, scheduler_running
from .mapping import differing_fields, field_differences, jsonable, local_payload, remote_values
from .rows import Applied
from .apply import apply_items
from .held import HELD_ACTIONS, held_counts, held_deletions, resolve_held
from .pull import pull_resource
from .store import PushResult
from .push import push_all, push_resource
from .runs import check_request, run_sync, start_run
from .admin import list_conflicts, resolve_conflict, retry_failed, retry_record
from .webhooks import count_delivery, count_rejected, handle_webhook, vendor_field_problems
from .status import (PRUNE_BATCH, health, health_status, last_run, last_run_shown,
                     prune_history, status_counts, sync_status, vendor_health)

__all__ = [
    # errors
    "SyncError", "SyncDisabled", "SyncInProgress", "LeaseLost", "SyncStopped", "TickTaken",
    "VendorUnavailable", "NothingHeld", "DayTaken", "WebhookRejected",
    # names and settings
    "RESOURCES", "SINGULAR", "DIRECTIONS", "ACTIONS", "FIELDS", "DATETIME_FIELDS", "SETTINGS",
    "HELD_ACTIONS", "PRUNE_BATCH", "settings", "is_enabled", "make_client", "backoff_delay",
    # the lease
    "HOST_IDENTITY", "new_owner", "pid_alive", "acquire_lease", "renew_lease",
    "release_lease", "lease_holder_run_id",
    # runs
    "RunStats", "RunContext", "check_request", "start_run", "run_sync", "pull_resource",
    "push_all", "push_resource", "PushResult", "stop_runs", "wait_stopping", "allow_runs",
    # mapping and applying
    "local_payload", "remote_values", "differing_fields", "field_differences", "jsonable",
    "Applied", "apply_items",
    # admin
    "retry_failed", "retry_record", "list_conflicts", "resolve_conflict",
    "held_counts", "held_deletions", "resolve_held",
    # webhooks
    "handle_webhook", "count_rejected", "count_delivery", "vendor_field_problems",
    # status, health, pruning, the scheduler as the pages see it
    "status_counts", "last_run", "last_run_shown", "sync_status", "vendor_health",
    "health_status", "health", "prune_history", "next_run_at", "scheduler_running",
    "SCHEDULER_EXTENSION",
    # the vendor's clock offset, shared through the database
    "vendor_offset", "save_offset",
]
