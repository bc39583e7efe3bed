"""The direct Loki push: payload, retries, bounds, shutdown, fork and the caller's safety.

Every test pushes over real HTTP to a receiver on 127.0.0.1 (tests/_loki_receiver.py) that
implements Loki's documented push API and validates each body strictly.
"""

from __future__ import annotations

import base64
import collections
import datetime
import itertools
import json
import logging
import logging.config
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry.sdk.trace import TracerProvider

import alkana_logging
from alkana_logging import _state
from alkana_logging import fields as F
from alkana_logging.exceptions import ConfigurationError
from alkana_logging.health import PipelineHealth
from alkana_logging.loki import (
    PUSH_PATH,
    REASON_BUFFER_FULL,
    REASON_LINE_TOO_LONG,
    REASON_SHUTDOWN,
    REASON_UNREACHABLE,
    LokiHandler,
    LokiSink,
    _parse_retry_after,
)
from alkana_logging.settings import load_settings
from alkana_logging.settings import loki_push_url as push_url
from alkana_logging.stdlib import PipelineHandler
from tests._loki_receiver import LokiReceiver, running

LABELS = {F.LABEL_JOB: "tests", F.LABEL_APP: "svc", F.LABEL_ENV: "test"}
# Fast retries, so that outages in tests last seconds, not minutes.
FAST = {"batch_wait": 0.05, "min_backoff": 0.05, "max_backoff": 0.2, "flush_timeout": 20.0}
# A real Loki for the opt-in test; the other tests run without any LOKI_* from the environment.
REAL_LOKI_URL = os.environ.get("LOKI_URL")
REAL_LOKI = {
    "loki_tenant": os.environ.get("LOKI_TENANT"),
    "loki_username": os.environ.get("LOKI_USERNAME"),
    "loki_password": os.environ.get("LOKI_PASSWORD"),
    "loki_token": os.environ.get("LOKI_TOKEN"),
}
ENVIRONMENT = (
    "LOKI_URL",
    "LOKI_TENANT",
    "LOKI_USERNAME",
    "LOKI_PASSWORD",
    "LOKI_TOKEN",
    "LOKI_JOB",
    "LOKI_STRUCTURED_METADATA",
    "LOKI_VERIFY_TLS",
    "APP_NAME",
    "APP_ENV",
    "LOG_LEVEL",
)


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver() -> Iterator[LokiReceiver]:
    with running() as loki:
        yield loki
    assert loki.violations == []


@pytest.fixture
def make_sink(receiver: LokiReceiver) -> Iterator[Any]:
    """Build LokiSinks against the receiver; each is closed after the test."""
    made: list[LokiSink] = []

    def make(**options: Any) -> LokiSink:
        sink = LokiSink(
            receiver.url,
            labels=options.pop("labels", LABELS),
            health=options.pop("health", PipelineHealth()),
            **{**FAST, **options},
        )
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close(timeout=2.0)


def configure_with(sink: LokiSink, tmp_path: Path) -> None:
    """A pipeline (file sink + ``sink``) in force, so that the sink's own events reach it."""
    settings = load_settings({"log_file": str(tmp_path / "app.log"), "stdout": False})
    _state.configure(settings_obj=settings, extra_sinks=[sink])


def setup_loki(receiver: LokiReceiver, tmp_path: Path, **overrides: Any) -> None:
    alkana_logging.setup(
        loki_url=receiver.url,
        log_file=str(tmp_path / "app.log"),
        stdout=False,
        **overrides,
    )


def pipeline_loki_sink() -> LokiSink:
    pipeline = _state.current()
    assert pipeline is not None
    (sink,) = [s for s in pipeline.sinks if isinstance(s, LokiSink)]
    return sink


def parsed(receiver: LokiReceiver) -> list[dict[str, Any]]:
    return [json.loads(line) for line in receiver.lines()]


def messages(receiver: LokiReceiver) -> list[str]:
    return [record[F.MESSAGE] for record in parsed(receiver)]


def line(text: str, **extra: Any) -> bytes:
    return json.dumps({F.MESSAGE: text, **extra}).encode() + b"\n"


def epoch_us(timestamp: str) -> int:
    moment = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.UTC
    )
    delta = moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def wait_for(predicate: Any, timeout: float = 30.0) -> bool:
    """Poll ``predicate``; the timeout only keeps a failing test from hanging."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- the payload ----------------------------------------------------------------------------------


def test_payload_has_static_labels_ns_timestamps_metadata_and_headers(
    receiver: LokiReceiver, tmp_path: Path
) -> None:
    setup_loki(
        receiver,
        tmp_path,
        app_name="svc",
        app_env="staging",
        loki_tenant="team-a",
        loki_username="shipper",
        loki_password="s3cret",
    )
    logger = logging.getLogger("shape")
    logger.info("with ids", extra={"request_id": "req-1", "trace_id": "4bf92f35", "user": "al"})
    logger.warning("without ids")
    alkana_logging.shutdown()

    assert receiver.requests
    for request in receiver.requests:
        assert request.status == 204
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["content-type"] == "application/json"
        assert headers["content-encoding"] == "gzip"
        assert headers["x-scope-orgid"] == "team-a"
        expected_auth = "Basic " + base64.b64encode(b"shipper:s3cret").decode()
        assert headers["authorization"] == expected_auth
        assert request.streams is not None
        (stream,) = request.streams  # one stream: the labels are static
        assert stream["stream"] == {
            "job": "alkana",
            "app": "svc",
            "env": "staging",
            "host": socket.gethostname(),
        }
    first, second = receiver.entries()
    for entry in (first, second):
        record = json.loads(entry.line)
        assert not entry.line.endswith("\n")
        assert int(entry.ns) // 1000 == epoch_us(record[F.TIMESTAMP])
    assert [json.loads(e.line)[F.MESSAGE] for e in (first, second)] == ["with ids", "without ids"]
    assert first.metadata == {F.REQUEST_ID: "req-1", F.TRACE_ID: "4bf92f35"}
    assert second.metadata is None
    assert int(first.ns) <= int(second.ns)


def test_base_url_or_push_endpoint_are_both_accepted() -> None:
    assert push_url("http://loki:3100") == "http://loki:3100" + PUSH_PATH
    assert push_url("http://loki:3100/") == "http://loki:3100" + PUSH_PATH
    assert push_url("https://x/loki/api/v1/push") == "https://x/loki/api/v1/push"


def test_bearer_token_and_no_tenant(receiver: LokiReceiver, make_sink: Any) -> None:
    sink = make_sink(token="tok-123")
    sink.write(line("hello"), {}, time.time_ns())
    assert sink.wait_sent(20)
    headers = {k.lower(): v for k, v in receiver.requests[0].headers.items()}
    assert headers["authorization"] == "Bearer tok-123"
    assert "x-scope-orgid" not in headers


def test_entries_of_a_batch_are_sent_in_time_order(receiver: LokiReceiver, make_sink: Any) -> None:
    sink = make_sink(batch_wait=60.0)  # one batch: sent by the flush below
    base = time.time_ns()
    for offset, text in ((30, "third"), (10, "first"), (20, "second"), (10, "first-bis")):
        sink.write(line(text), {}, base + offset)
    assert sink.wait_sent(20)
    assert len(receiver.requests) == 1
    entries = receiver.entries()
    assert [e.ns for e in entries] == [str(base + n) for n in (10, 10, 20, 30)]
    # Lines with the same timestamp keep the order in which they were logged.
    assert [json.loads(e.line)[F.MESSAGE] for e in entries] == [
        "first",
        "first-bis",
        "second",
        "third",
    ]


def test_structured_metadata_can_be_turned_off(receiver: LokiReceiver, make_sink: Any) -> None:
    sink = make_sink(structured_metadata=False)
    sink.write(line("x"), {F.REQUEST_ID: "r-1", F.TRACE_ID: "t-1"}, time.time_ns())
    assert sink.wait_sent(20)
    (entry,) = receiver.entries()
    assert entry.metadata is None
    assert receiver.requests[0].streams is not None
    assert len(receiver.requests[0].streams[0]["values"][0]) == 2


def test_a_loki_that_rejects_structured_metadata_gets_lines_without_it(
    receiver: LokiReceiver, make_sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.respond(400, body="structured metadata is disabled for this tenant")
    sink = make_sink()
    sink.write(line("kept"), {F.REQUEST_ID: "r-1"}, time.time_ns())
    assert sink.wait_sent(20)
    (entry,) = receiver.entries()
    assert json.loads(entry.line)[F.MESSAGE] == "kept"
    assert entry.metadata is None
    assert sink.health.dropped == {}
    assert "rejects structured metadata" in capsys.readouterr().err


def test_metadata_values_are_strings_and_empty_ones_are_left_out(
    receiver: LokiReceiver, make_sink: Any
) -> None:
    sink = make_sink()
    request_id = uuid.uuid4()
    sink.write(line("a"), {F.REQUEST_ID: request_id, F.TRACE_ID: ""}, time.time_ns())
    assert sink.wait_sent(20)
    (entry,) = receiver.entries()
    assert entry.metadata == {F.REQUEST_ID: str(request_id)}


class _ProxyId:
    """A request id wrapped as lazy proxies wrap one (werkzeug's ``LocalProxy``, Django's
    ``SimpleLazyObject``, ``wrapt.ObjectProxy``): it says its class is str, and is not one."""

    def __init__(self, text: str) -> None:
        self._text = text

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return str

    def __str__(self) -> str:
        return self._text

    def __bool__(self) -> bool:
        return True


def test_a_request_id_that_only_says_it_is_text_is_sent_as_its_text(
    receiver: LokiReceiver, make_sink: Any
) -> None:
    sink = make_sink()
    sink.write(line("a"), {F.REQUEST_ID: _ProxyId("r-9")}, time.time_ns())
    sink.write(line("b"), {F.REQUEST_ID: "r-10"}, time.time_ns())
    assert sink.wait_sent(20)
    assert [e.metadata for e in receiver.entries()] == [
        {F.REQUEST_ID: "r-9"},
        {F.REQUEST_ID: "r-10"},
    ]
    assert sink.health.dropped == {}


def test_one_batch_carries_every_kind_of_line_and_metadata_as_loki_reads_them(
    receiver: LokiReceiver, make_sink: Any
) -> None:
    # (line as written, record, the line Loki gets, its metadata): one batch, every branch of
    # the body's building at once.
    cases: list[tuple[bytes | bytearray, dict[str, Any], str, dict[str, str] | None]] = [
        (b'{"m":"plain"}\n', {}, '{"m":"plain"}', None),
        (b'{"m":"r"}', {F.REQUEST_ID: "r-1"}, '{"m":"r"}', {F.REQUEST_ID: "r-1"}),
        (b'{"m":"t"}', {F.TRACE_ID: "t-1"}, '{"m":"t"}', {F.TRACE_ID: "t-1"}),
        (
            b'{"m":"both"}',
            {F.REQUEST_ID: 7, F.TRACE_ID: "t-2"},
            '{"m":"both"}',
            {F.REQUEST_ID: "7", F.TRACE_ID: "t-2"},
        ),
        (b'{"m":"empty"}', {F.REQUEST_ID: "", F.TRACE_ID: ""}, '{"m":"empty"}', None),
        (b"not utf-8 \xff\xfe", {}, "not utf-8 \ufffd\ufffd", None),
        (bytearray(b"a bytearray"), {F.REQUEST_ID: "r-3"}, "a bytearray", {F.REQUEST_ID: "r-3"}),
        (b"two\nlines", {}, "two\nlines", None),
        ('caf\u00e9 \u2028 "q" \\'.encode(), {}, 'caf\u00e9 \u2028 "q" \\', None),
        (b"ctrl \x01\x1f", {F.TRACE_ID: "t-4"}, "ctrl \x01\x1f", {F.TRACE_ID: "t-4"}),
    ]
    sink = make_sink(batch_wait=3600.0)
    base = time.time_ns()
    for offset, (written, record, _, _) in enumerate(cases):
        sink.write(written, record, base + offset)
    assert sink.wait_sent(20)
    assert len(receiver.requests) == 1
    assert [(e.ns, e.line, e.metadata) for e in receiver.entries()] == [
        (str(base + offset), text, metadata) for offset, (_, _, text, metadata) in enumerate(cases)
    ]


# -- outages, overflow, rejections, retries -------------------------------------------------------


@pytest.mark.slow
def test_outage_then_recovery_delivers_every_buffered_line_exactly_once(
    receiver: LokiReceiver, make_sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = make_sink(buffer_lines=1_000)
    for i in range(10):
        sink.write(line("before", i=i), {}, time.time_ns())
    assert sink.wait_sent(20)

    receiver.down()
    outage_end = time.monotonic() + 3.0
    for i in range(10, 600):
        sink.write(line("during", i=i), {}, time.time_ns())
    # Several seconds down, with the sender retrying all along.
    assert wait_for(lambda: time.monotonic() >= outage_end and sink.batches_retried >= 3)
    assert receiver.line_count == 10
    receiver.up()

    assert sink.wait_sent(30)
    counts = collections.Counter(json.loads(text)["i"] for text in receiver.lines())
    assert counts == collections.Counter(range(600))
    assert sink.health.dropped == {}
    assert sink.lines_shipped == 600
    err = capsys.readouterr().err
    assert err.count("failed: ConnectionError") == 1  # the outage is reported once...
    assert err.count("works again") == 1  # ... and its end once
    snapshot = sink.health.snapshot()
    assert snapshot["loki_buffer_lines"] == 0
    assert snapshot["loki_last_error"] is not None
    assert snapshot["write_errors"] >= 3


def test_overflow_drops_are_counted_exactly_and_an_event_follows(
    receiver: LokiReceiver, make_sink: Any, tmp_path: Path
) -> None:
    sink = make_sink(buffer_lines=50)
    configure_with(sink, tmp_path)
    receiver.down()
    logger = logging.getLogger("overflow")
    for i in range(80):
        logger.info("line %d", i)
    assert sink.health.dropped == {REASON_BUFFER_FULL: 30}
    assert sink.health.snapshot()["loki_buffer_lines"] == 50

    receiver.up()
    assert receiver.wait_until(
        lambda r: any(F.EVENT_LOG_SHIPPING_DROPPED in text for text in r.lines())
    )
    records = parsed(receiver)
    shipped = [r[F.MESSAGE] for r in records if r[F.LOGGER] == "overflow"]
    assert shipped == [f"line {i}" for i in range(50)]
    (event,) = [r for r in records if r.get(F.EVENT) == F.EVENT_LOG_SHIPPING_DROPPED]
    assert event[F.DROPPED] == 30
    assert event[F.REASON] == REASON_BUFFER_FULL
    assert event[F.LEVEL] == F.WARNING
    assert records.index(event) > max(i for i, r in enumerate(records) if r[F.LOGGER] == "overflow")
    # The event was written to the file too: it went through the whole pipeline.
    assert F.EVENT_LOG_SHIPPING_DROPPED in (tmp_path / "app.log").read_text()


def test_the_buffer_is_bounded_by_bytes_too(receiver: LokiReceiver, make_sink: Any) -> None:
    sink = make_sink(buffer_bytes=1_000)
    receiver.hold()
    text = line("x" * 85)  # 100 bytes without its newline
    assert len(text) == 101
    for _ in range(25):
        sink.write(text, {}, time.time_ns())
    assert sink.health.dropped == {REASON_BUFFER_FULL: 15}
    assert sink.health.snapshot()["loki_buffer_bytes"] == 1_000
    receiver.release()
    assert sink.wait_sent(30)
    assert receiver.line_count == 10


def test_a_400_is_not_retried_but_counted_and_reported_once(
    receiver: LokiReceiver, make_sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.respond(400, body="entry for stream has timestamp too old", times=2)
    sink = make_sink(batch_wait=60.0)  # batches are sent by the flushes below
    for i in range(3):
        sink.write(line("rejected", i=i), {}, time.time_ns())
    assert sink.wait_sent(20)
    assert [r.status for r in receiver.requests] == [400]
    assert sink.batches_retried == 0
    assert sink.batches_failed == 1
    assert sink.health.dropped == {"loki_rejected_400": 3}

    sink.write(line("rejected again"), {}, time.time_ns())
    assert sink.wait_sent(20)
    sink.write(line("accepted"), {}, time.time_ns())
    assert sink.wait_sent(20)
    assert [r.status for r in receiver.requests] == [400, 400, 204]
    assert sink.health.dropped == {"loki_rejected_400": 4}
    assert messages(receiver) == ["accepted"]
    assert capsys.readouterr().err.count("timestamp too old") == 1


@pytest.mark.slow
def test_a_429_is_retried_no_sooner_than_retry_after(
    receiver: LokiReceiver, make_sink: Any
) -> None:
    receiver.respond(429, times=2, retry_after="1", body="Ingestion rate limit exceeded")
    sink = make_sink(min_backoff=0.01, max_backoff=0.02)
    sink.write(line("patient"), {}, time.time_ns())
    assert sink.wait_sent(30)
    assert [r.status for r in receiver.requests] == [429, 429, 204]
    arrivals = [r.arrived for r in receiver.requests]
    assert all(later - earlier >= 0.99 for earlier, later in itertools.pairwise(arrivals))
    assert sink.batches_retried == 2
    assert messages(receiver) == ["patient"]


def test_a_500_is_retried_with_exponential_backoff(receiver: LokiReceiver, make_sink: Any) -> None:
    receiver.respond(500, times=3, body="internal error")
    sink = make_sink(min_backoff=0.2, max_backoff=5.0)
    sink.write(line("persistent"), {}, time.time_ns())
    assert sink.wait_sent(30)
    assert [r.status for r in receiver.requests] == [500, 500, 500, 204]
    arrivals = [r.arrived for r in receiver.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # Equal jitter: the n-th wait is at least half of min_backoff * 2**(n-1).
    assert [gap >= minimum * 0.98 for gap, minimum in zip(gaps, (0.1, 0.2, 0.4), strict=True)] == [
        True
    ] * 3
    assert sink.batches_retried == 3
    assert sink.health.dropped == {}
    assert messages(receiver) == ["persistent"]


def test_a_batch_failing_past_max_retry_time_is_dropped_and_reported_later(
    receiver: LokiReceiver, make_sink: Any, tmp_path: Path
) -> None:
    sink = make_sink(max_retry_time=0.3)
    configure_with(sink, tmp_path)
    receiver.down()
    logging.getLogger("lost").info("one")
    logging.getLogger("lost").info("two")
    assert sink.wait_sent(20)
    assert sink.health.dropped == {REASON_UNREACHABLE: 2}
    receiver.up()
    logging.getLogger("later").info("three")
    assert receiver.wait_until(
        lambda r: any(F.EVENT_LOG_SHIPPING_DROPPED in text for text in r.lines())
    )
    records = parsed(receiver)
    assert [r[F.MESSAGE] for r in records if r[F.LOGGER] != "alkana_logging.loki"] == ["three"]
    (event,) = [r for r in records if r.get(F.EVENT) == F.EVENT_LOG_SHIPPING_DROPPED]
    assert (event[F.DROPPED], event[F.REASON]) == (2, REASON_UNREACHABLE)


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [("3", 3.0, 3.0), ("0.5", 0.5, 0.5), ("garbage", None, None), ("", None, None)],
)
def test_retry_after_seconds(header: str, low: float | None, high: float | None) -> None:
    assert _parse_retry_after(header) == low == high


def test_retry_after_http_date() -> None:
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
    seconds = _parse_retry_after(when.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert seconds is not None
    assert 0 < seconds <= 30


# -- oversize lines -------------------------------------------------------------------------------


def test_a_line_over_the_loki_limit_is_truncated_to_valid_json(
    receiver: LokiReceiver, make_sink: Any, tmp_path: Path
) -> None:
    sink = make_sink(max_line_bytes=2_000)
    configure_with(sink, tmp_path)
    logging.getLogger("big").info("x" * 10_000, extra={"blob": "y" * 5_000, "request_id": "r1"})
    assert sink.wait_sent(20)
    (entry,) = receiver.entries()
    assert len(entry.line.encode()) <= 2_000
    record = json.loads(entry.line)
    assert record[F.MESSAGE].startswith("x" * 100)
    assert record[F.MESSAGE].endswith("…[truncated 9500 chars]")
    assert "blob" not in record
    assert record[F.REQUEST_ID] == "r1"
    assert "Loki line limit of 2000 bytes" in record[F.LOG_ERROR]
    assert sink.lines_truncated == 1
    assert sink.health.dropped == {}
    # The file keeps the full line: only what goes to Loki is shortened.
    assert "y" * 5_000 in (tmp_path / "app.log").read_text()


def test_a_message_cut_by_the_renderer_and_again_for_loki_keeps_one_mark_and_its_length(
    receiver: LokiReceiver, make_sink: Any, tmp_path: Path
) -> None:
    sink = make_sink(max_line_bytes=2_000)
    settings = load_settings(
        {"log_file": str(tmp_path / "app.log"), "stdout": False, "max_line_bytes": 300_000}
    )
    _state.configure(settings_obj=settings, extra_sinks=[sink])
    logging.getLogger("big").info("x" * 400_000)
    assert sink.wait_sent(20)
    (entry,) = receiver.entries()
    message = json.loads(entry.line)[F.MESSAGE]
    assert message == "x" * 500 + "…[truncated 399500 chars]"
    in_file = json.loads((tmp_path / "app.log").read_text())[F.MESSAGE]
    assert in_file == "x" * 150_000 + "…[truncated 250000 chars]"


def test_a_line_over_the_loki_limit_can_be_dropped_instead(
    receiver: LokiReceiver, make_sink: Any, tmp_path: Path
) -> None:
    sink = make_sink(max_line_bytes=2_000, oversize="drop")
    configure_with(sink, tmp_path)
    logging.getLogger("big").info("x" * 10_000)
    logging.getLogger("small").info("fits")
    assert receiver.wait_until(
        lambda r: any(F.EVENT_LOG_SHIPPING_DROPPED in text for text in r.lines())
    )
    records = parsed(receiver)
    assert records[0][F.MESSAGE] == "fits"
    (event,) = [r for r in records if r.get(F.EVENT) == F.EVENT_LOG_SHIPPING_DROPPED]
    assert (event[F.DROPPED], event[F.REASON]) == (1, REASON_LINE_TOO_LONG)
    assert sink.health.dropped == {REASON_LINE_TOO_LONG: 1}


# -- the caller's safety, shutdown, fork ----------------------------------------------------------


def test_the_caller_never_waits_for_a_stuck_loki(receiver: LokiReceiver, tmp_path: Path) -> None:
    setup_loki(receiver, tmp_path)
    sink = pipeline_loki_sink()
    receiver.hold()
    logger = logging.getLogger("stuck")
    logger.info("first")
    sink.flush(timeout=0)  # send it now; don't wait
    assert receiver.wait_until(lambda r: r.holding == 1)

    for i in range(2_000):
        logger.info("meanwhile %d", i)
    # Every call above returned while the sender was still blocked inside its HTTP request.
    assert receiver.holding == 1
    assert sink.health.snapshot()["loki_buffer_lines"] == 2_001

    receiver.release()
    assert sink.wait_sent(30)
    assert messages(receiver) == ["first"] + [f"meanwhile {i}" for i in range(2_000)]


def test_a_full_buffer_behind_a_stuck_loki_drops_without_blocking(
    receiver: LokiReceiver, make_sink: Any
) -> None:
    sink = make_sink(buffer_lines=100)
    receiver.hold()
    sink.write(line("first"), {}, time.time_ns())
    sink.flush(timeout=0)
    assert receiver.wait_until(lambda r: r.holding == 1)
    for i in range(1_000):
        sink.write(line("more", i=i), {}, time.time_ns())
    assert receiver.holding == 1
    assert sink.health.dropped == {REASON_BUFFER_FULL: 901}
    receiver.release()
    assert sink.wait_sent(30)
    assert receiver.line_count == 100


def test_shutdown_delivers_everything_buffered(receiver: LokiReceiver, tmp_path: Path) -> None:
    setup_loki(receiver, tmp_path)  # default batch wait (1 s): shutdown must not wait for it
    log = alkana_logging.get_logger("flushed")
    for i in range(1_000):
        log.info("line", i=i)
    alkana_logging.shutdown()
    assert [json.loads(text)["i"] for text in receiver.lines()] == list(range(1_000))


def test_close_gives_up_at_its_deadline_and_counts_what_was_lost(
    receiver: LokiReceiver, make_sink: Any
) -> None:
    sink = make_sink()
    receiver.down()
    for i in range(5):
        sink.write(line("doomed", i=i), {}, time.time_ns())
    sink.close(timeout=0.5)
    assert sink.health.dropped == {REASON_SHUTDOWN: 5}
    assert sink.health.snapshot()["loki_buffer_lines"] == 0
    sink.write(line("after close"), {}, time.time_ns())
    assert sink.health.dropped == {REASON_SHUTDOWN: 5, "loki_sink_closed": 1}


@pytest.mark.parametrize("queued", [99, 0])
def test_close_says_on_stderr_every_line_it_lost_the_batch_in_flight_included(
    receiver: LokiReceiver, make_sink: Any, capsys: pytest.CaptureFixture[str], queued: int
) -> None:
    # A Loki that accepts and never answers: the batch in flight times out within the close
    # deadline and is given up for it; the lines queued behind it are given up at the deadline.
    sink = make_sink(connect_timeout=0.2, read_timeout=0.2)
    receiver.hold()
    sink.write(line("in flight"), {}, time.time_ns())
    sink.flush(timeout=0)
    assert receiver.wait_until(lambda r: r.holding == 1)
    for i in range(queued):
        sink.write(line("queued", i=i), {}, time.time_ns())
    sink.close(timeout=1.0)
    assert sink.health.dropped == {REASON_SHUTDOWN: 1 + queued}
    err = capsys.readouterr().err
    said = re.findall(r"(\d+) log lines were not shipped to Loki at \S+ \((\S+)\)", err)
    assert said == [(str(1 + queued), REASON_SHUTDOWN)], err


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_ships_its_own_lines_and_not_the_parents(
    receiver: LokiReceiver, tmp_path: Path
) -> None:
    setup_loki(receiver, tmp_path)
    sink = pipeline_loki_sink()
    logger = logging.getLogger("fork")
    receiver.hold()
    logger.info("parent in flight")
    sink.flush(timeout=0)
    assert receiver.wait_until(lambda r: r.holding == 1)
    logger.info("parent queued")
    receiver.pass_new()  # the child's request passes; the parent's first one stays held

    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            logger.info("child line")
            alkana_logging.shutdown()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    # The child shipped its own line before exiting, and none of the parent's.
    records = parsed(receiver)
    assert [(r[F.MESSAGE], r[F.PID]) for r in records] == [("child line", pid)]
    receiver.release()
    alkana_logging.shutdown()
    records = parsed(receiver)
    assert sorted(r[F.MESSAGE] for r in records) == [
        "child line",
        "parent in flight",
        "parent queued",
    ]
    assert {r[F.MESSAGE]: r[F.PID] for r in records}["parent queued"] == os.getpid()


def test_the_senders_own_http_debug_lines_stay_out_of_loki(
    receiver: LokiReceiver, tmp_path: Path
) -> None:
    setup_loki(receiver, tmp_path, level="DEBUG")
    logging.getLogger("app").debug("one")
    pipeline_loki_sink().flush()
    logging.getLogger("app").debug("two")
    alkana_logging.shutdown()
    # Shipping urllib3's "POST /loki/api/v1/push 204" lines would make every push cause the
    # next one; they stay in the file.
    assert [(r[F.LOGGER], r[F.MESSAGE]) for r in parsed(receiver)] == [
        ("app", "one"),
        ("app", "two"),
    ]
    assert '"logger":"urllib3.connectionpool"' in (tmp_path / "app.log").read_text()


# -- every front-end, and the handler by hand -----------------------------------------------------


def test_setup_with_loki_url_ships_stdlib_structlog_and_loguru_lines(
    receiver: LokiReceiver, tmp_path: Path
) -> None:
    from loguru import logger as loguru_logger

    setup_loki(receiver, tmp_path, app_name="e2e")
    logging.getLogger("std").warning("from stdlib", extra={"user": "alice"})
    alkana_logging.get_logger("sl").info("from structlog", rows=3)
    loguru_logger.bind(table="t1").info("from loguru")
    with alkana_logging.bound_context(request_id="rid-9"):
        logging.getLogger("std").info("bound")
    pipeline_loki_sink().flush()

    health = alkana_logging.pipeline_health()
    assert health["loki_lines_shipped"] == 4
    assert health["loki_buffer_lines"] == 0
    assert health["loki_batches_sent"] >= 1
    assert health["dropped"] == {}

    by_message = {r[F.MESSAGE]: r for r in parsed(receiver)}
    assert by_message["from stdlib"][F.LOGGER] == "std"
    assert by_message["from stdlib"][F.USER] == "alice"
    assert by_message["from stdlib"][F.LEVEL] == F.WARNING
    assert by_message["from structlog"][F.LOGGER] == "sl"
    assert by_message["from structlog"]["rows"] == 3
    assert by_message["from loguru"]["table"] == "t1"
    assert all(r[F.APP] == "e2e" for r in by_message.values())
    (bound,) = [e for e in receiver.entries() if '"bound"' in e.line]
    assert bound.metadata == {F.REQUEST_ID: "rid-9"}
    assert {e.labels["app"] for e in receiver.entries()} == {"e2e"}


def test_loki_handler_added_by_hand(receiver: LokiReceiver) -> None:
    handler = LokiHandler(receiver.url, app_name="byhand", job="manual", batch_wait=0.05)
    logger = logging.getLogger("byhand")
    logger.addHandler(handler)
    try:
        logger.warning("hello %s", "loki", extra={"rows": 7, "password": "hunter2"})
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.close()
    (entry,) = receiver.entries()
    assert entry.labels["job"] == "manual"
    assert entry.labels["app"] == "byhand"
    record = json.loads(entry.line)
    assert record[F.MESSAGE] == "hello loki"
    assert record[F.LOGGER] == "byhand"
    assert record["rows"] == 7
    assert record["password"] == "[REDACTED]"
    assert handler.health.snapshot()["loki_lines_shipped"] == 1


def test_loki_handler_is_a_pipeline_handler_over_one_loki_sink(receiver: LokiReceiver) -> None:
    handler = LokiHandler(receiver.url, level="WARNING")
    try:
        assert isinstance(handler, PipelineHandler)
        assert handler.pipeline.sinks == (handler.sink,)
        assert handler.pipeline.health is handler.health is handler.sink.health
        assert handler.level == logging.WARNING
    finally:
        handler.close()


def test_loki_handler_lines_carry_the_recording_spans_ids(receiver: LokiReceiver) -> None:
    provider = TracerProvider()
    handler = LokiHandler(receiver.url, batch_wait=0.05)
    logger = logging.getLogger("traced")
    logger.addHandler(handler)
    try:
        with provider.get_tracer("tests").start_as_current_span("work") as span:
            logger.warning("inside a span")
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.close()
        provider.shutdown()
    context = span.get_span_context()
    (entry,) = receiver.entries()
    record = json.loads(entry.line)
    assert (record[F.TRACE_ID], record[F.SPAN_ID]) == (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
    )
    assert entry.metadata == {F.TRACE_ID: record[F.TRACE_ID]}


def test_loki_handler_ships_the_lines_setup_offers_to_the_stdlib(
    receiver: LokiReceiver, tmp_path: Path
) -> None:
    # setup() writes a structlog line itself and offers it to the root logger's other
    # handlers as a ForwardedRecord: setup()'s own handler lets it pass, a LokiHandler ships it.
    alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False)
    handler = LokiHandler(receiver.url, batch_wait=0.05)
    logging.getLogger().addHandler(handler)
    try:
        alkana_logging.get_logger("fwd").info("from structlog", rows=3)
        handler.flush()
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    (record,) = parsed(receiver)
    assert (record[F.MESSAGE], record[F.LOGGER], record["rows"]) == ("from structlog", "fwd", 3)
    in_file = [json.loads(line) for line in (tmp_path / "app.log").read_text().splitlines()]
    assert [r[F.MESSAGE] for r in in_file] == ["from structlog"]


def test_loki_handler_from_dictconfig(receiver: LokiReceiver) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "loki": {
                    "()": "alkana_logging.LokiHandler",
                    "url": receiver.url,
                    "app_name": "configured",
                    "job": "dictconfig",
                    "batch_wait": 0.05,
                    "level": "INFO",
                }
            },
            "loggers": {"dc": {"handlers": ["loki"], "level": "DEBUG", "propagate": False}},
        }
    )
    logger = logging.getLogger("dc")
    (handler,) = logger.handlers
    try:
        logger.debug("below the handler's level")
        logger.info("configured line")
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.close()
    (entry,) = receiver.entries()
    assert (entry.labels["app"], entry.labels["job"]) == ("configured", "dictconfig")
    assert json.loads(entry.line)[F.MESSAGE] == "configured line"


def test_a_forked_child_of_a_loki_handler_ships_its_own_lines(receiver: LokiReceiver) -> None:
    handler = LokiHandler(receiver.url, batch_wait=0.05)
    logger = logging.getLogger("forked")
    logger.addHandler(handler)
    try:
        receiver.hold()
        logger.warning("parent buffered")
        handler.sink.flush(timeout=0)
        assert receiver.wait_until(lambda r: r.holding == 1)
        receiver.pass_new()  # the child's request passes; the parent's stays held
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                logger.warning("child line")
                handler.close()
                code = 0 if handler.health.dropped == {} else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert [(r[F.MESSAGE], r[F.PID]) for r in parsed(receiver)] == [("child line", pid)]
        receiver.release()
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.close()
    pids = {r[F.MESSAGE]: r[F.PID] for r in parsed(receiver)}
    assert pids == {"child line": pid, "parent buffered": os.getpid()}


def test_loki_handler_needs_a_url() -> None:
    with pytest.raises(ConfigurationError, match="LOKI_URL"):
        LokiHandler()


_WITHOUT_REQUESTS = """
import json, logging.config, os, sys
sys.modules["requests"] = None  # as if it were not installed: importing it fails
import alkana_logging
said = {}
for name, make in (
    ("handler", lambda: alkana_logging.LokiHandler("http://127.0.0.1:9")),
    ("dictconfig", lambda: logging.config.dictConfig({"version": 1, "handlers": {"l": {
        "()": "alkana_logging.LokiHandler", "url": "http://127.0.0.1:9"}}})),
    ("setup", lambda: alkana_logging.setup(loki_url="http://127.0.0.1:9", log_file="")),
):
    try:
        make()
    except ValueError as err:
        said[name] = str(err.__cause__ if name == "dictconfig" else err)
os.environ["LOKI_URL"] = "http://127.0.0.1:9"
try:
    alkana_logging.setup(log_file="")
except ValueError as err:
    said["environment"] = str(err)
print(json.dumps(said))
"""


def test_without_requests_the_error_names_loki_url_only_when_it_was_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOG_", "LOKI_"))}
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_REQUESTS],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=True,
    )
    said = json.loads(done.stdout)
    assert set(said) == {"handler", "dictconfig", "setup", "environment"}, done.stderr
    for name, message in said.items():
        assert "'requests'" in message
        assert message.endswith("install alkana-logging[loki]")
        assert ("LOKI_URL" in message) is (name == "environment"), (name, message)


# -- configuration errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"url": "ftp://loki"}, ValueError, "url: got 'ftp://loki'"),
        ({"url": 3100}, TypeError, "url: got 3100"),
        ({"labels": {"request_id": "x"}}, ValueError, "expected only the static labels"),
        ({"labels": {"job": ""}}, ValueError, r"labels\['job'\]"),
        ({"username": "u", "token": "t"}, ValueError, "not both"),
        ({"password": "p"}, ValueError, "without a username"),
        ({"batch_bytes": 0}, ValueError, "batch_bytes: got 0"),
        ({"buffer_lines": 1.5}, TypeError, "buffer_lines: got 1.5; expected an integer"),
        ({"batch_wait": "1"}, TypeError, "batch_wait: got '1'; expected a number"),
        ({"min_backoff": 2.0, "max_backoff": 1.0}, ValueError, "max_backoff"),
        ({"oversize": "split"}, ValueError, "oversize: got 'split'"),
        ({"compress_level": 12}, ValueError, "compress_level"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    url = options.pop("url", "http://127.0.0.1:9")
    labels = options.pop("labels", LABELS)
    with pytest.raises(error, match=match):
        LokiSink(url, labels=labels, **options)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("batch_wait", 0),
        ("read_timeout", -1.0),
        ("buffer_lines", 0),
        ("oversize", "split"),
    ],
)
def test_the_sink_and_setup_refuse_a_bad_value_in_the_same_words(option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"^{option}: ") as direct:
        LokiSink("http://127.0.0.1:9", labels=LABELS, **{option: value})
    with pytest.raises(ConfigurationError, match=rf"^setup\(loki_{option}=\.\.\.\): ") as setup:
        load_settings({f"loki_{option}": value, "stdout": True}, environ={})
    assert str(direct.value).partition(": ")[2] == str(setup.value).partition(": ")[2]


@pytest.mark.parametrize("option", ["connect_timeout", "read_timeout", "max_retry_time"])
def test_an_endless_timeout_is_refused(option: str) -> None:
    # A timer or a socket timeout of inf raises in the sender thread, long after setup.
    with pytest.raises(ValueError, match=f"{option}: got inf; expected a number of seconds > 0"):
        LokiSink("http://127.0.0.1:9", labels=LABELS, **{option: float("inf")})


def test_the_sinks_defaults_are_the_settings_defaults() -> None:
    direct = LokiSink("http://127.0.0.1:9", labels=LABELS, batch_wait=None, oversize=None)
    settings = load_settings({"loki_url": "http://127.0.0.1:9", "stdout": True}, environ={})
    from_settings = LokiSink.from_settings(settings)
    try:
        for name in ("_batch_bytes", "_batch_wait", "_max_line", "_oversize", "_read_timeout"):
            assert getattr(direct, name) == getattr(from_settings, name), name
        assert direct._max_line == 256_000  # Loki's own max_line_size default, 256KB
        assert settings.max_line_bytes == 65_536  # the renderer's, a distinct limit
    finally:
        direct.close(timeout=0.1)
        from_settings.close(timeout=0.1)


def test_setup_refuses_a_bad_loki_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="LOKI_URL"):
        alkana_logging.setup(loki_url="loki:3100", log_file=str(tmp_path / "a.log"))


def test_from_settings_needs_a_url() -> None:
    with pytest.raises(ConfigurationError, match="LOKI_URL"):
        LokiSink.from_settings(load_settings({"stdout": True}, environ={}))


def test_from_settings_can_leave_out_the_host_label() -> None:
    settings = load_settings({"loki_url": "http://127.0.0.1:9", "stdout": True}, environ={})
    sink = LokiSink.from_settings(settings, host_label=False)
    try:
        assert sink._labels == {"job": "alkana", "app": "app", "env": "dev"}
    finally:
        sink.close(timeout=0.1)


# -- a real Loki, when there is one ---------------------------------------------------------------


@pytest.mark.loki
@pytest.mark.skipif(
    not REAL_LOKI_URL,
    reason="LOKI_URL is not set: no real Loki to push to (set it to run this test)",
)
def test_lines_pushed_to_a_real_loki_can_be_queried_back(tmp_path: Path) -> None:
    assert REAL_LOKI_URL is not None
    url = REAL_LOKI_URL.rstrip("/")
    marker = uuid.uuid4().hex
    app = f"alkana-test-{marker[:8]}"
    alkana_logging.setup(
        loki_url=url,
        app_name=app,
        log_file=str(tmp_path / "app.log"),
        stdout=False,
        **REAL_LOKI,
    )
    for i in range(3):
        logging.getLogger("real").info("marker %s %d", marker, i, extra={"request_id": marker})
    alkana_logging.shutdown()

    tenant = REAL_LOKI["loki_tenant"]
    headers = {"X-Scope-OrgID": tenant} if tenant else {}
    auth: Any = None
    if REAL_LOKI["loki_token"]:
        headers["Authorization"] = f"Bearer {REAL_LOKI['loki_token']}"
    elif REAL_LOKI["loki_username"]:
        auth = (REAL_LOKI["loki_username"], REAL_LOKI["loki_password"] or "")
    start = time.time_ns() - 3_600 * 10**9
    found: list[str] = []

    def query() -> bool:
        response = requests.get(
            url.removesuffix(PUSH_PATH) + "/loki/api/v1/query_range",
            params={
                "query": f'{{app="{app}"}} |= "{marker}"',
                "start": str(start),
                "end": str(time.time_ns() + 10**9),
                "direction": "forward",
                "limit": "100",
            },
            headers=headers,
            auth=auth,
            timeout=10,
        )
        response.raise_for_status()
        found[:] = [
            value[1] for stream in response.json()["data"]["result"] for value in stream["values"]
        ]
        return len(found) >= 3

    assert wait_for(query, timeout=60), f"Loki returned {found!r}"
    assert [json.loads(text)[F.MESSAGE] for text in found] == [
        f"marker {marker} {i}" for i in range(3)
    ]


@pytest.mark.slow
def test_a_thirty_second_outage_under_steady_load_loses_nothing_within_the_bound(
    receiver: LokiReceiver, make_sink: Any, tmp_path: Path
) -> None:
    """200 lines a second for 36 s, Loki down for 30 of them, a buffer of 2,000 lines: every line
    either arrives exactly once or is counted as dropped, and the drop events say how many."""
    sink = make_sink(buffer_lines=2_000)
    configure_with(sink, tmp_path)
    logger = logging.getLogger("steady")
    total, per_second = 7_200, 200
    down_at, up_at = 5 * per_second, 35 * per_second
    start = time.monotonic()
    for i in range(total):
        if i == down_at:
            receiver.down()
        elif i == up_at:
            receiver.up()
        logger.info("line %d", i)
        # Steady pace: the i-th line is due i/200 s after the start.
        delay = start + (i + 1) / per_second - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    assert receiver.wait_until(
        lambda r: any(F.EVENT_LOG_SHIPPING_DROPPED in text for text in r.lines()), timeout=60
    )
    assert sink.wait_sent(30)
    records = parsed(receiver)
    arrived = collections.Counter(
        int(r[F.MESSAGE].split()[1]) for r in records if r[F.LOGGER] == "steady"
    )
    dropped = sink.health.dropped[REASON_BUFFER_FULL]
    # None twice, unless the receiver accepted a push and then lost its answer when it went down
    # (the client must send that batch again; Loki itself drops the identical resend).
    resent = collections.Counter(
        int(record[F.MESSAGE].split()[1])
        for request in receiver.requests
        if request.answer_lost and request.streams
        for stream in request.streams
        for record in (json.loads(value[1]) for value in stream["values"])
        if record[F.LOGGER] == "steady"
    )
    assert [n for n, count in arrived.items() if count > 1 + resent[n]] == []
    assert sum(resent.values()) <= 20  # at most the batches in flight when it went down
    assert len(arrived) + dropped == total  # every line arrived or was counted
    assert set(range(down_at)) <= set(arrived)  # all from before the outage
    # Once Loki is back, the full buffer drains within a retry or two (backoff ≤ 0.2 s here):
    # from a second after, every line arrives.
    assert set(range(up_at + per_second, total)) <= set(arrived)
    # The buffer held its bound's worth of the outage's lines, give or take the batch in flight:
    # the one that failed first may hold the last batch_wait (0.05 s, 10 lines) from before.
    assert 2_000 - 20 <= len(set(range(down_at, up_at)) & set(arrived)) <= 2_000 + 200
    events = [r for r in records if r.get(F.EVENT) == F.EVENT_LOG_SHIPPING_DROPPED]
    assert sum(e[F.DROPPED] for e in events) == dropped
    assert sink.health.snapshot()["loki_buffer_lines"] == 0
