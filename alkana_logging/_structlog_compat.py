"""The structlog internals the structlog front-end relies on, all of them, in one place.

A structlog release may change any of these without notice; ``tests/test_structlog_compat.py``
exercises each one, and ``make test`` runs it (with the front-end's tests) against the oldest
structlog ``pyproject.toml`` admits and the newest (``make pytest-structlog``).

1. ``structlog._base.BoundLoggerBase``: the base of the front-end's bound logger, for its
   ``__init__(logger, processors, context)``, ``bind``/``unbind``/``new`` and
   ``_proxy_to_logger(method_name, event, **kw)`` (which runs the processor chain and calls the
   wrapped logger). Public structlog gives it only through ``make_filtering_bound_logger``,
   whose classes are fixed to one level; the front-end's class must take a new level in place.
2. The attributes a ``BoundLoggerBase`` sets: ``_logger`` (the wrapped logger: its ``name``),
   ``_processors`` (the chain: the direct path is taken when it is the package's own list) and
   ``_context`` (the bound values). The level methods read them inline, one attribute read each:
   a call through this module would cost a Python call on every log line
   (:data:`BOUND_ATTRIBUTES` names them for the test).
3. The layout of a class made by ``make_filtering_bound_logger(level)``: its ``vars()`` hold the
   level methods (``debug`` ... ``critical``, ``warn``, ``msg``, ``fatal``, the async ``a*``
   ones), ``log``/``alog`` (the level first, the event second: :data:`EVENT_INDEX`),
   ``exception``/``aexception`` (``error`` with ``exc_info``), and the introspection methods
   :data:`INTROSPECTION`. A method below the level is structlog's bare no-op, recognised only by
   its function name (``_nop``, ``_anop``): :func:`is_filtered`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

import structlog
from structlog._base import BoundLoggerBase

__all__ = [
    "BOUND_ATTRIBUTES",
    "EVENT_INDEX",
    "INTROSPECTION",
    "BoundLoggerBase",
    "filtering_methods",
    "is_filtered",
]

#: What a ``BoundLoggerBase`` keeps: the wrapped logger, the processor chain, the bound values.
BOUND_ATTRIBUTES: Final = ("_logger", "_processors", "_context")
#: Where the event is among the positional arguments of a method (after the level for ``log``).
EVENT_INDEX: Final = {"log": 1, "alog": 1}
#: The filtering logger's methods that answer about its level rather than log.
INTROSPECTION: Final = frozenset({"is_enabled_for", "get_effective_level"})
#: The function names of structlog's no-op methods (a level below the logger's).
_NOPS: Final = frozenset({"_nop", "_anop"})


def filtering_methods(level: int) -> Iterator[tuple[str, Callable[..., Any]]]:
    """``(name, method)`` of every method of structlog's filtering bound logger for ``level``
    (dunder attributes left out)."""
    template = structlog.make_filtering_bound_logger(level)
    for name, method in vars(template).items():
        if not name.startswith("__"):
            yield name, method


def is_filtered(method: Callable[..., Any]) -> bool:
    """Whether ``method`` is structlog's no-op for a level below the logger's."""
    return getattr(method, "__name__", "") in _NOPS
