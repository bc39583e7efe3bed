"""Lines of every front-end reach the stdlib handlers and hooks that are not the pipeline's:
pytest's ``caplog`` (a user's own test module run by ``pytester``), sentry-sdk's logging
integration (the real SDK, an in-memory transport), a handler the application added. Each line
is still written once to the pipeline's own outputs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
import structlog
from loguru import logger as loguru_logger
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.transport import Transport

import alkana_logging
from alkana_logging import fields as F
from alkana_logging.pipeline import ForwardedRecord
from tests._logfiles import read_records

USER_TESTS = '''
import logging

import pytest
import structlog
from loguru import logger as loguru_logger

import alkana_logging


@pytest.fixture
def app(tmp_path):
    """An application factory that configures logging, as apps do."""
    alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False)
    yield tmp_path / "app.log"
    alkana_logging.shutdown()


def test_caplog_sees_every_front_end(app, caplog):
    with alkana_logging.bound_context(request_id="req-1"):
        alkana_logging.get_logger("shop.orders").info("order placed", order=7)
        structlog.get_logger("shop.plain").warning("plain structlog")
        loguru_logger.bind(job="sync").error("loguru failed")
        logging.getLogger("shop.stdlib").info("stdlib line", extra={"user": "ann"})
        try:
            1 / 0
        except ZeroDivisionError:
            alkana_logging.get_logger("shop.orders").exception("division failed")

    got = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert got == [
        ("shop.orders", "INFO", "order placed"),
        ("shop.plain", "WARNING", "plain structlog"),
        ("test_user_app", "ERROR", "loguru failed"),
        ("shop.stdlib", "INFO", "stdlib line"),
        ("shop.orders", "ERROR", "division failed"),
    ]
    orders, plain, loguru, stdlib, failed = caplog.records
    assert orders.order == 7
    assert orders.filename == "test_user_app.py"
    assert orders.funcName == "test_caplog_sees_every_front_end"
    assert plain.funcName == "test_caplog_sees_every_front_end"
    assert orders.request_id == "req-1"
    assert loguru.job == "sync"
    assert loguru.request_id == "req-1"
    assert loguru.funcName == "test_caplog_sees_every_front_end"
    assert stdlib.user == "ann"
    assert stdlib.request_id == "req-1"  # the bound context, on a plain logging record too
    # caplog is a consumer besides the pipeline: stdlib records keep their caller.
    assert (stdlib.funcName, stdlib.filename) == (
        "test_caplog_sees_every_front_end",
        "test_user_app.py",
    )
    assert stdlib.lineno > 0
    assert failed.exc_info[0] is ZeroDivisionError
    assert "ZeroDivisionError" in caplog.text
    assert "order placed" in caplog.text

    import json
    lines = [json.loads(line) for line in app.read_text().splitlines()]
    assert [line["message"] for line in lines] == [
        "order placed", "plain structlog", "loguru failed", "stdlib line", "division failed"
    ]


def test_caplog_levels_are_respected(app, caplog):
    with caplog.at_level(logging.WARNING):
        alkana_logging.get_logger("shop").info("below the handler's level")
        alkana_logging.get_logger("shop").warning("at the handler's level")
    assert [r.getMessage() for r in caplog.records] == ["at the handler's level"]
'''


@pytest.mark.slow
def test_caplog_in_a_users_own_test_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user_app=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=120)
    result.assert_outcomes(passed=2)


# -- sentry-sdk ----------------------------------------------------------------------------------


class MemoryTransport(Transport):
    """sentry-sdk's own transport interface, keeping envelopes in memory (no network)."""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        found = [e.get_event() for e in self.envelopes]
        return [e for e in found if e is not None]


@pytest.fixture
def sentry() -> Iterator[MemoryTransport]:
    transport = MemoryTransport()
    sentry_sdk.init(
        dsn="https://public@sentry.example/1",
        transport=transport,
        integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
        default_integrations=False,
    )
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # an inactive client: the logging hook stays but does nothing


def _raise(message: str) -> None:
    raise ValueError(message)


def test_errors_of_every_front_end_become_sentry_events(
    sentry: MemoryTransport, tmp_path: Path
) -> None:
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False)
    with alkana_logging.bound_context(request_id="req-9"):
        for name, log in (
            ("svc.alkana", alkana_logging.get_logger("svc.alkana")),
            ("svc.plain", structlog.get_logger("svc.plain")),
        ):
            try:
                _raise(f"from {name}")
            except ValueError:
                log.exception("structlog failure", table="raw_mb51", db_password="hunter2")
        try:
            _raise("from loguru")
        except ValueError:
            loguru_logger.exception("loguru failure")
        try:
            _raise("from stdlib")
        except ValueError:
            logging.getLogger("svc.stdlib").exception("stdlib failure")
        alkana_logging.get_logger("svc.alkana").warning("below sentry's event level")
        alkana_logging.get_logger("svc.alkana").error("error without an exception", rows=3)
    sentry_sdk.flush()
    alkana_logging.shutdown()

    events = sentry.events()
    assert [e["logger"] for e in events] == [
        "svc.alkana",
        "svc.plain",
        __name__,
        "svc.stdlib",
        "svc.alkana",
    ]
    for event, expected in zip(
        events[:4], ["from svc.alkana", "from svc.plain", "from loguru", "from stdlib"], strict=True
    ):
        [exception] = event["exception"]["values"]
        assert exception["type"] == "ValueError"
        assert exception["value"] == expected
        assert exception["stacktrace"]["frames"][-1]["function"] == "_raise"
    first = events[0]
    assert first["extra"]["request_id"] == "req-9"
    assert first["extra"]["table"] == "raw_mb51"
    assert first["extra"]["db_password"] == "[REDACTED]"
    assert events[4]["logentry"]["message"] == "error without an exception"
    assert events[4]["extra"]["rows"] == 3
    # the warning is a breadcrumb of the next event, not an event
    crumbs = [c["message"] for c in events[4]["breadcrumbs"]["values"]]
    assert "below sentry's event level" in crumbs
    # each line once in the file
    messages = [r[F.MESSAGE] for r in read_records(path)]
    assert messages == [
        "structlog failure",
        "structlog failure",
        "loguru failure",
        "stdlib failure",
        "below sentry's event level",
        "error without an exception",
    ]


# -- a handler of the application's ----------------------------------------------------------------


class Keep(logging.Handler):
    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def keep() -> Iterator[Keep]:
    handler = Keep(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def test_application_handler_gets_lines_at_its_level_with_context(
    keep: Keep, tmp_path: Path
) -> None:
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False)
    log = alkana_logging.get_logger("app").bind(batch=4)
    with alkana_logging.bound_context(user="ann", message="bound under a record name"):
        log.info("not for this handler")
        log.warning("for it", args="a record attribute's name", rows=2)
        alkana_logging.metric("queue_depth", 99.0)  # the package's own events, info
        with alkana_logging.timed("refresh"):
            pass
    alkana_logging.shutdown()

    [record] = keep.records
    assert isinstance(record, ForwardedRecord)
    assert (record.name, record.levelno, record.getMessage()) == ("app", logging.WARNING, "for it")
    assert record.batch == 4
    assert record.rows == 2
    assert record.user == "ann"
    assert record.extra_args == "a record attribute's name"
    assert record.extra_message == "bound under a record name"
    assert record.args is None
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line[F.MESSAGE] for line in lines] == [
        "not for this handler",
        "for it",
        "queue_depth",
        "refresh",
    ]


def test_stdlib_logger_level_filters_what_is_offered(keep: Keep, tmp_path: Path) -> None:
    alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False)
    logging.getLogger("noisy").setLevel(logging.ERROR)
    try:
        alkana_logging.get_logger("noisy").warning("dropped for the stdlib")
        alkana_logging.get_logger("noisy").error("offered")
    finally:
        logging.getLogger("noisy").setLevel(logging.NOTSET)
    assert [r.getMessage() for r in keep.records] == ["offered"]


def test_a_failing_foreign_handler_never_breaks_the_caller(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Broken(logging.Handler):
        def handle(self, record: logging.LogRecord) -> bool:
            raise RuntimeError("handler bug")

    broken = Broken()
    logging.getLogger().addHandler(broken)
    try:
        alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False)
        alkana_logging.get_logger("x").info("still written")
        health = alkana_logging.pipeline_health()
        alkana_logging.shutdown()
    finally:
        logging.getLogger().removeHandler(broken)
    assert [r[F.MESSAGE] for r in read_records(tmp_path / "app.log")] == ["still written"]
    assert health["internal_errors"] >= 1


# -- OpenTelemetry's LoggingHandler ---------------------------------------------------------------


def test_opentelemetry_logging_handler_gets_lines_with_exception_and_span(tmp_path: Path) -> None:
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    with warnings.catch_warnings():
        # The SDK's handler says it moves to opentelemetry-instrumentation-logging; it is the
        # one most apps have on their root logger today.
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.WARNING, logger_provider=provider)
    alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False)
    logging.getLogger().addHandler(handler)
    tracer = TracerProvider().get_tracer("tests")
    try:
        with (
            tracer.start_as_current_span("job") as span,
            alkana_logging.bound_context(request_id="req-otel"),
        ):
            alkana_logging.get_logger("svc.otel").info("below the handler's level")
            try:
                _raise("for OpenTelemetry")
            except ValueError:
                alkana_logging.get_logger("svc.otel").exception("otel failure", rows=2)
    finally:
        logging.getLogger().removeHandler(handler)
        provider.shutdown()

    [exported] = [data.log_record for data in exporter.get_finished_logs()]
    assert exported.body == "otel failure"
    assert exported.severity_text == "ERROR"
    assert exported.attributes is not None
    assert exported.attributes["request_id"] == "req-otel"
    assert exported.attributes["rows"] == 2
    assert exported.attributes["exception.type"] == "ValueError"
    assert "_raise" in str(exported.attributes["exception.stacktrace"])
    assert exported.trace_id == span.get_span_context().trace_id


SENTRY_DEFAULTS = """
import json, logging, sys
import sentry_sdk
from sentry_sdk.transport import Transport
from loguru import logger as loguru_logger
import alkana_logging


class MemoryTransport(Transport):
    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)


transport = MemoryTransport()
# sentry-sdk's defaults: its logging and its loguru integrations are both on.
sentry_sdk.init(dsn="https://public@sentry.example/1", transport=transport)
alkana_logging.setup(log_file=sys.argv[1], stdout=False)
loguru_logger.error("loguru error")
try:
    1 / 0
except ZeroDivisionError:
    loguru_logger.exception("loguru exception")
alkana_logging.get_logger("svc").error("structlog error")
logging.getLogger("svc").error("stdlib error")
sentry_sdk.flush()
events = [e.get_event() for e in transport.envelopes]
print(json.dumps([
    (e.get("logentry") or {}).get("message") or e["exception"]["values"][0]["value"]
    for e in events if e
]))
"""


@pytest.mark.slow
def test_sentrys_own_loguru_integration_gets_no_second_event(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SENTRY_DEFAULTS, str(tmp_path / "app.log")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    messages = json.loads(result.stdout)
    assert len(messages) == 4, messages  # one event per error, whichever front-end wrote it
    assert sum("loguru error" in m for m in messages) == 1, messages
    assert sum("loguru exception" in m for m in messages) == 1, messages
    assert "structlog error" in messages
    assert "stdlib error" in messages
    lines = [
        json.loads(line)[F.MESSAGE] for line in (tmp_path / "app.log").read_text().splitlines()
    ]
    assert lines == ["loguru error", "loguru exception", "structlog error", "stdlib error"]


# -- loguru's InterceptHandler recipe (stdlib -> loguru) ---------------------------------------

INTERCEPT_SCRIPT = """
import collections, inspect, json, logging, sys
from loguru import logger
import alkana_logging

class InterceptHandler(logging.Handler):  # loguru's README, verbatim
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())

path, order = sys.argv[1], sys.argv[2]
if order == "recipe-first":
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    alkana_logging.setup(log_file=path, stdout=False)
    assert not any(isinstance(h, InterceptHandler) for h in logging.getLogger().handlers)
else:
    alkana_logging.setup(log_file=path, stdout=False)
    logging.getLogger().addHandler(InterceptHandler())
logging.getLogger("std").info("stdlib line")
alkana_logging.get_logger("slog").info("structlog line")
logger.info("loguru line")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("std").exception("stdlib error")
alkana_logging.shutdown()
"""


@pytest.mark.parametrize("order", ["recipe-first", "setup-first"])
def test_loguru_intercept_handler_writes_each_line_once(tmp_path: Path, order: str) -> None:
    path = tmp_path / "app.log"
    done = subprocess.run(
        [sys.executable, "-c", INTERCEPT_SCRIPT, str(path), order],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no "Logging error" / loguru "deadlock avoided" tracebacks
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    messages = [line[F.MESSAGE] for line in lines]
    assert sorted(messages) == sorted(
        ["stdlib line", "structlog line", "loguru line", "stdlib error"]
    )
    [error] = [line for line in lines if line[F.MESSAGE] == "stdlib error"]
    assert error[F.LOGGER] == "std"  # written by the stdlib front-end, with the record's name


OWN_HANDLER_SCRIPT = """
import logging, sys
from loguru import logger
import alkana_logging

class Alerting(logging.Handler):  # an application's: sends errors, reports its own failure
    sent = []

    def emit(self, record):
        try:
            self.sent.append(record.getMessage())
        except Exception:
            logger.exception("sending an alert failed")

own = Alerting(level=logging.ERROR)
logging.getLogger().addHandler(own)
alkana_logging.setup(log_file=sys.argv[1], stdout=False)
logging.getLogger("svc").error("disk full")
alkana_logging.get_logger("svc").error("queue stuck")
assert own in logging.getLogger().handlers, "setup() removed the application's handler"
print(Alerting.sent)
"""


def test_a_handler_that_only_logs_its_own_failure_through_loguru_is_kept(tmp_path: Path) -> None:
    """Only loguru's InterceptHandler recipe (records passed on with ``opt()``) is replaced:
    a handler of the application's that merely uses loguru's logger stays and gets lines."""
    done = subprocess.run(
        [sys.executable, "-c", OWN_HANDLER_SCRIPT, str(tmp_path / "app.log")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['disk full', 'queue stuck']"


class Snapshot(logging.Handler):
    """Takes what a record holds when it is handled (as an error tracker does)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(dict(vars(record)))


def test_stdlib_records_carry_the_bound_context_to_a_handler_added_before_setup(
    tmp_path: Path,
) -> None:
    snapshot = Snapshot()
    logging.getLogger().addHandler(snapshot)  # before setup(), as an app's own handler is
    alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False)
    with alkana_logging.bound_context(request_id="rid-42", user="alice", args="bound"):
        logging.getLogger("svc").warning("stdlib", extra={"user": "own"})
    logging.getLogger("svc").warning("outside")
    alkana_logging.shutdown()
    inside, outside = snapshot.seen
    assert (inside["request_id"], inside["user"], inside["extra_args"]) == (
        "rid-42",
        "own",
        "bound",
    )
    assert "request_id" not in outside
    [line, _] = read_records(tmp_path / "app.log")
    assert (line[F.REQUEST_ID], line[F.USER]) == ("rid-42", "own")


def test_sentry_groups_5xx_events_by_route(sentry: MemoryTransport, tmp_path: Path) -> None:
    import asyncio

    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from alkana_logging.middleware import instrument

    async def unavailable(request: Any) -> PlainTextResponse:
        return PlainTextResponse("down", status_code=503)

    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False)
    app = instrument(Starlette(routes=[Route("/unavailable/{n}", unavailable)]))

    async def calls() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for n in (1, 2):
                assert (await client.get(f"/unavailable/{n}")).status_code == 503

    asyncio.run(calls())
    alkana_logging.shutdown()
    events = sentry.events()
    assert [e["logentry"]["message"] for e in events] == ["GET /unavailable/{n}"] * 2
    assert [e["extra"]["path"] for e in events] == ["/unavailable/1", "/unavailable/2"]
    # the line keeps the path it was asked for
    assert [r[F.MESSAGE] for r in read_records(path) if r.get(F.EVENT) == "http_request"] == [
        "GET /unavailable/1",
        "GET /unavailable/2",
    ]


def test_a_line_offered_to_a_handler_that_feeds_loguru_is_not_written_again(
    keep: Keep, tmp_path: Path
) -> None:
    # A handler feeding loguru on a named logger (not the root, so setup() leaves it; one on
    # the root makes lines offered): a structlog line offered to it goes into loguru, whose
    # sink of ours must not write it again.
    class FeedLoguru(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            loguru_logger.log(record.levelname, record.getMessage())

    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False)
    named = logging.getLogger("fed")
    feeder = FeedLoguru()
    named.addHandler(feeder)
    seen: list[str] = []
    extra_sink = loguru_logger.add(lambda message: seen.append(message.record["message"]))
    try:
        alkana_logging.get_logger("fed").warning("structlog line")
    finally:
        loguru_logger.remove(extra_sink)
        named.removeHandler(feeder)
    alkana_logging.shutdown()
    assert [r[F.MESSAGE] for r in read_records(path)] == ["structlog line"]
    assert seen == ["structlog line"]  # loguru's other sinks still get it
