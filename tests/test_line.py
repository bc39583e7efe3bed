"""The line renderer (alkana_logging._render, to be _line): a value that fails to render costs only
that value; colliding keys keep every value; exceptions become three fields.

Read back from the file, through every front-end that carries fields.
"""

from __future__ import annotations

import collections.abc
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger as loguru_logger

import alkana_logging
from alkana_logging import fields as F
from tests._frontends import FIELD_FRONTENDS, log_and_read_one, read_records, setup_file
from tests._logfiles import assert_schema, shutdown_and_read


class ItemsRaise(dict[str, Any]):
    """A dict subclass whose items() raises (and whose repr would show its contents)."""

    def items(self) -> Any:
        raise RuntimeError("items() refused")


class IterRaises(collections.abc.Mapping[str, Any]):
    """A mapping that cannot be iterated."""

    def __init__(self) -> None:
        self.data = {"password": "hunter2"}

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("iteration refused")

    def __len__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return f"IterRaises({self.data!r})"


@pytest.mark.parametrize("frontend", FIELD_FRONTENDS)
@pytest.mark.parametrize(
    ("bad", "placeholder"),
    [
        (ItemsRaise(password="hunter2"), "<unrenderable ItemsRaise value>"),
        (IterRaises(), "<unrenderable IterRaises value>"),
    ],
    ids=["dict-items-raises", "mapping-iter-raises"],
)
def test_a_value_that_fails_to_render_costs_only_that_value(
    tmp_path: Path, frontend: str, bad: Any, placeholder: str
) -> None:
    path = setup_file(tmp_path)
    record, line = log_and_read_one(
        path, frontend, "the message", {"good": 1, "bad": bad, "after": "kept"}
    )
    assert record[F.MESSAGE] == "the message"
    assert record["good"] == 1
    assert record["after"] == "kept"
    assert record["bad"] == placeholder
    assert "value of 'bad' could not be rendered" in record[F.LOG_ERROR]
    assert "refused" in record[F.LOG_ERROR]
    assert b"hunter2" not in line


def test_a_schema_key_and_its_extra_name_both_keep_their_values(tmp_path: Path) -> None:
    path = setup_file(tmp_path)
    log = alkana_logging.get_logger("x")
    log.info("m", level="a", extra_level="b")
    log.info("m", extra_level="b", level="a")
    log.info("m", message="a", extra_message="b", extra_message_2="c")
    with alkana_logging.bound_context(level="ctx"):
        log.info("m", level="call")
    alkana_logging.shutdown()
    first, second, third, fourth = read_records(path)
    assert (first["extra_level"], first["extra_level_2"]) == ("a", "b")
    assert (second["extra_level"], second["extra_level_2"]) == ("b", "a")
    # Every value kept, each under its own name.
    assert sorted(v for k, v in third.items() if k.startswith("extra_message")) == ["a", "b", "c"]
    assert (fourth["extra_level"], fourth["extra_level_2"]) == ("ctx", "call")
    for record in (first, second, third, fourth):
        assert record[F.LEVEL] == F.INFO
        assert record[F.MESSAGE] == "m"


def test_an_extra_key_alone_is_written_as_it_is(tmp_path: Path) -> None:
    path = setup_file(tmp_path)
    record, _ = log_and_read_one(path, "structlog", "m", {"extra_note": "x"})
    assert record["extra_note"] == "x"
    assert "extra_note_2" not in record


@pytest.mark.parametrize("api", ["structlog", "stdlib", "loguru"])
def test_exceptions_become_three_fields_with_the_chain(log_file: Path, api: str) -> None:
    def fail() -> None:
        try:
            {}["missing"]
        except KeyError as err:
            raise ValueError("bad value") from err

    try:
        fail()
    except ValueError:
        if api == "structlog":
            alkana_logging.get_logger("x").exception("failed")
        elif api == "stdlib":
            logging.getLogger("x").exception("failed")
        else:
            loguru_logger.exception("failed")
    [record] = shutdown_and_read(log_file)
    assert record[F.LEVEL] == "error"
    assert record[F.EXCEPTION_TYPE] == "ValueError"
    assert record[F.EXCEPTION_MESSAGE] == "bad value"
    stack = record[F.EXCEPTION_STACKTRACE]
    assert isinstance(stack, str)
    assert "KeyError: 'missing'" in stack
    assert "direct cause of the following exception" in stack
    assert stack.rstrip().endswith("ValueError: bad value")


def test_exception_type_is_qualified_outside_builtins(log_file: Path) -> None:
    try:
        json.loads("{")
    except json.JSONDecodeError:
        logging.getLogger("x").exception("parse")
    [record] = shutdown_and_read(log_file)
    assert record[F.EXCEPTION_TYPE] == "json.decoder.JSONDecodeError"


@pytest.mark.parametrize("key", ["level", "timestamp", "message", "app", "logger", "pid"])
def test_colliding_keys_cannot_overwrite_the_schema(log_file: Path, key: str) -> None:
    logging.getLogger("x").info(
        "m", extra={"custom": 1} | ({} if key == "message" else {key: "forged"})
    )
    alkana_logging.get_logger("x").info("m", **{key: "forged"})
    records = shutdown_and_read(log_file)
    assert_schema(records[1], level="info", logger="x", message="m")
    assert records[1][F.COLLISION_PREFIX + key] == "forged"


def _renderer() -> Any:
    from alkana_logging._line import Renderer
    from alkana_logging.redaction import Redactor

    return Renderer(app="a", env="e", host="h", redactor=Redactor(), max_line_bytes=65536)


def _rfc3339(ns: int) -> str:
    """The contract's timestamp, worked out by the datetime module."""
    import datetime

    seconds, rest = divmod(ns, 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{rest // 1000:06d}Z"


def test_the_timestamp_in_every_millisecond_second_and_order() -> None:
    """render() keeps the second's prefix and works out the rest: lines in one millisecond,
    the next millisecond, the next second, a month's end, an earlier second after a later one
    (a stdlib record made before the line in another thread), the epoch, far ahead."""
    from alkana_logging._line import format_timestamp

    start = 1_795_794_100_123_456_789  # 2026-11-27T15:41:40.123456789Z
    moments = [
        start,
        start + 1,
        start + 1_000,
        start + 1_000_000,
        start + 876_000_000,  # the last millisecond of the second
        start + 877_000_000,  # the next second's first
        start - 1_000_000_000,  # back by a second
        start - 123_456_790,  # the last nanosecond of the second before
        start + 877_000_000,
        1_796_083_199_999_999_999,  # 2026-11-30T23:59:59.999999Z, the month's end
        1_796_083_200_000_000_000,
        0,
        999_999,
        4_102_444_800_000_001_000,  # 2100-01-01T00:00:00.000001Z
        start,
    ]
    renderer = _renderer()
    for ns in moments:
        record, line = renderer.render(ns, F.INFO, "x", "m", None)
        assert record[F.TIMESTAMP] == _rfc3339(ns) == format_timestamp(ns), ns
        assert json.loads(line)[F.TIMESTAMP] == _rfc3339(ns)
    for ns in moments:  # format_timestamp() alone (the stdlib's fallback, render_plain)
        assert format_timestamp(ns) == _rfc3339(ns), ns
    assert renderer.render(start, F.INFO, "x", "m", None)[0][F.TIMESTAMP] == (
        "2026-11-27T15:41:40.123456Z"
    )


def test_the_record_copy_has_room_for_context_and_fields() -> None:
    """The record template is copied with room for ten keys more (no resize on the hot path);
    the record still holds the schema keys in order, then the context, then the fields."""
    import sys

    renderer = _renderer()
    template = renderer._template
    record = template.copy()
    size = sys.getsizeof(record)
    for number in range(10):
        record[f"field_{number}"] = number
    assert sys.getsizeof(record) == size
    with alkana_logging.bound_context(request_id="r1"):
        record, line = renderer.render(0, F.INFO, "x", "m", {"a": 1, "b": "two"})
    keys = [*F.SCHEMA_KEYS, "request_id", "a", "b"]
    assert list(record) == keys
    assert list(json.loads(line)) == keys


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param((0, 1, 999_999, 1_000_000, 999_999_999), id="one-second"),
        pytest.param((999_999_999, 1_000_000_000, 1_000_123_456), id="into-the-next"),
        pytest.param((5_000_000_000, 4_999_999_999, 5_000_000_001), id="back-a-second"),
        pytest.param((3_000_000_000, 42, 3_000_000_000 + 999_999_999), id="far-back"),
    ],
)
def test_render_plain_timestamp_is_format_timestamps(steps: tuple[int, ...]) -> None:
    """The event line's own timestamp cache (per second) writes format_timestamp()'s text for
    every nanosecond: the same second, the next, one before it, microsecond and millisecond
    edges."""
    from alkana_logging._line import Renderer, format_timestamp
    from alkana_logging.redaction import Redactor

    renderer = Renderer(app="a", env="e", host="h", redactor=Redactor(), max_line_bytes=65536)
    base = 1_700_000_000_000_000_000
    for step in steps:
        ns = base + step
        record, line = renderer.render_plain(ns, F.INFO, "x", "m", {"k": 1})
        assert record[F.TIMESTAMP] == format_timestamp(ns), step
        assert json.loads(line)[F.TIMESTAMP] == format_timestamp(ns)


@pytest.mark.parametrize("ns", [10**30, -(10**30)], ids=["far-future", "far-past"])
def test_a_time_beyond_the_calendar_gives_a_line_that_says_so(tmp_path: Path, ns: int) -> None:
    from alkana_logging import _state

    path = setup_file(tmp_path)
    pipeline = _state.current()
    assert pipeline is not None
    pipeline.emit(ns, "info", "clock", "from a broken clock")  # a record's created, say
    (record,) = shutdown_and_read(path)
    assert_schema(record, logger="clock", message="<unrenderable log call>")
    assert "rendering failed" in record[F.LOG_ERROR]
