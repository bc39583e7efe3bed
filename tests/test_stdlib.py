"""Every front-end writes the contract's schema, read back from the file."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import re
import socket
import warnings
from pathlib import Path
from typing import Any

import pytest
import structlog
from loguru import logger as loguru_logger

import alkana_logging
from alkana_logging import fields as F
from tests._logfiles import read_records

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SCHEMA_TYPES = {
    F.TIMESTAMP: str,
    F.LEVEL: str,
    F.LOGGER: str,
    F.MESSAGE: str,
    F.APP: str,
    F.ENV: str,
    F.HOST: str,
    F.PID: int,
}


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False, app_name="svc", app_env="test")
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    alkana_logging.shutdown()
    return read_records(path)


def assert_schema(record: dict[str, Any], level: str, logger: str, message: str) -> None:
    assert list(record)[:8] == list(F.SCHEMA_KEYS)
    assert {k: type(record[k]) for k in F.SCHEMA_KEYS} == SCHEMA_TYPES
    assert TIMESTAMP.match(record[F.TIMESTAMP])
    assert (record[F.LEVEL], record[F.LOGGER], record[F.MESSAGE]) == (level, logger, message)
    assert (record[F.APP], record[F.ENV]) == ("svc", "test")
    assert record[F.HOST] == socket.gethostname()
    assert record[F.PID] == os.getpid()


def test_structlog_api(log_file: Path) -> None:
    alkana_logging.get_logger("orders").info("loaded", table="raw_mb51", rows=1200, ratio=0.5)
    [record] = lines(log_file)
    assert_schema(record, "info", "orders", "loaded")
    assert record["table"] == "raw_mb51"
    assert record["rows"] == 1200
    assert record["ratio"] == 0.5


def test_structlog_bind_and_positional_interpolation(log_file: Path) -> None:
    log = alkana_logging.get_logger("orders").bind(batch=7)
    log.warning("took %d s", 3, step="load")
    [record] = lines(log_file)
    assert_schema(record, "warning", "orders", "took 3 s")
    assert (record["batch"], record["step"]) == (7, "load")


def test_plain_structlog_get_logger_goes_through_the_pipeline(log_file: Path) -> None:
    structlog.get_logger("direct").error("oops", code=3)
    [record] = lines(log_file)
    assert_schema(record, "error", "direct", "oops")
    assert record["code"] == 3


def test_stdlib_api_with_extra(log_file: Path) -> None:
    logging.getLogger("legacy").info("user %s logged in", "alice", extra={"user": "alice", "n": 2})
    [record] = lines(log_file)
    assert_schema(record, "info", "legacy", "user alice logged in")
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
    first_line, second_line = lines(log_file)
    assert len(seen) == 2
    assert_schema(first_line, "info", "legacy", "hi bob")
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
    [record] = lines(log_file)
    assert_schema(record, "info", "legacy", "tagged")
    assert {k: record[k] for k in list(record)[8:]} == {"tenant": "acme", "shard": 7, "table": "t"}


def test_loguru_is_routed_into_the_same_file(log_file: Path) -> None:
    loguru_logger.bind(job="sync", attempt=2).warning("retrying {}", "now")
    loguru_logger.success("done")
    records = lines(log_file)
    assert [r[F.MESSAGE] for r in records] == ["retrying now", "done"]
    assert_schema(records[0], "warning", __name__, "retrying now")
    assert (records[0]["job"], records[0]["attempt"]) == ("sync", 2)
    assert records[1][F.LEVEL] == "info"  # SUCCESS (25) rounds down to info
    assert [p.name for p in log_file.parent.iterdir()] == ["app.log"]


def test_uvicorn_loggers_lose_their_handlers_and_propagate(tmp_path: Path) -> None:
    from uvicorn.config import LOGGING_CONFIG

    logging.config.dictConfig(LOGGING_CONFIG)  # what uvicorn does before importing the app
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False, app_name="svc", app_env="test")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/x", "1.1", 200
    )
    records = lines(path)
    assert [r[F.LOGGER] for r in records] == ["uvicorn.error", "uvicorn.access"]
    assert records[0][F.MESSAGE] == "Started server process [42]"
    assert records[1][F.MESSAGE] == '127.0.0.1:5000 - "GET /x HTTP/1.1" 200'
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert logging.getLogger(name).handlers == []


def test_warnings_are_captured(log_file: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the suite turns warnings into errors
        warnings.warn("deprecated thing", UserWarning, stacklevel=1)
    [record] = lines(log_file)
    assert_schema(record, "warning", "py.warnings", record[F.MESSAGE])
    assert "UserWarning: deprecated thing" in record[F.MESSAGE]


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
    [record] = lines(log_file)
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
    [record] = lines(log_file)
    assert record[F.EXCEPTION_TYPE] == "json.decoder.JSONDecodeError"


@pytest.mark.parametrize("api", ["structlog", "stdlib", "loguru"])
def test_bound_context_appears_on_every_front_end(log_file: Path, api: str) -> None:
    with alkana_logging.bound_context(request_id="r-1", user="alice"):
        if api == "structlog":
            alkana_logging.get_logger("x").info("m")
        elif api == "stdlib":
            logging.getLogger("x").info("m")
        else:
            loguru_logger.info("m")
    alkana_logging.get_logger("x").info("after")
    records = lines(log_file)
    assert (records[0][F.REQUEST_ID], records[0][F.USER]) == ("r-1", "alice")
    assert F.REQUEST_ID not in records[1]


def test_call_fields_override_bound_context(log_file: Path) -> None:
    with alkana_logging.bound_context(user="alice"):
        alkana_logging.get_logger("x").info("m", user="bob")
    [record] = lines(log_file)
    assert record[F.USER] == "bob"


@pytest.mark.parametrize("key", ["level", "timestamp", "message", "app", "logger", "pid"])
def test_colliding_keys_cannot_overwrite_the_schema(log_file: Path, key: str) -> None:
    logging.getLogger("x").info(
        "m", extra={"custom": 1} | ({} if key == "message" else {key: "forged"})
    )
    alkana_logging.get_logger("x").info("m", **{key: "forged"})
    records = lines(log_file)
    assert_schema(records[1], "info", "x", "m")
    assert records[1][F.COLLISION_PREFIX + key] == "forged"


def test_filtered_levels_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False, level="WARNING")
    alkana_logging.get_logger("x").info("hidden")
    logging.getLogger("x").info("hidden")
    loguru_logger.info("hidden")
    alkana_logging.get_logger("x").warning("shown")
    assert [r[F.MESSAGE] for r in lines(path)] == ["shown"]


def test_setup_twice_reconfigures_without_duplicates(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    log = alkana_logging.get_logger("x")
    alkana_logging.setup(log_file=str(first), stdout=False, level="INFO")
    log.debug("hidden")
    log.info("one")
    alkana_logging.setup(log_file=str(second), stdout=False, level="DEBUG")
    log.debug("two")  # the cached logger follows the new level
    logging.getLogger("y").debug("three")
    loguru_logger.debug("four")
    assert [r[F.MESSAGE] for r in read_records(first)] == ["one"]
    assert [r[F.MESSAGE] for r in lines(second)] == ["two", "three", "four"]
    root_handlers = [
        h for h in logging.getLogger().handlers if isinstance(h, alkana_logging.PipelineHandler)
    ]
    assert root_handlers == []  # shutdown() removed the one handler


def test_setup_replaces_basic_config_stream_handlers(tmp_path: Path) -> None:
    stream = io.StringIO()
    logging.basicConfig(stream=stream, force=True)
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False)
    logging.getLogger("x").warning("once")
    assert stream.getvalue() == ""
    assert len(lines(path)) == 1


def test_stdout_gets_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    alkana_logging.setup(log_file="", app_name="svc")
    alkana_logging.get_logger("x").info("to stdout", n=1)
    out = capsys.readouterr().out
    [record] = [json.loads(line) for line in out.splitlines()]
    assert (record[F.MESSAGE], record["n"], record[F.APP]) == ("to stdout", 1, "svc")


def test_console_format_is_human_text_and_the_file_stays_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), format="console")
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        alkana_logging.get_logger("x").exception("readable", table="t1")
    out = capsys.readouterr().out
    assert "readable" in out
    assert "table=t1" in out
    assert "RuntimeError: kaput" in out
    assert not out.lstrip().startswith("{")
    [record] = lines(path)
    assert record["table"] == "t1"


def test_nothing_happens_at_import() -> None:
    import subprocess
    import sys

    code = (
        "import logging, alkana_logging, structlog;"
        "assert logging.getLogger().handlers == [];"
        "assert not alkana_logging.is_configured();"
        "assert not structlog.is_configured();"
        "print('clean')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "clean", result.stderr


def test_json_formatter_static_fields_come_first_and_the_record_wins() -> None:
    formatter = alkana_logging.JsonFormatter(
        static_fields={"team": "core", "table": "static"}, app_name="svc", app_env="test"
    )
    record = logging.getLogger("dc").makeRecord(
        "dc", logging.INFO, __file__, 1, "hello", (), None, extra={"table": "t", "token": "x"}
    )
    line = json.loads(formatter.format(record))
    assert_schema(line, "info", "dc", "hello")
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
    assert_schema(records[0], "info", "dc", "hello world")
    assert (records[0]["password"], records[0]["table"]) == ("[REDACTED]", "t")
    assert records[1][F.EXCEPTION_TYPE] == "ZeroDivisionError"
