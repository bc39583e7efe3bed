"""The structlog front-end (alkana_logging._structlog): lines read back from the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog

import alkana_logging
from alkana_logging import _state
from tests._logfiles import assert_schema, shutdown_and_read


def test_structlog_api(log_file: Path) -> None:
    alkana_logging.get_logger("orders").info("loaded", table="raw_mb51", rows=1200, ratio=0.5)
    [record] = shutdown_and_read(log_file)
    assert_schema(record, level="info", logger="orders", message="loaded")
    assert record["table"] == "raw_mb51"
    assert record["rows"] == 1200
    assert record["ratio"] == 0.5


def test_structlog_bind_and_positional_interpolation(log_file: Path) -> None:
    log = alkana_logging.get_logger("orders").bind(batch=7)
    log.warning("took %d s", 3, step="load")
    [record] = shutdown_and_read(log_file)
    assert_schema(record, level="warning", logger="orders", message="took 3 s")
    assert (record["batch"], record["step"]) == (7, "load")


def test_plain_structlog_get_logger_goes_through_the_pipeline(log_file: Path) -> None:
    structlog.get_logger("direct").error("oops", code=3)
    [record] = shutdown_and_read(log_file)
    assert_schema(record, level="error", logger="direct", message="oops")
    assert record["code"] == 3


def test_event_given_by_name_is_the_message(log_file: Path) -> None:
    # structlog's methods take the message by name too; ours take it positional-only (speed:
    # see _structlog._level_method), so a named one arrives with the fields and is taken back.
    alkana_logging.get_logger("orders").info(event="loaded", rows=3)
    [record] = shutdown_and_read(log_file)
    assert_schema(record, level="info", logger="orders", message="loaded")
    assert record["rows"] == 3
    assert "event" not in record


def test_fields_named_like_the_methods_parameters(log_file: Path) -> None:
    # Positional-only parameters leave every name free for the fields: ``self=`` raised
    # TypeError into the caller before, ``event=`` beside a message did too.
    log = alkana_logging.get_logger("orders")
    log.info("loaded", self="me")
    log.info("request", event="http_request")
    first, second = shutdown_and_read(log_file)
    assert (first["message"], first["self"]) == ("loaded", "me")
    assert (second["message"], second["event"]) == ("request", "http_request")


def test_fields_named_like_the_proxy_s_parameters_with_processors(tmp_path: Path) -> None:
    # With setup(processors=...) the call goes through structlog's _proxy_to_logger(), whose
    # parameters are self, method_name and event: fields of those names are kept, prefixed.
    from tests._frontends import setup_file

    log_file = setup_file(tmp_path, processors=[lambda logger, name, event_dict: event_dict])
    log = alkana_logging.get_logger("orders")
    log.info("loaded", self="me", method_name="m", event="e", rows=1)
    [record] = shutdown_and_read(log_file)
    assert record["message"] == "loaded"
    assert (record["extra_self"], record["extra_method_name"], record["extra_event"]) == (
        "me",
        "m",
        "e",
    )
    assert record["rows"] == 1


def test_a_wrapped_logger_without_a_name_writes_as_root(log_file: Path) -> None:
    structlog.wrap_logger(object()).info("hello", rows=1)
    [record] = shutdown_and_read(log_file)
    assert_schema(record, level="info", logger="root", message="hello")
    assert record["rows"] == 1


class _BrokenSink:
    def write(self, line: bytes, record: Any, ns: int) -> None:
        raise OSError("sink bug")

    def flush(self) -> None: ...
    def close(self) -> None: ...
    def after_fork(self) -> None: ...


def test_what_fails_on_the_direct_path_costs_only_itself(
    log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The level methods write without Pipeline.emit(): a span read, a render or a sink that
    fails is counted and the line still written (its schema at least), never raised."""
    log = alkana_logging.get_logger("orders")
    pipeline = _state.current()
    assert pipeline is not None
    monkeypatch.setattr(pipeline, "sinks", (_BrokenSink(), *pipeline.sinks))
    log.info("past a broken sink", rows=1)

    def refuse(*args: Any) -> Any:
        raise RuntimeError("render bug")

    monkeypatch.setattr(pipeline.renderer, "render", refuse)
    log.info("not renderable", rows=2)
    monkeypatch.undo()

    def no_span() -> Any:
        raise RuntimeError("tracing bug")

    monkeypatch.setattr(pipeline, "_otel_context", no_span)
    log.info("without its span", rows=3)
    health = alkana_logging.pipeline_health()
    first, second, third = shutdown_and_read(log_file)
    assert (first["message"], first["rows"]) == ("past a broken sink", 1)
    assert second["message"] == "<unrenderable log call>"
    assert "render bug" in second["log_error"]
    assert (third["message"], third["rows"]) == ("without its span", 3)
    assert health["internal_errors"] == 4  # the broken sink twice, the render, the span
