"""Human-readable lines for a terminal (``LOG_FORMAT=console``); files always get JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from alkana_logging import fields as F

#: Keys that a person at a terminal does not need on every line.
_QUIET = frozenset({F.APP, F.ENV, F.HOST, F.PID, F.EXCEPTION_TYPE, F.EXCEPTION_MESSAGE})


class ConsoleRenderer:
    """Renders a record with structlog's ``ConsoleRenderer`` (colours on a terminal)."""

    def __init__(self, *, colors: bool) -> None:
        self._renderer = structlog.dev.ConsoleRenderer(
            colors=colors, event_key=F.MESSAGE, timestamp_key=F.TIMESTAMP, sort_keys=False
        )

    def __call__(self, record: Mapping[str, Any]) -> str:
        event = {k: v for k, v in record.items() if k not in _QUIET}
        stack = event.pop(F.EXCEPTION_STACKTRACE, None)
        text = str(self._renderer(None, str(record.get(F.LEVEL, "")), event))
        if stack:
            text = f"{text}\n{str(stack).rstrip()}"
        return text + "\n"
