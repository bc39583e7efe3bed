"""trace_id and span_id from OpenTelemetry spans (the real SDK, in-memory exporter), for every
front-end and for the middleware's event; the traceparent header when no span is recording; and
nothing of OpenTelemetry used when it is not installed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from loguru import logger as loguru_logger
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import alkana_logging
from alkana_logging import fields as F
from alkana_logging.middleware import instrument
from alkana_logging.testing import capture_logs
from tests._children import run_child

REPO = Path(__file__).resolve().parents[2]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def tracer() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("tests"), exporter
    provider.shutdown()


def hex_ids(span: Any) -> tuple[str, str]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def test_every_front_end_takes_the_ids_of_the_recording_span(
    tracer: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    otel, _ = tracer
    with capture_logs() as events:
        with otel.start_as_current_span("work") as span:
            ids = hex_ids(span)
            alkana_logging.get_logger("a").info("structlog")
            logging.getLogger("b").info("stdlib")
            loguru_logger.info("loguru")
            alkana_logging.metric("gauge", 1.0)
            with otel.start_as_current_span("child") as child:
                alkana_logging.get_logger("a").info("in the child")
        alkana_logging.get_logger("a").info("no span")

    assert [(e[F.TRACE_ID], e[F.SPAN_ID]) for e in events[:4]] == [ids] * 4
    assert (events[4][F.TRACE_ID], events[4][F.SPAN_ID]) == hex_ids(child)
    assert F.TRACE_ID not in events[5]


def test_another_runtime_context_takes_the_api(
    tracer: tuple[trace.Tracer, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    import opentelemetry.context.contextvars_context as contextvars_context

    class Other:
        pass

    monkeypatch.setattr(contextvars_context, "ContextVarsRuntimeContext", Other)
    otel, _ = tracer
    with capture_logs() as events:
        with otel.start_as_current_span("work") as span:
            alkana_logging.get_logger("a").info("in a span")
        alkana_logging.get_logger("a").info("no span")
    assert _state_context_is_the_api()
    assert (events[0][F.TRACE_ID], events[0][F.SPAN_ID]) == hex_ids(span)
    assert F.TRACE_ID not in events[1]


def _state_context_is_the_api() -> bool:
    from alkana_logging.pipeline import _SPAN, _otel_span_reader

    return _otel_span_reader()[1] == _SPAN


def test_span_ids_win_over_bound_ones_and_a_non_recording_span_changes_nothing(
    tracer: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    otel, _ = tracer
    unsampled = TracerProvider(sampler=ALWAYS_OFF)
    with (
        capture_logs() as events,
        alkana_logging.bound_context(trace_id="1" * 32, span_id="2" * 16),
    ):
        with otel.start_as_current_span("recording") as span:
            alkana_logging.get_logger("a").info("recording", span_id="given")
        with unsampled.get_tracer("t").start_as_current_span("unsampled"):
            alkana_logging.get_logger("a").info("not recording")
    assert (events[0][F.TRACE_ID], events[0][F.SPAN_ID]) == hex_ids(span)
    assert (events[1][F.TRACE_ID], events[1][F.SPAN_ID]) == ("1" * 32, "2" * 16)
    unsampled.shutdown()


def test_middleware_event_inside_a_server_span_has_its_ids(
    tracer: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    otel, _ = tracer
    seen: list[tuple[str, str]] = []

    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = instrument(Starlette(routes=[Route("/x", endpoint)]))

    async def traced(scope: Any, receive: Any, send: Any) -> None:
        # What an OpenTelemetry server middleware does: the request runs in a server span.
        with otel.start_as_current_span("GET /x", kind=trace.SpanKind.SERVER) as span:
            seen.append(hex_ids(span))
            await inner(scope, receive, send)

    transport = httpx.ASGITransport(app=traced)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/x", headers={"traceparent": TRACEPARENT})

    with capture_logs() as events:
        response = asyncio.run(call())
    assert response.status_code == 200
    [event] = [e for e in events if e.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert (event[F.TRACE_ID], event[F.SPAN_ID]) == seen[0]


def test_without_opentelemetry_nothing_of_it_is_used(tmp_path: Path) -> None:
    script = f"""
import sys
sys.modules["opentelemetry"] = None  # as if it were not installed: importing it fails
import alkana_logging
from alkana_logging import _state
alkana_logging.setup(log_file={str(tmp_path / "app.log")!r}, stdout=False)
assert _state.current()._otel_context is None
with alkana_logging.bound_context(trace_id="{"a" * 32}", span_id="{"b" * 16}"):
    alkana_logging.get_logger("x").info("line")
alkana_logging.shutdown()
assert not [m for m in sys.modules if m.startswith("opentelemetry.")]
"""
    result = run_child(script)
    assert result.returncode == 0, result.stderr
    [line] = [json.loads(x) for x in (tmp_path / "app.log").read_text().splitlines()]
    assert (line[F.TRACE_ID], line[F.SPAN_ID]) == ("a" * 32, "b" * 16)


def test_json_formatter_wired_by_hand_takes_the_span_ids(
    tracer: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    otel, _ = tracer
    formatter = alkana_logging.JsonFormatter(app_name="svc")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "inside", None, None)
    with otel.start_as_current_span("work") as span:
        inside = json.loads(formatter.format(record))
    outside = json.loads(formatter.format(record))
    assert (inside[F.TRACE_ID], inside[F.SPAN_ID]) == hex_ids(span)
    assert F.TRACE_ID not in outside


@pytest.mark.parametrize("otel_first", [True, False], ids=["otel-first", "ours-first"])
def test_event_has_the_server_span_of_fastapi_instrumentation(
    tracer: tuple[trace.Tracer, InMemorySpanExporter], otel_first: bool
) -> None:
    # OpenTelemetry's ASGI middleware ends the server span when the last body chunk is sent,
    # before the event is written; nothing is logged inside the endpoint.
    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    _, exporter = tracer
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI()

    @app.get("/items/{n}")
    async def item(n: int) -> dict[str, int]:
        return {"n": n}

    if otel_first:
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
        instrument(app)
    else:
        instrument(app)
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    transport = httpx.ASGITransport(app=app)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/items/3", headers={"traceparent": TRACEPARENT})

    try:
        with capture_logs() as events:
            response = asyncio.run(call())
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
        provider.shutdown()
    assert response.status_code == 200
    [server] = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    [event] = [e for e in events if e.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert (event[F.TRACE_ID], event[F.SPAN_ID]) == hex_ids(server)
    assert event[F.TRACE_ID] == TRACEPARENT.split("-")[1]  # the caller's trace, our span
    # The check for a client gone (499) never calls OpenTelemetry's traced receive(): it would
    # add an "http receive" span to every request.
    names = [span.name for span in exporter.get_finished_spans()]
    assert not [name for name in names if "receive" in name], names


@pytest.mark.parametrize("otel_first", [True, False], ids=["otel-first", "ours-first"])
def test_middleware_stays_after_opentelemetry_uninstruments_the_app(otel_first: bool) -> None:
    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    provider = TracerProvider()
    app = FastAPI()

    @app.get("/x")
    async def x() -> dict[str, str]:
        return {}

    if otel_first:
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
        instrument(app)
    else:
        instrument(app)
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    FastAPIInstrumentor.uninstrument_app(app)  # as OpenTelemetry users' test teardowns do
    assert _middleware_layers(app.middleware_stack) == 1  # it rebuilt the stack: ours is in it
    app.middleware_stack = None
    assert instrument(app) is app  # already in place: not a second one

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/x")

    with capture_logs() as events:
        response = asyncio.run(call())
    provider.shutdown()
    [event] = [e for e in events if e.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert response.headers["x-request-id"] == event[F.REQUEST_ID]
    assert _middleware_layers(app.middleware_stack) == 1


def _middleware_layers(stack: Any) -> int:
    layers = 0
    while stack is not None:
        layers += type(stack).__name__ == "RequestContextMiddleware"
        stack = getattr(stack, "app", None)
    return layers


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "processors"])
def test_other_handlers_get_the_call_s_own_fields_and_the_line_the_span_s(
    tracer: tuple[trace.Tracer, InMemorySpanExporter], tmp_path: Path, direct: bool
) -> None:
    """The span's ids go into the line; a foreign handler (pytest's caplog, say) gets the
    record the call made, whichever structlog path it took."""
    otel, _ = tracer
    log_file = tmp_path / "app.log"
    processors = [] if direct else [lambda logger, name, event_dict: event_dict]
    alkana_logging.setup(log_file=str(log_file), stdout=False, processors=processors)
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    logging.root.addHandler(handler)
    try:
        with otel.start_as_current_span("work") as span:
            alkana_logging.get_logger("a").info("hi", trace_id="mine")
    finally:
        logging.root.removeHandler(handler)
        alkana_logging.shutdown()
    (line,) = [json.loads(x) for x in log_file.read_text().splitlines()]
    assert (line[F.TRACE_ID], line[F.SPAN_ID]) == hex_ids(span)
    (record,) = records
    assert record.trace_id == "mine"  # type: ignore[attr-defined]
    assert not hasattr(record, F.SPAN_ID)


@pytest.mark.parametrize("line_outside_first", [False, True])
def test_a_span_ended_before_it_is_made_current_again_gives_no_ids(
    tracer: tuple[trace.Tracer, InMemorySpanExporter], line_outside_first: bool
) -> None:
    """The same state gives the same line, whatever was logged before it."""
    otel, _ = tracer
    with capture_logs() as events:
        with otel.start_as_current_span("a", end_on_exit=False) as span:
            alkana_logging.get_logger("a").info("inside")
        if line_outside_first:
            alkana_logging.get_logger("a").info("outside")
        span.end()
        with trace.use_span(span, end_on_exit=False):
            alkana_logging.get_logger("a").info("ended")
    assert (events[0][F.TRACE_ID], events[0][F.SPAN_ID]) == hex_ids(span)
    assert F.SPAN_ID not in events[-1]
