"""Metrics as log lines: ``timed`` writes a ``timing`` event, ``metric`` a ``metric`` event.

The numbers live in the lines; LogQL derives rates, percentiles and gauges from them, so one
pipeline serves logs and metrics.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Final, ParamSpec, Self, TypeVar, cast

from alkana_logging import _state
from alkana_logging import fields as F

__all__ = ["Timed", "metric", "timed"]

#: The logger named in ``timing`` and ``metric`` events.
LOGGER_NAME: Final = "alkana_logging.metrics"

_TIMING_KEYS: Final = frozenset((F.EVENT, F.OPERATION, F.DURATION_MS, F.STATUS, F.ERROR_FIELD))
_METRIC_KEYS: Final = frozenset((F.EVENT, F.METRIC, F.VALUE))

P = ParamSpec("P")
R = TypeVar("R")
#: The arguments of ``__exit__``: the exception's type and traceback.
ExcType = type[BaseException] | None
Tb = TracebackType | None


def error_summary(exc: BaseException) -> str:
    """``Type: message`` of an exception, or the type alone when the message is empty."""
    name = type(exc).__qualname__
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose __str__ fails still has a type
        text = ""
    return f"{name}: {text}" if text else name


class AsyncWith:
    """``async with`` for a context manager whose ``__enter__``/``__exit__`` never block."""

    def __enter__(self) -> Self:
        raise NotImplementedError

    def __exit__(self, exc_type: ExcType, exc: BaseException | None, tb: Tb) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, exc_type: ExcType, exc: BaseException | None, tb: Tb) -> None:
        self.__exit__(exc_type, exc, tb)


def wrap_calls(
    func: Callable[P, R], block: Callable[[], AbstractContextManager[Any]]
) -> Callable[P, R]:
    """``func`` (sync or async) with every call inside a new ``with block():``."""
    if inspect.iscoroutinefunction(func):
        async_func = cast(Callable[P, Awaitable[Any]], func)

        @functools.wraps(func)
        async def call_async(*args: P.args, **kwargs: P.kwargs) -> Any:
            with block():
                return await async_func(*args, **kwargs)

        return cast(Callable[P, R], call_async)

    @functools.wraps(func)
    def call_sync(*args: P.args, **kwargs: P.kwargs) -> R:
        with block():
            return func(*args, **kwargs)

    return call_sync


class Timed(AsyncWith):
    """Times a block or a function and writes one ``timing`` event when it ends.

    Use :func:`timed` to make one. As a context manager (``with`` or ``async with``) it times the
    block; as a decorator it times every call of a sync or an async function, each call on its
    own clock. The event has ``operation``, ``duration_ms`` (float), ``status`` (``success`` or
    ``failed``) and the fields given; a failure (any exception, ``KeyboardInterrupt`` and
    cancellation included) is written at error level with ``error`` (``Type: message``) and the
    exception is re-raised. The stack trace is left to whoever handles the exception.
    """

    __slots__ = ("_starts", "fields", "operation")

    def __init__(self, operation: str, fields: dict[str, Any]) -> None:
        if not isinstance(operation, str) or not operation:
            raise ValueError(f"timed(): operation must be a non-empty string, got {operation!r}")
        taken = _TIMING_KEYS.intersection(fields)
        if taken:
            raise ValueError(
                f"timed(): fields {sorted(taken)} are written by timed() itself; choose other names"
            )
        self.operation = operation
        self.fields = fields
        self._starts: list[float] = []

    # -- context manager ------------------------------------------------------------------------

    def __enter__(self) -> Timed:
        self._starts.append(time.perf_counter())
        return self

    def __exit__(self, exc_type: ExcType, exc: BaseException | None, tb: Tb) -> None:
        end = time.perf_counter()
        # Nested use of one instance: the innermost block ends first.
        start = self._starts.pop() if self._starts else end
        self._emit(end - start, exc)

    # -- decorator ------------------------------------------------------------------------------

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        operation, fields = self.operation, self.fields
        return wrap_calls(func, lambda: Timed(operation, fields))

    def _emit(self, seconds: float, exc: BaseException | None) -> None:
        level = F.INFO if exc is None else F.ERROR
        fields: dict[str, Any] = {
            F.EVENT: F.EVENT_TIMING,
            F.OPERATION: self.operation,
            F.DURATION_MS: round(seconds * 1000.0, 3),
            F.STATUS: F.STATUS_SUCCESS if exc is None else F.STATUS_FAILED,
            **self.fields,
        }
        if exc is not None:
            fields[F.ERROR_FIELD] = error_summary(exc)
        _state.emit(level, LOGGER_NAME, self.operation, fields)


def timed(operation: str, **fields: Any) -> Timed:
    """Time a block or a function: one ``timing`` event with ``duration_ms`` and ``status``.

    ::

        with timed("refresh_views", table="mv_stock"):
            refresh()

        @timed("load_prices")
        async def load_prices(): ...

    Args:
        operation: what is timed (the ``operation`` field and the line's message).
        **fields: extra fields of the event (``table="mv_stock"``).

    Returns:
        A :class:`Timed`: a context manager (sync and async) and a decorator.

    Raises:
        ValueError: ``operation`` is empty, or a field has a name the event itself uses.
    """
    return Timed(operation, fields)


def metric(name: str, value: float, **labels: Any) -> None:
    """Write one ``metric`` event: a gauge or counter reading such as ``db_connections_active``.

    Args:
        name: the metric's name (the ``metric`` field).
        value: the reading, written as a float (``NaN``, infinities and ints beyond the float
            range are written as null).
        **labels: extra fields that qualify the reading (``pool="primary"``).

    Raises:
        ValueError: ``name`` is empty, or a label has a name the event itself uses.
        TypeError: ``value`` is not a real number.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"metric(): name must be a non-empty string, got {name!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"metric(): value must be an int or a float, got {value!r}")
    taken = _METRIC_KEYS.intersection(labels)
    if taken:
        raise ValueError(
            f"metric(): labels {sorted(taken)} are written by metric() itself; choose other names"
        )
    try:
        number: float | None = float(value)
    except OverflowError:  # an int beyond the float range
        number = None
    if number is not None and not math.isfinite(number):
        number = None
    _state.emit(
        F.INFO,
        LOGGER_NAME,
        name,
        {F.EVENT: F.EVENT_METRIC, F.METRIC: name, F.VALUE: number, **labels},
    )
