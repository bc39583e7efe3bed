"""Log one call through each front-end and read the lines back from the log FILE.

The five ways a caller hands values to the pipeline: structlog keyword arguments, stdlib
``extra=``, stdlib ``%`` arguments, loguru ``bind`` and the bound context. Lines are read back
from the file as bytes, split on ``\\n`` only (what a shipper does), decoded as strict UTF-8 and
parsed as strict JSON: no ``NaN``/``Infinity`` literals, no duplicate keys.
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loguru import logger as loguru_logger

import alkana_logging
from alkana_logging import fields as F

STRUCTLOG = "structlog"
STDLIB_EXTRA = "stdlib_extra"
STDLIB_ARGS = "stdlib_args"
LOGURU_BIND = "loguru_bind"
BOUND_CONTEXT = "bound_context"
FRONTENDS = (STRUCTLOG, STDLIB_EXTRA, STDLIB_ARGS, LOGURU_BIND, BOUND_CONTEXT)
#: The front-ends that carry values as keys of the line (``%`` arguments end up in the message).
FIELD_FRONTENDS = (STRUCTLOG, STDLIB_EXTRA, LOGURU_BIND, BOUND_CONTEXT)

APP = "hostile-app"
ENV = "ci"
HOST = "host-1"
LOGGER = "hostile"
TIMESTAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_LEVELS = F.LEVEL_NUMBERS
# Clocks of the front-ends differ in precision (stdlib and loguru go through a float).
_CLOCK_SLACK_NS = 1_000_000


def setup_file(tmp_path: Path, **overrides: Any) -> Path:
    """``setup()`` writing to ``<tmp_path>/logs/app.log`` only, with known static fields."""
    path = tmp_path / "logs" / "app.log"
    settings: dict[str, Any] = {
        "log_file": str(path),
        "stdout": False,
        "app_name": APP,
        "app_env": ENV,
        "host": HOST,
        "level": "DEBUG",
    }
    settings.update(overrides)
    alkana_logging.setup(**settings)
    return path


def expected_logger(frontend: str, logger: str = LOGGER) -> str:
    """loguru names the line after the calling module (this one), the others after ``logger``."""
    return __name__ if frontend == LOGURU_BIND else logger


def args_format(message: str, fields: Mapping[Any, Any]) -> str:
    """The format string that :func:`log_call` gives the stdlib for ``fields`` as ``%`` args."""
    if not fields:
        return message
    return message.replace("%", "%%") + "".join(f" {key}=%s" for key in fields)


def log_call(
    frontend: str,
    message: Any,
    fields: Mapping[Any, Any] | None = None,
    *,
    level: str = F.INFO,
    exc: BaseException | None = None,
    logger: str = LOGGER,
) -> None:
    """One log call through ``frontend`` carrying ``fields`` (and ``exc`` as the exception)."""
    fields = {} if fields is None else fields
    levelno = _LEVELS[level]
    if frontend == STRUCTLOG:
        kw: dict[str, Any] = dict(fields)
        if exc is not None:
            kw["exc_info"] = exc
        getattr(alkana_logging.get_logger(logger), level)(message, **kw)
    elif frontend == STDLIB_EXTRA:
        logging.getLogger(logger).log(levelno, message, extra=dict(fields), exc_info=exc)
    elif frontend == STDLIB_ARGS:
        args = tuple(fields.values())
        logging.getLogger(logger).log(levelno, args_format(message, fields), *args, exc_info=exc)
    elif frontend == LOGURU_BIND:
        bound = loguru_logger.bind(**fields)
        if exc is not None:
            bound = bound.opt(exception=exc)
        getattr(bound, level)(message)
    elif frontend == BOUND_CONTEXT:
        with alkana_logging.bound_context(**fields):
            logging.getLogger(logger).log(levelno, message, exc_info=exc)
    else:  # pragma: no cover - a typo in a test
        raise ValueError(f"frontend: got {frontend!r}; expected one of {FRONTENDS}")


# -- reading back ---------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not strict JSON: {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_line(line: bytes) -> dict[str, Any]:
    """Strict UTF-8, strict JSON, one object, no duplicate keys."""
    assert b"\n" not in line
    record = json.loads(
        line.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_duplicates
    )
    assert isinstance(record, dict), line[:200]
    return record


def read_lines(path: Path) -> list[bytes]:
    """The file's lines, split on ``\\n`` only; the file must end with a complete line. A line of
    spaces is skipped, as readers do: it is a part a full disk cut, blanked (FileSink._cut)."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path} ends with a torn line: {data[-200:]!r}"
    return [line for line in data.split(b"\n")[:-1] if line.strip(b" ")]


def read_records(path: Path) -> list[dict[str, Any]]:
    return [parse_line(line) for line in read_lines(path)]


def timestamp_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 ``...T..:..:..\\.\\d{6}Z`` timestamp."""
    assert TIMESTAMP_RE.fullmatch(text), text
    seconds = time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(seconds) * 1_000_000_000 + int(text[20:26]) * 1000


def assert_schema(
    record: Mapping[str, Any],
    *,
    level: str = F.INFO,
    logger: str = LOGGER,
    app: str = APP,
    env: str = ENV,
    host: str = HOST,
    pid: int | None = None,
    between: tuple[int, int] | None = None,
) -> None:
    """The contract's keys come first, in order, with the right types and values."""
    assert list(record)[: len(F.SCHEMA_KEYS)] == list(F.SCHEMA_KEYS), list(record)
    assert TIMESTAMP_RE.fullmatch(record[F.TIMESTAMP]), record[F.TIMESTAMP]
    assert record[F.LEVEL] == level
    assert record[F.LOGGER] == logger
    assert isinstance(record[F.MESSAGE], str)
    assert (record[F.APP], record[F.ENV], record[F.HOST]) == (app, env, host)
    assert type(record[F.PID]) is int
    assert record[F.PID] == (os.getpid() if pid is None else pid)
    if between is not None:
        ns = timestamp_ns(record[F.TIMESTAMP])
        assert between[0] - _CLOCK_SLACK_NS <= ns <= between[1] + _CLOCK_SLACK_NS


def log_and_read_one(
    path: Path,
    frontend: str,
    message: Any,
    fields: Mapping[Any, Any] | None = None,
    *,
    level: str = F.INFO,
    exc: BaseException | None = None,
) -> tuple[dict[str, Any], bytes]:
    """Log one call, check that the file holds exactly one schema-correct line, return it."""
    before = time.time_ns()
    log_call(frontend, message, fields, level=level, exc=exc)
    after = time.time_ns()
    lines = read_lines(path)
    assert len(lines) == 1, [line[:200] for line in lines]
    record = parse_line(lines[0])
    assert_schema(record, level=level, logger=expected_logger(frontend), between=(before, after))
    return record, lines[0]
