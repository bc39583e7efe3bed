"""The line renderer: turns one log call, from any front-end, into the contract's flat JSON line.

Everything here runs on the hot path, so it is written for speed: static fields are computed once
per process, the timestamp's date-and-seconds prefix is cached per second, a line is serialised
once by orjson (newline appended by orjson itself), and the slow paths (unserialisable values,
oversize lines) run only when the fast path fails.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Iterable, Mapping, Set
from decimal import Decimal
from pathlib import PurePath
from typing import Any, Final

import orjson

from alkana_logging import fields as F
from alkana_logging.context import current as current_context
from alkana_logging.redaction import (
    _SCALARS,
    CIRCULAR,
    CONTAINERS,
    MAX_DEPTH,
    REDACTED,
    TOO_DEEP,
    WALKED,
    Redactor,
    safe_repr,
    unrenderable,
)
from alkana_logging.settings import Settings

Record = dict[str, Any]

# orjson writes dataclasses itself, field by field and unredacted: hand them to `default`.
_DUMP_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATACLASS
_OPTIONS: Final = orjson.OPT_APPEND_NEWLINE | _DUMP_OPTIONS
_LEVEL_BY_NUMBER: Final = F.LEVEL_BY_NUMBER
_NUMBERS_DOWN: Final = sorted(_LEVEL_BY_NUMBER, reverse=True)
_RESERVED: Final = frozenset(F.SCHEMA_KEYS)
# The schema keys render() sets and orjson.dumps, as module globals: one load each, not two.
_TIMESTAMP: Final = F.TIMESTAMP
_LEVEL: Final = F.LEVEL
_LOGGER: Final = F.LOGGER
_MESSAGE: Final = F.MESSAGE
_dumps: Final = orjson.dumps

#: Attributes that every ``LogRecord`` has; anything else on a record came from ``extra=``.
#: ``message`` and ``asctime`` (a formatter sets them), uvicorn's ``color_message`` (the message
#: again, with ANSI colours) and Python 3.12's ``taskName`` are left out too.
RECORD_ATTRS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
#: The end of a text that was cut: how many characters were left out.
TRUNCATED: Final = "…[truncated {} chars]"
_TRUNCATED_END: Final = re.compile(re.escape(TRUNCATED).replace(r"\{\}", r"(\d+)") + r"\Z")

# Two caches, each replaced whole (thread-safe): the second's first millisecond (since the
# epoch) with its "YYYY-MM-DDTHH:MM:SS.", and the millisecond's first nanosecond with its prefix
# and three digits. A line in a millisecond already seen costs a subtraction, two comparisons,
# one division of a small int and a table lookup (no division of ns: it is three 30-bit digits,
# dividing it costs more than all the rest); one in another millisecond of the same second a
# division of ns, a subtraction, two comparisons and a lookup more; formatting an int with a
# width costs twice that.
_second: tuple[int, str] = (-(2**62), "")
_ms_cache: tuple[int, str] = (0, "1970-01-01T00:00:00.000")
_DIGITS3: Final = tuple(f"{i:03d}" for i in range(1000))
_DIGITS3_Z: Final = tuple(f"{i:03d}Z" for i in range(1000))  # the microseconds, and the end
# render_plain()'s own cache, also replaced whole: the nanosecond its second starts at and the
# second's "YYYY-MM-DDTHH:MM:SS.". Any line of that second is then one subtraction and small-int
# arithmetic (no division of the 64-bit nanoseconds), also in a millisecond not seen yet.
_sec_ns_cache: tuple[int, str] = (-1, "")
_NS_PER_SEC: Final = 1_000_000_000


def _second_prefix(ns: int) -> str:
    """format_timestamp() for a line of a second not in ``_sec_ns_cache``, which it fills."""
    global _sec_ns_cache  # noqa: PLW0603
    sec = ns // _NS_PER_SEC
    _sec_ns_cache = (sec * _NS_PER_SEC, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec)))
    return format_timestamp(ns)


def format_timestamp(ns: int) -> str:
    """RFC 3339 UTC with microseconds and ``Z``, from nanoseconds since the epoch."""
    global _ms_cache  # noqa: PLW0603
    start, prefix = _ms_cache
    offset = ns - start
    if offset >= 1_000_000 or offset < 0:  # another millisecond
        ms = ns // 1_000_000
        second, prefix = _second
        milli = ms - second
        if milli >= 1000 or milli < 0:  # another second
            prefix, milli = _new_second(ms)
        prefix += _DIGITS3[milli]
        start = ms * 1_000_000
        _ms_cache = (start, prefix)
        offset = ns - start
    return prefix + _DIGITS3_Z[offset // 1000]


def _new_second(ms: int) -> tuple[str, int]:
    """The prefix of the second of ``ms`` (milliseconds since the epoch), cached, and the
    millisecond within it."""
    global _second  # noqa: PLW0603
    sec, milli = divmod(ms, 1000)
    prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
    _second = (ms - milli, prefix)
    return prefix, milli


def level_name(levelno: int) -> str:
    """The contract's level for a stdlib/loguru level number (custom levels round down)."""
    name = _LEVEL_BY_NUMBER.get(levelno)
    if name is not None:
        return name
    for number in _NUMBERS_DOWN:
        if levelno >= number:
            return _LEVEL_BY_NUMBER[number]
    return F.LEVELS[0]


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters and ended by :data:`TRUNCATED` (the number of
    characters left out); a text cut before is cut again counting from its original length."""
    if len(text) <= limit:
        return text
    earlier = _TRUNCATED_END.search(text)
    if earlier is None:
        return text[:limit] + TRUNCATED.format(len(text) - limit)
    # Cut again (the line was still too long): count from the original length.
    kept = text[: min(limit, earlier.start())]
    return kept + TRUNCATED.format(earlier.start() + int(earlier[1]) - len(kept))


def _safe_text(obj: Any) -> str:
    try:
        return str(obj)
    except Exception:  # noqa: BLE001 - a logging call must never fail on a bad __str__
        return safe_repr(obj)


def _int_text(value: int) -> str:
    """An int beyond 64 bits as text; Python refuses str() over 4300 digits (a DoS guard)."""
    try:
        return str(value)
    except ValueError:
        return f"<int of {value.bit_length()} bits>"


def format_traceback(exc: BaseException) -> str:
    """What ``traceback.format_exception`` writes (causes, contexts and groups included), without
    the ``^^^^`` lines under the failing expression: working them out parses every source line
    of the stack again (more than half the cost of the whole), and in a log line they say little.
    """
    top = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    todo, seen = [top], set()
    while todo:
        te = todo.pop()
        if id(te) in seen:
            continue
        seen.add(id(te))
        for frame in te.stack:
            frame.colno = frame.end_colno = None  # no positions: no markers
        todo.extend(t for t in (te.__cause__, te.__context__) if t is not None)
        todo.extend(te.exceptions or ())
    return "".join(top.format())


def exception_fields(exc: BaseException) -> dict[str, str]:
    """``exception_type``, ``exception_message`` and the traceback (causes included) as one string.

    Tracebacks never carry local variables (the standard formatter prints none).
    """
    try:
        stack = format_traceback(exc)
    except Exception as err:  # noqa: BLE001 - e.g. an exception whose __str__ raises inside
        stack = f"<traceback unavailable: {safe_repr(err)}>"
    cls = type(exc)
    module = cls.__module__
    name = (
        cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"
    )
    return {
        F.EXCEPTION_TYPE: name,
        F.EXCEPTION_MESSAGE: _safe_text(exc),
        F.EXCEPTION_STACKTRACE: stack,
    }


def resolve_exc_info(exc_info: Any) -> BaseException | None:
    """Normalise the ``exc_info`` forms of stdlib and structlog to an exception instance."""
    if exc_info is None or exc_info is False:
        return None
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        return exc_info[1] if len(exc_info) > 1 and isinstance(exc_info[1], BaseException) else None
    return sys.exc_info()[1]


class Renderer:
    """Builds the record of one log call and serialises it to one JSON line."""

    def __init__(
        self,
        *,
        app: str,
        env: str,
        host: str,
        redactor: Redactor,
        max_line_bytes: int,
    ) -> None:
        self.app = app
        self.env = env
        self.host = host
        self.pid = os.getpid()
        self.redactor = redactor
        self.max_line_bytes = max_line_bytes
        # Characters, not bytes: the final size check catches wide characters.
        self.max_message_chars = max_line_bytes // 2
        self._walk = redactor.value
        self._urls = redactor.urls
        self._actions: dict[Any, int] = {}
        self._plain: set[str] = set()  # keys whose action is _KEEP
        self._plain_extra: set[str] = set()  # the same, less the LogRecord attributes
        self._default = self._make_default()
        self._template = self._make_template()

    def _make_template(self) -> Record:
        # The schema's keys in order; a line copies it (in C) and sets the four that change.
        template = {
            F.TIMESTAMP: "",
            F.LEVEL: "",
            F.LOGGER: "",
            F.MESSAGE: "",
            F.APP: self.app,
            F.ENV: self.env,
            F.HOST: self.host,
            F.PID: self.pid,
        }
        # Grown past its eight keys, then shrunk back: CPython's dict.copy() copies the key
        # table whole, so a copy of this one takes ten keys more (the bound context, the call's
        # fields) without being resized; a copy of an eight-key dict is resized at the third.
        # Three placeholders deleted again leave it compact enough for copy()'s fast path. The
        # keys, their order and the line are the same: a speed detail of CPython (3.11-3.13).
        for number in range(_TEMPLATE_ROOM):
            template[f"_{number}"] = None
        for number in range(_TEMPLATE_ROOM):
            del template[f"_{number}"]
        return template

    @classmethod
    def from_settings(cls, settings: Settings) -> Renderer:
        """The renderer for these settings' static fields, redaction and line limit."""
        return cls(
            app=settings.app_name,
            env=settings.app_env,
            host=settings.host,
            redactor=Redactor(settings.redact_keys),
            max_line_bytes=settings.max_line_bytes,
        )

    def after_fork(self) -> None:
        self.pid = os.getpid()
        self._template = self._make_template()

    # -- building -------------------------------------------------------------------------------

    def render(  # noqa: PLR0912 - the hot path, one straight function
        self,
        ns: int,
        level: str,
        logger: str,
        message: Any,
        fields: Mapping[Any, Any] | None,
        exc: BaseException | None = None,
        extra: Iterable[tuple[Any, Any]] | None = None,
    ) -> tuple[Record, bytes]:
        """The record of one call and its JSON line, newline included. Never raises on bad
        values: a line that had to be changed says why in ``log_error``.

        The record is ordered: schema keys, bound context, the call's fields.

        ``extra`` is a stdlib ``LogRecord``'s attributes as key-value pairs, read once: the
        record's own attributes among them (``RECORD_ATTRS``) are left out, the rest are
        ``extra=`` values. Then come ``fields`` and the exception's.
        """
        if type(message) is not str:  # a container given as the message: its secrets too
            message = self.redactor.message_text(message, self.plain)
        if len(message) > self.max_message_chars:
            # Scrubbed before it is cut: a cut inside user-info or a query value would leave the
            # start of the secret with nothing to recognise it by.
            message = truncate(self._urls.text(message), self.max_message_chars)
        # format_timestamp(), inline: no call for a line in a millisecond already seen, nor for
        # one in another millisecond of the same second (most lines of a quiet service).
        global _ms_cache  # noqa: PLW0603
        start, prefix = _ms_cache
        offset = ns - start
        if offset >= 1_000_000 or offset < 0:  # another millisecond
            ms = ns // 1_000_000
            second, prefix = _second
            milli = ms - second
            if milli >= 1000 or milli < 0:  # another second
                prefix, milli = _new_second(ms)
            prefix += _DIGITS3[milli]
            start = ms * 1_000_000
            _ms_cache = (start, prefix)
            offset = ns - start
        timestamp = prefix + _DIGITS3_Z[offset // 1000]
        record = self._template.copy()
        record[_TIMESTAMP] = timestamp
        record[_LEVEL] = level
        record[_LOGGER] = logger
        record[_MESSAGE] = message
        context = current_context()
        if context:
            self._merge(record, context.items())
        if extra is not None:
            # _merge() with the record's own attributes left out, inline.
            plain = self._plain_extra
            for key, value in extra:
                if key in plain and type(value) in _SCALARS and type(key) is str:
                    record[key] = value
                elif key not in RECORD_ATTRS:
                    self._merge_one(record, key, value)
        if fields:
            # _merge(), inline: a call less on every line with fields.
            plain = self._plain
            for key, value in fields.items():
                if key in plain and type(value) in _SCALARS and type(key) is str:
                    record[key] = value
                else:
                    self._merge_one(record, key, value)
        if exc is not None:
            self._merge(record, exception_fields(exc).items())
        try:
            line = _dumps(record, self._default, _OPTIONS)  # positional: cheaper
        except Exception as err:  # noqa: BLE001 - orjson raises TypeError/JSONEncodeError
            line = self._sanitised(record, err)
        # URL credentials anywhere in the line (values nested or converted included).
        # redaction.line_may_hold_url_secrets() inline: an ordinary line pays two memchr().
        if 61 in line or (64 in line and 47 in line):  # = @ /
            record, line = self._scrubbed(record, line)
        if len(line) > self.max_line_bytes:
            line = self._shrunk(record, len(line))
        return record, line

    def render_plain(
        self,
        ns: int,
        level: str,
        logger: str,
        message: str,
        fields: Mapping[str, Any],
        exc: BaseException | None = None,
    ) -> tuple[Record, bytes]:
        """:meth:`render` for a caller whose fields are all ``str`` keys with scalar values (the
        middleware's ``http_request`` event): the same record and line, with the fields taken in
        one ``update()`` when every key is known to be plain (neither a schema key nor a secret),
        else as :meth:`render` takes them. Never raises on bad values."""
        if not self._plain.issuperset(fields) or len(message) > self.max_message_chars:
            return self.render(ns, level, logger, message, fields, exc)
        # What render() does from here on, with the fields' loop left out (a copy: the
        # middleware's line is written for every request). The timestamp from the second's
        # cache: format_timestamp()'s text, digit for digit.
        start, prefix = _sec_ns_cache
        offset = ns - start
        if 0 <= offset < _NS_PER_SEC:
            timestamp = prefix + _DIGITS3[offset // 1_000_000] + _DIGITS3_Z[offset // 1000 % 1000]
        else:
            timestamp = _second_prefix(ns)
        record = self._template.copy()
        record[F.TIMESTAMP] = timestamp
        record[F.LEVEL] = level
        record[F.LOGGER] = logger
        record[F.MESSAGE] = message
        context = current_context()
        if context:
            self._merge(record, context.items())
        record.update(fields)
        if exc is not None:
            self._merge(record, exception_fields(exc).items())
        try:
            line = orjson.dumps(record, self._default, _OPTIONS)
        except Exception as err:  # noqa: BLE001 - orjson raises TypeError/JSONEncodeError
            line = self._sanitised(record, err)
        if 61 in line or (64 in line and 47 in line):  # = @ /
            record, line = self._scrubbed(record, line)
        if len(line) > self.max_line_bytes:
            line = self._shrunk(record, len(line))
        return record, line

    def plain_keys(self, keys: Iterable[Any]) -> bool:
        """Whether every one of ``keys`` is written as it is: a ``str`` that is neither a schema
        key nor a secret nor ``extra_``-prefixed (what :meth:`render` decides for a key, which
        depends on the key and the redaction settings only)."""
        actions = self._actions
        for key in keys:
            if type(key) is not str:
                return False
            action = actions.get(key)
            if action is None:
                action = self._action(key)
            if action != _KEEP:
                return False
        return True

    def record_template(self, fields: Mapping[str, Any]) -> Record:
        """A record to copy and fill in, for a caller whose keys are all plain (checked with
        :meth:`plain_keys`): the schema's keys with this process's static values, then the keys
        of ``fields`` with their values (placeholders the caller replaces). A template made
        before a fork has the parent's ``pid``: :meth:`after_fork` makes a new ``_template``,
        which tells a caller that keeps one (or a copy made before its own code ran) to ask
        again."""
        return {**self._template, **fields}

    def filled_fields(self, record: Record) -> dict[str, Any]:
        """The fields of a copy of :meth:`record_template` filled in: what follows the schema's
        keys (before :meth:`render_filled`, which adds the exception's)."""
        return dict(itertools.islice(record.items(), len(self._template), None))

    def render_filled(
        self,
        ns: int,
        level: str,
        logger: str,
        message: str,
        record: Record,
        exc: BaseException | None = None,
    ) -> tuple[Record, bytes]:
        """:meth:`render` for a caller that filled in a copy of :meth:`record_template` itself
        (the middleware's ``http_request`` event: the request's ids, which stand for the bound
        context, then its fields), every value a scalar, and may have added more plain keys
        with scalar values after them. The context is not read and the keys are not checked
        again: the same record and line as :meth:`render` gives for those fields. Never raises
        on bad values."""
        if len(message) > self.max_message_chars:
            # The line as render() writes it, from the fields.
            return self.render(ns, level, logger, message, self.filled_fields(record), exc)
        start, prefix = _sec_ns_cache
        offset = ns - start
        if 0 <= offset < _NS_PER_SEC:
            timestamp = prefix + _DIGITS3[offset // 1_000_000] + _DIGITS3_Z[offset // 1000 % 1000]
        else:
            timestamp = _second_prefix(ns)
        record[F.TIMESTAMP] = timestamp
        record[F.LEVEL] = level
        record[F.LOGGER] = logger
        record[F.MESSAGE] = message
        if exc is not None:
            self._merge(record, exception_fields(exc).items())
        try:
            line = orjson.dumps(record, self._default, _OPTIONS)
        except Exception as err:  # noqa: BLE001 - orjson raises TypeError/JSONEncodeError
            line = self._sanitised(record, err)
        if 61 in line or (64 in line and 47 in line):  # = @ /
            record, line = self._scrubbed(record, line)
        if len(line) > self.max_line_bytes:
            line = self._shrunk(record, len(line))
        return record, line

    def _merge(self, record: Record, pairs: Iterable[tuple[Any, Any]]) -> None:
        # A Python loop, not C set operations: for a handful of keys it runs fewer instructions
        # than building the views, maps and iterators the C checks need.
        plain = self._plain
        for key, value in pairs:
            # The usual key: known, plain, scalar, and a str (a StrEnum member equals its value
            # but is judged by its name too).
            if key in plain and type(value) in _SCALARS and type(key) is str:
                record[key] = value
            else:
                self._merge_one(record, key, value)

    def _merge_one(self, record: Record, key: Any, value: Any) -> None:
        # One dict lookup decides what to do with the key; the answer is cached per key.
        # Cached for exact str keys only: any other key equal to one (a StrEnum member) is
        # judged on its own.
        action = self._actions.get(key) if type(key) is str else _TEXT
        if action is None:
            action = self._action(key)
        if action == _KEEP:
            record[key] = self._walked(record, key, value)
        elif action == _REDACT:
            record[key] = REDACTED
        elif action == _RENAME:  # a schema key: keep the caller's value, renamed
            self._merge_one(record, self._free_name(record, F.COLLISION_PREFIX + key), value)
        elif action == _PREFIXED:  # extra_<key>: may meet a renamed value of the same name
            name = self._free_name(record, key) if key in record else key
            record[name] = self._walked(record, name, value)
        else:  # not a string: merged under its text, which may be a schema key
            self._merge_one(
                record, _safe_text(key), REDACTED if self.redactor.is_secret(key) else value
            )

    def _walked(self, record: Record, key: str, value: Any) -> Any:
        """``value`` with its secrets replaced; a value whose walk fails costs only itself."""
        if not isinstance(value, WALKED):
            return value
        try:
            return self._walk(value)
        except Exception as err:  # noqa: BLE001 - e.g. a dict subclass whose items() raises
            _add_error(record, f"value of {key!r} could not be rendered: {safe_repr(err)}")
            return unrenderable(value)

    @staticmethod
    def _free_name(record: Record, name: str) -> str:
        """``name``, or ``name_2``, ``name_3``... : the first not in the record yet."""
        if name not in record:
            return name
        number = 2
        while f"{name}_{number}" in record:
            number += 1
        return f"{name}_{number}"

    def _scrubbed(self, record: Record, line: bytes) -> tuple[Record, bytes]:
        """The record and line with URL user-info and secret query values replaced, when the
        line holds any (the record is read back from the line: every value, nested ones and
        those the serializer converted, is then plain JSON)."""
        urls = self._urls
        try:
            if not urls.line_needs_scrubbing(line):
                return record, line
            clean = urls.value(orjson.loads(line))
            return clean, orjson.dumps(clean, option=_OPTIONS)
        except Exception as err:  # noqa: BLE001 - the line is kept without its URLs checked
            _add_error(record, f"URLs could not be checked for credentials: {safe_repr(err)}")
            return record, self._minimal(record, record[F.LOG_ERROR])

    def _action(self, key: Any) -> int:
        if type(key) is not str:
            action = _TEXT
        elif key in _RESERVED:
            action = _RENAME
        elif self.redactor.is_secret(key):
            action = _REDACT
        elif key.startswith(F.COLLISION_PREFIX):
            action = _PREFIXED
        else:
            action = _KEEP
        if len(self._actions) < _ACTIONS_LIMIT:
            self._actions[key] = action
            if action == _KEEP:
                self._plain.add(key)
                if key not in RECORD_ATTRS:
                    self._plain_extra.add(key)
        return action

    def plain(self, value: Any) -> Any:
        """``value`` as the line writes it, in JSON's Python types (dicts, lists, text, numbers):
        secrets redacted, objects converted (a pydantic model or dataclass to its fields, bytes
        to text, anything else to its repr), URL credentials scrubbed. For the attributes of a
        record offered to the stdlib's other handlers, which must not see what the line hides.

        Raises:
            Exception: the value could not be walked (a container whose iteration raises).
        """
        walked = self._walk(value) if isinstance(value, WALKED) else value
        try:
            data = orjson.dumps(walked, self._default, _DUMP_OPTIONS)
        except Exception:  # noqa: BLE001 - non-text keys, cycles, big ints: as the line does
            sanitiser = _Sanitiser(self._default)
            clean = sanitiser.value(walked, 1, set())
            if sanitiser.failed:
                raise ValueError(sanitiser.failed[0][1]) from None
            data = orjson.dumps(clean, option=_DUMP_OPTIONS)
        return self._urls.value(orjson.loads(data))

    # -- serialising ----------------------------------------------------------------------------

    def _make_default(self) -> Any:
        redact_mapping = self.redactor.mapping

        def default(obj: Any) -> Any:  # noqa: PLR0911 - one branch a type
            if isinstance(obj, Mapping):
                return redact_mapping(obj)
            if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
                return redact_mapping(
                    {f.name: getattr(obj, f.name, None) for f in dataclasses.fields(obj)}
                )
            if isinstance(obj, (Set, frozenset)):
                return list(obj)
            if isinstance(obj, (bytes, bytearray, memoryview)):
                return bytes(obj).decode("utf-8", "backslashreplace")
            if isinstance(obj, (Decimal, PurePath)):
                return str(obj)
            if isinstance(obj, enum.Enum):
                return obj.value
            if isinstance(obj, BaseException):
                return f"{type(obj).__qualname__}: {_safe_text(obj)}"
            if isinstance(obj, int):  # an int beyond 64 bits
                return _int_text(obj)
            model_dump = getattr(type(obj), "model_dump", None)  # pydantic models
            if callable(model_dump):
                try:
                    return redact_mapping(model_dump(obj))
                except Exception:  # noqa: BLE001, S110 - fall back to the repr below
                    pass
            return safe_repr(obj)

        return default

    def _sanitised(self, record: Record, err: Exception) -> bytes:
        """The slow path: make every value serialisable, and say what was wrong."""
        sanitiser = _Sanitiser(self._default)
        clean = sanitiser.record(record)
        errors = [
            f"value of {key!r} could not be rendered: {error}" for key, error in sanitiser.failed
        ] or [f"unserialisable values replaced: {_safe_text(err)}"]
        for error in errors:
            _add_error(clean, error)
        try:
            return orjson.dumps(clean, option=_OPTIONS)
        except Exception as err2:  # noqa: BLE001 - last resort: the schema keys alone
            return self._minimal(record, f"line could not be serialised: {_safe_text(err2)}")

    def _shrunk(self, record: Record, size: int) -> bytes:
        limit = self.max_line_bytes
        per_value = max(64, limit // (8 * max(1, len(record))))
        small: Record = {}
        for key, value in record.items():
            if key in _RESERVED and key != F.MESSAGE:
                small[key] = value
                continue
            text = value if isinstance(value, str) else None
            if text is None and not isinstance(value, (int, float, bool, type(None))):
                try:
                    text = orjson.dumps(value, default=self._default, option=_DUMP_OPTIONS).decode()
                except Exception:  # noqa: BLE001
                    text = safe_repr(value)
            if text is not None and len(text) > per_value:
                value = truncate(text, per_value)  # noqa: PLW2901
            small[key] = value
        small[F.LOG_ERROR] = (
            f"line of {size} bytes exceeded the limit of {limit} bytes (LOG_MAX_LINE_BYTES); "
            "values truncated"
        )
        try:
            line = orjson.dumps(small, option=_OPTIONS)
        except Exception:  # noqa: BLE001
            line = b""
        if not line or len(line) > limit:
            return self._minimal(record, small[F.LOG_ERROR] + "; fields dropped")
        return line

    def fallback(self, ns: int, level: str, logger: Any, error: str) -> tuple[Record, bytes]:
        """The record and line of a call whose record could not be built: the schema alone."""
        try:
            timestamp = format_timestamp(ns)
        except Exception:  # noqa: BLE001 - a time beyond the calendar (1e30 ns): now, then
            timestamp = format_timestamp(time.time_ns())
        record: Record = {
            F.TIMESTAMP: timestamp,
            F.LEVEL: level,
            F.LOGGER: _safe_text(logger),
            F.MESSAGE: "<unrenderable log call>",
            F.APP: self.app,
            F.ENV: self.env,
            F.HOST: self.host,
            F.PID: self.pid,
            F.LOG_ERROR: error,
        }
        return record, self._minimal(record, error)

    def _minimal(self, record: Record, error: str) -> bytes:
        minimal = {k: _safe_text(record.get(k, "")) for k in F.SCHEMA_KEYS}
        minimal[F.PID] = self.pid  # type: ignore[assignment]
        minimal[F.MESSAGE] = truncate(minimal[F.MESSAGE], self.max_line_bytes // 8)
        minimal[F.LOG_ERROR] = error
        return orjson.dumps(
            {
                k: v.encode("utf-8", "backslashreplace").decode() if isinstance(v, str) else v
                for k, v in minimal.items()
            },
            option=_OPTIONS,
        )


_CONTAINERS: Final = CONTAINERS
_TEMPLATE_ROOM: Final = 3
_KEEP, _REDACT, _RENAME, _TEXT, _PREFIXED = 0, 1, 2, 3, 4
_ACTIONS_LIMIT: Final = 4096
_INT64_MIN: Final = -(2**63)
_UINT64_MAX: Final = 2**64 - 1


def _add_error(record: Record, error: str) -> None:
    """Say in ``log_error`` what the pipeline had to change (after what it said already)."""
    earlier = record.get(F.LOG_ERROR)
    record[F.LOG_ERROR] = f"{earlier}; {error}" if earlier else error


class _Sanitiser:
    """Copies a value into plain JSON types: cycles, depth, big ints, surrogates, odd keys."""

    def __init__(self, default: Any) -> None:
        self._default = default
        #: (top-level key, error) of each value that could not be converted at all.
        self.failed: list[tuple[str, str]] = []
        self._key = ""

    def record(self, values: Mapping[Any, Any]) -> dict[str, Any]:
        clean: dict[str, Any] = {}
        seen: set[int] = set()
        for key, value in values.items():
            self._key = self.key(key)
            clean[self._key] = self.value(value, 1, seen)
        return clean

    def text(self, value: str) -> str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value

    def key(self, key: Any) -> str:
        if type(key) is str:
            return self.text(key)
        # orjson takes exact str keys only: a StrEnum member is written as its text.
        return self.text(str.__str__(key) if isinstance(key, str) else _safe_text(key))

    def mapping(self, values: Mapping[Any, Any], depth: int, seen: set[int]) -> dict[str, Any]:
        return {self.key(k): self.value(v, depth + 1, seen) for k, v in values.items()}

    def value(self, value: Any, depth: int, seen: set[int]) -> Any:  # noqa: PLR0911
        if value is None or isinstance(value, (bool, float)):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, int):
            return int(value) if _INT64_MIN <= value <= _UINT64_MAX else _int_text(value)
        if depth > MAX_DEPTH:  # the redaction walk's limit: a value is cut alike either way
            return TOO_DEEP
        if id(value) in seen:
            return CIRCULAR
        seen.add(id(value))
        try:
            if isinstance(value, dict):
                return self.mapping(value, depth, seen)
            if isinstance(value, (list, tuple)):
                return [self.value(v, depth + 1, seen) for v in value]
            try:  # datetime, UUID, enum and friends: orjson knows them
                return orjson.Fragment(
                    orjson.dumps(value, default=self._default, option=_DUMP_OPTIONS)
                )
            except Exception:  # noqa: BLE001, S110 - fall through to the conversion below
                pass
            try:
                converted = self._default(value)
            except Exception as err:  # noqa: BLE001 - e.g. a Mapping whose items() raises
                self.failed.append((self._key, safe_repr(err)))
                return unrenderable(value)
            if converted is value:
                return safe_repr(value)
            return self.value(converted, depth + 1, seen)
        finally:
            seen.discard(id(value))
