"""The pipeline: one renderer and its sinks, and the front-ends that feed it.

Every front-end (stdlib ``logging``, structlog, loguru, the package's own event helpers) ends in
:meth:`Pipeline.emit`, so every line has one schema, one redaction and one set of outputs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

from alkana_logging import fields as F
from alkana_logging._render import _LEVEL_BY_NUMBER, Renderer, level_name, resolve_exc_info
from alkana_logging.health import PipelineHealth
from alkana_logging.redaction import Redactor
from alkana_logging.sinks import Sink

_LEVEL_NUMBERS = {F.DEBUG: 10, F.INFO: 20, F.WARNING: 30, F.ERROR: 40, F.CRITICAL: 50}

#: How many attributes ``LogRecord.__init__`` sets (``extra=`` values come after them).
_RECORD_SIZE = len(vars(logging.LogRecord("", 0, "", 0, "", (), None)))
_LogRecord = logging.LogRecord


class Pipeline:
    """Renders each call once and hands the line to every sink."""

    def __init__(
        self,
        renderer: Renderer,
        sinks: Sequence[Sink],
        *,
        level: int = logging.INFO,
        health: PipelineHealth | None = None,
    ) -> None:
        self.renderer = renderer
        self.redactor = renderer.redactor
        self.sinks: tuple[Sink, ...] = tuple(sinks)
        self.level = level
        self.health = health if health is not None else PipelineHealth()

    def emit(
        self,
        ns: int,
        level: str,
        logger: str,
        message: Any,
        fields: Mapping[Any, Any] | None = None,
        exc: BaseException | None = None,
        extra: Iterable[tuple[Any, Any]] | None = None,
    ) -> None:
        """Write one line to every sink (``extra``: a stdlib record's attributes, see
        ``Renderer.render``). Never raises."""
        try:
            record, line = self.renderer.render(ns, level, logger, message, fields, exc, extra)
        except Exception as err:  # noqa: BLE001 - the pipeline must not break the caller
            error = f"rendering failed: {_repr(err)}"
            self.health.internal_error(error)
            record, line = self.renderer.fallback(ns, level, logger, error)
        for sink in self.sinks:
            try:
                sink.write(line, record, ns)
            except Exception as err:  # noqa: BLE001
                self.health.internal_error(f"{type(sink).__name__} failed: {err!r}")

    # -- front-ends -----------------------------------------------------------------------------

    def emit_call(self, name: str, level: str, event: Any, fields: dict[str, Any]) -> None:
        """A call of an alkana structlog logger (``fields`` is the call's own dict)."""
        ns = time.time_ns()
        exc_info = fields.pop("exc_info", None)
        self.emit(
            ns,
            level,
            name,
            "" if event is None else event,
            fields,
            resolve_exc_info(exc_info) if exc_info else None,
        )

    def emit_stdlib(self, record: logging.LogRecord) -> None:
        """A stdlib ``LogRecord``: its ``extra=`` fields, message and exception."""
        self.emit(*stdlib_parts(record, self.renderer.redactor))

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as err:  # noqa: BLE001
                self.health.internal_error(f"closing {type(sink).__name__} failed: {err!r}")

    def after_fork(self) -> None:
        self.renderer.after_fork()
        self.health.after_fork()
        for sink in self.sinks:
            sink.after_fork()


STRUCTLOG_LEVELS: Mapping[str, str] = {
    "debug": F.DEBUG,
    "info": F.INFO,
    "msg": F.INFO,
    "warning": F.WARNING,
    "warn": F.WARNING,
    "error": F.ERROR,
    "err": F.ERROR,
    "exception": F.ERROR,
    "critical": F.CRITICAL,
    "fatal": F.CRITICAL,
}


def level_number(level: str) -> int:
    return _LEVEL_NUMBERS[level]


StdlibParts = tuple[
    int,
    str,
    str,
    str,
    dict[str, Any] | None,
    BaseException | None,
    Iterable[tuple[Any, Any]] | None,
]


def stdlib_parts(record: logging.LogRecord, redactor: Redactor | None = None) -> StdlibParts:
    """Split a ``LogRecord`` into the arguments of ``Pipeline.emit`` / ``Renderer.render``;
    never raises on bad ``%`` args. The ``extra=`` values come as key-value pairs, read once.

    With a ``redactor``, secrets in dicts and lists given as ``%`` arguments are replaced before
    the message is formatted (the message is text: nothing can be redacted after that).
    """
    fields: dict[str, Any] | None = None
    extra: Iterable[tuple[Any, Any]] | None = None
    try:
        msg, args = record.msg, record.args
        # What LogRecord.getMessage() returns, without the call (unless a subclass overrides it).
        if not args and type(msg) is str and type(record) is _LogRecord:
            message = msg
        else:
            redacted = redactor.args(args) if redactor is not None and args else args
            message = record.getMessage() if redacted is args else str(msg) % redacted
    except Exception as err:  # noqa: BLE001 - mismatched % arguments must not lose the line
        message = f"{_repr(record.msg)} % {_repr(record.args)}"
        fields = {F.LOG_ERROR: f"message arguments did not match the format: {err!r}"}
    attrs = record.__dict__
    if len(attrs) > _RECORD_SIZE:
        # extra= values come after LogRecord's own attributes, in the caller's order: the tail,
        # read in C as the renderer merges it (which leaves out record attributes there, such
        # as a formatter's ``message``). A subclass may set attributes before LogRecord's own:
        # all of its attributes are handed over.
        items = attrs.items()
        extra = islice(items, _RECORD_SIZE, None) if type(record) is _LogRecord else items
    if record.stack_info:
        fields = {**(fields or {}), "stack_info": record.stack_info}
    exc = resolve_exc_info(record.exc_info) if record.exc_info else None
    levelno = record.levelno
    return (
        int(record.created * 1_000_000_000),
        _LEVEL_BY_NUMBER.get(levelno) or level_name(levelno),
        record.name,
        message,
        fields,
        exc,
        extra,
    )


def _repr(obj: Any) -> str:
    try:
        return repr(obj)
    except Exception:  # noqa: BLE001
        return f"<unrepresentable {type(obj).__qualname__} object>"
