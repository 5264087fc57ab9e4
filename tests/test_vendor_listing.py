"""A first pull lists the three resources at once: while the caller reads one listing, the
others keep fetching ahead (vendor_listing.ListingAhead through the client's request)."""
from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlparse

import pytest

from api_service import VendorClient, VendorError
from tests.helpers import LocalServer, QuietHandler

PAGES = 3  # pages per listing


class Vendor(LocalServer):
    """A listing server: employees' later pages wait until the schedules listing has been
    followed past its first page (which only fetching ahead does)."""

    def __init__(self, loop: bool = False):
        self.asked: list[tuple[str, str]] = []
        self.schedules_ahead = threading.Event()
        vendor = self

        class Handler(QuietHandler):
            def do_GET(self):
                url = urlparse(self.path)
                resource = url.path.rsplit("/", 1)[-1]
                token = (parse_qs(url.query).get("page_token") or ["p0"])[0]
                vendor.asked.append((resource, token))
                if resource == "schedules" and token != "p0":
                    vendor.schedules_ahead.set()
                if resource == "employees" and token != "p0":
                    vendor.schedules_ahead.wait(10)
                number = int(token[1:])
                nxt = None if number + 1 == PAGES else f"p{0 if loop else number + 1}"
                body = {"data": [{"id": f"{resource}_{number}", "version": 1}],
                        "next_page_token": nxt, "next_sync_token": None if nxt else "s1"}
                self.send_json(200, body)

        super().__init__(Handler, "/api/v1")


@pytest.fixture
def vendor():
    server = Vendor()
    yield server
    server.close()


def test_listings_started_together_are_followed_ahead_side_by_side(vendor):
    client = VendorClient(vendor.url, "key", rate_limit=0, max_retries=0)
    listings = [(r, None, 500) for r in ("employees", "events", "schedules")]
    client.start_listings(listings)
    got = {}
    for resource, token, limit in listings:  # read one after the other, as the pull applies
        got[resource] = [item["id"] for page in client.iter_pages(resource, token, limit)
                         for item in page.items]
    client.close()
    assert got == {r: [f"{r}_{n}" for n in range(PAGES)] for r, _t, _l in listings}
    assert vendor.schedules_ahead.is_set()
    # the schedules' second page was asked for before the employees' last one was answered
    assert vendor.asked.index(("schedules", "p1")) < vendor.asked.index(("employees", "p2"))


def test_a_repeated_page_token_stops_a_listing_followed_ahead():
    server = Vendor(loop=True)
    try:
        client = VendorClient(server.url, "key", rate_limit=0, max_retries=0)
        client.start_listings([("events", None, 500)])
        with pytest.raises(VendorError) as stopped:
            list(client.iter_pages("events", None, 500))
        assert stopped.value.code == "page_token_loop"
        client.close()
    finally:
        server.close()
