"""The middleware against what a hostile or broken server or application hands it.

The ASGI spec says what a scope and a message hold; a server or an application that breaks it
(a method that is not text, a client that is not a pair, a status that is not an int) must not
make the middleware raise into the request, lose the request's line, or write a secret the
value carries. Each case is one raw ASGI call, as such a server makes it, and the line read
back from the file.
"""

from __future__ import annotations

import asyncio
import enum
import http
import uuid
from pathlib import Path
from typing import Any

import pytest

import alkana_logging
from alkana_logging import _state
from alkana_logging import fields as F
from alkana_logging.middleware import RequestContextMiddleware
from tests._logfiles import read_records

SECRET = f"s3cr3t{uuid.uuid4().hex[:12]}"


def _scope(**changes: Any) -> dict[str, Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/hello",
        "raw_path": b"/hello",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("192.0.2.1", 40000),
        "server": ("testserver", 80),
    }
    scope.update(changes)
    return scope


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _app_sending(status: Any) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    return app


def _run(app: Any, scope: dict[str, Any], **options: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(RequestContextMiddleware(app, **options)(scope, receive, send))
    return sent


def _event(log_file: Path) -> dict[str, Any]:
    assert _state.current().health.internal_errors == 0
    alkana_logging.shutdown()
    text = log_file.read_text()
    assert SECRET not in text
    records = read_records(log_file)
    events = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert len(events) == 1, records
    # No internal error, no line about a failed event (asyncio's debug line aside).
    others = [r for r in records if r.get(F.EVENT) != F.EVENT_HTTP_REQUEST]
    assert [r for r in others if r[F.LOGGER] != "asyncio"] == [], others
    return events[0]


class _Host(str):
    """A str subclass a server might hand over: written as its text."""


@pytest.mark.parametrize(
    ("method", "written"),
    [
        ({"password": SECRET}, "<dict>"),
        ([SECRET], "<list>"),
        (b"POST", "POST"),
        (None, "<NoneType>"),
        (42, "<int>"),
        (_Host("PATCH"), "PATCH"),
    ],
)
@pytest.mark.parametrize("trusted", [False, True])
def test_a_method_that_is_not_text_is_written_as_text_without_its_secrets(
    log_file: Path, method: Any, written: str, trusted: bool
) -> None:
    options = {"trusted_proxies": ["10.0.0.0/8"]} if trusted else {}
    _run(_ok, _scope(method=method), **options)
    event = _event(log_file)
    assert event[F.METHOD] == written
    assert event[F.MESSAGE] == f"{written} /hello"
    assert event[F.STATUS_CODE] == 200


@pytest.mark.parametrize(
    ("client", "written"),
    [
        (None, None),
        ((), None),
        ([], None),
        (["192.0.2.7", 1], "192.0.2.7"),  # a list is an iterable pair too
        (("192.0.2.8",), "192.0.2.8"),
        (_Host("192.0.2.9"), None),  # text, not a pair: no address to tell
        (5, None),
        (object(), None),
        (({"token": SECRET}, 1), "<dict>"),
        ((b"192.0.2.10", 1), "192.0.2.10"),
        ((_Host("192.0.2.11"), 1), "192.0.2.11"),
        ({"host": SECRET}, None),
    ],
)
@pytest.mark.parametrize("trusted", [False, True])
def test_a_client_that_is_not_an_address_pair_still_gets_its_line(
    log_file: Path, client: Any, written: str | None, trusted: bool
) -> None:
    options = {"trusted_proxies": ["10.0.0.0/8"]} if trusted else {}
    headers = [(b"x-forwarded-for", b"198.51.100.1")]
    _run(_ok, _scope(client=client, headers=headers), **options)
    event = _event(log_file)
    assert event.get(F.CLIENT_IP) == written
    assert event[F.STATUS_CODE] == 200


class _Status(enum.IntEnum):
    TEAPOT = 418


@pytest.mark.parametrize(
    ("status", "written", "level"),
    [
        (http.HTTPStatus.NOT_FOUND, 404, F.WARNING),  # an IntEnum: an int
        (_Status.TEAPOT, 418, F.WARNING),
        (True, 500, F.ERROR),  # a bool is no status
        ("200", 500, F.ERROR),
        (200.0, 500, F.ERROR),
        (None, 500, F.ERROR),
        ({"password": SECRET}, 500, F.ERROR),
    ],
)
def test_a_status_that_is_not_an_int_is_written_as_500(
    log_file: Path, status: Any, written: int, level: str
) -> None:
    sent = _run(_app_sending(status), _scope())
    assert sent[0]["status"] is status  # what the server gets is the application's business
    event = _event(log_file)
    assert event[F.STATUS_CODE] == written
    assert type(event[F.STATUS_CODE]) is int
    assert event[F.LEVEL] == level


@pytest.mark.parametrize("path", [["/hello"], b"/hello", None, 7])
def test_a_path_that_is_not_text_still_gets_its_line(log_file: Path, path: Any) -> None:
    _run(_ok, _scope(path=path), skip_paths=["/metrics"], debug_paths=["/healthz"])
    event = _event(log_file)
    assert type(event[F.PATH]) is str
    assert event[F.STATUS_CODE] == 200


@pytest.mark.parametrize("root_path", [b"/api", ["/api"], None, 0])
def test_a_root_path_that_is_not_text_still_gets_its_line(log_file: Path, root_path: Any) -> None:
    _run(_ok, _scope(path="/api/hello", root_path=root_path), skip_paths=["/metrics"])
    event = _event(log_file)
    assert event[F.PATH] == "/api/hello"
    assert event[F.STATUS_CODE] == 200


@pytest.mark.parametrize(
    ("value", "written"),
    [("in-1", "in-1"), (bytearray(b"in-2"), "in-2"), (memoryview(b"in-3"), "in-3"), (7, None)],
)
def test_a_header_value_that_is_not_bytes_is_read_as_bytes(
    log_file: Path, value: Any, written: str | None
) -> None:
    headers = [(b"x-request-id", value), (b"x-forwarded-for", value), (b"traceparent", value)]
    sent = _run(_ok, _scope(headers=headers), trusted_proxies=["192.0.2.0/24"])
    event = _event(log_file)
    if written is None:
        assert len(event[F.REQUEST_ID]) == 32  # a new one
    else:
        assert event[F.REQUEST_ID] == written
    assert dict(sent[0]["headers"])[b"x-request-id"] == event[F.REQUEST_ID].encode()


@pytest.mark.parametrize(
    "headers",
    [[(b"x-request-id",)], [b"x-request-id"], [([b"x"], b"v")], 5, None, [(b"a", b"b", b"c")]],
)
def test_headers_that_are_not_pairs_give_a_new_id_and_say_so(log_file: Path, headers: Any) -> None:
    health = _state.current().health
    sent = _run(_ok, _scope(headers=headers))
    # Counted and said (on stderr, once), as every failure of the middleware's own work.
    assert health.internal_errors == 1
    assert "request headers could not be read" in str(health.last_error)
    alkana_logging.shutdown()
    records = read_records(log_file)
    [event] = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert len(event[F.REQUEST_ID]) == 32
    assert event[F.STATUS_CODE] == 200
    assert dict(sent[0]["headers"])[b"x-request-id"] == event[F.REQUEST_ID].encode()
