"""The stdlib front-end (alkana_logging.stdlib): ``logging`` calls, ``warnings``, and the
``JsonFormatter`` that ``dictConfig`` builds, read back from the file."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import pickle
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import alkana_logging
from alkana_logging import fields as F
from alkana_logging import pipeline, stdlib
from tests._children import run_child
from tests._frontends import setup_file
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


# -- the LogRecord details the schema never writes (LOG_RECORD_DETAILS) -------------------------


@pytest.fixture(autouse=True)
def _stdlib_call_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stdlib's own ``Logger.callHandlers``: sentry-sdk's hook stays once a test has
    initialised it (a consumer of every record, that keeps the details on)."""
    if pipeline._STDLIB_CALL_HANDLERS is not None:
        monkeypatch.setattr(logging.Logger, "callHandlers", pipeline._STDLIB_CALL_HANDLERS)


class _Seen(logging.Handler):
    """Another consumer of records (as pytest's caplog or OpenTelemetry's LoggingHandler)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _record_of(logger: logging.Logger, message: str) -> logging.LogRecord:
    """The record a call of ``logger`` makes, seen by a filter (a filter is not a consumer)."""
    made: list[logging.LogRecord] = []

    def keep(record: logging.LogRecord) -> bool:
        made.append(record)
        return True

    logger.addFilter(keep)
    try:
        logger.info(message)
    finally:
        logger.removeFilter(keep)
    (record,) = made
    return record


def _has_details(record: logging.LogRecord) -> bool:
    """Whether the record carries the caller, thread and process, as the stdlib makes them."""
    return (
        record.lineno > 0
        and record.funcName != "(unknown function)"
        and record.thread == threading.get_ident()
        and record.process == os.getpid()
        and record.processName is not None
    )


def test_records_skip_what_no_line_writes_while_the_pipeline_is_their_only_consumer(
    log_file: Path, records_made: list[logging.LogRecord]
) -> None:
    logger = logging.getLogger("alone")
    logger.info("alone", exc_info=ValueError("x"))  # the stdlib's path makes the record
    [record] = records_made
    assert (record.pathname, record.lineno, record.funcName) == (
        "(unknown file)",
        0,
        "(unknown function)",
    )
    assert (record.thread, record.threadName, record.process, record.processName) == (None,) * 4
    [line] = shutdown_and_read(log_file)
    assert_schema(line, level="info", logger="alone", message="alone")
    assert line[F.PID] == os.getpid()  # the schema's pid is the pipeline's own, not the record's
    # shutdown() gives the stdlib its switches back.
    assert logging._srcfile is not None  # type: ignore[attr-defined]
    assert logging.logThreads
    assert logging.logProcesses
    assert logging.logMultiprocessing
    assert _has_details(_record_of(logger, "after shutdown"))


def test_a_consumer_added_later_gets_the_details_from_its_first_record(log_file: Path) -> None:
    seen = _Seen()
    logging.getLogger().addHandler(seen)
    logger = logging.getLogger("later")
    logger.info("first")  # the direct path sees someone else before the record is made
    logger.info("second")
    alkana_logging.get_logger("later").info("structlog")  # offered to the stdlib
    first, second, forwarded = seen.records
    assert _has_details(first), vars(first)
    assert first.funcName == "test_a_consumer_added_later_gets_the_details_from_its_first_record"
    assert _has_details(second), vars(second)
    assert _has_details(forwarded), vars(forwarded)
    logging.getLogger().removeHandler(seen)
    assert _has_details(_record_of(logger, "still on"))  # for good, until the next setup()
    messages = [r[F.MESSAGE] for r in shutdown_and_read(log_file)]
    assert messages == ["first", "second", "structlog", "still on"]


def test_a_consumer_of_every_record_present_at_setup_keeps_the_details(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = logging.getLogger("app.audit")
    own = logging.StreamHandler(io.StringIO())
    logger.addHandler(own)  # sees this logger's records only (a library's debug handler)
    try:
        setup_file(tmp_path / "own")
        assert logging._srcfile is None  # type: ignore[attr-defined]  # not counted at setup()
        logging.getLogger("app.other").info("direct")
        assert logging._srcfile is None  # type: ignore[attr-defined]
        logger.info("own")  # a record that reaches it: from that one on, the details are on
        assert own.stream.getvalue() == "own\n"  # type: ignore[attr-defined]
        assert logging._srcfile is not None  # type: ignore[attr-defined]
    finally:
        logger.removeHandler(own)
        alkana_logging.shutdown()

    seen = _Seen()
    logging.getLogger().addHandler(seen)  # the application's own, on the root: every record
    try:
        setup_file(tmp_path / "root")
        assert _has_details(_record_of(logger, "root"))
    finally:
        logging.getLogger().removeHandler(seen)
        alkana_logging.shutdown()

    # A hook on Logger.callHandlers, as sentry-sdk's LoggingIntegration puts there.
    original = logging.Logger.callHandlers

    def hook(self: logging.Logger, record: logging.LogRecord) -> None:
        original(self, record)

    monkeypatch.setattr(logging.Logger, "callHandlers", hook)
    setup_file(tmp_path / "hook")
    assert _has_details(_record_of(logger, "hook"))


@pytest.mark.parametrize(("value", "details"), [("on", True), ("off", False)])
def test_log_record_details_on_and_off_are_kept_whoever_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, details: bool
) -> None:
    monkeypatch.setenv("LOG_RECORD_DETAILS", value)
    seen = _Seen()
    logging.getLogger().addHandler(seen)
    path = tmp_path / "app.log"
    settings = alkana_logging.setup(log_file=str(path), stdout=False)
    assert settings.record_details == value
    logger = logging.getLogger("kept")
    logger.info("one")
    logger.info("two")
    assert [_has_details(r) for r in seen.records] == [details, details]
    logging.getLogger().removeHandler(seen)
    assert [r[F.MESSAGE] for r in shutdown_and_read(path)] == ["one", "two"]


def test_log_record_details_refuses_an_unknown_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_RECORD_DETAILS", "sometimes")
    with pytest.raises(alkana_logging.ConfigurationError, match="LOG_RECORD_DETAILS"):
        alkana_logging.setup(log_file=None, stdout=True)


def test_a_switch_changed_by_someone_else_is_left_as_they_set_it(log_file: Path) -> None:
    srcfile = logging._srcfile  # type: ignore[attr-defined]
    assert srcfile is None
    logging.logProcesses = True  # the application wants them after all
    alkana_logging.shutdown()
    assert logging.logProcesses is True
    assert logging._srcfile is not None  # type: ignore[attr-defined]


@pytest.mark.parametrize("replace", ["dictConfig", "basicConfig"])
def test_a_config_that_replaces_the_pipelines_handler_gets_the_details_back(
    log_file: Path, replace: str
) -> None:
    """setup() in a library's init, then the application's own logging config, which takes
    the root's handlers (the pipeline's) off and closes them: its handler prints the caller."""
    stream = io.StringIO()
    if replace == "dictConfig":
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"f": {"format": "%(filename)s:%(lineno)d %(funcName)s"}},
                "handlers": {
                    "h": {"class": "logging.StreamHandler", "formatter": "f", "stream": stream}
                },
                "root": {"handlers": ["h"], "level": "INFO"},
            }
        )
    else:
        logging.basicConfig(
            force=True, stream=stream, format="%(filename)s:%(lineno)d %(funcName)s"
        )
    logging.getLogger("app").warning("after")
    assert stream.getvalue() == (
        "test_stdlib.py:"
        f"{sys._getframe().f_lineno - 3} "
        "test_a_config_that_replaces_the_pipelines_handler_gets_the_details_back\n"
    )


# -- the direct path: no LogRecord while the pipeline is the only consumer ----------------------


@pytest.fixture
def records_made() -> Iterator[list[logging.LogRecord]]:
    """Every LogRecord built from here on, seen by a profile function (nothing of logging's is
    patched: a patched method is someone else looking, which turns the direct path off)."""
    made: list[logging.LogRecord] = []
    init = logging.LogRecord.__init__.__code__

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is init:
            made.append(frame.f_locals["self"])

    sys.setprofile(profile)
    try:
        yield made
    finally:
        sys.setprofile(None)


def test_a_stdlib_call_builds_no_record_while_the_pipeline_is_its_only_consumer(
    log_file: Path, records_made: list[logging.LogRecord]
) -> None:
    assert logging.Logger._log is stdlib._direct_log
    logger = logging.getLogger("direct.app")
    logger.info("user %s in", "alice", extra={"table": "t", "rows": 3})
    logging.getLogger().warning("root")
    assert records_made == []
    seen = _Seen()
    logging.getLogger().addHandler(seen)  # someone else listens: the stdlib's path
    logger.info("seen")
    logging.getLogger().removeHandler(seen)
    assert [r.getMessage() for r in records_made] == ["seen"]
    assert seen.records == records_made
    logger.info("alone again")
    assert len(records_made) == 1
    lines = shutdown_and_read(log_file)
    assert [r[F.MESSAGE] for r in lines] == ["user alice in", "root", "seen", "alone again"]
    assert (lines[0]["table"], lines[0]["rows"]) == ("t", 3)
    assert logging.Logger._log is stdlib._STDLIB_LOG  # shutdown() gives the stdlib's back


class _Custom(logging.Logger):
    def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = super().makeRecord(*args, **kwargs)
        record.custom = "made"
        return record


def _handler_on_the_way(logger: logging.Logger, mp: pytest.MonkeyPatch) -> list[Any]:
    seen = _Seen()
    mp.setattr(logging.getLogger("way"), "handlers", [seen])
    return seen.records


def _filter_on_the_logger(logger: logging.Logger, mp: pytest.MonkeyPatch) -> list[Any]:
    kept: list[Any] = []

    def keep(record: logging.LogRecord) -> bool:
        kept.append(record)
        record.tenant = "acme"
        return True

    mp.setattr(logger, "filters", [keep])
    return kept


def _handle_mocked_on_the_instance(logger: logging.Logger, mp: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    mp.setattr(logger, "handle", calls.append)
    return calls


def _patched_on_the_class(
    owner: Any, name: str
) -> Callable[[logging.Logger, pytest.MonkeyPatch], list[Any]]:
    """A library's wrapper around a method of logging's (``Logger.handle``, ...)."""

    def install(logger: logging.Logger, mp: pytest.MonkeyPatch) -> list[Any]:
        calls: list[Any] = []
        original = getattr(owner, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            return original(self, *args, **kwargs)

        mp.setattr(owner, name, wrapper)
        return calls

    return install


def _handle_wrapped_on_the_pipelines_handler(
    logger: logging.Logger, mp: pytest.MonkeyPatch
) -> list[Any]:
    calls: list[Any] = []
    handler = stdlib._handler
    assert handler is not None
    original = handler.handle

    def handle(record: logging.LogRecord) -> Any:  # mock.patch.object(..., wraps=...)
        calls.append(record)
        return original(record)

    mp.setattr(handler, "handle", handle)
    return calls


def _a_record_factory(logger: logging.Logger, mp: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    factory = logging.getLogRecordFactory()

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        calls.append(record)
        return record

    mp.setattr(logging, "_logRecordFactory", make)
    return calls


def _filter_on_the_pipelines_handler(logger: logging.Logger, mp: pytest.MonkeyPatch) -> list[Any]:
    kept: list[Any] = []
    handler = stdlib._handler
    assert handler is not None
    mp.setattr(handler, "filters", [lambda record: kept.append(record) or True])
    return kept


_OTHERS = {
    "a handler on a logger on the way to the root": _handler_on_the_way,
    "a filter on the pipeline's handler": _filter_on_the_pipelines_handler,
    "a filter on the logger": _filter_on_the_logger,
    "handle() mocked on the logger": _handle_mocked_on_the_instance,
    "handle() wrapped on the pipeline's handler": _handle_wrapped_on_the_pipelines_handler,
    "Logger.handle patched": _patched_on_the_class(logging.Logger, "handle"),
    "Logger.makeRecord patched": _patched_on_the_class(logging.Logger, "makeRecord"),
    "Logger.filter patched": _patched_on_the_class(logging.Logger, "filter"),
    "PipelineHandler.handle patched": _patched_on_the_class(stdlib.PipelineHandler, "handle"),
    "LogRecord.__init__ patched": _patched_on_the_class(logging.LogRecord, "__init__"),
    "a record factory": _a_record_factory,
    "a Logger.callHandlers hook": _patched_on_the_class(logging.Logger, "callHandlers"),
}


@pytest.mark.parametrize("other", list(_OTHERS))
def test_anyone_else_who_would_see_the_record_gets_it_from_the_stdlibs_path(
    log_file: Path, monkeypatch: pytest.MonkeyPatch, other: str
) -> None:
    logger = logging.getLogger("way.down")
    with monkeypatch.context() as mp:
        seen = _OTHERS[other](logger, mp)
        logger.info("for %s", "them", extra={"n": 1})
    assert len(seen) == 1, seen
    logger.info("alone")  # the direct path again
    lines = shutdown_and_read(log_file)
    if other == "handle() mocked on the logger":  # the mock took the record: no line
        assert [r[F.MESSAGE] for r in lines] == ["alone"]
        return
    assert [r[F.MESSAGE] for r in lines] == ["for them", "alone"]
    assert lines[0]["n"] == 1
    if other == "a filter on the logger":
        assert lines[0]["tenant"] == "acme"


def test_a_logger_subclass_with_its_own_methods_gets_them(log_file: Path) -> None:
    logging.setLoggerClass(_Custom)
    try:
        logger = logging.getLogger("direct.custom")
    finally:
        logging.setLoggerClass(logging.Logger)
    logger.info("subclass")
    [line] = shutdown_and_read(log_file)
    assert line["custom"] == "made"


def test_what_the_stdlib_drops_stays_dropped(
    log_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    disabled = logging.getLogger("direct.disabled")
    monkeypatch.setattr(disabled, "disabled", True)  # as dictConfig leaves an existing logger
    disabled.info("disabled")
    disabled._log(logging.INFO, "disabled, called past isEnabledFor()", ())
    alone = logging.getLogger("direct.alone")
    monkeypatch.setattr(alone, "propagate", False)  # no handler of its own: lastResort's
    alone.warning("last resort")
    orphan = logging.Logger("orphan")  # not in the hierarchy: no parent
    orphan.warning("orphan")
    handler = stdlib._handler
    assert handler is not None
    monkeypatch.setattr(handler, "level", logging.ERROR)
    logging.getLogger("direct.low").warning("below the handler's level")
    monkeypatch.setattr(handler, "level", logging.NOTSET)
    logging.getLogger("direct.ok").info("written")
    assert [r[F.MESSAGE] for r in shutdown_and_read(log_file)] == ["written"]
    assert capsys.readouterr().err == "last resort\norphan\n"


def test_an_extra_key_the_stdlib_refuses_still_raises_its_error(log_file: Path) -> None:
    with pytest.raises(KeyError, match="Attempt to overwrite 'msg' in LogRecord"):
        logging.getLogger("direct").info("x", extra={"msg": "mine"})
    with pytest.raises(KeyError, match="Attempt to overwrite 'message' in LogRecord"):
        logging.getLogger("direct").info("x", extra={"message": "mine"})
    assert shutdown_and_read(log_file) == []


def test_stacklevel_finds_the_same_caller_through_the_direct_path(log_file: Path) -> None:
    seen = _Seen()
    logging.getLogger().addHandler(seen)
    logging.getLogger("direct").info("the first record another consumer sees has no details")
    del seen.records[:]

    def helper() -> None:
        logging.getLogger("direct").info("from the helper's caller", stacklevel=2)

    helper()
    line = sys._getframe().f_lineno - 1
    logging.getLogger("direct").info("here", stacklevel=1)
    logging.getLogger("direct").info("zero", stacklevel=0)  # logging's own frame, as before
    logging.getLogger().removeHandler(seen)
    first, second, third = seen.records
    name = "test_stacklevel_finds_the_same_caller_through_the_direct_path"
    assert (first.funcName, first.lineno) == (name, line)
    assert (second.funcName, second.lineno) == (name, line + 2)
    assert third.funcName == "findCaller"  # what the stdlib gives for 0
    alkana_logging.shutdown()


_SAME_LINE_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("plain", (), {}),
    ("user %s, %d rows", ("alice", 3), {}),
    ("%(user)s by name", ({"user": "bob"},), {}),
    ("an empty mapping %s", ({},), {}),
    ("too few %s %s", ("one",), {}),
    ("bad %d", ("text",), {}),
    ("login %s", ({"password": "hunter2", "user": "a"},), {}),
    ("the url %s", ("https://u:pw@host/x",), {}),
    ("extra", (), {"extra": {"password": "p", "nested": {"token": "t"}, 7: "int key"}}),
    ("extra and args %s", ("a",), {"extra": {"table": "t", "rows": 1}}),
]


@pytest.mark.parametrize("level", [logging.INFO, 25, logging.CRITICAL + 5])
def test_the_direct_path_writes_the_stdlibs_paths_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    records_made: list[logging.LogRecord],
    level: int,
) -> None:
    def lines(direct: bool, name: str) -> list[dict[str, Any]]:
        path = setup_file(tmp_path / name)
        monkeypatch.setattr(stdlib, "_direct", direct)
        logger = logging.getLogger("same")
        made = len(records_made)
        with alkana_logging.bound_context(request_id="r-1", password="ctx"):
            for msg, args, kwargs in _SAME_LINE_CALLS:
                logger.log(level, msg, *args, **kwargs)
            logger.log(level, {"a dict": "as the message", "secret": "s3"})
            logger.log(level, 42)
            # What the direct path leaves to the stdlib's: an exception, a stack.
            logger.log(level, "with a stack", stack_info=True)
            try:
                raise ValueError("boom")
            except ValueError as err:
                logger.log(level, "exc_info=True", exc_info=True)
                logger.log(level, "exc_info=err", exc_info=err)
        assert len(records_made) - made == (3 if direct else len(_SAME_LINE_CALLS) + 5)
        records = shutdown_and_read(path)
        for record in records:
            del record[F.TIMESTAMP]
            record.pop("exception_stacktrace", None)  # its line numbers differ
            if "stack_info" in record:
                # The stack ends at the caller's line (its first lines are pytest's).
                record["stack_info"] = record["stack_info"].splitlines()[-1].strip()
        return records

    direct, stdlib_path = lines(True, "direct"), lines(False, "stdlib")
    assert len(direct) == len(_SAME_LINE_CALLS) + 5
    assert direct == stdlib_path
    assert [r.get("exception_type") for r in direct[-2:]] == ["ValueError", "ValueError"]
    assert direct[-3]["stack_info"] == 'logger.log(level, "with a stack", stack_info=True)'
    assert "hunter2" not in json.dumps(direct)
    assert "pw@" not in json.dumps(direct)


def test_log_record_details_on_keeps_the_stdlibs_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, records_made: list[logging.LogRecord]
) -> None:
    alkana_logging.setup(log_file=str(tmp_path / "auto.log"), stdout=False)
    assert logging.Logger._log is stdlib._direct_log
    monkeypatch.setenv("LOG_RECORD_DETAILS", "on")
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False)  # again, now "on"
    assert logging.Logger._log is stdlib._STDLIB_LOG
    logging.getLogger("on").info("built")
    assert len(records_made) == 1
    assert [r[F.MESSAGE] for r in shutdown_and_read(path)] == ["built"]


def test_shutdown_leaves_a_log_method_someone_wrapped_since(
    log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = logging.Logger._log
    calls: list[str] = []

    def wrapped(self: logging.Logger, *args: Any, **kwargs: Any) -> None:
        calls.append(self.name)
        ours(self, *args, **kwargs)

    monkeypatch.setattr(logging.Logger, "_log", wrapped)
    logging.getLogger("wrapped").info("through theirs, then ours")
    assert [r[F.MESSAGE] for r in shutdown_and_read(log_file)] == ["through theirs, then ours"]
    assert logging.Logger._log is wrapped
    assert calls == ["wrapped"]


def test_handlers_changing_while_threads_log_lose_and_double_nothing(log_file: Path) -> None:
    """The root's handlers change under the loggers' feet (caplog, a test's handler, an
    integration added at run time): each line is written once, by one path or the other."""
    threads, per_thread = 4, 1500
    errors: list[BaseException] = []
    go = threading.Event()

    def work(n: int) -> None:
        logger = logging.getLogger(f"race.{n}")
        go.wait()
        try:
            for i in range(per_thread):
                logger.info("line", extra={"t": n, "i": i})
        except BaseException as err:
            errors.append(err)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    seen = _Seen()
    root = logging.getLogger()
    go.set()
    while any(worker.is_alive() for worker in workers):
        root.addHandler(seen)
        root.removeHandler(seen)
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    lines = shutdown_and_read(log_file)
    assert sorted((r["t"], r["i"]) for r in lines) == [
        (t, i) for t in range(threads) for i in range(per_thread)
    ]


@pytest.mark.parametrize("details", ["auto", "off"])
def test_a_stack_asked_for_is_written_while_the_details_are_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, details: str
) -> None:
    monkeypatch.setenv("LOG_RECORD_DETAILS", details)
    seen = _Seen()
    if details == "off":
        logging.getLogger().addHandler(seen)  # off whoever listens: the record has the stack
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False)
    assert logging._srcfile is None  # type: ignore[attr-defined]

    def helper() -> None:
        logging.getLogger("stack").warning("where", stack_info=True, stacklevel=2)

    helper()
    line = sys._getframe().f_lineno - 1
    logging.getLogger().removeHandler(seen)
    [record] = shutdown_and_read(path)
    stack = record["stack_info"].splitlines()
    assert stack[0] == "Stack (most recent call last):"
    assert stack[-2].endswith(f"line {line}, in {sys._getframe().f_code.co_name}")
    if details == "off":
        [seen_record] = seen.records
        assert (seen_record.lineno, seen_record.stack_info) == (line, record["stack_info"])


def test_a_librarys_null_handler_on_the_way_is_no_consumer(
    log_file: Path, monkeypatch: pytest.MonkeyPatch, records_made: list[logging.LogRecord]
) -> None:
    monkeypatch.setattr(logging.getLogger("urllib3"), "handlers", [logging.NullHandler()])
    logging.getLogger("urllib3.connectionpool").info("pooled")
    assert records_made == []
    assert logging._srcfile is None  # type: ignore[attr-defined]
    assert [r[F.MESSAGE] for r in shutdown_and_read(log_file)] == ["pooled"]


def test_a_filter_that_reads_the_details_sees_them(
    log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = stdlib._handler
    assert handler is not None
    monkeypatch.setattr(handler, "filters", [lambda r: r.funcName == "kept" and r.threadName])

    def kept() -> None:
        logging.getLogger("filtered").info("kept")

    def dropped() -> None:
        logging.getLogger("filtered").info("dropped")

    kept()
    dropped()
    assert [r[F.MESSAGE] for r in shutdown_and_read(log_file)] == ["kept"]


@pytest.mark.parametrize("stacklevel", [True, 2.0])
def test_an_odd_stacklevel_finds_the_callers_the_stdlib_finds(
    log_file: Path, stacklevel: Any
) -> None:
    seen = _Seen()
    logging.getLogger().addHandler(seen)

    def log() -> None:
        logging.getLogger("odd").info("odd", stacklevel=stacklevel)

    def caller() -> None:
        log()

    caller()
    logging.getLogger().removeHandler(seen)
    [record] = seen.records
    assert record.funcName == ("log" if stacklevel is True else "caller")
    alkana_logging.shutdown()


PATCHED_BEFORE_IMPORT = """
import logging, sys
original = logging.Logger.{name}

def wrapped(self, *args, **kwargs):  # a tracer's, put there before alkana_logging is imported
    {body}

logging.Logger.{name} = wrapped
import alkana_logging
alkana_logging.setup(log_file=sys.argv[1], stdout=False)
assert logging.Logger._log is not original or "{name}" != "_log"
logging.getLogger("traced").info("hello")
alkana_logging.shutdown()
assert logging.Logger.{name} is wrapped
"""


@pytest.mark.parametrize(
    ("name", "body"),
    [
        (
            "makeRecord",
            "record = original(self, *args, **kwargs); record.trace_id = '123'; return record",
        ),
        ("handle", "args[0].trace_id = '123'; return original(self, *args, **kwargs)"),
        ("_log", "kwargs['extra'] = {'trace_id': '123'}; return original(self, *args, **kwargs)"),
    ],
)
def test_a_method_wrapped_before_the_import_keeps_its_say(
    tmp_path: Path, name: str, body: str
) -> None:
    path = tmp_path / "app.log"
    done = run_child(PATCHED_BEFORE_IMPORT.format(name=name, body=body), str(path))
    assert done.returncode == 0, done.stderr
    [line] = read_records(path)
    assert (line[F.MESSAGE], line["trace_id"]) == ("hello", "123")


STACK_WALKERS = """
import inspect, logging, sys
import structlog
from loguru import logger
import alkana_logging

class InterceptHandler(logging.Handler):  # loguru's README, verbatim
    def emit(self, record):
        frame, depth = inspect.currentframe(), 0
        while frame and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth).info(record.getMessage())

logger.remove()
logger.add(sys.stdout, format="{function}:{line} {message}")
alkana_logging.setup(log_file=sys.argv[1], stdout=False)
logging.getLogger("intercepted").addHandler(InterceptHandler())
seen = []
class Seen(logging.Handler):
    def emit(self, record):
        seen.append(record)
logging.getLogger().addHandler(Seen())
factory_logger = structlog.stdlib.LoggerFactory()("factory")
wrapped = structlog.wrap_logger(
    factory_logger,
    wrapper_class=structlog.stdlib.BoundLogger,
    processors=[structlog.stdlib.render_to_log_kwargs],
)

def app_code():
    logging.getLogger("intercepted").info("loguru")
    factory_logger.info("structlog")
    factory_logger.info("with a stack", stack_info=True)
    wrapped.info("through structlog, with a stack", stack_info=True)

app_code()
for record in seen:
    print(record.funcName, record.lineno, record.getMessage())
for record in seen[-2:]:  # the last frame (3.13 shows a -c source line after it)
    print([f.strip() for f in record.stack_info.splitlines() if "File " in f][-1])
alkana_logging.shutdown()
"""


def test_tools_that_walk_the_stack_find_the_application_as_without_setup(
    tmp_path: Path,
) -> None:
    """loguru's InterceptHandler recipe and structlog's stdlib LoggerFactory look for the
    caller by skipping logging's own frames: the direct path's ``_log`` is one of them."""

    def run(details: str) -> list[str]:
        done = run_child(
            STACK_WALKERS, str(tmp_path / f"{details}.log"), LOG_RECORD_DETAILS=details
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    first = STACK_WALKERS.splitlines().index("def app_code():") + 1  # -c counts from 1
    on = run("on")  # the stdlib as it is
    assert on == [
        f"app_code:{first + 1} loguru",
        f"app_code {first + 1} loguru",
        f"app_code {first + 1} loguru",  # the loguru line, offered back to the stdlib
        f"app_code {first + 2} structlog",
        f"app_code {first + 3} with a stack",
        f"app_code {first + 4} through structlog, with a stack",
        f'File "<string>", line {first + 3}, in app_code',
        f'File "<string>", line {first + 4}, in app_code',
    ]
    assert run("auto") == on
    off = run("off")  # the records without the details, but the stacks asked for
    assert (off[0], off[-2:]) == (on[0], on[-2:])


def test_a_mapping_argument_that_raises_gives_a_line_that_says_so(log_file: Path) -> None:
    class Hostile(Mapping[str, str]):
        def __getitem__(self, key: str) -> str:
            return "v"

        def __iter__(self) -> Iterator[str]:
            return iter(["k"])

        def __len__(self) -> int:
            raise RuntimeError("no length")

    logging.getLogger("hostile").info("%(k)s", Hostile())  # the stdlib's LogRecord raises here
    [line] = shutdown_and_read(log_file)
    assert "no length" in line[F.LOG_ERROR]
    assert line[F.MESSAGE].startswith("'%(k)s' % ")


def test_a_method_mocked_on_the_root_logger_gets_the_root_loggers_records(
    log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[logging.LogRecord] = []
    monkeypatch.setattr(logging.root, "handle", calls.append)
    logging.getLogger().info("to the mock")
    monkeypatch.undo()
    assert [r.getMessage() for r in calls] == ["to the mock"]
    assert shutdown_and_read(log_file) == []


def test_json_formatter_names_itself_in_a_bad_arguments_error() -> None:
    with pytest.raises(
        alkana_logging.ConfigurationError, match=r"^JsonFormatter\(app_name=\.\.\.\): got 3"
    ):
        alkana_logging.JsonFormatter(app_name=3)  # type: ignore[arg-type]


def test_an_exception_logged_to_another_consumer_carries_the_details(log_file: Path) -> None:
    seen = _Seen()
    logging.getLogger().addHandler(seen)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("exc").exception("failed")  # the stdlib's path: the exception
    logging.getLogger().removeHandler(seen)
    [record] = seen.records
    assert _has_details(record), vars(record)
    alkana_logging.shutdown()


def test_a_dict_config_that_leaves_the_root_alone_leaves_the_details_off(log_file: Path) -> None:
    """dictConfig closes every handler, those it leaves in place too (uvicorn's own config
    does this at each start): the pipeline's stays on the root, alone."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"h": {"class": "logging.NullHandler"}},
            "loggers": {"server": {"handlers": ["h"]}},
        }
    )
    logging.getLogger("app").info("after")
    assert logging._srcfile is None  # type: ignore[attr-defined]
    assert [r[F.MESSAGE] for r in shutdown_and_read(log_file)] == ["after"]


def test_the_log_method_pickles_as_the_stdlibs_does(log_file: Path) -> None:
    assert pickle.loads(pickle.dumps(logging.Logger._log)) is logging.Logger._log
    alkana_logging.shutdown()


RELOADED = """
import importlib, logging, sys
import alkana_logging, alkana_logging.stdlib
stdlib_log = logging.Logger._log
alkana_logging.setup(log_file=sys.argv[1], stdout=False)
importlib.reload(alkana_logging.stdlib)  # IPython's %autoreload
assert alkana_logging.stdlib._STDLIB_LOG is stdlib_log
"""


def test_a_reload_of_the_module_still_knows_the_stdlibs_log_method(tmp_path: Path) -> None:
    done = run_child(RELOADED, str(tmp_path / "app.log"))
    assert done.returncode == 0, done.stderr
