"""Listings fetched ahead: every listing of a run followed at once, each on a thread of its own.

`api_service.VendorClient.start_listings` starts one `ListingAhead` per resource; the
pull then reads them one after the other (employees and events before the schedules
that name them) while the others keep fetching, up to `depth` pages each.  Every
request goes through the client's `request`, so the rate limit and the pool-wide
`Retry-After` pause hold for them as for any other.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

DEPTH = 4  # pages held ahead per listing (at SYNC_PAGE_SIZE 500: 2,000 objects)
_END = object()


class ListingAhead:
    """One listing followed to its end on a helper thread, its pages (or the error that
    stopped it) handed over through a bounded queue, in order."""

    def __init__(self, fetch: Callable[[dict], Any], first: dict, loop_error: Callable[[], Exception],
                 depth: int = DEPTH, name: str = "vendor-listing"):
        """Start following: `fetch(query)` gives a page, `first` is the first query."""
        self._fetch, self._first, self._loop_error = fetch, first, loop_error
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        """Hand over one item, waiting for room; False once the reader has gone."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _follow(self) -> None:
        """Fetch page after page (next_page_token) until the last, an error, or close()."""
        query, seen = self._first, set()
        try:
            while not self._stop.is_set():
                page = self._fetch(query)
                token = page.next_page_token
                if token in seen:
                    self._put(self._loop_error())
                    return
                if not self._put(page) or not token:
                    break
                seen.add(token)
                query = {"page_token": token}
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            self._put(exc)
            return
        self._put(_END)

    def pages(self) -> Iterator[Any]:
        """The listing's pages in order; the error that stopped it is raised here."""
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
                if not item.next_page_token:
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Stop fetching (a request in flight ends first, its page dropped)."""
        self._stop.set()
