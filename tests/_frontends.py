"""Log one call through each front-end and read the lines back from the log FILE.

The five ways a caller hands values to the pipeline: structlog keyword arguments, stdlib
``extra=``, stdlib ``%`` arguments, loguru ``bind`` and the bound context. Lines are read back
from the file by :mod:`tests._logfiles` (strict UTF-8, strict JSON, no torn line).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loguru import logger as loguru_logger

import alkana_logging
from alkana_logging import fields as F
from tests._logfiles import (
    APP,
    ENV,
    HOST,
    LOGGER,
    TIMESTAMP_RE,
    assert_schema,
    parse_line,
    read_lines,
    read_records,
    timestamp_ns,
)

__all__ = [  # the reading back is tests._logfiles'; these tests import it from here too
    "APP",
    "ENV",
    "HOST",
    "LOGGER",
    "TIMESTAMP_RE",
    "assert_schema",
    "parse_line",
    "read_lines",
    "read_records",
    "timestamp_ns",
]

STRUCTLOG = "structlog"
STDLIB_EXTRA = "stdlib_extra"
STDLIB_ARGS = "stdlib_args"
LOGURU_BIND = "loguru_bind"
BOUND_CONTEXT = "bound_context"
FRONTENDS = (STRUCTLOG, STDLIB_EXTRA, STDLIB_ARGS, LOGURU_BIND, BOUND_CONTEXT)
#: The front-ends that carry values as keys of the line (``%`` arguments end up in the message).
FIELD_FRONTENDS = (STRUCTLOG, STDLIB_EXTRA, LOGURU_BIND, BOUND_CONTEXT)

_LEVELS = F.LEVEL_NUMBERS


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


# -- reading back: tests/_logfiles.py, re-exported here for the tests that log through these


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
