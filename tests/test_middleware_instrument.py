"""``instrument(app)`` in real FastAPI applications under a real uvicorn on 127.0.0.1: the id
on every response (the app's own exception handlers, Starlette's plain 500 and debug page),
bound while those handlers run; a mounted sub-application with its own middleware; the app
object still usable; OpenTelemetry's FastAPI instrumentation beside ours."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware

from alkana_logging import fields as F
from alkana_logging.middleware import RequestContextMiddleware, instrument
from tests._logfiles import read_records
from tests._uvicorn_server import Server, serve, wait_for

APP = "tests._uvicorn_server:fastapi_instrumented_app"


def rid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def events(server: Server, request_id: str, count: int = 1) -> list[dict[str, Any]]:
    return wait_for(
        server.log_file,
        lambda r: r.get(F.EVENT) == F.EVENT_HTTP_REQUEST and r.get(F.REQUEST_ID) == request_id,
        count,
    )


def get(server: Server, path: str, request_id: str | None = None) -> httpx.Response:
    headers = {"X-Request-ID": request_id} if request_id else {}
    return httpx.get(server.base_url + path, headers=headers, trust_env=False, timeout=30)


def _server(tmp_path_factory: pytest.TempPathFactory, mode: str) -> Iterator[Server]:
    log_file = tmp_path_factory.mktemp(mode) / "app.log"
    with serve(APP, log_file, env={"TEST_APP_MODE": mode}) as server:
        yield server


@pytest.fixture(scope="module")
def handlers_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(tmp_path_factory, "handlers")


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(tmp_path_factory, "plain")


@pytest.fixture(scope="module")
def debug_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(tmp_path_factory, "debug")


# -- the app's own exception handlers -------------------------------------------------------------


def test_exception_handler_runs_with_the_id_bound_and_its_500_carries_it(
    handlers_server: Server,
) -> None:
    request_id = rid("handled")
    response = get(handlers_server, "/fail", request_id)

    assert response.status_code == 500
    assert request_id == response.headers["x-request-id"]
    assert request_id == response.json()[F.REQUEST_ID]
    [line] = wait_for(
        handlers_server.log_file,
        lambda r: r[F.MESSAGE] == "handled by the app" and r.get("error") == "unhandled in /fail",
    )
    assert request_id == line.get(F.REQUEST_ID)
    [event] = events(handlers_server, request_id)
    assert event[F.STATUS_CODE] == 500
    assert event[F.LEVEL] == F.ERROR
    assert event[F.ROUTE] == "/fail"
    assert event[F.EXCEPTION_TYPE] == "ValueError"


def test_custom_exception_handler_response_carries_the_id(handlers_server: Server) -> None:
    request_id = rid("teapot")
    response = get(handlers_server, "/teapot", request_id)

    assert response.status_code == 418
    assert request_id == response.headers["x-request-id"]
    assert request_id == response.json()[F.REQUEST_ID]
    [event] = events(handlers_server, request_id)
    assert event[F.STATUS_CODE] == 418
    assert event[F.ROUTE] == "/teapot"


def test_http_exception_response_carries_a_new_id(handlers_server: Server) -> None:
    response = get(handlers_server, "/missing")

    assert response.status_code == 404
    request_id = response.headers["x-request-id"]
    [event] = events(handlers_server, request_id)
    assert event[F.STATUS_CODE] == 404
    assert event[F.LEVEL] == F.WARNING


def test_starlettes_plain_500_carries_the_id(plain_server: Server) -> None:
    request_id = rid("plain")
    response = get(plain_server, "/fail", request_id)

    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert request_id == response.headers["x-request-id"]
    [event] = events(plain_server, request_id)
    assert event[F.EXCEPTION_MESSAGE] == "unhandled in /fail"


def test_starlettes_debug_page_is_kept_and_carries_the_id(debug_server: Server) -> None:
    request_id = rid("debug")
    response = httpx.get(
        debug_server.base_url + "/fail",
        headers={"X-Request-ID": request_id, "Accept": "text/html"},
        trust_env=False,
        timeout=30,
    )

    assert response.status_code == 500
    assert "text/html" in response.headers["content-type"]
    assert "unhandled in /fail" in response.text
    assert "Traceback" in response.text
    assert request_id == response.headers["x-request-id"]
    events(debug_server, request_id)


# -- the app object stays the app -----------------------------------------------------------------


def test_app_state_and_routers_included_after_instrumenting_work(handlers_server: Server) -> None:
    request_id = rid("state")
    assert get(handlers_server, "/items/3", request_id).json()["state"] == "inventory"
    response = get(handlers_server, "/api/users/1/orders/2", request_id + "-o")

    assert response.status_code == 200
    [event] = events(handlers_server, request_id + "-o")
    assert event[F.ROUTE] == "/api/users/{user_id}/orders/{order_id}"


# -- a mounted sub-application with its own middleware --------------------------------------------


def test_nested_middleware_reuses_the_outer_id_and_writes_one_event(
    handlers_server: Server,
) -> None:
    response = get(handlers_server, "/sub/things/5")

    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert request_id == response.json()[F.REQUEST_ID]
    wait_for(
        handlers_server.log_file,
        lambda r: r[F.MESSAGE] == "sub-app thing" and r.get(F.REQUEST_ID) == request_id,
    )
    [event] = events(handlers_server, request_id)
    assert event[F.ROUTE] == "/sub/things/{n}"
    time.sleep(0.3)  # an inner event, if any, would have been written with the outer one
    assert [
        r
        for r in read_records(handlers_server.log_file, torn_last_line="skip")
        if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST and r.get(F.PATH) == "/sub/things/5"
    ] == [event]


# -- instrument() itself --------------------------------------------------------------------------


def test_instrument_returns_the_app_and_is_idempotent() -> None:
    app = FastAPI()
    assert instrument(app) is app
    assert instrument(app, header_name="X-Other") is app
    stack = app.build_middleware_stack()
    assert isinstance(stack, ServerErrorMiddleware)  # the shape other instrumentations expect
    assert isinstance(stack.app, RequestContextMiddleware)
    assert isinstance(stack.app.app, ServerErrorMiddleware)
    assert not isinstance(stack.app.app.app, RequestContextMiddleware)


def test_instrument_refuses_what_it_cannot_instrument() -> None:
    with pytest.raises(TypeError, match="expected a Starlette or FastAPI application"):
        instrument(lambda scope, receive, send: None)
    with pytest.raises(ValueError, match="header_name"):
        instrument(Starlette(), header_name="bad header")
    started = Starlette()
    started.middleware_stack = started.build_middleware_stack()
    with pytest.raises(RuntimeError, match="already started"):
        instrument(started)


# -- OpenTelemetry's FastAPI instrumentation beside ours ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("order", ["before", "after"])
def test_event_and_lines_carry_the_server_spans_ids(tmp_path: Path, order: str) -> None:
    log_file = tmp_path / "app.log"
    spans_file = tmp_path / "spans.json"
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    caller_span = "00f067aa0ba902b7"
    request_id = rid("otel")
    with serve(
        APP,
        log_file,
        env={"TEST_APP_MODE": "plain", "TEST_OTEL": order, "TEST_SPANS_FILE": str(spans_file)},
    ) as server:
        response = httpx.get(
            server.base_url + "/items/9",
            headers={
                "X-Request-ID": request_id,
                "traceparent": f"00-{caller_trace}-{caller_span}-01",
            },
            trust_env=False,
            timeout=30,
        )
        assert response.status_code == 200
        [event] = events(server, request_id)
        [line] = wait_for(
            log_file, lambda r: r[F.MESSAGE] == "item read" and r.get(F.REQUEST_ID) == request_id
        )
    spans = json.loads(spans_file.read_text())
    [server_span] = [s for s in spans if s["kind"] == "SERVER"]
    assert server_span["trace_id"] == caller_trace
    assert server_span["parent_span_id"] == caller_span
    assert server_span["http_route"] == "/items/{item_id}"
    assert (event[F.TRACE_ID], event[F.SPAN_ID]) == (caller_trace, server_span["span_id"])
    assert (line[F.TRACE_ID], line[F.SPAN_ID]) == (caller_trace, server_span["span_id"])
