"""The structlog front-end, whole: the bound logger whose level can change after it was cached,
its level methods (with the direct path to the pipeline), the last processor, the logger factory,
and what ``setup()`` installs into structlog and ``shutdown()`` undoes.

The structlog internals it relies on are in :mod:`alkana_logging._structlog_compat` alone.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog

from alkana_logging import _structlog_compat as compat
from alkana_logging import fields as F
from alkana_logging._line import resolve_exc_info
from alkana_logging.pipeline import _STDLIB_CALL_HANDLERS, Pipeline, to_stdlib
from alkana_logging.redaction import safe_repr

_root = logging.root
_Logger = logging.Logger
_time_ns = time.time_ns


class BoundLogger(compat.BoundLoggerBase):
    """structlog's filtering bound logger, with its level methods swapped by ``setup()``.

    structlog's ``make_filtering_bound_logger`` makes a class per level whose filtered methods
    are a bare ``return None``; loggers cached on first use keep their class for good. This class
    stays the same and receives the methods of the level in force, so a second ``setup()`` with
    another level reaches loggers that were cached before it.
    """

    def debug(self, event: Any = None, *args: Any, **kw: Any) -> Any: ...
    def info(self, event: Any = None, *args: Any, **kw: Any) -> Any: ...
    def warning(self, event: Any = None, *args: Any, **kw: Any) -> Any: ...
    def error(self, event: Any = None, *args: Any, **kw: Any) -> Any: ...
    def err(self, event: Any = None, *args: Any, **kw: Any) -> Any: ...
    def critical(self, event: Any = None, *args: Any, **kw: Any) -> Any: ...
    def exception(self, event: Any = None, *args: Any, **kw: Any) -> Any: ...


#: The level methods and the level each one writes, but ``exception``: structlog's own (it adds
#: the exception and calls ``error``) is kept.
_LEVEL_METHODS = {name: level for name, level in F.METHOD_LEVELS.items() if name != "exception"}

#: The pipeline that ``setup()`` installed (None: none, or closed by SIGTERM), and the same when
#: the direct path is on (``setup()`` without ``processors=``). The direct path hands a call of a
#: logger whose chain is :data:`_processors` straight to the pipeline: that skips structlog's
#: event-dict round trip (a copy of the context, the processor loop, the call of the wrapped
#: logger), a quarter of a line's cost.
_pipeline: Pipeline | None = None
_direct: Pipeline | None = None
#: What ``setup(processors=...)`` gave, for ``capture_logs()``.
_user_processors: tuple[Any, ...] = ()


def set_level(level: int) -> None:
    """Give :class:`BoundLogger` the methods of structlog's filtering logger for ``level``.

    Filtered methods stay structlog's bare no-ops. Enabled ones format positional arguments
    themselves: structlog's ``event % args`` raises into the caller when they do not match.
    """
    names = set()
    for name, method in compat.filtering_methods(level):
        names.add(name)
        if name in compat.INTROSPECTION or compat.is_filtered(method):
            setattr(BoundLogger, name, method)
        elif name in _LEVEL_METHODS:
            setattr(BoundLogger, name, _level_method(_LEVEL_METHODS[name]))
        else:
            setattr(BoundLogger, name, _interpolating(method, compat.EVENT_INDEX.get(name, 0)))
    for name, method_level in _LEVEL_METHODS.items():
        if name not in names:  # an alias structlog has not (``err``): its level's method
            setattr(BoundLogger, name, getattr(BoundLogger, method_level))


#: The parameters of structlog's ``BoundLoggerBase._proxy_to_logger`` besides its fields.
_PROXY_PARAMETERS: frozenset[str] = frozenset({"self", "method_name", "event"})


def _level_method(level_name: str) -> Callable[..., Any]:
    # self and event positional-only: a call's keywords are then never compared with their
    # names (CPython compares each keyword with every parameter that may be given by name, by
    # identity and then with ==: 900 instructions on 3.11 for four fields, a line's 3 %).
    # structlog's ``event=`` by name still works: it arrives in kw. ``self=`` and ``event=``
    # beside a message are fields (they raised TypeError into the caller).
    def method(self: Any, event: Any = None, /, *args: Any, **kw: Any) -> Any:  # noqa: PLR0912
        if event is None:  # no message, or structlog's event= given by name
            event = kw.pop("event", None)
        if args:
            event = interpolate(event, args, kw)
        pipeline = _direct
        # The BoundLoggerBase attributes (_structlog_compat.BOUND_ATTRIBUTES), read inline.
        if pipeline is not None and self._processors is _processors:
            context = self._context
            # kw is this call's own dict: popping from it is fine.
            fields = {**context, **kw} if context else kw
            ns = _time_ns()
            # A test and no call on the usual line, rather than pop() and getattr() calls.
            if "exc_info" in fields:
                exc_info = fields.pop("exc_info")
                exc = resolve_exc_info(exc_info) if exc_info else None
            else:
                exc = None
            message = "" if event is None else event
            try:
                name = self._logger.name
            except AttributeError:  # a logger of structlog.wrap_logger(), say
                name = "root"
            # pipeline.emit(), inline: a call less on the line most logged (a twentieth of it).
            # The line's fields take the span's ids; other handlers get the call's own fields.
            line_fields = fields
            otel_context = pipeline._otel_context
            if otel_context is not None:
                try:
                    otel = otel_context()
                except Exception as err:  # noqa: BLE001 - a tracing failure must not lose it
                    pipeline._span_failed(err)
                    otel = None
                last, ids = pipeline._last_span
                if otel is not last:
                    ids = pipeline._span_ids(otel)
                if ids is not None:
                    line_fields = {**fields, F.TRACE_ID: ids[0], F.SPAN_ID: ids[1]}
            try:
                record, line = pipeline.renderer.render(
                    ns, level_name, name, message, line_fields, exc, None
                )
            except Exception as err:  # noqa: BLE001 - the pipeline must not break the caller
                record, line = pipeline.render_failed(ns, level_name, name, err)
            for sink in pipeline.sinks:
                try:
                    sink.write(line, record, ns)
                except Exception as err:  # noqa: BLE001
                    pipeline.sink_failed(sink, err)
            # pipeline.has_foreign_handlers(), inline.
            if len(_root.handlers) > 1 or _Logger.callHandlers is not _STDLIB_CALL_HANDLERS:
                pipeline.forward(ns, level_name, name, message, fields, exc)
            return None
        if kw and not _PROXY_PARAMETERS.isdisjoint(kw):
            # Fields named like _proxy_to_logger()'s own parameters raised TypeError into the
            # caller: they are kept, prefixed, as the stdlib front-end keeps a record's names.
            kw = {
                (F.COLLISION_PREFIX + k if k in _PROXY_PARAMETERS else k): v for k, v in kw.items()
            }
        return self._proxy_to_logger(level_name, event, **kw)

    method.__name__ = level_name
    return method


def _interpolating(method: Callable[..., Any], event_index: int) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kw: Any) -> Any:
        if len(args) > event_index + 1:
            event = interpolate(args[event_index], args[event_index + 1 :], kw)
            args = (*args[:event_index], event)
        return method(self, *args, **kw)

    return call


def interpolate(event: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    """``event % args`` as structlog does it; on a mismatch, both are kept and ``log_error``
    (in ``kw``) says why, as for the stdlib. Secrets in the arguments are replaced first, as
    for the stdlib's (the message is text: nothing can be redacted after that)."""
    pipeline = _pipeline
    try:
        if pipeline is not None:  # inside the try: a walk that raises must not reach the caller
            args = pipeline.redactor.args(args)
        if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
            return event % args[0]
        return event % args
    except Exception as err:  # noqa: BLE001 - mismatched arguments must not lose the line
        kw[F.LOG_ERROR] = f"message arguments did not match the format: {safe_repr(err)}"
        if pipeline is not None:
            return pipeline.redactor.args_text(event, args)
        return f"{safe_repr(event)} % {safe_repr(args)}"


class LoggerFactory:
    """Makes the wrapped "logger": it only carries the name; the processor does the writing."""

    def __call__(self, *args: Any) -> Named:
        return Named(args[0] if args and isinstance(args[0], str) else "root")


class Named:
    """What structlog wraps: a name, and level methods that the last processor made no-ops."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _drop(self, *args: Any, **kw: Any) -> None:
        return None

    debug = info = msg = warning = warn = error = err = critical = fatal = exception = _drop
    log = _drop


def _processor(logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
    """The last structlog processor: the event goes to the pipeline (structlog's own copy of the
    event dict, so popping from it is fine); the wrapped logger gets an empty string."""
    message = event_dict.pop("event", "")
    exc_info = event_dict.pop("exc_info", None)
    exc = resolve_exc_info(exc_info) if exc_info else None
    level = F.METHOD_LEVELS.get(method_name, F.INFO)
    name = getattr(logger, "name", "root")
    pipeline = _pipeline
    if pipeline is not None:
        pipeline.emit_offered(_time_ns(), level, name, message, event_dict, exc)
    else:  # a logger kept after shutdown(): hand the event to the stdlib instead
        to_stdlib(level, name, message, event_dict, exc)
    return ""


#: The processor chain of every logger of the package: the application's processors
#: (``setup(processors=...)``) and :func:`_processor`; updated in place by ``setup()``, so
#: loggers made earlier follow it.
_processors: list[Any] = [_processor]


def get_logger(name: str, initial_values: dict[str, Any]) -> BoundLogger:
    """A concrete bound logger (no lazy proxy to resolve on every call) that stays valid across
    ``setup()`` calls: its class takes the level in force and its processor list is updated in
    place."""
    return BoundLogger(Named(name), _processors, initial_values)


def install(pipeline: Pipeline, level: int, processors: Iterable[Any] = ()) -> None:
    """Configure structlog to write through ``pipeline`` at ``level``, after ``processors``."""
    global _pipeline, _direct, _user_processors  # noqa: PLW0603
    _user_processors = tuple(processors)
    set_level(level)
    _processors[:] = [*_user_processors, _processor]
    _pipeline = pipeline
    _direct = None if _user_processors else pipeline
    structlog.configure(
        processors=_processors,
        wrapper_class=BoundLogger,
        logger_factory=LoggerFactory(),
        context_class=dict,
        cache_logger_on_first_use=True,
    )


def detach() -> None:
    """Loggers write to no pipeline any more (the processor hands events to the stdlib);
    structlog's configuration is left as it is (SIGTERM's close: see ``_state``)."""
    global _pipeline, _direct  # noqa: PLW0603
    _pipeline = _direct = None


def uninstall() -> None:
    """Undo :func:`install`: structlog's defaults again.

    Raises:
        Exception: structlog's reset failed (the caller reports it).
    """
    global _user_processors  # noqa: PLW0603
    detach()
    _user_processors = ()
    structlog.reset_defaults()


def user_processors() -> tuple[Any, ...]:
    """The structlog processors of the configuration in force (``setup(processors=...)``)."""
    return _user_processors


# Until setup() says otherwise, the stdlib's default threshold.
set_level(logging.INFO)
