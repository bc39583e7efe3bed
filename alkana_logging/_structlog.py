"""The structlog front-end: a bound logger class whose level can change after it was cached."""

from __future__ import annotations

import logging
from typing import Any

import structlog
from structlog._base import BoundLoggerBase


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
    def critical(self, event: Any = None, *args: Any, **kw: Any) -> Any: ...
    def exception(self, event: Any = None, *args: Any, **kw: Any) -> Any: ...


def set_level(level: int) -> None:
    """Give :class:`BoundLogger` the methods of structlog's filtering logger for ``level``."""
    template = structlog.make_filtering_bound_logger(level)
    for name, method in vars(template).items():
        if not name.startswith("__"):
            setattr(BoundLogger, name, method)


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
