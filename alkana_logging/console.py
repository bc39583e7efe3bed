"""Human-readable lines for a terminal (``LOG_FORMAT=console``); files always get JSON."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import structlog

from alkana_logging import fields as F

#: Keys that a person at a terminal does not need on every line.
_QUIET = frozenset({F.APP, F.ENV, F.HOST, F.PID, F.EXCEPTION_TYPE, F.EXCEPTION_MESSAGE})
#: What a terminal would act on: C0 controls (CR/LF forge lines, ESC starts ANSI and OSC
#: sequences), DEL, C1 controls (a one-character CSI), and the bidirectional overrides that
#: reorder what is shown. structlog writes the message, the logger name and every key as they are
#: (other values as reprs), so these are escaped first, as JSON escapes them.
_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: The same, less the newline: a traceback is several lines by nature.
_UNSAFE_IN_STACK: Final = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SHORT: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match[0]
    return _SHORT.get(char) or f"\\u{ord(char):04x}"


def escape(text: str) -> str:
    """``text`` with every character a terminal would act on written as a JSON escape."""
    return _UNSAFE.sub(_escape_char, text)


class ConsoleRenderer:
    """Renders a record with structlog's ``ConsoleRenderer`` (colours on a terminal)."""

    def __init__(self, *, colors: bool) -> None:
        self._renderer = structlog.dev.ConsoleRenderer(
            colors=colors, event_key=F.MESSAGE, timestamp_key=F.TIMESTAMP, sort_keys=False
        )

    def __call__(self, record: Mapping[str, Any]) -> str:
        # Keys are written as they are too (values as reprs): a key from a request reaches the
        # terminal unless it is escaped.
        event = {
            (escape(k) if type(k) is str else k): v for k, v in record.items() if k not in _QUIET
        }
        stack = event.pop(F.EXCEPTION_STACKTRACE, None)
        for key in (F.MESSAGE, F.LOGGER):
            if isinstance(event.get(key), str):
                event[key] = escape(event[key])
        text = str(self._renderer(None, str(record.get(F.LEVEL, "")), event))
        if stack:
            # Indented: a line inside an exception's message cannot pass for a log line.
            lines = _UNSAFE_IN_STACK.sub(_escape_char, str(stack).rstrip()).split("\n")
            text = text + "".join(f"\n  {line}" for line in lines)
        return text + "\n"
