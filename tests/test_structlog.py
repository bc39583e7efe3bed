"""The structlog front-end (alkana_logging._structlog): lines read back from the file."""

from __future__ import annotations

from pathlib import Path

import structlog

import alkana_logging
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
