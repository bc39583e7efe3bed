"""RequestContextMiddleware: real uvicorn servers on 127.0.0.1, real HTTP, events from the file.

The servers run in child processes (see ``tests/_uvicorn_server.py``); every request carries its
own id, so each test finds its events in the shared log file by that id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import starlette
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Host, Mount, Route, Router
from websockets.sync.client import connect as ws_connect

import alkana_logging
from alkana_logging import fields as F
from alkana_logging import middleware
from alkana_logging.middleware import (
    RequestContextMiddleware,
    is_safe_request_id,
    new_request_id,
    parse_traceparent,
    route_template,
)
from alkana_logging.redaction import REDACTED
from alkana_logging.testing import capture_logs
from tests._children import run_child
from tests._logfiles import read_records, shutdown_and_read
from tests._uvicorn_server import EXAMPLES, Server, serve, wait_for

HEX32 = re.compile(r"[0-9a-f]{32}")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def rid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def http_events(log_file: Path, request_id: str, count: int = 1) -> list[dict[str, Any]]:
    return wait_for(
        log_file,
        lambda r: r.get(F.EVENT) == F.EVENT_HTTP_REQUEST and r.get(F.REQUEST_ID) == request_id,
        count,
    )


@pytest.fixture(scope="module")
def starlette_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log_file = tmp_path_factory.mktemp("starlette") / "app.log"
    # uvicorn would rewrite the client address from X-Forwarded-For itself; the middleware's
    # trusted_proxies option is what is tested here.
    with serve(
        "tests._uvicorn_server:starlette_app", log_file, uvicorn_args=("--no-proxy-headers",)
    ) as server:
        yield server


@pytest.fixture(scope="module")
def fastapi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log_file = tmp_path_factory.mktemp("fastapi") / "app.log"
    with serve("tests._uvicorn_server:fastapi_app", log_file) as server:
        yield server


@pytest.fixture
def http(starlette_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=starlette_server.base_url, trust_env=False, timeout=30) as client:
        yield client


# -- events of a real server ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "route", "status", "level"),
    [
        ("GET", "/items/7", "/items/{item_id}", 200, F.INFO),
        ("GET", "/sync/3", "/sync/{n:int}", 200, F.INFO),
        ("GET", "/api/orders/42", "/api/orders/{order_id}", 200, F.INFO),
        ("GET", "/post-only", "/post-only", 405, F.WARNING),
        ("GET", "/no/such/page", F.ROUTE_UNMATCHED, 404, F.WARNING),
        ("GET", "/sync/not-a-number", F.ROUTE_UNMATCHED, 404, F.WARNING),
    ],
)
def test_event_has_route_template_status_and_duration(
    starlette_server: Server,
    http: httpx.Client,
    method: str,
    path: str,
    route: str,
    status: int,
    level: str,
) -> None:
    request_id = rid("route")
    response = http.request(
        method, path + "?token=secret-value", headers={"X-Request-ID": request_id}
    )

    assert status == response.status_code
    [event] = http_events(starlette_server.log_file, request_id)
    assert route == event[F.ROUTE]
    assert path == event[F.PATH]
    assert method == event[F.METHOD]
    assert status == event[F.STATUS_CODE]
    assert isinstance(event[F.STATUS_CODE], int)
    assert isinstance(event[F.DURATION_MS], float)
    assert event[F.DURATION_MS] >= 0.0
    assert event[F.CLIENT_IP] == "127.0.0.1"
    assert level == event[F.LEVEL]
    assert event[F.LOGGER] == "alkana_logging.middleware"
    assert event[F.APP] == "test-backend"
    assert "secret-value" not in str(event)


@pytest.mark.parametrize(
    "incoming",
    [
        "3f2b8c1d9e7a4b6c8d0e1f2a3b4c5d6e",  # nginx's $request_id
        "0b8e9c0e-6b1f-4c4e-9f59-3b2f4f8a1c2d",  # a UUID
        "job.42_retry-3",
        "x" * 128,
    ],
)
def test_incoming_id_is_bound_echoed_and_logged(
    starlette_server: Server, http: httpx.Client, incoming: str
) -> None:
    marker = rid("marker")
    response = http.get("/items/1", params={"m": marker}, headers={"X-Request-ID": incoming})

    assert incoming == response.headers["x-request-id"]
    assert incoming == response.json()[F.REQUEST_ID]
    [inner] = wait_for(starlette_server.log_file, lambda r: r.get("marker") == marker)
    assert incoming == inner[F.REQUEST_ID]
    assert http_events(starlette_server.log_file, incoming)


def test_request_without_id_gets_a_new_uuid4(starlette_server: Server, http: httpx.Client) -> None:
    response = http.get("/items/2")

    new_id = response.headers["x-request-id"]
    assert HEX32.fullmatch(new_id)
    assert uuid.UUID(new_id).version == 4
    assert new_id == response.json()[F.REQUEST_ID]
    assert http_events(starlette_server.log_file, new_id)


HOSTILE_IDS = [
    pytest.param(b'quote"and\\backslash', id="quotes"),
    pytest.param(b"with spaces", id="spaces"),
    pytest.param(b'{"request_id": "forged"}', id="json"),
    pytest.param("sep\u2028arator\u2029".encode(), id="unicode-line-separators"),
    pytest.param("ünïcödé".encode(), id="non-ascii"),
    pytest.param(b"tab\there", id="tab"),
    pytest.param(b"../../etc/passwd", id="path"),
    pytest.param(b"y" * 129, id="129-chars"),
    pytest.param(b"z" * 10240, id="10KB"),
]


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_hostile_id_is_replaced_and_never_written(
    starlette_server: Server, http: httpx.Client, hostile: bytes
) -> None:
    marker = rid("hostile")
    response = http.get("/items/3", params={"m": marker}, headers={"X-Request-ID": hostile})

    replaced = response.headers["x-request-id"]
    assert HEX32.fullmatch(replaced)
    [inner] = wait_for(starlette_server.log_file, lambda r: r.get("marker") == marker)
    assert replaced == inner[F.REQUEST_ID]
    assert http_events(starlette_server.log_file, replaced)
    raw = starlette_server.log_file.read_bytes()
    text = hostile.decode("utf-8", "replace")
    assert hostile not in raw
    assert text.encode() not in raw
    assert b"forged" not in raw
    # Every line is still one JSON object.
    assert len(raw.splitlines()) == len(
        read_records(starlette_server.log_file, torn_last_line="skip")
    )


def test_newline_in_id_is_refused_by_uvicorn_before_the_app(starlette_server: Server) -> None:
    # httpx refuses to send this, so the bytes go over a raw socket. uvicorn answers 400 before
    # any application code runs: what the middleware does with such an id is the next test's.
    injected = b'evil\n{"level":"critical","message":"injected"}'
    with socket.create_connection(("127.0.0.1", starlette_server.port), timeout=10) as sock:
        sock.sendall(
            b"GET /items/4 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: " + injected + b"\r\n"
            b"Connection: close\r\n\r\n"
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert int(reply.split(b" ", 2)[1]) == 400
    assert b"injected" not in starlette_server.log_file.read_bytes()


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param(b'evil\n{"level":"critical","message":"injected"}', id="lf-json"),
        pytest.param(b"evil\r\ninjected: 1", id="crlf-header"),
        pytest.param(b"evil\x00injected", id="nul"),
    ],
)
def test_newline_in_id_cannot_inject_a_line(log_file: Path, hostile: bytes) -> None:
    """An ASGI server (or a proxy in front of one) that passes control bytes in a header value
    through: the middleware replaces the id, and neither the line nor the response carries it."""
    sent = call(RequestContextMiddleware(hello_app()), headers=[(b"x-request-id", hostile)])
    replaced = response_id(sent)
    assert HEX32.fullmatch(replaced)
    assert sent[0]["status"] == 200
    records = shutdown_and_read(log_file)
    [event] = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert (event[F.REQUEST_ID], event[F.STATUS_CODE]) == (replaced, 200)
    assert b"injected" not in log_file.read_bytes()


@pytest.mark.slow
def test_concurrent_requests_never_see_each_others_context(starlette_server: Server) -> None:
    batch = uuid.uuid4().hex[:8]
    ids = {n: f"conc-{batch}-{n}" for n in range(100)}

    async def one(client: httpx.AsyncClient, n: int) -> httpx.Response:
        path = f"/items/{n}" if n % 2 else f"/sync/{n}"
        return await client.get(
            path, params={"m": f"{batch}-{n}"}, headers={"X-Request-ID": ids[n]}
        )

    async def all_at_once() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(
            base_url=starlette_server.base_url, limits=limits, trust_env=False, timeout=60
        ) as client:
            return await asyncio.gather(*(one(client, n) for n in range(100)))

    responses = asyncio.run(all_at_once())

    for n, response in enumerate(responses):
        assert response.status_code == 200
        assert ids[n] == response.headers["x-request-id"]
        assert ids[n] == response.json()[F.REQUEST_ID]
    inner = wait_for(
        starlette_server.log_file, lambda r: str(r.get("marker", "")).startswith(batch), 100
    )
    for record in inner:
        n = int(record["marker"].rsplit("-", 1)[1])
        assert ids[n] == record[F.REQUEST_ID], record
        assert ("item read" if n % 2 else "sync item read") == record[F.MESSAGE]
    events = wait_for(
        starlette_server.log_file,
        lambda r: (
            r.get(F.EVENT) == F.EVENT_HTTP_REQUEST
            and str(r.get(F.REQUEST_ID, "")).startswith(f"conc-{batch}-")
        ),
        100,
    )
    for event in events:
        n = int(event[F.REQUEST_ID].rsplit("-", 1)[1])
        assert (f"/items/{n}" if n % 2 else f"/sync/{n}") == event[F.PATH]
    assert len({e[F.REQUEST_ID] for e in events}) == 100


def test_unhandled_exception_gives_500_with_id_header_and_error_event(
    starlette_server: Server, http: httpx.Client
) -> None:
    request_id = rid("fail")
    response = http.get("/fail", headers={"X-Request-ID": request_id})

    assert response.status_code == 500
    assert request_id == response.headers["x-request-id"]
    [event] = http_events(starlette_server.log_file, request_id)
    assert event[F.STATUS_CODE] == 500
    assert event[F.LEVEL] == F.ERROR
    assert event[F.ROUTE] == "/fail"
    assert event[F.EXCEPTION_TYPE] == "RuntimeError"
    assert event[F.EXCEPTION_MESSAGE] == "boom from /fail"
    assert "raise RuntimeError" in event[F.EXCEPTION_STACKTRACE]


def test_streaming_response_event_comes_after_the_last_chunk(
    starlette_server: Server, http: httpx.Client
) -> None:
    request_id = rid("stream")
    response = http.get("/stream", headers={"X-Request-ID": request_id})

    assert response.text == "chunk0;chunk1;chunk2;chunk3;chunk4;"
    assert request_id == response.headers["x-request-id"]
    [event] = http_events(starlette_server.log_file, request_id)
    assert event[F.STATUS_CODE] == 200
    lines = [
        r
        for r in read_records(starlette_server.log_file, torn_last_line="skip")
        if r.get(F.REQUEST_ID) == request_id
    ]
    messages = [r[F.MESSAGE] for r in lines]
    assert messages.count("chunk produced") == 5
    assert messages.index("stream generator done") < messages.index(event[F.MESSAGE])
    assert event == lines[-1]


def test_client_that_disconnects_still_gets_an_event(starlette_server: Server) -> None:
    request_id = rid("gone")
    with socket.create_connection(("127.0.0.1", starlette_server.port), timeout=10) as sock:
        sock.sendall(
            b"GET /endless HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: "
            + request_id.encode()
            + b"\r\n\r\n"
        )
        received = b""
        while b"tick1" not in received:
            received += sock.recv(4096)
    # The socket is closed mid-stream.
    [event] = http_events(starlette_server.log_file, request_id)
    assert event[F.STATUS_CODE] == 499
    assert event[F.LEVEL] == F.WARNING
    assert event[F.ROUTE] == "/endless"
    assert F.EXCEPTION_TYPE not in event


def test_background_task_sees_the_request_id(starlette_server: Server, http: httpx.Client) -> None:
    request_id = rid("bg")
    response = http.get("/background", headers={"X-Request-ID": request_id})

    assert response.text == "accepted"
    [line] = wait_for(
        starlette_server.log_file,
        lambda r: r.get(F.MESSAGE) == "background task ran" and r.get(F.REQUEST_ID) == request_id,
    )
    assert request_id == line[F.REQUEST_ID]
    assert http_events(starlette_server.log_file, request_id)


def test_websocket_gets_an_id_and_passes_through(starlette_server: Server) -> None:
    request_id = rid("ws")
    with ws_connect(
        starlette_server.ws_url + "/ws", additional_headers={"X-Request-ID": request_id}, proxy=None
    ) as websocket:
        assert request_id == websocket.recv(timeout=10)
        assert websocket.response is not None
        assert request_id == websocket.response.headers["X-Request-ID"]  # the handshake's

    [line] = wait_for(
        starlette_server.log_file,
        lambda r: r.get(F.MESSAGE) == "websocket connected" and r.get(F.REQUEST_ID) == request_id,
    )
    assert request_id == line[F.REQUEST_ID]
    # No http_request event for a websocket.
    assert not [
        r
        for r in read_records(starlette_server.log_file, torn_last_line="skip")
        if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST and r.get(F.REQUEST_ID) == request_id
    ]


def test_lifespan_passes_through(starlette_server: Server) -> None:
    assert wait_for(starlette_server.log_file, lambda r: r.get(F.MESSAGE) == "lifespan startup")


def test_valid_traceparent_binds_trace_and_span_ids(
    starlette_server: Server, http: httpx.Client
) -> None:
    request_id = rid("trace")
    response = http.get(
        "/items/5", headers={"X-Request-ID": request_id, "traceparent": TRACEPARENT}
    )

    body = response.json()
    assert body[F.TRACE_ID] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert body[F.SPAN_ID] == "00f067aa0ba902b7"
    [event] = http_events(starlette_server.log_file, request_id)
    assert event[F.TRACE_ID] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert event[F.SPAN_ID] == "00f067aa0ba902b7"


def test_invalid_traceparent_binds_nothing(starlette_server: Server, http: httpx.Client) -> None:
    request_id = rid("badtrace")
    response = http.get(
        "/items/5", headers={"X-Request-ID": request_id, "traceparent": "ff-" + TRACEPARENT[3:]}
    )

    assert F.TRACE_ID not in response.json()
    [event] = http_events(starlette_server.log_file, request_id)
    assert F.TRACE_ID not in event
    assert F.SPAN_ID not in event


def test_debug_path_is_logged_at_debug_and_skip_path_not_at_all(
    starlette_server: Server, http: httpx.Client
) -> None:
    health_id, skipped_id, after_id = rid("health"), rid("skipped"), rid("after")
    http.get("/health", headers={"X-Request-ID": health_id})
    skipped = http.get("/skipped", headers={"X-Request-ID": skipped_id})
    http.get("/items/6", headers={"X-Request-ID": after_id})

    [event] = http_events(starlette_server.log_file, health_id)
    assert event[F.LEVEL] == F.DEBUG
    assert skipped_id == skipped.headers["x-request-id"]
    http_events(starlette_server.log_file, after_id)  # written after the skipped one would be
    assert not [
        r
        for r in read_records(starlette_server.log_file, torn_last_line="skip")
        if r.get(F.REQUEST_ID) == skipped_id
    ]


def test_authenticated_user_is_in_the_event(starlette_server: Server, http: httpx.Client) -> None:
    request_id = rid("user")
    http.get("/items/8", headers={"X-Request-ID": request_id, "X-Test-User": "alice"})
    anonymous_id = rid("anon")
    http.get("/items/8", headers={"X-Request-ID": anonymous_id})

    assert http_events(starlette_server.log_file, request_id)[0][F.USER] == "alice"
    assert F.USER not in http_events(starlette_server.log_file, anonymous_id)[0]


@pytest.mark.parametrize(
    ("forwarded", "client_ip"),
    [
        (None, "127.0.0.1"),
        ("203.0.113.7", "203.0.113.7"),
        ("198.51.100.1, 203.0.113.7", "203.0.113.7"),
        ("203.0.113.7, 127.0.0.1", "203.0.113.7"),
        ("not-an-address", "127.0.0.1"),
        ("203.0.113.7, <script>", "127.0.0.1"),
    ],
)
def test_client_ip_behind_a_trusted_proxy(
    starlette_server: Server, http: httpx.Client, forwarded: str | None, client_ip: str
) -> None:
    request_id = rid("proxy")
    headers = {"X-Request-ID": request_id}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    http.get("/items/9", headers=headers)

    assert client_ip == http_events(starlette_server.log_file, request_id)[0][F.CLIENT_IP]


def test_uvicorn_access_line_is_not_written(starlette_server: Server, http: httpx.Client) -> None:
    request_id = rid("access")
    http.get("/items/10", headers={"X-Request-ID": request_id})
    http_events(starlette_server.log_file, request_id)

    records = read_records(starlette_server.log_file, torn_last_line="skip")
    assert not [r for r in records if r[F.LOGGER] == "uvicorn.access"]
    assert "GET /items/10" not in starlette_server.output()


# -- the usual FastAPI setup: app.add_middleware --------------------------------------------------


def test_fastapi_included_router_route_template(fastapi_server: Server) -> None:
    request_id = rid("fastapi")
    response = httpx.get(
        fastapi_server.base_url + "/api/users/12/orders/34",
        headers={"X-Request-ID": request_id},
        trust_env=False,
    )

    assert response.status_code == 200
    assert request_id == response.headers["x-request-id"]
    [event] = http_events(fastapi_server.log_file, request_id)
    assert event[F.ROUTE] == "/api/users/{user_id}/orders/{order_id}"
    [inner] = wait_for(
        fastapi_server.log_file,
        lambda r: r.get(F.MESSAGE) == "order read" and r.get(F.REQUEST_ID) == request_id,
    )
    assert inner[F.LOGGER] == "tests.fastapi"


def test_fastapi_sync_endpoint_sees_the_context(fastapi_server: Server) -> None:
    request_id = rid("fastapi-sync")
    response = httpx.get(
        fastapi_server.base_url + "/sync", headers={"X-Request-ID": request_id}, trust_env=False
    )

    assert request_id == response.json()[F.REQUEST_ID]
    wait_for(
        fastapi_server.log_file,
        lambda r: r.get(F.MESSAGE) == "sync endpoint" and r.get(F.REQUEST_ID) == request_id,
    )


def test_fastapi_unhandled_exception_event(fastapi_server: Server) -> None:
    request_id = rid("fastapi-fail")
    response = httpx.get(
        fastapi_server.base_url + "/fail", headers={"X-Request-ID": request_id}, trust_env=False
    )

    assert response.status_code == 500
    [event] = http_events(fastapi_server.log_file, request_id)
    assert event[F.STATUS_CODE] == 500
    assert event[F.ROUTE] == "/fail"
    assert event[F.EXCEPTION_TYPE] == "ValueError"
    assert event[F.EXCEPTION_MESSAGE] == "fastapi boom"


def test_fastapi_with_uvicorn_default_logging_writes_no_access_line(
    fastapi_server: Server,
) -> None:
    # This server runs with uvicorn's own logging config, which sets uvicorn.access to INFO with a
    # handler of its own before the application is imported.
    request_id = rid("fastapi-access")
    httpx.get(
        fastapi_server.base_url + "/sync", headers={"X-Request-ID": request_id}, trust_env=False
    )
    http_events(fastapi_server.log_file, request_id)

    assert not [
        r
        for r in read_records(fastapi_server.log_file, torn_last_line="skip")
        if r[F.LOGGER] == "uvicorn.access"
    ]
    assert '"GET /sync HTTP/1.1"' not in fastapi_server.output()


@pytest.mark.slow
def test_uvicorn_access_line_appears_when_silencing_is_off(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    with serve(
        "tests._uvicorn_server:fastapi_app",
        log_file,
        env={"TEST_SILENCE_UVICORN_ACCESS": "false"},
    ) as server:
        request_id = rid("loud")
        httpx.get(server.base_url + "/sync", headers={"X-Request-ID": request_id}, trust_env=False)
        http_events(log_file, request_id)
        access = wait_for(log_file, lambda r: r[F.LOGGER] == "uvicorn.access")
    assert "GET /sync" in access[0][F.MESSAGE]


# -- the example backend --------------------------------------------------------------------------


@pytest.mark.slow
def test_example_backend_routes_and_events(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    with serve("backend:app", log_file, factory=False, app_dir=EXAMPLES) as server:
        with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as client:
            ids = {
                name: rid(name) for name in ("list", "item", "missing", "fail", "slow", "health")
            }
            listed = client.get("/items", headers={"X-Request-ID": ids["list"]})
            item = client.get("/items/3", headers={"X-Request-ID": ids["item"]})
            missing = client.get("/items/999", headers={"X-Request-ID": ids["missing"]})
            # uvicorn closes the connection after an unhandled exception: not one to reuse.
            failed = client.get(
                "/fail", headers={"X-Request-ID": ids["fail"], "Connection": "close"}
            )
            slow = client.get("/slow", headers={"X-Request-ID": ids["slow"]})
            health = client.get("/health", headers={"X-Request-ID": ids["health"]})

        assert (
            listed.status_code,
            item.status_code,
            missing.status_code,
            failed.status_code,
            slow.status_code,
            health.status_code,
        ) == (200, 200, 404, 500, 200, 200)
        assert len(listed.json()) == 7
        assert ids["fail"] == failed.headers["x-request-id"]
        assert health.json()["status"] == "healthy"
        expected = {
            "list": ("/items", 200, F.INFO),
            "item": ("/items/{item_id}", 200, F.INFO),
            "missing": ("/items/{item_id}", 404, F.WARNING),
            "fail": ("/fail", 500, F.ERROR),
            "slow": ("/slow", 200, F.INFO),
            "health": ("/health", 200, F.DEBUG),
        }
        for name, (route, status, level) in expected.items():
            [event] = http_events(log_file, ids[name])
            assert (route, status, level) == (event[F.ROUTE], event[F.STATUS_CODE], event[F.LEVEL])
        records = read_records(log_file, torn_last_line="skip")  # the server is running
        by_id = {name: [r for r in records if r.get(F.REQUEST_ID) == ids[name]] for name in ids}
        assert any(r.get(F.EVENT) == F.EVENT_TIMING for r in by_id["list"])
        assert any(r.get(F.EVENT) == F.EVENT_METRIC for r in by_id["list"])
        assert any(r.get(F.MESSAGE) == "item read" for r in by_id["item"])
        assert any(
            r.get(F.EVENT) == F.EVENT_TIMING and r[F.OPERATION] == "slow_report"
            for r in by_id["slow"]
        )


# -- in-process: options and helpers --------------------------------------------------------------


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def call(
    app: Any,
    path: str = "/hello",
    headers: list[tuple[bytes, bytes]] | None = None,
    root_path: str = "",
) -> list[Any]:
    """One raw ASGI request; returns the messages the app sent."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "root_path": root_path,
        "query_string": b"",
        "headers": headers or [],
        "client": ("192.0.2.1", 40000),
        "server": ("testserver", 80),
    }
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def response_id(sent: list[Any]) -> str:
    return dict(sent[0]["headers"])[b"x-request-id"].decode()


@pytest.fixture(autouse=True)
def uvicorn_access_level() -> Iterator[logging.Logger]:
    """Constructing the middleware silences uvicorn's access logger: restore it for other tests."""
    logger = logging.getLogger("uvicorn.access")
    level = logger.level
    yield logger
    logger.setLevel(level)


def hello_app() -> Starlette:
    return Starlette(routes=[Route("/hello", hello)])


def test_construction_silences_uvicorn_access(uvicorn_access_level: logging.Logger) -> None:
    uvicorn_access_level.setLevel(logging.INFO)
    RequestContextMiddleware(hello_app(), silence_uvicorn_access=False)
    assert uvicorn_access_level.level == logging.INFO
    RequestContextMiddleware(hello_app())
    assert uvicorn_access_level.level == logging.WARNING


def test_server_start_silences_uvicorn_access_again(uvicorn_access_level: logging.Logger) -> None:
    # uvicorn configures logging after the app object exists when it is given the object itself.
    app = RequestContextMiddleware(hello_app())
    uvicorn_access_level.setLevel(logging.INFO)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[Any] = []

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert uvicorn_access_level.level == logging.WARNING

    uvicorn_access_level.setLevel(logging.INFO)
    no_lifespan = RequestContextMiddleware(hello_app())
    uvicorn_access_level.setLevel(logging.INFO)
    call(no_lifespan)
    assert uvicorn_access_level.level == logging.WARNING


def test_trust_incoming_id_false_always_makes_a_new_id() -> None:
    app = RequestContextMiddleware(hello_app(), trust_incoming_id=False)
    sent = call(app, headers=[(b"x-request-id", b"client-chosen")])
    assert HEX32.fullmatch(response_id(sent))


def test_id_validator_is_an_extra_check() -> None:
    app = RequestContextMiddleware(hello_app(), id_validator=lambda v: v.startswith("ok-"))
    assert response_id(call(app, headers=[(b"x-request-id", b"ok-1")])) == "ok-1"
    assert HEX32.fullmatch(response_id(call(app, headers=[(b"x-request-id", b"no-1")])))
    # A validator cannot let an unsafe value through.
    lenient = RequestContextMiddleware(hello_app(), id_validator=lambda v: True)
    assert HEX32.fullmatch(response_id(call(lenient, headers=[(b"x-request-id", b"a b")])))


def test_custom_header_name_and_id_generator() -> None:
    counter = iter(range(1, 100))
    app = RequestContextMiddleware(
        hello_app(), header_name="X-Correlation-ID", id_generator=lambda: f"gen-{next(counter)}"
    )
    sent = call(app)
    assert dict(sent[0]["headers"])[b"x-correlation-id"].decode() == "gen-1"


def test_unsafe_generated_id_is_replaced() -> None:
    app = RequestContextMiddleware(hello_app(), id_generator=lambda: "bad id\n")
    with capture_logs():
        sent = call(app)
        health = alkana_logging.pipeline_health()
    assert HEX32.fullmatch(response_id(sent))
    assert health["internal_errors"] == 1


def test_failing_user_resolver_keeps_the_event() -> None:
    def resolver(scope: Any) -> str:
        raise LookupError("no session store")

    app = RequestContextMiddleware(hello_app(), user_resolver=resolver)
    with capture_logs() as records:
        call(app)
        health = alkana_logging.pipeline_health()
    [event] = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert F.USER not in event
    assert health["internal_errors"] == 1


def test_app_that_never_responds_is_logged_as_500() -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    with capture_logs() as records:
        call(RequestContextMiddleware(silent))
    [event] = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert event[F.STATUS_CODE] == 500
    assert event[F.ROUTE] == F.ROUTE_UNMATCHED


def test_cancelled_request_is_logged_as_499_and_context_is_reset() -> None:
    async def cancelled(scope: Any, receive: Any, send: Any) -> None:
        raise asyncio.CancelledError

    with capture_logs() as records, pytest.raises(asyncio.CancelledError):
        call(RequestContextMiddleware(cancelled))
    [event] = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert event[F.STATUS_CODE] == 499
    assert F.EXCEPTION_TYPE not in event
    assert alkana_logging.get_context() == {}


def test_context_is_reset_after_the_request() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(alkana_logging.get_context())
        await PlainTextResponse("x")(scope, receive, send)

    with alkana_logging.bound_context(user="outer"):
        call(RequestContextMiddleware(app), headers=[(b"x-request-id", b"inner-1")])
        assert alkana_logging.get_context() == {"user": "outer"}
    assert seen[0] == {"user": "outer", F.REQUEST_ID: "inner-1"}


def test_app_header_is_not_duplicated() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("x", headers={"X-Request-ID": "from-app"})(scope, receive, send)

    sent = call(RequestContextMiddleware(app), headers=[(b"x-request-id", b"incoming")])
    assert [v for k, v in sent[0]["headers"] if k == b"x-request-id"] == [b"from-app"]


def test_app_message_is_not_changed_and_any_headers_iterable_gets_the_id() -> None:
    app_messages: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/plain")]
        start = {"type": "http.response.start", "status": 200, "headers": headers}
        app_messages.append(start)
        await send(start)
        await send({"type": "http.response.body", "body": b"x"})

    async def generated(scope: Any, receive: Any, send: Any) -> None:
        pairs = ((name, value) for name, value in [(b"content-type", b"text/plain")])
        await send({"type": "http.response.start", "status": 200, "headers": pairs})
        await send({"type": "http.response.body", "body": b"x"})

    sent = call(RequestContextMiddleware(app), headers=[(b"x-request-id", b"in-1")])
    assert sent[0]["headers"] == [(b"content-type", b"text/plain"), (b"x-request-id", b"in-1")]
    assert app_messages[0]["headers"] == [(b"content-type", b"text/plain")]
    assert sent[0] is not app_messages[0]

    sent = call(RequestContextMiddleware(generated), headers=[(b"x-request-id", b"in-2")])
    assert sent[0]["headers"] == [(b"content-type", b"text/plain"), (b"x-request-id", b"in-2")]


def test_duration_ends_once_the_last_chunk_was_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    # A clock the test moves (binary fractions: exact): 0.25 s of work, 0.125 s to send the last
    # chunk, then 8 s of work after the response (a background task) that the duration leaves out.
    clock = [1.0]
    monkeypatch.setattr(middleware, "_perf_counter", lambda: clock[0])

    async def app(scope: Any, receive: Any, send: Any) -> None:
        clock[0] += 0.25
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})
        clock[0] += 8.0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            clock[0] += 0.125

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "client": None}
    with capture_logs() as records:
        asyncio.run(RequestContextMiddleware(app)(scope, receive, send))
    [event] = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert event[F.DURATION_MS] == 375.0


def test_event_keeps_what_the_endpoint_bound_and_the_ids_it_cleared() -> None:
    async def binds(request: Request) -> PlainTextResponse:
        alkana_logging.bind_context(order_id="o-1")
        return PlainTextResponse("x")

    async def clears(request: Request) -> PlainTextResponse:
        alkana_logging.clear_context()
        return PlainTextResponse("x")

    app = RequestContextMiddleware(Starlette(routes=[Route("/b", binds), Route("/c", clears)]))
    headers = [(b"x-request-id", b"in-1"), (b"traceparent", TRACEPARENT.encode())]
    with capture_logs() as records:
        call(app, path="/b", headers=headers)
        call(app, path="/c", headers=headers)
    bound, cleared = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    trace = {F.TRACE_ID: "4bf92f3577b34da6a3ce929d0e0e4736", F.SPAN_ID: "00f067aa0ba902b7"}
    assert bound["order_id"] == "o-1"
    assert {F.REQUEST_ID: "in-1", **trace}.items() <= bound.items()
    assert "order_id" not in cleared
    assert {F.REQUEST_ID: "in-1", **trace}.items() <= cleared.items()
    assert alkana_logging.get_context() == {}


def test_route_shared_by_the_app_and_a_mount_gets_its_template_in_each() -> None:
    shared = Route("/s/{k}", hello)
    app = RequestContextMiddleware(Starlette(routes=[shared, Mount("/m", routes=[shared])]))
    with capture_logs() as records:
        call(app, path="/s/1")
        call(app, path="/m/s/1")
        call(app, path="/api/s/1", root_path="/api")
    events = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert [e[F.ROUTE] for e in events] == ["/s/{k}", "/m/s/{k}", "/s/{k}"]
    assert [e[F.PATH] for e in events] == ["/s/1", "/m/s/1", "/api/s/1"]


def test_route_template_without_scope_route_matches_the_router_again() -> None:
    # Starlette before 0.47 leaves no scope["route"]: the routes are matched from the router.
    app = Starlette(
        routes=[Route("/a/{n:int}", hello), Mount("/m", routes=[Route("/b/{k}", hello)])]
    )
    scope = {"type": "http", "path": "/m/b/2", "method": "GET", "headers": [], "router": app.router}
    assert route_template(scope, "", 200) == "/m/b/{k}"
    assert route_template({**scope, "path": "/a/5"}, "", 200) == "/a/{n:int}"
    assert route_template({**scope, "path": "/zzz"}, "", 200) == F.ROUTE_UNMATCHED
    assert route_template({**scope, "path": "/a/5"}, "", 404) == F.ROUTE_UNMATCHED


def test_route_template_puts_mount_parameters_back() -> None:
    app = Starlette(routes=[Mount("/t/{tenant}", routes=[Route("/b/{k}", hello)])])
    with capture_logs() as records:
        call(RequestContextMiddleware(app), path="/t/acme/b/acme")
    [event] = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert event[F.ROUTE] == "/t/{tenant}/b/{k}"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (TRACEPARENT, ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")),
        (TRACEPARENT.encode(), ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")),
        ("01-" + TRACEPARENT[3:], None),  # another version
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
        (TRACEPARENT.upper(), None),
        (TRACEPARENT + "-extra", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", None),
        ("", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n", None),
    ],
)
def test_parse_traceparent(header: str | bytes, expected: tuple[str, str] | None) -> None:
    assert expected == parse_traceparent(header)


def test_new_request_id_is_a_uuid4_hex() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    for value in ids:
        assert HEX32.fullmatch(value)
        assert uuid.UUID(value).version == 4
        assert uuid.UUID(value).variant == uuid.RFC_4122


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("abc", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("a b", False),
        ("é", False),
    ],
)
def test_is_safe_request_id(value: str, safe: bool) -> None:
    assert safe == is_safe_request_id(value)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"header_name": "X Request"}, ValueError, "header_name"),
        ({"header_name": ""}, ValueError, "header_name"),
        ({"id_generator": "uuid4"}, TypeError, "id_generator"),
        ({"id_validator": 3}, TypeError, "id_validator"),
        ({"user_resolver": "user"}, TypeError, "user_resolver"),
        ({"trust_incoming_id": "yes"}, TypeError, "trust_incoming_id"),
        ({"silence_uvicorn_access": 1}, TypeError, "silence_uvicorn_access"),
        ({"skip_paths": "/health"}, TypeError, "skip_paths"),
        ({"debug_paths": ["health"]}, ValueError, "debug_paths"),
        ({"trusted_proxies": "10.0.0.1"}, TypeError, "trusted_proxies"),
        ({"trusted_proxies": ["10.0.0.300"]}, ValueError, "trusted_proxies"),
    ],
)
def test_bad_options_are_refused(
    options: dict[str, Any],
    error: type[Exception],
    match: str,
    uvicorn_access_level: logging.Logger,
) -> None:
    with pytest.raises(error, match=match):
        RequestContextMiddleware(hello_app(), **options)


FORK_SCRIPT = """
import os
from alkana_logging.middleware import new_request_id

new_request_id()  # the parent now holds a batch of ready ids
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(read_end)
    os.write(write_end, ",".join(new_request_id() for _ in range(100)).encode())
    os._exit(0)
os.close(write_end)
data = b""
while chunk := os.read(read_end, 65536):
    data += chunk
os.waitpid(pid, 0)
child = set(data.decode().split(","))
parent = {new_request_id() for _ in range(100)}
print(len(child), len(parent), len(child & parent))
"""


def test_forked_child_never_reuses_the_parents_ids() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert result.stdout.split() == ["100", "100", "0"]


FORK_EVENT_SCRIPT = """
import asyncio, json, os, sys
import alkana_logging
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from alkana_logging.middleware import RequestContextMiddleware

alkana_logging.setup(log_file=sys.argv[1], stdout=False)
app = Starlette(routes=[Route("/items/{item_id}", lambda r: PlainTextResponse("ok"))])
forked = []

def user(scope):  # forks while the event is being made: both processes go on
    if scope["path"] == "/items/fork-in-resolver":
        forked.append(os.fork())
    return "alice"

app.add_middleware(RequestContextMiddleware, user_resolver=user)

async def send(message):
    pass

def request(path):
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "headers": [], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 8000)}
    asyncio.run(app(scope, receive, send))

request("/items/parent")  # the event's record templates are made, with this pid
pid = os.fork()
if pid == 0:
    try:
        request("/items/child")
        alkana_logging.shutdown()
    finally:
        os._exit(0)
os.waitpid(pid, 0)
request("/items/parent-again")
request("/items/fork-in-resolver")
if forked[0] == 0:
    alkana_logging.shutdown()
    os._exit(0)
os.waitpid(forked[0], 0)
alkana_logging.shutdown()
print(json.dumps({"parent": os.getpid(), "child": pid, "resolver_child": forked[0]}))
"""


def test_a_forked_child_writes_the_event_with_its_own_pid(tmp_path: Path) -> None:
    # The event is filled into a copy of a record made once, with the process's pid: the
    # child of a fork after the first request, or of one in the user resolver after the copy
    # was made, must write its own.
    log_file = tmp_path / "app.log"
    result = subprocess.run(
        [sys.executable, "-c", FORK_EVENT_SCRIPT, str(log_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    pids = orjson.loads(result.stdout)
    events = sorted(
        (line[F.PATH], line[F.PID])
        for line in map(orjson.loads, log_file.read_bytes().splitlines())
        if line.get(F.EVENT) == F.EVENT_HTTP_REQUEST
    )
    assert events == sorted(
        [
            ("/items/parent", pids["parent"]),
            ("/items/child", pids["child"]),
            ("/items/parent-again", pids["parent"]),
            # A fork in the user resolver, after the event's record was copied: each its own.
            ("/items/fork-in-resolver", pids["parent"]),
            ("/items/fork-in-resolver", pids["resolver_child"]),
        ]
    )


def test_debug_and_skip_paths_are_the_apps_own_under_a_root_path() -> None:
    # uvicorn --root-path /svc: scope["path"] includes the root_path, the options do not.
    app = RequestContextMiddleware(
        Starlette(routes=[Route("/health", hello), Route("/skip", hello), Route("/x", hello)]),
        skip_paths=["/skip"],
    )
    with capture_logs() as records:
        call(app, path="/svc/health", root_path="/svc")
        call(app, path="/svc/skip", root_path="/svc")
        call(app, path="/svc/x", root_path="/svc")
    events = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert [(e[F.PATH], e[F.ROUTE], e[F.LEVEL]) for e in events] == [
        ("/svc/health", "/health", F.DEBUG),
        ("/svc/x", "/x", F.INFO),
    ]


@pytest.mark.slow
def test_unhandled_exception_is_one_line_not_two_with_uvicorns(tmp_path: Path) -> None:
    # uvicorn logs "Exception in ASGI application" with the same exception after the middleware
    # re-raised it (without the request's id): reports would count each exception twice.
    log_file = tmp_path / "app.log"
    with serve("tests._uvicorn_server:fastapi_app", log_file) as server:
        for _ in range(3):
            response = httpx.get(server.base_url + "/fail", trust_env=False, timeout=30)
            assert response.status_code == 500
    records = read_records(log_file)
    with_exception = [r for r in records if F.EXCEPTION_TYPE in r]
    assert [(r[F.LOGGER], r[F.EXCEPTION_TYPE]) for r in with_exception] == [
        ("alkana_logging.middleware", "ValueError")
    ] * 3
    assert all(F.REQUEST_ID in r for r in with_exception)
    assert not [r for r in records if "Exception in ASGI application" in r[F.MESSAGE]]


def test_client_that_leaves_a_plain_endpoint_early_is_499(
    starlette_server: Server, http: httpx.Client
) -> None:
    # The endpoint reads nothing from the request, and uvicorn drops the response silently.
    request_id = rid("left")
    with socket.create_connection(("127.0.0.1", starlette_server.port), timeout=10) as sock:
        sock.sendall(
            b"GET /slow?s=0.6 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: "
            + request_id.encode()
            + b"\r\n\r\n"
        )
    # A client that stays gets its response and its status.
    stayed = rid("stayed")
    response = http.get("/slow", params={"s": "0.05"}, headers={"X-Request-ID": stayed})
    assert response.status_code == 200
    assert response.text == "late"
    [event] = http_events(starlette_server.log_file, request_id)
    assert event[F.STATUS_CODE] == 499
    assert event[F.ROUTE] == "/slow"
    assert http_events(starlette_server.log_file, stayed)[0][F.STATUS_CODE] == 200


@pytest.mark.parametrize("gone", [True, False], ids=["client-gone", "client-there"])
def test_disconnect_is_polled_from_receive_for_any_server(gone: bool) -> None:
    # A server other than uvicorn: receive() gives the body, then a disconnect if the client
    # has gone, else it waits (and that wait is abandoned, not left pending).
    waiting: list[asyncio.Event] = []

    async def receive() -> dict[str, Any]:
        if not waiting:
            waiting.append(asyncio.Event())
            return {"type": "http.request", "body": b"", "more_body": False}
        if gone:
            return {"type": "http.disconnect"}
        await waiting[0].wait()
        return {"type": "http.disconnect"}

    sent: list[Any] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = RequestContextMiddleware(hello_app())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
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
    with capture_logs() as records:
        asyncio.run(app(scope, receive, send))
    [event] = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert event[F.STATUS_CODE] == (499 if gone else 200)
    assert not [r for r in records if F.LOG_ERROR in r or "failed" in str(r[F.MESSAGE])]
    assert not waiting[0]._waiters  # type: ignore[attr-defined]  # no waiter left behind


@pytest.mark.parametrize(("level", "written"), [("WARNING", []), ("INFO", [200])])
def test_the_http_request_event_follows_the_log_level(
    tmp_path: Path, level: str, written: list[int]
) -> None:
    from tests._frontends import setup_file

    log_file = setup_file(tmp_path, level=level)
    sent = call(RequestContextMiddleware(hello_app()))
    assert sent[0]["status"] == 200
    events = [r for r in shutdown_and_read(log_file) if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert [e[F.STATUS_CODE] for e in events] == written


# -- the event's line: written by the middleware's own path, as the general one writes it -------

#: Keys of a line that differ from one request to the next.
_VARYING = (F.TIMESTAMP, F.DURATION_MS, F.REQUEST_ID)


def _one_event(app: Any, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": b"",
        "headers": headers or [],
        "client": ("127.0.0.1", 51000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.get_running_loop().create_future()  # waits, as a server's does
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        return None

    asyncio.run(app(scope, receive, send))


def _without_varying(line: bytes) -> list[tuple[str, Any]]:
    import orjson

    # The size of an oversize line moves with the duration's digits.
    return [
        (k, re.sub(r"line of \d+ bytes", "line of N bytes", v) if k == F.LOG_ERROR else v)
        for k, v in orjson.loads(line).items()
        if k not in _VARYING
    ]


class _Resolver:
    def __init__(self, user: Any) -> None:
        self.user = user

    def __call__(self, scope: dict[str, Any]) -> Any:
        return self.user


def _through_emit(
    pipeline: Any,
    ns: int,
    level: str,
    message: str,
    fields: dict[str, Any],
    error: BaseException | None,
    filled: bool,
) -> None:
    """The event written the general way, Pipeline.emit (which reads the bound context):
    what the middleware's own path must write the same."""
    if filled:  # a record the middleware filled in: its fields follow the schema's keys
        assert list(fields)[: len(F.SCHEMA_KEYS)] == list(F.SCHEMA_KEYS)
        fields = {k: v for k, v in fields.items() if k not in F.SCHEMA_KEYS}
    pipeline.emit(ns, level, middleware.LOGGER_NAME, message, fields, error)


@pytest.mark.parametrize(
    ("settings", "path", "user", "bound"),
    [
        pytest.param({}, "/items/42", None, {}, id="plain"),
        pytest.param({}, "/items/42", "alice", {}, id="with-user"),
        pytest.param(
            {"redact_keys": ("path", "route", "user", "client_ip")},
            "/items/42",
            "alice",
            {},
            id="event-keys-redacted",
        ),
        pytest.param({}, "/go/https://alice:s3cret@example.com/x", None, {}, id="url-secret"),
        pytest.param({}, "/items/42", {"name": "alice", "password": "pw"}, {}, id="dict-user"),
        pytest.param(
            {}, "/items/42", None, {"level": "bound", "password": "pw", "k": [1]}, id="context"
        ),
        pytest.param({"max_line_bytes": 1024}, "/items/" + "x" * 1200, None, {}, id="oversize"),
        pytest.param({}, "/items/\udcff", None, {}, id="surrogate"),
    ],
)
def test_event_line_is_the_general_renderers_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, Any],
    path: str,
    user: Any,
    bound: dict[str, Any],
) -> None:
    """The event's own path (Renderer.render_plain, the sinks without Pipeline.emit) writes what
    Pipeline.emit writes for the same request: same keys in the same order, same values, the
    same redaction, URL scrubbing, truncation and log_error; for the first request of a process
    (nothing cached yet) and the later ones."""
    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False, **settings)
    app = Starlette(routes=[Route("/items/{item_id}", lambda r: PlainTextResponse("ok"))])
    app.add_middleware(
        RequestContextMiddleware, user_resolver=_Resolver(user) if user is not None else None
    )
    with alkana_logging.bound_context(**bound):
        for _ in range(2):
            _one_event(app, path)
        general: Any = middleware._write_event
        monkeypatch.setattr(middleware, "_write_event", _through_emit)
        _one_event(app, path)
        assert general is not middleware._write_event
    lines = [line for line in log_file.read_bytes().splitlines(keepends=True) if line]
    assert len(lines) == 3
    first, second, reference = (_without_varying(line) for line in lines)
    assert reference == first
    assert reference == second
    record = dict(reference)
    assert record[F.EVENT] == F.EVENT_HTTP_REQUEST
    assert F.LOG_ERROR not in record or settings or "\udcff" in path


_TRACEPARENT = (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="new-id"),
        pytest.param([(b"x-request-id", b"incoming-1")], id="incoming-id"),
        pytest.param([_TRACEPARENT], id="traceparent"),
        pytest.param([(b"x-request-id", b"incoming-2"), _TRACEPARENT], id="id-and-traceparent"),
    ],
)
def test_event_line_with_its_ids_is_the_general_renderers_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, headers: list[tuple[bytes, bytes]]
) -> None:
    """With nothing bound around the request, the event's own path writes the request's ids
    from its fields instead of the context: the same keys in the same places (the ids right
    after the schema keys) with the same values as Pipeline.emit with the context."""
    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False)
    app = Starlette(routes=[Route("/items/{item_id}", lambda r: PlainTextResponse("ok"))])
    app.add_middleware(RequestContextMiddleware, id_generator=lambda: "generated-1")
    for _ in range(2):
        _one_event(app, "/items/42", list(headers))
    monkeypatch.setattr(middleware, "_write_event", _through_emit)
    _one_event(app, "/items/42", list(headers))
    lines = [line for line in log_file.read_bytes().splitlines(keepends=True) if line]
    assert len(lines) == 3
    varying = (F.TIMESTAMP, F.DURATION_MS)
    first, second, reference = (
        [(k, v) for k, v in orjson.loads(line).items() if k not in varying] for line in lines
    )
    assert reference == first
    assert reference == second
    keys = [k for k, _ in reference]
    assert keys.index(F.REQUEST_ID) < keys.index(F.EVENT)
    record = dict(first)
    assert record[F.REQUEST_ID] == dict(headers).get(b"x-request-id", b"generated-1").decode()
    if _TRACEPARENT in headers:
        assert (record[F.TRACE_ID], record[F.SPAN_ID]) == (
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00f067aa0ba902b7",
        )
    else:
        assert F.TRACE_ID not in record


def test_event_line_redacts_the_request_id_when_it_is_a_secret(tmp_path: Path) -> None:
    """The ids in the event's fields are judged as the context's would be: a redact_keys entry
    for request_id redacts it there too (the event's own path checks its keys once)."""
    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False, redact_keys=("request_id",))
    app = Starlette(routes=[Route("/items/{item_id}", lambda r: PlainTextResponse("ok"))])
    app.add_middleware(RequestContextMiddleware)
    for _ in range(2):
        _one_event(app, "/items/42", [(b"x-request-id", b"incoming-1")])
    lines = [orjson.loads(line) for line in log_file.read_bytes().splitlines() if line]
    assert [line[F.REQUEST_ID] for line in lines] == [REDACTED, REDACTED]


def _http_routes(log_file: Path) -> list[str]:
    lines = [orjson.loads(line) for line in log_file.read_bytes().splitlines() if line]
    return [line[F.ROUTE] for line in lines if line.get(F.EVENT) == F.EVENT_HTTP_REQUEST]


async def _ok(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


def test_route_templates_stay_right_when_a_route_is_both_top_level_and_mounted(
    tmp_path: Path,
) -> None:
    """The template of a route seen matching a whole path is cached; the same route object also
    under a Mount, in this application or in another one that mounts it, keeps its prefix there
    whatever came before, and a mounted application's own routes too."""
    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False)
    shared = Route("/items/{item_id}", _ok)
    top_only = Route("/users/{user_id}", _ok)
    inner = Starlette(routes=[Route("/users/{user_id}", _ok)])
    alone = Starlette(routes=[shared])  # also served on its own (a test client, a second app)
    alone.add_middleware(RequestContextMiddleware)
    app = Starlette(
        routes=[
            shared,
            top_only,
            Mount("/v1", routes=[shared]),
            Mount("/inner", app=inner),
            Mount("/alone", app=alone),
        ]
    )
    app.add_middleware(RequestContextMiddleware)
    # A mount whose application is wrapped (its routes cannot be read through the Mount).
    wrapped = Mount("/wrapped", app=CORSMiddleware(Router(routes=[shared]), allow_origins=["*"]))
    around = Starlette(routes=[shared, wrapped])
    around.add_middleware(RequestContextMiddleware)
    paths = ["/items/1", "/v1/items/2", "/users/3", "/inner/users/4"]
    for _ in range(3):
        _one_event(alone, "/items/6")
        for path in paths:
            _one_event(app, path)
        _one_event(around, "/wrapped/items/5")
        _one_event(app, "/alone/items/7")
    # Starlette before 0.47 leaves no route in the scope: the routes are matched again from the
    # router, uncached, and a wrapped application's routes cannot be read (its mount's template).
    leaves_route = tuple(int(p) for p in starlette.__version__.split(".")[:2]) >= (0, 47)
    expected = ["/items/{item_id}", "/v1/items/{item_id}", "/users/{user_id}"]
    expected += [
        "/inner/users/{user_id}",
        "/wrapped/items/{item_id}" if leaves_route else "/wrapped",
    ]
    # A mounted application's own middleware leaves the line to the outer one.
    once = ["/items/{item_id}", *expected, "/alone/items/{item_id}"]
    assert _http_routes(log_file) == once * 3
    assert (id(top_only) in middleware._WHOLE) is leaves_route


def test_route_templates_stay_right_when_the_routes_change_after_requests(tmp_path: Path) -> None:
    """A Mount added at run time around a route already cached, a route's path changed, and an
    application dropped: the templates follow, and the cache keeps no route alive."""
    import gc
    import weakref

    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False)
    items = Route("/items/{item_id}", _ok)
    renamed = Route("/old/{x}", _ok)
    app = Starlette(routes=[items, renamed])
    app.add_middleware(RequestContextMiddleware)
    _one_event(app, "/items/1")
    _one_event(app, "/old/1")
    app.router.routes.append(Mount("/api/v1", routes=[items]))
    _one_event(app, "/api/v1/items/2")
    _one_event(app, "/items/3")
    renamed.path = "/new/{x}"  # the regex stays the old one: route_template() decides
    _one_event(app, "/old/2")
    assert _http_routes(log_file) == [
        "/items/{item_id}",
        "/old/{x}",
        "/api/v1/items/{item_id}",
        "/items/{item_id}",
        "/new/{x}",
    ]
    dropped = Route("/gone/{x}", _ok)
    gone = Starlette(routes=[dropped])
    gone.add_middleware(RequestContextMiddleware)
    _one_event(gone, "/gone/1")
    watch = weakref.ref(dropped)
    del gone, dropped
    gc.collect()
    assert watch() is None


def test_route_templates_of_fastapi_routers_included_with_and_without_a_prefix(
    tmp_path: Path,
) -> None:
    """The same APIRoute objects at the top level and through include_router(prefix=...), the
    second router included after requests were served: each request keeps its own prefix."""
    from fastapi import APIRouter, FastAPI

    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False)
    api = APIRouter()

    @api.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    app = FastAPI(routes=list(api.routes))
    app.include_router(api, prefix="/api/v1")
    app.add_middleware(RequestContextMiddleware)
    for path in ("/api/v1/items/1", "/items/2", "/api/v1/items/3"):
        _one_event(app, path)
    app.include_router(api, prefix="/api/v2")
    app.middleware_stack = None  # rebuilt with the new routes, as at the next start
    for path in ("/items/4", "/api/v2/items/5", "/api/v1/items/6"):
        _one_event(app, path)
    v1, v2, top = "/api/v1/items/{item_id}", "/api/v2/items/{item_id}", "/items/{item_id}"
    assert _http_routes(log_file) == [v1, top, v1, top, v2, v1]


def test_route_templates_of_catch_all_routes_keep_the_mount_s_prefix(tmp_path: Path) -> None:
    """A {p:path} route matches the whole path as well as the part after a mount: under a
    Mount (of routes or of an application, one segment or more, mounts inside mounts, mounts
    with parameters in their own formats, values equal to a literal segment or to the route's
    own parameter) its template still begins with the mount's, with names and never values;
    the mount itself and a top-level catch-all keep their own."""
    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False)
    sub = Starlette(routes=[Route("/{p:path}", _ok)])
    app = Starlette(
        routes=[
            Mount("/files", routes=[Route("/{p:path}", _ok)]),
            Mount("/a/b", routes=[Route("/{p:path}", _ok)]),
            Mount("/t/{tenant}", routes=[Route("/f/{p:path}", _ok), Route("/{p:path}", _ok)]),
            Mount("/org-{org}", routes=[Route("/x/{item}", _ok), Route("/{p:path}", _ok)]),
            Mount("/v/{n:int}", routes=[Route("/{p:path}", _ok)]),
            Mount("/s/{p}", routes=[Route("/{p:path}", _ok)]),
            Mount("/k/{a}/{b}", routes=[Route("/{p:path}", _ok)]),
            Mount("/sub", app=sub),
            Mount("/n", routes=[Mount("/n", routes=[Route("/{p:path}", _ok)])]),
            Mount("/static", app=PlainTextResponse("static")),
            Route("/{p:path}", _ok),
        ]
    )
    app.add_middleware(RequestContextMiddleware)
    expected = {
        "/files/a/b/c": "/files/{p:path}",
        "/files/a": "/files/{p:path}",
        "/a/b/c/d": "/a/b/{p:path}",
        "/t/acme/f/x/y": "/t/{tenant}/f/{p:path}",
        "/t/t/z": "/t/{tenant}/{p:path}",
        "/t/beta/z": "/t/{tenant}/{p:path}",
        "/org-acme/x/1": "/org-{org}/x/{item}",
        "/org-acme/y": "/org-{org}/{p:path}",
        "/v/007/z": "/v/{n:int}/{p:path}",
        "/v/7/z": "/v/{n:int}/{p:path}",
        "/s/acme/z": "/s/{p}/{p:path}",
        "/k/1/1/x": "/k/{a}/{b}/{p:path}",
        "/sub/q/r": "/sub/{p:path}",
        "/n/n/z": "/n/n/{p:path}",
        "/static/app.js": "/static",
        "/elsewhere/top": "/{p:path}",
    }
    for path in [*expected, *expected]:  # twice: the second time from what was learnt
        _one_event(app, path)
    hosted = Starlette(
        routes=[
            Host(
                "{tenant}.example.com",
                app=Router(routes=[Mount("/api", routes=[Route("/{p:path}", _ok)])]),
            )
        ]
    )
    hosted.add_middleware(RequestContextMiddleware)
    _one_event(hosted, "/api/v1/x", [(b"host", b"api.example.com")])
    assert _http_routes(log_file) == [*expected.values(), *expected.values(), "/api/{p:path}"]


class _FailingRoute:
    """A foreign object in scope["route"] whose path cannot be read."""

    @property
    def path(self) -> str:
        raise RuntimeError("no path")


class _FailingApp:
    """A mounted application that raises on any attribute it lacks (a Mount reads .routes)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["path"].endswith("/foreign"):
            scope["route"] = _FailingRoute()
        await PlainTextResponse("ok")(scope, receive, send)


def test_a_route_that_cannot_be_read_still_gets_its_request_logged(tmp_path: Path) -> None:
    """Routes whose attributes raise: the request is logged all the same (the route the
    middleware cannot tell is <unmatched>, counted as an internal error), and the templates of
    the other routes, found by walking the routes past that one, stay right."""
    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False)
    app = Starlette(
        routes=[
            Mount("/failing", app=_FailingApp()),
            Mount("/t/{tenant}", routes=[Route("/x/{item}", _ok)]),
            Mount("/o/{org}", routes=[Route("/{org}/y", _ok)]),
        ]
    )
    app.add_middleware(RequestContextMiddleware)
    for path in ("/failing/foreign", "/failing/q", "/t/acme/x/1", "/o/acme/beta/y"):
        _one_event(app, path)
    health = alkana_logging.pipeline_health()
    assert _http_routes(log_file) == [
        F.ROUTE_UNMATCHED,
        "/failing",
        "/t/{tenant}/x/{item}",
        "/o/{org}/{org}/y",
    ]
    assert health["internal_errors"] == 1


def test_a_convertor_registered_in_place_of_str_that_allows_a_slash_keeps_the_prefix(
    tmp_path: Path,
) -> None:
    """``register_url_convertor("str", ...)`` with a regex that matches a "/", before the
    middleware is imported: routes built with it are not taken as whole-path matches (their
    template under a Mount keeps its prefix, however often they are requested)."""
    log_file = tmp_path / "app.log"
    script = f"""
from starlette.convertors import Convertor, register_url_convertor

class Anything(Convertor):
    regex = ".+"
    def convert(self, value): return value
    def to_string(self, value): return value

register_url_convertor("str", Anything())

import alkana_logging
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from alkana_logging.middleware import RequestContextMiddleware

async def ok(request):
    return PlainTextResponse("ok")

alkana_logging.setup(log_file={str(log_file)!r}, stdout=False)
app = Starlette(routes=[Mount("/a", routes=[Route("/{{name}}", ok)]), Route("/{{name}}", ok)])
app.add_middleware(RequestContextMiddleware)
with TestClient(app) as client:
    for path in ("/top", "/a/b", "/top", "/a/b/c"):
        client.get(path)
alkana_logging.shutdown()
"""
    result = run_child(script)
    assert result.returncode == 0, result.stderr
    assert _http_routes(log_file) == ["/{name}", "/a/{name}", "/{name}", "/a/{name}"]


def test_route_templates_of_catch_all_routes_under_wrapped_shared_and_changed_mounts(
    tmp_path: Path,
) -> None:
    """A catch-all under a mount of a wrapped router (whose routes the walk cannot read), the
    same route object under a literal mount in one application and a parameterised one in
    another, a mount replaced at run time, and 404s of parameterised mounts without routes:
    never a value in the template, and nothing learnt in one place is used in another."""
    from starlette.middleware.gzip import GZipMiddleware

    async def missing(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("missing", status_code=404)(scope, receive, send)

    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False)
    wrapped = Starlette(
        routes=[
            Mount("/lit", app=GZipMiddleware(Router([Route("/{p:path}", _ok)]))),
            Mount("/t/{tenant}", app=GZipMiddleware(Router([Route("/{p:path}", _ok)]))),
            Mount("/org-{org}/static", app=missing),
            Mount("/n{n:int}/files", app=missing),
            # Not catch-alls: a route of the same parameter name as its wrapped mount's (the
            # inner value hides the mount's), and one of another name.
            Mount("/orgs/{org}", app=GZipMiddleware(Router([Route("/{org}/x", _ok)]))),
            Mount("/w/{tenant}", app=GZipMiddleware(Router([Route("/items/{item}", _ok)]))),
        ]
    )
    shared = Route("/{p:path}", _ok)
    literal = Starlette(routes=[Mount("/x", routes=[shared])])
    named = Starlette(routes=[Mount("/{name}", routes=[shared])])
    for app in (wrapped, literal, named):
        app.add_middleware(RequestContextMiddleware)
    for path in (
        "/lit/a/b",
        "/t/acme/a/b",
        "/org-acme/static/x.js",
        "/n5/files/y",
        "/orgs/acme/beta/x",
        "/w/acme/items/5",
    ):
        _one_event(wrapped, path)
    for app in (literal, named, literal):
        _one_event(app, "/x/a")
    named.router.routes[0] = Mount("/x", routes=[shared])
    literal.router.routes[0] = Mount("/{name}", routes=[shared])
    for app in (literal, named):
        _one_event(app, "/x/a")
    # Starlette before 0.47 leaves no route in the scope: a wrapped router's routes cannot be
    # read (the mount's template).
    leaves_route = tuple(int(p) for p in starlette.__version__.split(".")[:2]) >= (0, 47)
    assert _http_routes(log_file) == [
        "/lit/{p:path}" if leaves_route else "/lit",
        "/t/{tenant}/{p:path}" if leaves_route else "/t/{tenant}",
        "/org-{org}/static",
        "/n{n:int}/files",
        "/orgs/{org}/{org}/x" if leaves_route else "/orgs/{org}",
        "/w/{tenant}/items/{item}" if leaves_route else "/w/{tenant}",
        "/x/{p:path}",
        "/{name}/{p:path}",
        "/x/{p:path}",
        "/{name}/{p:path}",
        "/x/{p:path}",
    ]
