"""Hostile input through every front-end: the caller never fails, the file gets exactly one line
of strict JSON with the schema intact, and the value is written in a sensible form.

Each case is logged through the five front-ends of :mod:`tests._frontends` where the input makes
sense for the front-end (loguru and keyword arguments cannot take non-string keys, ``%`` arguments
carry values in the message). Every line is read back from the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import logging
import re
import signal
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

import alkana_logging
from alkana_logging import fields as F
from alkana_logging.redaction import TOO_DEEP
from alkana_logging.settings import DEFAULT_MAX_LINE_BYTES
from tests._frontends import (
    BOUND_CONTEXT,
    FIELD_FRONTENDS,
    FRONTENDS,
    LOGURU_BIND,
    STDLIB_ARGS,
    STDLIB_EXTRA,
    STRUCTLOG,
    args_format,
    assert_schema,
    log_and_read_one,
    parse_line,
    read_lines,
    setup_file,
)

MESSAGE = "hostile"
TEN_MB = 10 * 1024 * 1024
CIRCULAR = "[circular reference]"
TRUNCATED = re.compile(r"(.*)…\[truncated (\d+) chars\]", re.DOTALL)


# -- guards -----------------------------------------------------------------------------------


class _Hung(BaseException):
    """Raised by the alarm: a BaseException, so that no ``except Exception`` of the pipeline
    swallows it."""


@contextlib.contextmanager
def deadline(seconds: int = 10) -> Iterator[None]:
    """Fail instead of hanging when a log call does not return (an exponential walk)."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise _Hung(f"the log call did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Hung as hung:
        pytest.fail(str(hung))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_healthy(capfd: pytest.CaptureFixture[str], lines: int = 1) -> None:
    """Nothing went wrong inside the pipeline: no error counted, nothing on stderr."""
    health = alkana_logging.pipeline_health()
    assert (health["lines_written"], health["write_errors"], health["internal_errors"]) == (
        lines,
        0,
        0,
    ), health
    assert health["dropped_total"] == 0
    assert capfd.readouterr().err == ""


def assert_truncated(text: str, original: str) -> None:
    """``text`` is a prefix of ``original`` followed by the marker counting what was cut."""
    match = TRUNCATED.fullmatch(text)
    assert match, text[-200:]
    kept, cut = match[1], int(match[2])
    assert len(kept) >= 256  # a useful prefix is kept
    assert original.startswith(kept)
    assert len(kept) + cut == len(original)


# -- hostile objects --------------------------------------------------------------------------


class ReprRaises:
    def __repr__(self) -> str:
        raise RuntimeError("repr boom")


class StrRaises:
    def __str__(self) -> str:
        raise RuntimeError("str boom")

    def __repr__(self) -> str:
        return "StrRaises()"


class StrFineReprRaises:
    def __str__(self) -> str:
        return "str-fine"

    def __repr__(self) -> str:
        raise RuntimeError("repr boom")


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self) -> None:
        self.a = 1
        self.b = "x"


class SlottedWithRepr:
    __slots__ = ("a",)

    def __init__(self) -> None:
        self.a = 1

    def __repr__(self) -> str:
        return f"SlottedWithRepr(a={self.a})"


@dataclasses.dataclass
class Point:
    x: int
    label: str
    tags: list[str]


@dataclasses.dataclass(frozen=True, slots=True)
class Frozen:
    when: datetime.date
    inner: Point


class Color(enum.Enum):
    RED = "red"


class Priority(enum.IntEnum):
    HIGH = 2


def circular_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"name": "loop"}
    value["self"] = value
    return value


def circular_list() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def circular_two_ways() -> dict[str, Any]:
    # Two references to itself: a walk without cycle detection does 2**depth work.
    value: dict[str, Any] = {}
    value["a"] = value
    value["b"] = value
    return value


def circular_through_list() -> dict[str, Any]:
    value: dict[str, Any] = {"items": []}
    value["items"].append({"parent": value})
    return value


def shared_not_circular() -> list[Any]:
    shared = {"k": 1}
    return [shared, shared, [shared]]


def shared_exponential(levels: int = 40) -> list[Any]:
    # Not circular, but 2**40 paths: a walk must bound its work, not only its depth.
    node: list[Any] = ["leaf"]
    for _ in range(levels):
        node = [node, node]
    return node


def check_bounded_pair(value: Any) -> None:
    assert isinstance(value, list)
    assert len(value) == 2


def deep_list(depth: int = 10_000) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


def deep_dict(depth: int = 10_000) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        child: dict[str, Any] = {}
        node["d"] = child
        node = child
    return root


def check_deep(container: type, key: str | int) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        depth = 0
        while isinstance(value, container):
            assert len(value) == 1
            value = value[key]
            depth += 1
        assert value == TOO_DEEP
        assert depth >= 32  # the outer levels are kept, only the far end is cut

    return check


def check_sorted(expected: list[Any]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        assert isinstance(value, list)
        assert sorted(value) == expected

    return check


def check_regex(pattern: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        assert isinstance(value, str)
        assert re.fullmatch(pattern, value), value

    return check


def check_truncated_value(original: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        assert_truncated(value, original)

    return check


def check_huge_int(value: Any) -> None:
    # Python refuses str() of ints over 4300 digits (a DoS guard): the value must become a
    # placeholder that says what it was, not break the line.
    assert isinstance(value, str)
    assert "int" in value


# -- value cases --------------------------------------------------------------------------------

_STR = object()  # "str() of a fresh value": what the stdlib % operator writes


@dataclasses.dataclass(frozen=True)
class ValueCase:
    """A value logged under the key ``v``.

    Args:
        make: builds a fresh value for each call.
        expect: the JSON value of ``v`` on field front-ends (unless ``check`` is given).
        check: a custom assertion on that JSON value.
        text: what follows ``v=`` in the message on the ``%``-args front-end (``_STR``: the
            value's ``str()``); ``None`` when the message cannot be formatted and the line says so.
        text_pattern: a regex for that text (when ``text`` is ``None``: an accepted alternative).
        log_error: the line must carry ``log_error`` (the pipeline had to change it).
        frontends: where the input makes sense.
    """

    make: Callable[[], Any]
    expect: Any = None
    check: Callable[[Any], None] | None = None
    text: Any = _STR
    text_pattern: str | None = None
    log_error: bool = False
    frontends: tuple[str, ...] = FRONTENDS


VALUE_CASES: dict[str, ValueCase] = {
    "repr_raises": ValueCase(
        ReprRaises,
        check=check_regex(r"<unrepresentable ReprRaises object>"),
        text=None,
    ),
    "str_raises": ValueCase(StrRaises, expect="StrRaises()", text=None),
    "str_fine_repr_raises": ValueCase(
        StrFineReprRaises, check=check_regex(r"<unrepresentable StrFineReprRaises object>")
    ),
    "circular_dict": ValueCase(circular_dict, expect={"name": "loop", "self": CIRCULAR}),
    "circular_list": ValueCase(circular_list, expect=[1, CIRCULAR]),
    "circular_two_ways": ValueCase(circular_two_ways, expect={"a": CIRCULAR, "b": CIRCULAR}),
    "circular_through_list": ValueCase(
        circular_through_list, expect={"items": [{"parent": CIRCULAR}]}
    ),
    "shared_not_circular": ValueCase(shared_not_circular, expect=[{"k": 1}, {"k": 1}, [{"k": 1}]]),
    # The stdlib's own repr() of this value takes 2**40 steps: no %-args case.
    "shared_exponential": ValueCase(
        shared_exponential, check=check_bounded_pair, frontends=FIELD_FRONTENDS
    ),
    # repr() of the argument fails (RecursionError), unless the pipeline copied it first.
    "deep_list_10000": ValueCase(
        deep_list,
        check=check_deep(list, 0),
        text=None,
        text_pattern=r"\[+'\[nested too deep\]'\]+",
    ),
    "deep_dict_10000": ValueCase(
        deep_dict,
        check=check_deep(dict, "d"),
        text=None,
        text_pattern=r"(\{'d': )+'\[nested too deep\]'\}+",
    ),
    "ten_mb_value": ValueCase(
        lambda: "y" * TEN_MB, check=check_truncated_value("y" * TEN_MB), log_error=True
    ),
    "invalid_utf8_bytes": ValueCase(lambda: b"ok\xff\xfe\x80", expect="ok\\xff\\xfe\\x80"),
    "bytearray": ValueCase(lambda: bytearray(b"ab\xc3"), expect="ab\\xc3"),
    "undecodable_filename": ValueCase(
        lambda: b"file-\xff.csv".decode("utf-8", "surrogateescape"),
        expect="file-\\udcff.csv",
        text="file-\\udcff.csv",
        log_error=True,
    ),
    "lone_surrogate": ValueCase(
        lambda: "a\ud800b", expect="a\\ud800b", text="a\\ud800b", log_error=True
    ),
    "nul": ValueCase(lambda: "a\x00b", expect="a\x00b"),
    "ansi_escape": ValueCase(
        lambda: "\x1b[31mred\x1b[0m\x1b]0;title\x07", expect="\x1b[31mred\x1b[0m\x1b]0;title\x07"
    ),
    "line_separators": ValueCase(lambda: "a\u2028b\u2029c\x85d", expect="a\u2028b\u2029c\x85d"),
    "newlines": ValueCase(lambda: "one\ntwo\r\nthree\r", expect="one\ntwo\r\nthree\r"),
    "json_fragment": ValueCase(
        lambda: '"}\n{"level":"critical","app":"evil","message":"forged"}\n',
        expect='"}\n{"level":"critical","app":"evil","message":"forged"}\n',
    ),
    "bidi_and_emoji": ValueCase(lambda: "\u202egnp.exe 🐍", expect="\u202egnp.exe 🐍"),
    "non_string_keys_nested": ValueCase(
        lambda: {1: "a", None: "b", (1, 2): "c", 2.5: "d"},
        expect={"1": "a", "None": "b", "(1, 2)": "c", "2.5": "d"},
        log_error=True,
    ),
    "nan": ValueCase(lambda: float("nan"), expect=None),
    "infinity": ValueCase(lambda: float("inf"), expect=None),
    "minus_infinity": ValueCase(lambda: float("-inf"), expect=None),
    "int_2_64": ValueCase(lambda: 2**64, expect=str(2**64), log_error=True),
    "int_below_int64": ValueCase(lambda: -(2**63) - 1, expect=str(-(2**63) - 1), log_error=True),
    "int_uint64_max": ValueCase(lambda: 2**64 - 1, expect=2**64 - 1),
    "int_googol": ValueCase(lambda: 10**100, expect=str(10**100), log_error=True),
    "int_5000_digits": ValueCase(lambda: 10**5000, check=check_huge_int, text=None, log_error=True),
    "datetime_naive": ValueCase(
        lambda: datetime.datetime(2026, 1, 2, 3, 4, 5, 678901),
        expect="2026-01-02T03:04:05.678901",
    ),
    "datetime_aware": ValueCase(
        lambda: datetime.datetime(
            2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
        ),
        expect="2026-01-02T03:04:05.678901+02:00",
    ),
    "date": ValueCase(lambda: datetime.date(2026, 1, 2), expect="2026-01-02"),
    "timedelta": ValueCase(
        lambda: datetime.timedelta(seconds=90), expect="datetime.timedelta(seconds=90)"
    ),
    "decimal": ValueCase(lambda: Decimal("1.10"), expect="1.10"),
    "decimal_nan": ValueCase(lambda: Decimal("NaN"), expect="NaN"),
    "uuid": ValueCase(
        lambda: uuid.UUID("12345678-1234-5678-1234-567812345678"),
        expect="12345678-1234-5678-1234-567812345678",
    ),
    "path": ValueCase(lambda: PurePosixPath("/srv/data/x.csv"), expect="/srv/data/x.csv"),
    "set": ValueCase(lambda: {3, 1, 2}, check=check_sorted([1, 2, 3])),
    "frozenset": ValueCase(lambda: frozenset({"b", "a"}), check=check_sorted(["a", "b"])),
    "dataclass": ValueCase(
        lambda: Point(1, "p", ["t"]), expect={"x": 1, "label": "p", "tags": ["t"]}
    ),
    "frozen_slots_dataclass_nested": ValueCase(
        lambda: Frozen(datetime.date(2026, 1, 2), Point(2, "q", [])),
        expect={"when": "2026-01-02", "inner": {"x": 2, "label": "q", "tags": []}},
    ),
    "enum": ValueCase(lambda: Color.RED, expect="red"),
    "int_enum": ValueCase(lambda: Priority.HIGH, expect=2),
    "slots_object": ValueCase(
        Slotted,
        check=check_regex(rf"<{re.escape(__name__)}\.Slotted object at 0x[0-9a-f]+>"),
        text_pattern=rf"<{re.escape(__name__)}\.Slotted object at 0x[0-9a-f]+>",
    ),
    "slots_object_with_repr": ValueCase(SlottedWithRepr, expect="SlottedWithRepr(a=1)"),
    "exception_value": ValueCase(lambda: ValueError("bad input"), expect="ValueError: bad input"),
    "tuple_of_mixed": ValueCase(
        lambda: (1, "a", None, True, 1.5, b"\xff"), expect=[1, "a", None, True, 1.5, "\\xff"]
    ),
}

VALUE_PARAMS = [
    pytest.param(name, frontend, id=f"{name}-{frontend}")
    for name, case in VALUE_CASES.items()
    for frontend in case.frontends
]


@pytest.mark.parametrize(("name", "frontend"), VALUE_PARAMS)
def test_hostile_value(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str, frontend: str
) -> None:
    case = VALUE_CASES[name]
    path = setup_file(tmp_path)
    with deadline():
        record, line = log_and_read_one(path, frontend, MESSAGE, {"v": case.make()})
    assert len(line) + 1 <= DEFAULT_MAX_LINE_BYTES
    if frontend == STDLIB_ARGS:
        if case.text_pattern is not None and re.fullmatch(
            f"{MESSAGE} v={case.text_pattern}", record[F.MESSAGE]
        ):
            pass
        elif case.text is None:
            # The value cannot be formatted: the line keeps the format and says what failed.
            assert record[F.MESSAGE].startswith(repr(args_format(MESSAGE, {"v": 0})) + " % ")
            assert "message arguments" in record[F.LOG_ERROR]
        elif case.text_pattern is not None:
            raise AssertionError(record[F.MESSAGE][:500])
        else:
            text = str(case.make()) if case.text is _STR else case.text
            if len(text) > len(record[F.MESSAGE]):
                assert_truncated(record[F.MESSAGE], f"{MESSAGE} v={text}")
            else:
                assert record[F.MESSAGE] == f"{MESSAGE} v={text}"
        assert "v" not in record
    else:
        assert record[F.MESSAGE] == MESSAGE
        if case.check is not None:
            case.check(record["v"])
        else:
            assert record["v"] == case.expect
        if case.log_error:
            assert isinstance(record[F.LOG_ERROR], str)
            assert record[F.LOG_ERROR]
    # Control characters never reach the file raw: a terminal cannot be driven by a log line.
    assert not re.search(rb"[\x00-\x1f]", line)
    assert_healthy(capfd)


# -- hostile messages ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MessageCase:
    make: Callable[[], Any]
    expect: str | None = None  # None: the message itself, round-tripped
    truncated: bool = False
    frontends: tuple[str, ...] = FRONTENDS


MESSAGE_CASES: dict[str, MessageCase] = {
    "newline_and_json_fragment": MessageCase(
        lambda: 'done\n{"timestamp":"1970-01-01T00:00:00.000000Z","level":"critical"}\n'
    ),
    "crlf": MessageCase(lambda: "first\r\nsecond\rthird"),
    "nul": MessageCase(lambda: "nul\x00here"),
    "ansi_escape": MessageCase(lambda: "\x1b[2J\x1b[31mcleared\x1b[0m"),
    "line_separators": MessageCase(lambda: "a\u2028b\u2029c\x85d\x0be\x0cf"),
    "lone_surrogate": MessageCase(lambda: "a\ud800b", expect="a\\ud800b"),
    "percent_and_braces": MessageCase(lambda: "100% {done} %(name)s %s {0}"),
    "ten_mb": MessageCase(lambda: "x" * TEN_MB, truncated=True),
    "ten_mb_multibyte": MessageCase(lambda: "é" * TEN_MB, truncated=True),
    "int_message": MessageCase(lambda: 12345, expect="12345", frontends=FIELD_FRONTENDS),
    "unrepresentable_message": MessageCase(
        ReprRaises, frontends=(STRUCTLOG, STDLIB_EXTRA, BOUND_CONTEXT)
    ),
}

MESSAGE_PARAMS = [
    pytest.param(name, frontend, id=f"{name}-{frontend}")
    for name, case in MESSAGE_CASES.items()
    for frontend in case.frontends
]


@pytest.mark.parametrize(("name", "frontend"), MESSAGE_PARAMS)
def test_hostile_message(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str, frontend: str
) -> None:
    case = MESSAGE_CASES[name]
    path = setup_file(tmp_path)
    message = case.make()
    with deadline():
        record, line = log_and_read_one(path, frontend, message, {"n": 1})
    assert len(line) + 1 <= DEFAULT_MAX_LINE_BYTES
    expected = case.expect if case.expect is not None else message
    if frontend == STDLIB_ARGS:
        expected = f"{expected} n=1"
    else:
        assert record["n"] == 1
    if name == "unrepresentable_message":
        assert "<unrepresentable ReprRaises object>" in record[F.MESSAGE]
    elif case.truncated:
        assert_truncated(record[F.MESSAGE], expected)
    else:
        assert record[F.MESSAGE] == expected
    assert not re.search(rb"[\x00-\x1f]", line)
    assert_healthy(capfd)


# -- hostile keys -------------------------------------------------------------------------------


class NamedLikeSchema:
    """A non-string key whose text is a schema key."""

    def __str__(self) -> str:
        return F.LEVEL

    __repr__ = __str__


class KeyTextRaises:
    """A non-string key whose str() and repr() raise."""

    def __str__(self) -> str:
        raise RuntimeError("key str boom")

    __repr__ = __str__


KEY_CASES: dict[str, tuple[Callable[[], dict[Any, Any]], dict[str, Any], tuple[str, ...]]] = {
    "newline_in_key": (lambda: {"a\nb": 1}, {"a\nb": 1}, FIELD_FRONTENDS),
    "crlf_in_key": (lambda: {"a\r\nb": 1}, {"a\r\nb": 1}, FIELD_FRONTENDS),
    "json_fragment_key": (
        lambda: {'x":1,"level":"critical': 1},
        {'x":1,"level":"critical': 1},
        FIELD_FRONTENDS,
    ),
    "nul_in_key": (lambda: {"k\x00": 1}, {"k\x00": 1}, FIELD_FRONTENDS),
    "ansi_in_key": (lambda: {"\x1b[31mk": 1}, {"\x1b[31mk": 1}, FIELD_FRONTENDS),
    "line_separator_in_key": (lambda: {"a\u2028b": 1}, {"a\u2028b": 1}, FIELD_FRONTENDS),
    "surrogate_in_key": (lambda: {"k\udfff": 1}, {"k\\udfff": 1}, FIELD_FRONTENDS),
    "empty_key": (lambda: {"": 1}, {"": 1}, FIELD_FRONTENDS),
    "non_string_keys_top_level": (
        lambda: {1: "a", None: "b", ("t", 1): "c"},
        {"1": "a", "None": "b", "('t', 1)": "c"},
        (STDLIB_EXTRA,),
    ),
    "non_string_key_text_raises": (
        lambda: {KeyTextRaises(): "v", "other": 1},
        {"<unrepresentable KeyTextRaises object>": "v", "other": 1},
        (STDLIB_EXTRA,),
    ),
    "non_string_key_named_like_schema": (
        lambda: {NamedLikeSchema(): "forged"},
        {F.COLLISION_PREFIX + F.LEVEL: "forged"},
        (STDLIB_EXTRA,),
    ),
}
# The stdlib itself refuses `extra={"message": ...}` (KeyError in makeRecord, before any handler):
# see test_stdlib_refuses_extra_message_key.
for _key in F.SCHEMA_KEYS:
    KEY_CASES[f"collides_with_{_key}"] = (
        lambda key=_key: {key: "forged"},
        {F.COLLISION_PREFIX + _key: "forged"},
        tuple(f for f in FIELD_FRONTENDS if not (f == STDLIB_EXTRA and _key == F.MESSAGE)),
    )

KEY_PARAMS = [
    pytest.param(name, frontend, id=f"{name}-{frontend}")
    for name, (_, _, frontends) in KEY_CASES.items()
    for frontend in frontends
]


@pytest.mark.parametrize(("name", "frontend"), KEY_PARAMS)
def test_hostile_key(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str, frontend: str
) -> None:
    make, expected, _ = KEY_CASES[name]
    path = setup_file(tmp_path)
    with deadline():
        record, line = log_and_read_one(path, frontend, MESSAGE, make())
    assert record[F.MESSAGE] == MESSAGE
    extra = {k: v for k, v in record.items() if k not in F.SCHEMA_KEYS and k != F.LOG_ERROR}
    assert extra == expected
    assert not re.search(rb"[\x00-\x1f]", line)
    assert_healthy(capfd)


def test_stdlib_refuses_extra_message_key(tmp_path: Path) -> None:
    """A limit of the stdlib, not of the pipeline: ``extra={"message": ...}`` raises KeyError in
    ``Logger.makeRecord`` before any handler runs, with or without ``setup()``."""
    path = setup_file(tmp_path)
    with pytest.raises(KeyError, match="Attempt to overwrite 'message' in LogRecord"):
        logging.getLogger("x").info("m", extra={F.MESSAGE: "forged"})
    assert read_lines(path) == []


@pytest.mark.parametrize("frontend", FIELD_FRONTENDS)
def test_long_key_keeps_the_schema(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], frontend: str
) -> None:
    path = setup_file(tmp_path)
    record, line = log_and_read_one(path, frontend, MESSAGE, {"k" * 100_000: 1, "small": 2})
    assert len(line) + 1 <= DEFAULT_MAX_LINE_BYTES
    assert record[F.MESSAGE] == MESSAGE
    assert "exceeded the limit" in record[F.LOG_ERROR]
    assert_healthy(capfd)


# -- exceptions -----------------------------------------------------------------------------------


class BadStrError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("exception str boom")


class BadStrReprError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("exception str boom")

    def __repr__(self) -> str:
        raise RuntimeError("exception repr boom")


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def cause_chain() -> BaseException:
    try:
        try:
            raise ValueError("root cause")
        except ValueError as root:
            raise KeyError("outer") from root
    except KeyError as outer:
        return outer


def context_chain() -> BaseException:
    try:
        try:
            raise ValueError("first failure")
        except ValueError:
            raise OSError("while cleaning up")  # noqa: B904 - the implicit __context__ chain
    except OSError as outer:
        return outer


def exception_group() -> BaseException:
    inner = ExceptionGroup("inner batch", [raised(TypeError("two"))])
    return raised(ExceptionGroup("batch failed", [raised(ValueError("one")), inner]))


def cyclic_cause() -> BaseException:
    first, second = ValueError("first"), RuntimeError("second")
    first.__cause__ = second
    second.__context__ = first
    return raised(first)


def recursion_error() -> BaseException:
    def recurse(n: int) -> int:
        return recurse(n + 1) + 1

    return raised_call(lambda: recurse(0))


def raised_call(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except BaseException as caught:
        return caught
    raise AssertionError("did not raise")


EXC_CASES: dict[str, tuple[Callable[[], BaseException], str, str, tuple[str, ...]]] = {
    # name: (make, exception_type, exception_message, texts the stacktrace must contain)
    "cause_chain": (
        cause_chain,
        "KeyError",
        "'outer'",
        (
            "ValueError: root cause",
            "The above exception was the direct cause of the following exception:",
            "KeyError: 'outer'",
        ),
    ),
    "context_chain": (
        context_chain,
        "OSError",
        "while cleaning up",
        (
            "ValueError: first failure",
            "During handling of the above exception, another exception occurred:",
            "OSError: while cleaning up",
        ),
    ),
    "exception_group": (
        exception_group,
        "ExceptionGroup",
        "batch failed (2 sub-exceptions)",
        ("ExceptionGroup: batch failed", "ValueError: one", "ExceptionGroup: inner batch", "two"),
    ),
    "str_raises": (
        lambda: raised(BadStrError("x")),
        f"{__name__}.BadStrError",
        "BadStrError('x')",
        ("BadStrError: <exception str() failed>",),
    ),
    "str_and_repr_raise": (
        lambda: raised(BadStrReprError()),
        f"{__name__}.BadStrReprError",
        "<unrepresentable BadStrReprError object>",
        ("BadStrReprError: <exception str() failed>",),
    ),
    "never_raised": (
        lambda: ValueError("never raised"),
        "ValueError",
        "never raised",
        ("ValueError: never raised",),
    ),
    "cyclic_cause": (
        cyclic_cause,
        "ValueError",
        "first",
        ("RuntimeError: second", "ValueError: first"),
    ),
    "recursion_error": (
        recursion_error,
        "RecursionError",
        "maximum recursion depth exceeded",
        ("RecursionError: maximum recursion depth exceeded", "more times"),
    ),
}

EXC_PARAMS = [
    pytest.param(name, frontend, id=f"{name}-{frontend}")
    for name in EXC_CASES
    for frontend in FRONTENDS
]


@pytest.mark.parametrize(("name", "frontend"), EXC_PARAMS)
def test_hostile_exception(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str, frontend: str
) -> None:
    make, exc_type, exc_message, texts = EXC_CASES[name]
    path = setup_file(tmp_path)
    with deadline():
        record, line = log_and_read_one(path, frontend, "failed", exc=make(), level=F.ERROR)
    assert len(line) + 1 <= DEFAULT_MAX_LINE_BYTES
    assert record[F.MESSAGE] == "failed"
    assert record[F.EXCEPTION_TYPE] == exc_type
    assert record[F.EXCEPTION_MESSAGE] == exc_message
    stack = record[F.EXCEPTION_STACKTRACE]
    assert isinstance(stack, str)
    for text in texts:
        assert text in stack, (text, stack[-2000:])
    assert_healthy(capfd)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_huge_exception_message_is_truncated(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], frontend: str
) -> None:
    path = setup_file(tmp_path)
    exc = raised(ValueError("z" * 1_000_000))
    record, line = log_and_read_one(path, frontend, "failed", exc=exc, level=F.ERROR)
    assert len(line) + 1 <= DEFAULT_MAX_LINE_BYTES
    assert record[F.EXCEPTION_TYPE] == "ValueError"
    assert_truncated(record[F.EXCEPTION_MESSAGE], "z" * 1_000_000)
    assert "exceeded the limit" in record[F.LOG_ERROR]
    assert_healthy(capfd)


# -- mismatched % arguments ----------------------------------------------------------------------

PERCENT_CASES = {
    "too_few": ("loaded %s rows into %s", (12,), "TypeError"),
    "too_many": ("loaded %s rows", (12, "t"), "TypeError"),
    "wrong_type": ("loaded %d rows", ("many",), "TypeError"),
    "mapping_key_missing": ("loaded %(rows)s", ({"table": "t"},), "KeyError"),
    "bad_conversion": ("loaded %y", (1,), "ValueError"),
}


@pytest.mark.parametrize("name", PERCENT_CASES)
def test_stdlib_mismatched_percent_args(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str
) -> None:
    fmt, args, error = PERCENT_CASES[name]
    path = setup_file(tmp_path)
    logging.getLogger("etl").warning(fmt, *args)
    [line] = read_lines(path)
    record = parse_line(line)
    assert_schema(record, level=F.WARNING, logger="etl")
    # The format and the arguments are both kept, and the line says why it was not formatted
    # (the stdlib keeps a lone mapping argument as the mapping itself).
    record_args = args[0] if len(args) == 1 and isinstance(args[0], dict) else args
    assert record[F.MESSAGE] == f"{fmt!r} % {record_args!r}"
    assert error in record[F.LOG_ERROR]
    assert_healthy(capfd)


@pytest.mark.parametrize("name", PERCENT_CASES)
def test_structlog_mismatched_positional_args(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str
) -> None:
    """structlog formats positional arguments with ``%`` too: a mismatch must not raise into the
    caller either."""
    fmt, args, error = PERCENT_CASES[name]
    path = setup_file(tmp_path)
    alkana_logging.get_logger("etl").warning(fmt, *args, table="t")
    [line] = read_lines(path)
    record = parse_line(line)
    assert_schema(record, level=F.WARNING, logger="etl")
    assert fmt in record[F.MESSAGE]
    assert record["table"] == "t"
    assert error in record[F.LOG_ERROR]
    assert_healthy(capfd)


def test_loguru_routes_into_the_same_file_only(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A baseline for the loguru cases: one call, one line, nothing on stderr."""
    path = setup_file(tmp_path)
    record, _ = log_and_read_one(path, LOGURU_BIND, MESSAGE, {"v": 1})
    assert record["v"] == 1
    assert_healthy(capfd)
