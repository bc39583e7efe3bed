"""The pipeline: one renderer and its sinks, and the forwarding of lines to the stdlib.

Every front-end (``stdlib``, ``_structlog``, ``_loguru``, the package's own event helpers) ends
in :meth:`Pipeline.emit`, so every line has one schema, one redaction and one set of outputs. A
line that did not come through the stdlib is also offered to the stdlib's other handlers and
hooks (:meth:`Pipeline.forward`), or, with no pipeline, handed to the stdlib (:func:`to_stdlib`).
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from alkana_logging import fields as F
from alkana_logging._line import (
    RECORD_ATTRS,
    Renderer,
)
from alkana_logging.context import current as current_context
from alkana_logging.health import PipelineHealth
from alkana_logging.redaction import safe_repr
from alkana_logging.sinks import Sink

_LEVEL_NUMBERS = F.LEVEL_NUMBERS

_root = logging.root
_Logger = logging.Logger
_get_logger = logging.getLogger
#: The stdlib's own ``Logger.callHandlers``; anything else there is a hook that wants every
#: record (sentry-sdk's LoggingIntegration replaces it). None if it was replaced before this
#: module was imported: then lines are always offered to the stdlib.
_STDLIB_CALL_HANDLERS = (
    _Logger.callHandlers if getattr(_Logger.callHandlers, "__module__", "") == "logging" else None
)


class ForwardedRecord(logging.LogRecord):
    """A line of structlog, loguru or the package's own helpers, offered to the stdlib's other
    handlers. The pipeline has written it already: its own handler lets it pass."""


def _otel_span_reader() -> tuple[Any, Any]:
    """How to find the current OpenTelemetry span: ``(context, key)``, where ``context()``
    returns a mapping that holds the span under ``key``; ``(None, None)`` when
    ``opentelemetry-api`` is not installed (then nothing of it is imported or called).

    The default runtime context keeps the current context in one ``ContextVar``: reading it and
    the span's key directly costs a quarter of ``trace.get_current_span()``, on every line.
    Anything else (another runtime context, a version without those names) takes the API's own
    ``get_current_span``.
    """
    try:
        from opentelemetry.trace import get_current_span
    except ImportError:
        return None, None
    try:
        from opentelemetry import context as otel_context
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.trace.propagation import _SPAN_KEY

        runtime = otel_context._RUNTIME_CONTEXT
        variable = getattr(runtime, "_current_context", None)
        if type(runtime) is ContextVarsRuntimeContext and isinstance(
            variable, contextvars.ContextVar
        ):
            return variable.get, _SPAN_KEY
    except (ImportError, AttributeError):
        pass
    return (lambda: {_SPAN: get_current_span()}), _SPAN


_SPAN = "span"
#: No OpenTelemetry context seen yet (``None`` is what a failed read gives).
_NO_CONTEXT = object()


#: Modules whose frames are the logging machinery, not the caller of a log call.
_MACHINERY = ("alkana_logging", "structlog", "loguru", "logging")


def _caller() -> tuple[str, int, str]:
    """``(path, line, function)`` of the first frame outside the logging machinery: where the
    log call was made, as the stdlib's ``findCaller`` gives it (only paid when a line is
    offered to other handlers)."""
    frame: Any = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.partition(".")[0] not in _MACHINERY:
            code = frame.f_code
            return code.co_filename, frame.f_lineno, code.co_name
        frame = frame.f_back
    return "(unknown file)", 0, "(unknown function)"


def _call_handlers(
    logger: logging.Logger,
    record: logging.LogRecord,
    skip: Callable[[logging.Handler], bool] | None = None,
) -> None:
    """What the stdlib's ``Logger.callHandlers`` does, whatever hook replaced it (without the
    handlers ``skip`` names)."""
    current: logging.Logger | None = logger
    levelno = record.levelno
    while current is not None:
        for handler in current.handlers:
            if levelno >= handler.level and (skip is None or not skip(handler)):
                handler.handle(record)
        current = current.parent if current.propagate else None


class _Forwarding(threading.local):
    """Set while :meth:`Pipeline.forward` hands a line the pipeline wrote to the stdlib's
    handlers: a handler that feeds loguru back (loguru's ``InterceptHandler`` recipe) must not
    bring it in again through the pipeline's loguru sink."""

    active = False


FORWARDING = _Forwarding()


def _reaches(logger: logging.Logger, handler_is: Callable[[logging.Handler], bool]) -> bool:
    """Whether a handler that ``handler_is`` is on ``logger`` or a logger it propagates to."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(handler_is(handler) for handler in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False


#: logging's switches for the ``LogRecord`` attributes the schema never writes (the logging
#: HOWTO's "Optimization" section): the caller's file, line and function (``_srcfile``, which
#: walks the stack on every call), the thread, the process, the multiprocessing process name and
#: (3.12+) the asyncio task.
RECORD_SWITCHES = tuple(
    name
    for name in ("logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks")
    if hasattr(logging, name)
)
_SRCFILE = "_srcfile"
#: The stdlib's values while the switches are off (None: they are as the stdlib has them).
_saved_switches: dict[str, Any] | None = None
#: Whether the switches go back on by themselves once another consumer listens ("auto").
_switches_auto = False


def record_details_off(*, auto: bool) -> None:
    """Stop the stdlib working out what no line of the schema writes (``LOG_RECORD_DETAILS``).

    With ``auto``, :func:`others_listen` turns them on again, for good, once records reach a
    consumer besides the pipeline (a handler that may print ``%(lineno)d``, sentry-sdk,
    OpenTelemetry's ``LoggingHandler``)."""
    global _saved_switches, _switches_auto  # noqa: PLW0603
    if _saved_switches is None:
        names = (*RECORD_SWITCHES, _SRCFILE)
        _saved_switches = {name: getattr(logging, name) for name in names}
    for name in RECORD_SWITCHES:
        setattr(logging, name, False)
    logging._srcfile = None  # the logging HOWTO documents this knob
    _switches_auto = auto


def record_details_on() -> None:
    """Give the stdlib back its switches, as they were before :func:`record_details_off` (a
    switch someone else turned on since is left as they set it)."""
    global _saved_switches, _switches_auto
    saved, _saved_switches, _switches_auto = _saved_switches, None, False
    for name, value in (saved or {}).items():
        if getattr(logging, name) in (False, None):
            setattr(logging, name, value)


def others_listen() -> None:
    """Records reach a consumer besides the pipeline: in "auto", the details come back on (from
    the next record: this one was made without them)."""
    if _switches_auto:
        record_details_on()


def has_foreign_handlers() -> bool:
    """Whether a line that did not come through the stdlib must be offered to it: a handler on
    the root logger besides the pipeline's (pytest's ``caplog``, OpenTelemetry's
    ``LoggingHandler``, the application's own), or ``Logger.callHandlers`` hooked (sentry-sdk).

    Two attribute reads: the front-ends inline it, so lines cost nothing more without them.
    """
    return len(_root.handlers) > 1 or _Logger.callHandlers is not _STDLIB_CALL_HANDLERS


def to_stdlib(
    level: str,
    logger: str,
    message: Any,
    fields: Mapping[Any, Any] | None = None,
    exc: BaseException | None = None,
) -> None:
    """A line with no pipeline to write it (no ``setup()``, or a logger kept after
    ``shutdown()``), handed to the stdlib logger ``logger``: its fields as ``extra=`` (a name the
    stdlib uses for itself prefixed ``extra_``), so users who wire logging themselves with
    :class:`~alkana_logging.JsonFormatter` get the same lines."""
    stdlib_logger = _get_logger(logger)
    number = _LEVEL_NUMBERS[level]
    if stdlib_logger.isEnabledFor(number):
        extra = {
            (F.COLLISION_PREFIX + k if k in RECORD_ATTRS else k): v
            for k, v in (fields or {}).items()
        }
        exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
        stdlib_logger.log(number, message, extra=extra, exc_info=exc_info)


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
        self._otel_context, self._otel_span_key = _otel_span_reader()
        # The last OpenTelemetry context seen and its span's ids (None: no span, or not
        # recording). A context is never changed (attaching a span makes a new one), so the
        # same context object means the same ids: a line reads the context and compares it, no
        # more. One tuple, read and replaced whole, so threads need no lock.
        self._last_span: tuple[Any, tuple[str, str] | None] = (_NO_CONTEXT, None)

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
        ``Renderer.render``). Never raises.

        Inside a recording OpenTelemetry span (``opentelemetry-api`` installed), the line's
        ``trace_id`` and ``span_id`` are the span's, over any bound or given.
        """
        otel_context = self._otel_context
        if otel_context is not None:
            try:
                context = otel_context()
            except Exception as err:  # noqa: BLE001 - a tracing failure must not lose the line
                self._span_failed(err)
                context = None
            last, ids = self._last_span
            if context is not last:
                ids = self._span_ids(context)
            if ids is not None:
                fields = (
                    {**fields, F.TRACE_ID: ids[0], F.SPAN_ID: ids[1]}
                    if fields
                    else {F.TRACE_ID: ids[0], F.SPAN_ID: ids[1]}
                )
        try:
            record, line = self.renderer.render(ns, level, logger, message, fields, exc, extra)
        except Exception as err:  # noqa: BLE001 - the pipeline must not break the caller
            record, line = self.render_failed(ns, level, logger, err)
        for sink in self.sinks:
            try:
                sink.write(line, record, ns)
            except Exception as err:  # noqa: BLE001
                self.sink_failed(sink, err)

    def render_failed(self, ns: int, level: str, logger: str, err: Exception) -> tuple[Any, bytes]:
        """The line written instead of one whose rendering raised ``err`` (counted)."""
        error = f"rendering failed: {safe_repr(err)}"
        self.health.internal_error(error)
        return self.renderer.fallback(ns, level, logger, error)

    def sink_failed(self, sink: Sink, err: Exception) -> None:
        self.health.internal_error(f"{type(sink).__name__} failed: {err!r}")

    def span_ids(self) -> tuple[str, str] | None:
        """``(trace_id, span_id)`` of the current OpenTelemetry span while it is recording, else
        None (always None without ``opentelemetry-api``). Never raises."""
        otel_context = self._otel_context
        if otel_context is None:
            return None
        try:
            context = otel_context()
        except Exception as err:  # noqa: BLE001 - a tracing failure must not lose the line
            self._span_failed(err)
            context = None
        last, ids = self._last_span
        return ids if context is last else self._span_ids(context)

    def _span_ids(self, context: Any) -> tuple[str, str] | None:
        """The W3C hex ids of the span in an OpenTelemetry context, or None (no span, or not
        recording); kept with the context, whose next lines reuse them. (A context changed in
        place, against OpenTelemetry's contract, keeps the ids it had.)"""
        if context is None:
            return None
        try:
            span = context.get(self._otel_span_key)
            ids = None
            if span is not None and span.is_recording():
                span_context = span.get_span_context()
                ids = (format(span_context.trace_id, "032x"), format(span_context.span_id, "016x"))
            self._last_span = (context, ids)
            return ids
        except Exception as err:  # noqa: BLE001 - a tracing failure must not lose the line
            self._span_failed(err)
            return None

    def _span_failed(self, err: Exception) -> None:
        self.health.internal_error(f"reading the OpenTelemetry span failed: {err!r}")

    # -- front-ends -----------------------------------------------------------------------------

    def emit_offered(
        self,
        ns: int,
        level: str,
        logger: str,
        message: Any,
        fields: Mapping[Any, Any] | None = None,
        exc: BaseException | None = None,
        where: tuple[str, int, str | None] | None = None,
        hooks: Any = True,
        skip: Callable[[logging.Handler], bool] | None = None,
    ) -> None:
        """``emit`` for a front-end other than the stdlib's: the line is also offered to the
        stdlib's other handlers when there are any (see :meth:`forward`)."""
        self.emit(ns, level, logger, message, fields, exc)
        if len(_root.handlers) > 1 or _Logger.callHandlers is not _STDLIB_CALL_HANDLERS:
            self.forward(ns, level, logger, message, fields, exc, where, hooks, skip)

    def forward(
        self,
        ns: int,
        level: str,
        logger: str,
        message: Any,
        fields: Mapping[Any, Any] | None,
        exc: BaseException | None,
        where: tuple[str, int, str | None] | None = None,
        hooks: Any = True,
        skip: Callable[[logging.Handler], bool] | None = None,
    ) -> None:
        """Offer a line that did not come through the stdlib to the stdlib's handlers and hooks.

        A :class:`ForwardedRecord` of the stdlib logger ``logger`` goes through that logger's
        ``handle()``: its level and filters, every handler up to the root at its own level, and
        ``Logger.callHandlers`` (where sentry-sdk listens). The bound context and the fields are
        its attributes, redacted as in the line (a name the stdlib uses for itself is prefixed
        ``extra_``); an exception is its ``exc_info``; ``where`` is ``(path, line, function)``
        when the front-end knows it, else the first caller outside the logging machinery. The
        pipeline's own handler lets the record pass: nothing is written twice. ``hooks``: a
        callable that says whether the hooks on ``Logger.callHandlers`` get the record too
        (False when one of them listens to that front-end itself: sentry-sdk's loguru
        integration); without them the handlers are called as ``callHandlers`` would. ``skip``:
        the handlers that feed that front-end back (loguru's ``InterceptHandler``): with one of
        them on the way, the hooks are not called either, and those handlers are left out.
        Never raises.
        """
        if _switches_auto:
            record_details_on()  # someone else listens: records get their details back
        try:
            stdlib_logger = _get_logger(logger)  # "root" is the root logger
            levelno = _LEVEL_NUMBERS[level]
            if not stdlib_logger.isEnabledFor(levelno):
                return
            path, line, function = where or _caller()
            context = current_context()
            values = {**context, **fields} if context and fields else fields or context
            # Redacted and URL-scrubbed as the file line is; a bad value costs only itself.
            text, attrs = self.redactor.forwarded(
                message, values, RECORD_ATTRS, self.renderer.plain
            )
            record = ForwardedRecord(
                logger,
                levelno,
                path,
                line,
                text,
                None,
                (type(exc), exc, exc.__traceback__) if exc is not None else None,
                function,
            )
            record.created = ns / 1_000_000_000
            record.msecs = ns // 1_000_000 % 1000
            record.__dict__.update(attrs)
            FORWARDING.active = True
            try:
                if hooks is True or (
                    hooks() and (skip is None or not _reaches(stdlib_logger, skip))
                ):
                    stdlib_logger.handle(record)
                elif not stdlib_logger.disabled and stdlib_logger.filter(record):
                    # A loguru line: not to a handler that feeds loguru (it would come back
                    # into loguru from inside loguru's own sink, which loguru refuses).
                    _call_handlers(stdlib_logger, record, skip=skip)
            finally:
                FORWARDING.active = False
        except Exception as err:  # noqa: BLE001 - another handler must not break the caller
            self.health.internal_error(f"offering a line to the stdlib's handlers failed: {err!r}")

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
