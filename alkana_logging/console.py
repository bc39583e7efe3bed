"""Human-readable lines for a terminal (``LOG_FORMAT=console``); files always get JSON."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson
import structlog

from alkana_logging import fields as F
from alkana_logging.redaction import _SCALARS, unrenderable

#: Keys that a person at a terminal does not need on every line.
_QUIET = frozenset({F.APP, F.ENV, F.HOST, F.PID, F.EXCEPTION_TYPE, F.EXCEPTION_MESSAGE})
#: What a terminal would act on: C0 controls (CR/LF forge lines, ESC starts ANSI and OSC
#: sequences), DEL, C1 controls (a one-character CSI), and the bidirectional overrides that
#: reorder what is shown. structlog writes the message, the logger name, every key and text
#: values without whitespace as they are (other values as reprs, which escape them), so these are
#: escaped first, as JSON escapes them.
_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: The same, less the newline: a traceback is several lines by nature.
_UNSAFE_IN_STACK: Final = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SHORT: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: What structlog's ``ConsoleRenderer`` takes as text: the level (padded: not text raises), the
#: time, the message and the logger names (shown by ``str()``: a Python repr), and the keys it
#: appends (``stack``, ``exception``: not text raises). A record read back from a file (``tail``,
#: a line another program wrote) may hold any JSON value there: it is shown as JSON text.
_TEXT_KEYS: Final = (
    F.LEVEL,
    F.TIMESTAMP,
    F.MESSAGE,
    F.LOGGER,
    "logger_name",
    "stack",
    "exception",
)


def _escape_char(match: re.Match[str]) -> str:
    char = match[0]
    return _SHORT.get(char) or f"\\u{ord(char):04x}"


def escape(text: str) -> str:
    """``text`` with every character a terminal would act on written as a JSON escape."""
    return _UNSAFE.sub(_escape_char, text)


def use_colors(stream: Any, choice: str = "auto") -> bool:
    """Whether lines written to ``stream`` get ANSI colours: ``always``, ``never``, or ``auto``:
    on a terminal, unless ``NO_COLOR`` is set to anything but the empty text
    (https://no-color.org). ``LOG_FORMAT=console`` and ``alkana-logging tail`` both decide here.
    """
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    try:
        return bool(stream.isatty())
    except Exception:  # noqa: BLE001 - a closed or odd stream is no terminal
        return False


def _json_text(value: Any) -> str:
    """A value that is not text, as the JSON line writes it (``30``, ``null``, ``{"a":1}``)."""
    try:
        text = orjson.dumps(value).decode()
    except Exception:  # noqa: BLE001 - an integer over 64 bits, or no JSON value at all
        try:
            text = str(value)
        except Exception:  # noqa: BLE001 - the type only: its str may be what fails
            text = unrenderable(value)
    return escape(text)


class ConsoleFormat:
    """A record as a human line, by structlog's ``ConsoleRenderer`` (colours on a terminal):
    the ``format`` of a :class:`~alkana_logging.sinks.StreamSink` for ``LOG_FORMAT=console``.

    Args:
        colors: ANSI colours.
        plain: turns a value that is not text or a number into what the JSON line writes for
            it (the line renderer's :meth:`~alkana_logging._line.Renderer.plain`: a pydantic model
            as its fields, secrets redacted); without it (a record read back from a file, JSON
            already), values are shown as they are.
    """

    def __init__(self, *, colors: bool, plain: Callable[[Any], Any] | None = None) -> None:
        self._renderer = structlog.dev.ConsoleRenderer(
            colors=colors, event_key=F.MESSAGE, timestamp_key=F.TIMESTAMP, sort_keys=False
        )
        self._plain = plain

    def __call__(self, record: Mapping[str, Any]) -> str:
        # Keys and text values are written as they are: a key or a path from a request reaches
        # the terminal unless it is escaped. Other values are shown as the file has them: the
        # record still holds the caller's objects, whose reprs show what the line redacts.
        plain = self._plain
        event: dict[Any, Any] = {}
        for key, value in record.items():
            if key in _QUIET:
                continue
            if type(value) is str:
                shown: Any = value if key == F.EXCEPTION_STACKTRACE else escape(value)
            elif type(value) in _SCALARS or plain is None:
                shown = value
            else:
                try:
                    shown = plain(value)
                except Exception:  # noqa: BLE001 - the type only: its repr may be what fails
                    shown = unrenderable(value)
                if type(shown) is str:  # bytes, a path, an enum's text: as text values are
                    shown = escape(shown)
            event[escape(key) if type(key) is str else key] = shown
        for key in _TEXT_KEYS:
            if key in event and type(event[key]) is not str:
                event[key] = _json_text(event[key])
        stack = event.pop(F.EXCEPTION_STACKTRACE, None)
        text = str(self._renderer(None, "", event))
        if stack:
            # Indented: a line inside an exception's message cannot pass for a log line.
            lines = _UNSAFE_IN_STACK.sub(_escape_char, str(stack).rstrip()).split("\n")
            text = text + "".join(f"\n  {line}" for line in lines)
        return text + "\n"
