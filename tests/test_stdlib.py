"""The stdlib front-end (alkana_logging.stdlib): ``logging`` calls, ``warnings``, and the
``JsonFormatter`` that ``dictConfig`` builds, read back from the file."""

from __future__ import annotations

import json
import logging
import logging.config
import socket
import warnings
from pathlib import Path
from typing import Any

import pytest

import alkana_logging
from alkana_logging import fields as F
from tests._logfiles import assert_schema, read_records, shutdown_and_read

HOSTNAME = socket.gethostname()  # JsonFormatter's default host


def test_stdlib_api_with_extra(log_file: Path) -> None:
    logging.getLogger("legacy").info("user %s logged in", "alice", extra={"user": "alice", "n": 2})
    [record] = shutdown_and_read(log_file)
    assert_schema(record, level="info", logger="legacy", message="user alice logged in")
    assert (record[F.USER], record["n"]) == ("alice", 2)
    assert set(record) == {*F.SCHEMA_KEYS, F.USER, "n"}


def test_record_attributes_added_by_others_are_not_fields(log_file: Path) -> None:
    # A handler before ours formats the record first: it gains `message` and `asctime` after
    # the extra= values. uvicorn gives `color_message` as extra=.
    seen: list[str] = []

    class Formatting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    first = Formatting()
    first.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger().handlers.insert(0, first)
    try:
        logging.getLogger("legacy").info("hi %s", "bob", extra={"table": "t", "rows": 3})
        logging.getLogger("uvicorn.error").info("up", extra={"color_message": "\x1b[1mup\x1b[0m"})
    finally:
        logging.getLogger().removeHandler(first)
    first_line, second_line = shutdown_and_read(log_file)
    assert len(seen) == 2
    assert_schema(first_line, level="info", logger="legacy", message="hi bob")
    assert list(first_line)[8:] == ["table", "rows"]
    assert set(second_line) == set(F.SCHEMA_KEYS)


def test_record_subclass_attributes_are_fields_its_own_are_not(log_file: Path) -> None:
    class Tagged(logging.LogRecord):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.tenant = "acme"  # set before LogRecord's own attributes
            super().__init__(*args, **kwargs)
            self.shard = 7

    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(Tagged)
    try:
        logging.getLogger("legacy").info("tagged", extra={"table": "t"})
    finally:
        logging.setLogRecordFactory(previous)
    [record] = shutdown_and_read(log_file)
    assert_schema(record, level="info", logger="legacy", message="tagged")
    assert {k: record[k] for k in list(record)[8:]} == {"tenant": "acme", "shard": 7, "table": "t"}


def test_warnings_are_captured(log_file: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the suite turns warnings into errors
        warnings.warn("deprecated thing", UserWarning, stacklevel=1)
    [record] = shutdown_and_read(log_file)
    assert_schema(record, level="warning", logger="py.warnings", message=record[F.MESSAGE])
    assert "UserWarning: deprecated thing" in record[F.MESSAGE]


def test_json_formatter_static_fields_come_first_and_the_record_wins() -> None:
    formatter = alkana_logging.JsonFormatter(
        static_fields={"team": "core", "table": "static"}, app_name="svc", app_env="test"
    )
    record = logging.getLogger("dc").makeRecord(
        "dc", logging.INFO, __file__, 1, "hello", (), None, extra={"table": "t", "token": "x"}
    )
    line = json.loads(formatter.format(record))
    assert_schema(
        line, level="info", logger="dc", message="hello", app="svc", env="test", host=HOSTNAME
    )
    assert {k: line[k] for k in list(line)[8:]} == {
        "team": "core",
        "table": "t",
        "token": "[REDACTED]",
    }


def test_json_formatter_for_dict_config_gives_the_same_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dict.log"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "json": {"()": "alkana_logging.JsonFormatter", "app_name": "svc", "app_env": "test"}
            },
            "handlers": {
                "file": {"class": "logging.FileHandler", "filename": str(path), "formatter": "json"}
            },
            "loggers": {"dc": {"handlers": ["file"], "level": "INFO", "propagate": False}},
        }
    )
    dc = logging.getLogger("dc")
    try:
        dc.info("hello %s", "world", extra={"password": "p", "table": "t"})
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            dc.exception("div")
    finally:
        for handler in list(dc.handlers):
            handler.close()
            dc.removeHandler(handler)
    records = read_records(path)
    assert_schema(
        records[0],
        level="info",
        logger="dc",
        message="hello world",
        app="svc",
        env="test",
        host=HOSTNAME,
    )
    assert (records[0]["password"], records[0]["table"]) == ("[REDACTED]", "t")
    assert records[1][F.EXCEPTION_TYPE] == "ZeroDivisionError"


class _Breaks(logging.Filter):
    """A filter that sets a record's attribute to something the stdlib never puts there."""

    def __init__(self, attr: str, value: Any) -> None:
        super().__init__()
        self.attr, self.value = attr, value

    def filter(self, record: logging.LogRecord) -> bool:
        setattr(record, self.attr, self.value)
        return True


@pytest.mark.parametrize("created", [None, "soon", object(), 1.8e18, -1e30, float("nan")])
def test_a_record_whose_time_a_filter_broke_gives_a_line_that_says_so(
    log_file: Path, created: Any
) -> None:
    logger = logging.getLogger("odd")
    logger.addFilter(_Breaks("created", created))
    try:
        logger.warning("kept %s", "whole")  # never raises into the caller
    finally:
        logger.filters.clear()
    [record] = shutdown_and_read(log_file)
    assert record[F.MESSAGE] == "kept whole"
    assert record[F.LOGGER] == "odd"
    assert record[F.LOG_ERROR].startswith("the log record could not be read: ")
    assert_schema(record, level=F.WARNING, logger="odd", message="kept whole")


def test_a_loki_handler_never_raises_on_a_broken_record() -> None:
    handler = alkana_logging.LokiHandler("http://127.0.0.1:9", batch_wait=60, flush_timeout=0.2)
    try:
        record = logging.LogRecord("odd", logging.INFO, __file__, 1, "m %s", ("x",), None)
        record.created = None  # type: ignore[assignment]
        assert handler.handle(record)
        handler.emit(record)
        assert handler.sink._accepted == 2
    finally:
        handler.close()
