"""Pull: the vendor's listings, page by page, each page applied and committed.

`pull_resource` lists incrementally from the saved sync token (or fully); the token
moves only when the listing was applied whole.  A full listing then hands the linked
records it did not return to `held.deletions_after_full_listing`.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api_service import (AuthError, InvalidPageToken, RateLimited, SyncTokenExpired,
                         TransientError, VendorError)
import table_stats
from models import SYNCED_MODELS, SyncState, db, utcnow

from .context import RunContext, SINGULAR, apply_lock, stop_if_vendor_down, log
from .mapping import vendor_version
from .rows import Applied
from .apply import count_repair, apply_items
from .held import deletions_after_full_listing


def _state(resource: str):
    state = db.session.get(SyncState, resource)
    if state is None:
        state = SyncState(resource=resource)
        db.session.add(state)
    return state


def start_listings(ctx: RunContext, resources: list[str], full: bool) -> None:
    """Ask for the first page of every listing of the run at once (one query for the
    tokens): they are applied one resource after the other, as before."""
    tokens = {} if full else dict(db.session.execute(
        select(SyncState.resource, SyncState.sync_token).where(SyncState.resource.in_(resources))
    ).all())
    db.session.rollback()
    ctx.client.start_listings((r, tokens.get(r), ctx.conf["page_size"]) for r in resources)


def pull_resource(ctx: RunContext, resource: str, full: bool = False) -> None:
    """Incremental (or full) listing, each page applied and committed as one transaction.

    The new sync token is saved only with the last page.  A 410 discards the
    token and lists everything; after a full listing, linked local records the
    listing did not return (and last synced before it started) are deleted.
    """
    state = db.session.get(SyncState, resource)
    token = None if full or state is None else state.sync_token
    db.session.rollback()
    for attempt in range(3):
        try:
            _listing(ctx, resource, token)
            return
        except SyncTokenExpired:
            log.info("sync token for %s expired: full listing", resource)
            token = None
        except InvalidPageToken:
            log.warning("vendor refused its own page token for %s; listing again", resource)
        except (TransientError, RateLimited) as exc:
            db.session.rollback()
            ctx.stats.deferred += 1
            ctx.stats.error(resource, None, f"pull stopped, will resume next run: {exc}")
            stop_if_vendor_down(ctx, exc, f"pulling {resource}")
            return
        except VendorError as exc:
            if isinstance(exc, AuthError):
                raise
            db.session.rollback()
            ctx.stats.failed += 1
            ctx.stats.error(resource, None, f"pull failed: {exc}")
            return
    ctx.stats.error(resource, None, "pull gave up after repeated listing restarts")
    ctx.stats.deferred += 1


def _listing(ctx: RunContext, resource: str, token: Optional[str]) -> None:
    full = token is None
    started = utcnow()
    seen: set[str] = set()
    postponed: list[dict] = []
    growth = _Growth(resource)
    for page in ctx.client.iter_pages(resource, sync_token=token, limit=ctx.conf["page_size"]):
        with apply_lock:
            try:
                results = _apply_page(resource, page.items, ctx)
                growth.add(results)
                for obj, res in zip(page.items, results):
                    _tally(ctx, resource, obj, res, postponed)
                if full:  # applied rows are stamped last_synced >= started: no need to
                    # remember them, so memory is set by the page size, not the data size
                    seen.update(o["id"] for o, res in zip(page.items, results)
                                if o.get("id") and res.outcome != "applied")
                if page.next_sync_token:
                    complete = _retry_postponed(ctx, resource, postponed)
                    if full:
                        deletions_after_full_listing(ctx, resource, seen, started)
                    state = _state(resource)
                    state.last_pull_at = utcnow()
                    if full:
                        state.last_full_pull_at = started
                    if complete:
                        state.sync_token = page.next_sync_token
                    state.updated_at = utcnow()
                db.session.commit()
            except Exception:
                db.session.rollback()
                raise
        ctx.checkpoint()


def _apply_page(resource: str, items: list[dict], ctx: RunContext) -> list[Applied]:
    """apply_items for one pulled page, flushed.  A unique index that refuses the page (a
    local write committed meanwhile took an employee's day or an event) rolls it back, and
    the page is applied once more against what won: a clash then becomes a conflict."""
    stats = ctx.stats
    before = (stats.conflicts, list(stats.errors), stats.errors_total)
    try:
        results = apply_items(resource, items, ctx, source="pull")
        db.session.flush()
        return results
    except IntegrityError as exc:
        db.session.rollback()
        stats.conflicts, stats.errors, stats.errors_total = before
        log.info("a %s page lost a race to a local write; applying it again: %s", resource,
                 exc.orig)
    results = apply_items(resource, items, ctx, source="pull")
    db.session.flush()
    return results


class _Growth:
    """ANALYZE a table that a listing is filling fast (PostgreSQL), at 1,000 new rows and
    each doubling after.  The statistics of a table that was empty when the first pull
    began say "tiny", so the planner scanned it whole for every page's look-ups: 15 s
    instead of 2.6 s for a first pull of 45k objects."""

    def __init__(self, resource: str):
        self.table = SYNCED_MODELS[resource].__tablename__
        self.created, self.next = 0, 1000

    def add(self, results: list) -> None:
        self.created += sum(1 for res in results if res.detail == "created here")
        if self.created < self.next:
            return
        self.next = self.created * 2
        table_stats.analyze([self.table])


def _tally(ctx, resource, obj, res: Applied, postponed: list) -> None:
    if res.outcome in ("applied", "local_wins"):
        ctx.stats.pulled += 1
    elif res.outcome == "deferred":
        postponed.append(obj)
    elif res.outcome == "stale":
        _repair_stray(ctx, resource, obj, res.row)


def _repair_stray(ctx, resource: str, obj: dict, row) -> None:
    """The invariant, for a listed object: a live vendor object linked to a record deleted
    here (and synced), at the version we last saw, is a stray (e.g. a create answered after
    its record was deleted).  The local delete stands: it is sent again, so this run's push
    deletes the object at the vendor.  (A newer version undeletes the record instead: the
    vendor's later word, `_apply_one`.)"""
    if (obj.get("deleted") or row is None or row.deleted_at is None
            or row.sync_status != "synced" or row.external_id != obj.get("id")
            or vendor_version(obj) != row.remote_version):
        return
    row.mark_pending("the vendor still held it after its delete here: deleting it there")
    count_repair(ctx, resource, row.id, f"repaired: vendor {SINGULAR[resource]} {obj['id']} "
                                         f"was live though #{row.id} was deleted here; "
                                         "it is deleted at the vendor")


def _retry_postponed(ctx, resource, postponed: list) -> bool:
    """Objects that could not be applied in their page get one more try at the end."""
    complete = True
    for obj in postponed:
        with db.session.begin_nested():
            res = apply_items(resource, [obj], ctx, source="pull")[0]
        if res.outcome == "deferred":
            complete = False
            ctx.stats.deferred += 1
            ctx.stats.error(resource, obj.get("id"), f"not applied yet: {res.detail} "
                                                     "(the listing will be read again)")
        elif res.outcome in ("applied", "local_wins"):
            ctx.stats.pulled += 1
    return complete
