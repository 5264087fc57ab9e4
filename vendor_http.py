"""The vendor client's HTTP connections: requests' adapter over urllib3, one write a request.

urllib3 (2.x), like `http.client`, writes a request's head and its body in two
`sendall` calls, so a small JSON `POST` or `PATCH` costs two system calls and wakes
the vendor twice (over TLS: two records).  `OneWriteHTTPConnection` keeps a body of
bytes back and sends it with the head, in one write.  `use_one_write(poolmanager)` makes a pool manager (the
one `api_service.VendorAdapter` and its twin share) open such connections.

`QuickSend` prepares and sends a request through the session's adapter without
`Session.send`'s per-call work, when the session has nothing that work is for.
"""
from __future__ import annotations

from typing import Any

import requests
from requests.cookies import extract_cookies_to_jar
from requests.models import RequestEncodingMixin
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class _OneWrite:
    """Mixin for urllib3's connections: a body of bytes goes out with the head."""

    _with_head: bytes | None = None

    def request(self, method: str, url: str, body: Any = None, headers: Any = None,
                **kwargs: Any) -> None:
        if not isinstance(body, bytes) or not body or kwargs.get("chunked"):
            super().request(method, url, body=body, headers=headers, **kwargs)
            return
        headers = dict(headers or {})
        if not any(name.lower() in ("content-length", "transfer-encoding") for name in headers):
            headers["Content-Length"] = str(len(body))
        self._with_head = body
        try:
            super().request(method, url, body=None, headers=headers, **kwargs)
        finally:
            self._with_head = None

    def send(self, data: Any) -> None:
        """The head (the first write after `request` began) goes out with the body."""
        body, self._with_head = self._with_head, None
        super().send(data + body if body is not None and isinstance(data, bytes) else data)


class OneWriteHTTPConnection(_OneWrite, HTTPConnection):
    """urllib3's HTTPConnection, head and body in one write."""


class OneWriteHTTPSConnection(_OneWrite, HTTPSConnection):
    """urllib3's HTTPSConnection, head and body in one write."""


class OneWriteHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = OneWriteHTTPConnection


class OneWriteHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = OneWriteHTTPSConnection


def use_one_write(poolmanager: Any) -> None:
    """Make `poolmanager` (urllib3's, as requests' HTTPAdapter holds it) open
    one-write connections for http and https."""
    poolmanager.pool_classes_by_scheme = {"http": OneWriteHTTPConnectionPool,
                                          "https": OneWriteHTTPSConnectionPool}


class QuickSend:
    """A session's requests to one base URL, prepared and sent through the session's own
    adapter without `Session.request`/`Session.send`'s per-call work: the URL is the
    base (prepared once by requests) plus a path the client quoted and the query
    requests' own encoder makes; the headers are the session's plus the call's.  What
    that skips (auth, cookies to send, the environment's settings, a base URL requests
    would rewrite) is checked per call: a session that has any of them goes the
    ordinary way (`usable` is False).  Cookies an answer sets are kept in the session's
    jar (and then sent the ordinary way); redirects are not followed either way."""

    def __init__(self, session: requests.Session, base_url: str):
        self.session = session
        probe = requests.PreparedRequest()
        probe.prepare(method="GET", url=base_url)
        self.base = base_url if probe.url.rstrip("/") == base_url else None
        self.adapter = session.get_adapter(base_url)

    def usable(self) -> bool:
        session = self.session
        return (self.base is not None and session.auth is None and not session.trust_env
                and not session.cookies
                and session.get_adapter(self.base) is self.adapter)

    def send(self, method: str, path: str, headers: dict, body: bytes | None,
             params: Any, timeout: Any) -> requests.Response:
        session = self.session
        url = f"{self.base}/{path.lstrip('/')}"
        if params:
            query = RequestEncodingMixin._encode_params(params)
            if query:
                url = f"{url}?{query}"
        prepared = requests.PreparedRequest()
        prepared.method, prepared.url, prepared.body = method, url, body
        prepared.headers = sent = CaseInsensitiveDict(session.headers)
        sent.update(headers)
        if body is not None:
            sent["Content-Length"] = str(len(body))
        elif method not in ("GET", "HEAD") and "Content-Length" not in sent:
            sent["Content-Length"] = "0"  # as requests' prepare_body says it
        response = self.adapter.send(prepared, stream=False, timeout=timeout,
                                     verify=session.verify, cert=session.cert,
                                     proxies=session.proxies)
        if "Set-Cookie" in response.headers:
            extract_cookies_to_jar(session.cookies, prepared, response.raw)
        response.content  # noqa: B018 - read whole, as Session.send does without stream
        return response
