"""Request ids and log formats (observability.py, error_handlers.configure_logging)."""
from __future__ import annotations

import json
import logging
import threading

import pytest

from error_handlers import SecretFilter
from observability import (JsonFormatter, RequestContextFilter, TextFormatter, bound_request_id,
                           current_request_id)


def test_every_answer_carries_a_fresh_request_id(client):
    first = client.get("/login").headers.get("X-Request-ID")
    second = client.get("/no/such/page").headers.get("X-Request-ID")
    assert first and second and first != second
    assert len(first) == 32 and int(first, 16) >= 0


@pytest.mark.parametrize("sent", ["abc-123", "trace.7:span_9", "A" * 128])
def test_a_sane_client_id_is_echoed(client, sent):
    assert client.get("/login", headers={"X-Request-ID": sent}).headers["X-Request-ID"] == sent


@pytest.mark.parametrize("sent", ["", "has space", "x" * 129, "semi;colon", "<script>", "quote\"d"])
def test_an_odd_client_id_is_replaced(client, sent):
    got = client.get("/login", headers={"X-Request-ID": sent}).headers["X-Request-ID"]
    assert got != sent and len(got) == 32


def test_api_errors_carry_the_id_too(client):
    response = client.get("/api/employees", headers={"X-Request-ID": "probe-401"})
    assert response.status_code == 401
    assert response.headers["X-Request-ID"] == "probe-401"


def _record(message: str, *args, **extra) -> logging.LogRecord:
    record = logging.LogRecord("app.test", logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_log_lines_of_a_request_carry_its_id_and_user(app, client, auth, caplog):
    auth.login()
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            RequestContextFilter().filter(record)
            seen.append(record)

    handler = Keep()
    logging.getLogger("app.errors").addHandler(handler)
    try:
        client.get("/api/employees/999999999", headers={"X-Request-ID": "req-404"})
    finally:
        logging.getLogger("app.errors").removeHandler(handler)
    lines = [r for r in seen if "status=404" in r.getMessage()]
    assert lines, [r.getMessage() for r in seen]
    assert lines[0].request_id == "req-404"
    assert lines[0].user == "admin"
    assert lines[0].error_id and len(lines[0].error_id) == 12


def test_work_outside_the_request_keeps_the_id_it_was_given():
    got = {}

    def work():
        with bound_request_id("run-from-req-7"):
            got["inside"] = current_request_id()
        got["after"] = current_request_id()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    assert got == {"inside": "run-from-req-7", "after": None}


def test_json_format_is_one_object_per_line_with_the_named_keys():
    record = _record("pushed %s records", 3, request_id="r-1", user="ana", error_id="e1")
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "pushed 3 records"
    assert entry["level"] == "WARNING" and entry["logger"] == "app.test"
    assert (entry["request_id"], entry["user"], entry["error_id"]) == ("r-1", "ana", "e1")
    assert entry["time"].endswith("Z")


def test_json_format_keys_are_null_when_unknown_and_exceptions_stay_on_one_line():
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        import sys

        record = logging.LogRecord("app", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    RequestContextFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["request_id"] is None and entry["user"] is None and entry["error_id"] is None
    assert "ValueError: bad" in entry["exception"]


def test_text_format_shows_the_id_in_brackets():
    assert "app.test [r-9]: hello" in TextFormatter().format(_record("hello", request_id="r-9"))
    assert "app.test: hello" in TextFormatter().format(_record("hello", request_id=None))


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_secrets_stay_out_of_both_formats(formatter):
    record = _record("calling with Authorization: Bearer sk_live_abcdef123456 and %s", "whsec_Zm9vYmFy")
    SecretFilter(["sk_live_abcdef123456"]).filter(record)
    line = formatter.format(record)
    assert "sk_live_abcdef123456" not in line and "Zm9vYmFy" not in line


def test_configure_logging_installs_the_chosen_format(database_url):
    from tests.conftest import make_app

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []
    try:
        make_app(database_url, LOG_FORMAT="json")
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        make_app(database_url, LOG_FORMAT="text")
        assert isinstance(root.handlers[0].formatter, TextFormatter)
    finally:
        root.handlers = saved


def test_an_unknown_log_format_refuses_to_start(database_url):
    from config import ConfigError
    from tests.conftest import make_app

    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        make_app(database_url, LOG_FORMAT="xml")
