"""A fast in-memory vendor for the benchmark: stdlib only, keep-alive, optional latency.

    python tests/fast_vendor.py --port PORT --api-key KEY

The benchmark (`python -m tests.bench`) measures the app and its floors against
this server, in its own process, so that the vendor answers faster than the app
can ask: a floor measured against a slow vendor hides the app's own cost.  It
honours the parts of the vendor contract the benchmark uses:

* `GET /{resource}` listings: full (every live object, stable order, page by
  page, `next_sync_token` on the last page only) and incremental (`sync_token`:
  changes and tombstones since, each object once in its latest state);
  `400 invalid_page_token`, `410 sync_token_expired` for a token it never issued.
  Each object's JSON is rendered once when it changes, so a page is a join of
  pre-rendered bytes.
* `POST` creates with `Idempotency-Key` (replays answer the first answer with
  `Idempotent-Replayed: true`; the same key with another body is `422`),
  `PATCH`/`DELETE` with `If-Match` (`412` with `current`), `GET /{resource}/{id}`,
  `GET /health`; the unique rules (`409 duplicate`), links of schedules
  (`422`), `409 in_use` on deleting a scheduled event or employee; bearer auth.
* HTTP/1.1 keep-alive; `latency_ms` (a sleep before each API answer, in the
  handler's own thread, so concurrent requests wait side by side).

Control (no auth): `POST /_control/reset`, `POST /_control/seed`
`{"employees", "events", "schedules"}` (the sandbox's bulk shapes),
`POST /_control/latency {"ms"}`, `GET /_control/stats` (`{"requests"}`: API
requests answered), `GET /_control/objects/{resource}` (live objects),
`GET /_control/log` (the API requests in the order they were answered:
method, path, status, the body, the id answered, and the ticks of one
counter at its arrival and at its answer).
"""
from __future__ import annotations

import argparse
import base64
import bisect
import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

RESOURCES = ("employees", "events", "schedules")
REQUIRED = {"employees": ("name",), "events": ("project_ref_num", "project_name",
                                               "start_datetime", "due_datetime"),
            "schedules": ("event_id", "employee_id", "start_datetime")}
DEFAULTS = {"employees": {"email": None, "active": True},
            "events": {"event_type": "Other", "store_number": None, "store_name": None,
                       "location_mvid": None, "estimated_minutes": None},
            "schedules": {}}


def now_ts() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, details=None, extra=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.extra = details, extra or {}

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error, **self.extra}


class Store:
    """Objects by id, rendered JSON per object, a change log of (seq, id) per resource."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seq = 0
        self.epoch = uuid.uuid4().hex[:8]  # tokens of an earlier reset are unknown (410)
        self.objects = {r: {} for r in RESOURCES}     # id -> object (tombstones too)
        self.rendered = {r: {} for r in RESOURCES}    # id -> bytes
        self.order = {r: [] for r in RESOURCES}       # ids in creation order
        self.log_seq = {r: [] for r in RESOURCES}     # seqs, ascending
        self.log_ids = {r: [] for r in RESOURCES}     # the id changed at that seq
        self.last_seq = {r: {} for r in RESOURCES}    # id -> seq of its latest change
        self.created_seq = {r: {} for r in RESOURCES}  # id -> seq of its create
        self.ref_nums: dict = {}                      # live project_ref_num -> event id
        self.schedule_of_event: dict = {}             # event id -> live schedule id
        self.schedules_of_employee: dict = {}         # employee id -> set of schedule ids
        self.keys: dict = {}                          # idempotency key -> (fingerprint, status, body)
        self.counter = 0

    # -- writing ---------------------------------------------------------------

    def _put(self, resource: str, obj: dict) -> None:
        self.seq += 1
        oid = obj["id"]
        if oid not in self.objects[resource]:
            self.order[resource].append(oid)
            self.created_seq[resource][oid] = self.seq
        self.objects[resource][oid] = obj
        self.rendered[resource][oid] = json.dumps(obj, separators=(",", ":")).encode()
        self.log_seq[resource].append(self.seq)
        self.log_ids[resource].append(oid)
        self.last_seq[resource][oid] = self.seq

    def new_id(self, resource: str) -> str:
        self.counter += 1
        return f"{resource[:3]}_{self.counter:08d}"

    def live(self, resource: str, oid) -> dict | None:
        obj = self.objects[resource].get(oid)
        return obj if obj is not None and not obj.get("deleted") else None

    def _check(self, resource: str, merged: dict, oid: str | None) -> None:
        missing = {f: "required" for f in REQUIRED[resource] if merged.get(f) in (None, "")}
        if missing:
            raise Refused(422, "validation_failed", "a field breaks a rule", missing)
        if resource == "events":
            other = self.ref_nums.get(merged["project_ref_num"])
            if other is not None and other != oid:
                raise Refused(409, "duplicate", "another live event has this project_ref_num",
                              {"existing_id": other})
        elif resource == "schedules":
            errors = {}
            if self.live("events", merged["event_id"]) is None:
                errors["event_id"] = "no live event with this id"
            employee = self.live("employees", merged["employee_id"])
            if employee is None or not employee.get("active", True):
                errors["employee_id"] = "no live, active employee with this id"
            if errors:
                raise Refused(422, "validation_failed", "a field breaks a rule", errors)
            other = self.schedule_of_event.get(merged["event_id"])
            if other is not None and other != oid:
                raise Refused(409, "duplicate", "the event already has a live schedule",
                              {"existing_id": other})

    def _index(self, resource: str, obj: dict, add: bool) -> None:
        if resource == "events":
            if add:
                self.ref_nums[obj["project_ref_num"]] = obj["id"]
            else:
                self.ref_nums.pop(obj["project_ref_num"], None)
        elif resource == "schedules":
            if add:
                self.schedule_of_event[obj["event_id"]] = obj["id"]
                self.schedules_of_employee.setdefault(obj["employee_id"], set()).add(obj["id"])
            else:
                self.schedule_of_event.pop(obj["event_id"], None)
                self.schedules_of_employee.get(obj["employee_id"], set()).discard(obj["id"])

    def create(self, resource: str, data: dict, stamp: str | None = None) -> dict:
        fields = {**DEFAULTS[resource], **{k: v for k, v in data.items()
                                           if k not in ("id", "version", "updated_at")}}
        self._check(resource, fields, None)
        obj = {"id": self.new_id(resource), **fields, "version": 1,
               "updated_at": stamp or now_ts()}
        self._index(resource, obj, True)
        self._put(resource, obj)
        return obj

    def _current(self, resource: str, oid: str, if_match) -> dict:
        obj = self.live(resource, oid)
        if obj is None:
            raise Refused(404, "not_found", f"no {resource} {oid}")
        if if_match is not None and if_match != obj["version"]:
            raise Refused(412, "version_mismatch", "If-Match names another version",
                          extra={"current": obj})
        return obj

    def update(self, resource: str, oid: str, data: dict, if_match) -> dict:
        old = self._current(resource, oid, if_match)
        merged = {**old, **{k: v for k, v in data.items()
                            if k not in ("id", "version", "updated_at", "deleted")}}
        self._check(resource, merged, oid)
        merged.update(version=old["version"] + 1, updated_at=now_ts())
        self._index(resource, old, False)
        self._index(resource, merged, True)
        self._put(resource, merged)
        return merged

    def delete(self, resource: str, oid: str, if_match) -> None:
        old = self._current(resource, oid, if_match)
        blocking = (self.schedule_of_event.get(oid) if resource == "events" else
                    next(iter(self.schedules_of_employee.get(oid) or ()), None)
                    if resource == "employees" else None)
        if blocking:
            raise Refused(409, "in_use", "it still has a live schedule",
                          {"schedule_id": blocking})
        self._index(resource, old, False)
        self._put(resource, {"id": oid, "deleted": True, "version": old["version"] + 1,
                             "updated_at": now_ts()})

    # -- listing -----------------------------------------------------------------

    def token(self, kind: str, *parts) -> str:
        raw = json.dumps([self.epoch, kind, *parts], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def untoken(self, text: str, kind: str) -> list | None:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            parts = json.loads(raw)
        except (ValueError, TypeError):
            return None
        if not isinstance(parts, list) or len(parts) < 2 or parts[0] != self.epoch \
                or parts[1] != kind:
            return None
        return parts[2:]

    def page(self, resource: str, query: dict) -> bytes:
        one = {k: v[-1] for k, v in query.items()}
        if "page_token" in one:
            if set(one) != {"page_token"}:
                raise Refused(400, "invalid_page_token", "a page token goes alone")
            state = self.untoken(one["page_token"], "page")
            if state is None or state[0] != resource:
                raise Refused(400, "invalid_page_token", "this server did not issue that token")
            _, mode, since, snapshot, pos, limit = state
        else:
            try:
                limit = int(one.get("limit", 100))
            except ValueError:
                limit = 0
            if not 1 <= limit <= 500:
                raise Refused(400, "bad_request", "limit must be 1..500")
            snapshot, since, mode, pos = self.seq, 0, "full", 0
            if "sync_token" in one:
                state = self.untoken(one["sync_token"], "sync")
                if state is None or state[0] != resource:
                    raise Refused(410, "sync_token_expired", "unknown sync token")
                since, mode = state[1], "inc"
                pos = bisect.bisect_right(self.log_seq[resource], since)
        rendered, chunk = self.rendered[resource], []
        if mode == "full":
            order, objects = self.order[resource], self.objects[resource]
            created = self.created_seq[resource]
            while pos < len(order) and len(chunk) < limit:
                oid = order[pos]
                pos += 1
                if objects[oid].get("deleted") or created[oid] > snapshot:
                    continue  # deleted, or created after the listing began
                chunk.append(rendered[oid])
            done = pos >= len(order)
        else:
            seqs, ids, last = self.log_seq[resource], self.log_ids[resource], self.last_seq[resource]
            while pos < len(seqs) and seqs[pos] <= snapshot and len(chunk) < limit:
                oid, seq = ids[pos], seqs[pos]
                pos += 1
                if last[oid] == seq:  # its latest change: each object once
                    chunk.append(rendered[oid])
                elif last[oid] > snapshot and self._first_after(resource, oid, since) == seq:
                    chunk.append(rendered[oid])  # changed again while paging: latest state now
            done = pos >= len(seqs) or seqs[pos] > snapshot
        next_page = None if done else self.token("page", resource, mode, since, snapshot, pos, limit)
        next_sync = self.token("sync", resource, snapshot) if done else None
        return (b'{"data":[' + b",".join(chunk) + b'],"next_page_token":'
                + json.dumps(next_page).encode() + b',"next_sync_token":'
                + json.dumps(next_sync).encode() + b"}")

    def _first_after(self, resource: str, oid: str, since: int) -> int:
        seqs, ids = self.log_seq[resource], self.log_ids[resource]
        for pos in range(bisect.bisect_right(seqs, since), len(seqs)):
            if ids[pos] == oid:
                return seqs[pos]
        return -1

    # -- bulk data (the sandbox's bulk shapes) -------------------------------------

    def seed(self, employees: int, events: int, schedules: int) -> dict:
        stamp = now_ts()
        start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) \
            + timedelta(days=1)
        base = len(self.order["employees"])
        staff_n = sum(1 for o in self.objects["employees"].values()
                      if not o.get("deleted") and o.get("active", True)) + employees
        # long enough for each employee to have at most one schedule a day (the app's rule)
        days = max(2, -(-schedules // max(1, staff_n)) + 1)
        window = (start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  (start + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        for n in range(employees):
            k = base + n + 1
            self.create("employees", {"name": f"Employee {k:05d}",
                                      "email": f"employee{k}@example.com", "active": True}, stamp)
        ref = max(self.ref_nums, default=604100) + 1
        for n in range(events):
            r = ref + n
            self.create("events", {"project_ref_num": r, "project_name": f"CORE - Reset {r}",
                                   "event_type": "Core", "store_number": 1000 + r % 900,
                                   "store_name": f"Store {1000 + r % 900}", "location_mvid": None,
                                   "start_datetime": window[0], "due_datetime": window[1],
                                   "estimated_minutes": 60}, stamp)
        staff = [o["id"] for o in self.objects["employees"].values()
                 if not o.get("deleted") and o.get("active", True)]
        free = (oid for oid in self.order["events"]
                if self.live("events", oid) and oid not in self.schedule_of_event)
        for n, event_id in zip(range(schedules if staff else 0), free):
            # a day further each time round the staff: one schedule per employee per day
            event = self.objects["events"][event_id]
            first = datetime.fromisoformat(event["start_datetime"].replace("Z", "+00:00"))
            due = datetime.fromisoformat(event["due_datetime"].replace("Z", "+00:00"))
            sched_start = min(first + timedelta(days=n // len(staff), hours=1), due)
            self.create("schedules", {"event_id": event_id, "employee_id": staff[n % len(staff)],
                                      "start_datetime": sched_start.strftime("%Y-%m-%dT%H:%M:%SZ")},
                        stamp)
        return {r: sum(1 for o in self.objects[r].values() if not o.get("deleted"))
                for r in RESOURCES}


class Vendor:
    def __init__(self, api_key: str):
        self.api_key = api_key
        self.store = Store()
        self.latency = 0.0
        self.requests = 0
        self.tick = 0  # one clock for arrivals and answers (the log's order)
        self.log: list = []
        self.log_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # TCP_NODELAY, and the answer goes out in one write:
    wbufsize = 1 << 16              # headers then body apart met delayed ACKs (40 ms each)
    server_version = "fast-vendor/1"
    vendor: Vendor  # set on the class by serve()

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes | None, headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()

    def _json(self, status: int, obj, headers=None) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode(), headers)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            data = json.loads(raw or b"null")
        except ValueError:
            raise Refused(400, "bad_request", "the body is not JSON") from None
        if not isinstance(data, dict):
            raise Refused(400, "bad_request", "the body is not a JSON object")
        return data

    def _if_match(self):
        value = self.headers.get("If-Match")
        if value is None:
            return None
        try:
            return int(value.strip().strip('"'))
        except ValueError:
            raise Refused(400, "bad_request", "If-Match must be a quoted version") from None

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        if url.path.startswith("/_control/"):
            return self._control(method, url.path[len("/_control/"):])
        vendor = self.vendor
        status, body = 500, None
        with vendor.log_lock:
            vendor.tick += 1
            arrived = vendor.tick
        try:
            body = self._body() if method in ("POST", "PATCH") else None
            if vendor.latency:
                time.sleep(vendor.latency)
            status, payload, headers = self._api(method, url.path, url.query, body)
        except Refused as exc:
            status, payload, headers = exc.status, json.dumps(exc.body()).encode(), None
        with vendor.log_lock:
            vendor.requests += 1
            vendor.tick += 1
            vendor.log.append({"method": method, "path": url.path, "status": status,
                               "arrived": arrived, "answered": vendor.tick, "body": body,
                               "id": json.loads(payload).get("id") if status in (200, 201)
                               else None})
        self._send(status, payload, headers)

    def _api(self, method: str, path: str, query: str, body):
        vendor, store = self.vendor, self.vendor.store
        if self.headers.get("Authorization") != f"Bearer {vendor.api_key}":
            raise Refused(401, "unauthorized", "missing or wrong API key")
        parts = [unquote(p) for p in path.split("/") if p]
        if parts[:2] != ["api", "v1"]:
            raise Refused(404, "not_found", "no such path")
        parts = parts[2:]
        if parts == ["health"] and method == "GET":
            return 200, json.dumps({"status": "ok", "time": now_ts()}).encode(), None
        if not parts or parts[0] not in RESOURCES or len(parts) > 2:
            raise Refused(404, "not_found", "no such path")
        resource = parts[0]
        with store.lock:
            if len(parts) == 1 and method == "GET":
                return 200, store.page(resource, parse_qs(query)), None
            if len(parts) == 1 and method == "POST":
                return self._create(store, resource, body)
            if len(parts) == 2 and method == "GET":
                obj = store.live(resource, parts[1])
                if obj is None:
                    raise Refused(404, "not_found", f"no {resource} {parts[1]}")
                return 200, store.rendered[resource][parts[1]], None
            if len(parts) == 2 and method == "PATCH":
                obj = store.update(resource, parts[1], body, self._if_match())
                return 200, store.rendered[resource][obj["id"]], None
            if len(parts) == 2 and method == "DELETE":
                store.delete(resource, parts[1], self._if_match())
                return 204, None, None
        raise Refused(405, "method_not_allowed", "method not allowed")

    def _create(self, store: Store, resource: str, body: dict):
        key = self.headers.get("Idempotency-Key")
        fingerprint = (resource, json.dumps(body, sort_keys=True))
        if key and key in store.keys:
            seen, status, payload = store.keys[key]
            if seen != fingerprint:
                raise Refused(422, "idempotency_key_reused", "this key came with another body")
            return status, payload, {"Idempotent-Replayed": "true"}
        try:
            obj = store.create(resource, body)
            status, payload = 201, store.rendered[resource][obj["id"]]
        except Refused as exc:
            if exc.status not in (409, 422):
                raise
            status, payload = exc.status, json.dumps(exc.body()).encode()
        if key:
            store.keys[key] = (fingerprint, status, payload)
        return status, payload, None

    def _control(self, method: str, path: str) -> None:
        vendor = self.vendor
        try:
            body = self._body() if method == "POST" and self.headers.get("Content-Length", "0") != "0" else {}
        except Refused as exc:
            return self._json(exc.status, exc.body())
        if method == "POST" and path == "reset":
            vendor.store = Store()
            with vendor.log_lock:
                vendor.requests, vendor.tick, vendor.log = 0, 0, []
            return self._json(200, {"ok": True})
        if method == "POST" and path == "seed":
            with vendor.store.lock:
                counts = vendor.store.seed(int(body.get("employees") or 0),
                                           int(body.get("events") or 0),
                                           int(body.get("schedules") or 0))
            return self._json(200, counts)
        if method == "POST" and path == "latency":
            vendor.latency = float(body.get("ms") or 0) / 1000
            return self._json(200, {"ms": vendor.latency * 1000})
        if method == "GET" and path == "stats":
            return self._json(200, {"requests": vendor.requests})
        if method == "GET" and path == "log":
            with vendor.log_lock:
                return self._json(200, {"data": list(vendor.log)})
        if method == "GET" and path.startswith("objects/") and path[8:] in RESOURCES:
            store = vendor.store
            with store.lock:
                data = [o for o in store.objects[path[8:]].values() if not o.get("deleted")]
            return self._json(200, {"data": data})
        return self._json(404, {"error": {"code": "not_found", "message": "no such control"}})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def serve(port: int, api_key: str, host: str = "127.0.0.1") -> Server:
    """A started server (in a daemon thread); `server.shutdown()` stops it."""
    handler = type("BoundHandler", (Handler,), {"vendor": Vendor(api_key)})
    server = Server((host, port), handler)
    threading.Thread(target=server.serve_forever, name="fast-vendor", daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    handler = type("BoundHandler", (Handler,), {"vendor": Vendor(args.api_key)})
    Server(("127.0.0.1", args.port), handler).serve_forever()


if __name__ == "__main__":
    main()
