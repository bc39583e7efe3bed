"""The structlog front-end: a bound logger class whose level can change after it was cached."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from structlog._base import BoundLoggerBase

from alkana_logging import fields as F
from alkana_logging.redaction import safe_repr


class BoundLogger(BoundLoggerBase):
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
#: Where the event is among the positional arguments (after ``level`` for ``log``).
_EVENT_INDEX = {"log": 1, "alog": 1}
_INTROSPECTION = frozenset({"is_enabled_for", "get_effective_level"})


def set_level(level: int) -> None:
    """Give :class:`BoundLogger` the methods of structlog's filtering logger for ``level``.

    Filtered methods stay structlog's bare no-ops. Enabled ones format positional arguments
    themselves: structlog's ``event % args`` raises into the caller when they do not match.
    """
    template = structlog.make_filtering_bound_logger(level)
    for name, method in vars(template).items():
        if name.startswith("__"):
            continue
        if name in _INTROSPECTION or getattr(method, "__name__", "") in ("_nop", "_anop"):
            setattr(BoundLogger, name, method)
        elif name in _LEVEL_METHODS:
            setattr(BoundLogger, name, _level_method(_LEVEL_METHODS[name]))
        else:
            setattr(BoundLogger, name, _interpolating(method, _EVENT_INDEX.get(name, 0)))
    for name, method_level in _LEVEL_METHODS.items():
        if name not in vars(template):  # an alias structlog has not (``err``): its level's
            setattr(BoundLogger, name, getattr(BoundLogger, method_level))


#: ``(logger name, level, message, fields)``: where the level methods hand a call when the
#: logger's processors are ``_direct_chain`` (alkana's processor alone: ``setup()`` without
#: ``processors=``). That skips structlog's event-dict round trip (a copy of the context, the
#: processor loop, the call of the wrapped logger): a quarter of a line's cost. ``None``: the
#: chain runs.
Direct = Callable[[str, str, Any, dict[str, Any]], None]
_direct: Direct | None = None
_direct_chain: object = None


def set_direct(direct: Direct | None, chain: object = None) -> None:
    """Hand calls of loggers whose processor list is ``chain`` straight to ``direct``."""
    global _direct, _direct_chain  # read once a call by the level methods
    _direct, _direct_chain = direct, chain


def _level_method(level_name: str) -> Callable[..., Any]:
    def method(self: Any, event: Any = None, *args: Any, **kw: Any) -> Any:
        if args:
            event = interpolate(event, args, kw)
        direct = _direct
        if direct is not None and self._processors is _direct_chain:
            context = self._context
            # kw is this call's own dict: the pipeline may pop from it.
            direct(
                getattr(self._logger, "name", "root"),
                level_name,
                event,
                {**context, **kw} if context else kw,
            )
            return None
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
    from alkana_logging import _state  # imported late: _state imports this module

    pipeline = _state.current()
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


# Until setup() says otherwise, the stdlib's default threshold.
set_level(logging.INFO)
