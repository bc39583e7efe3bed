"""One redaction policy everywhere: front-ends x container shapes x key spellings x key types.

Each case logs one call through one front-end, carrying one container shape whose keys are every
spelling of every secret key (of one key type), each with a unique secret value, plus visible
keys that only look alike. The line is read back from the file: no secret may appear in it, and
every visible value must.

Front-ends: the four that carry values as keys of the line (structlog keyword arguments, stdlib
``extra=``, loguru ``bind``, the bound context) and the three whose format arguments end up in
the message (stdlib ``%``, structlog ``%``, loguru ``{}`` keyword arguments).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import itertools
import keyword
import logging
import types
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pydantic
import pytest
from loguru import logger as loguru_logger

import alkana_logging
from tests._frontends import read_lines, setup_file

#: Secret keys as a policy names them (snake case); every spelling of each is tried.
SECRET_KEYS = (
    "password",
    "access_token",
    "client_secret",
    "db_password",
    "session_token",
    "api_key",
    "authorization",
    "private_key",
    "jwt",
    "auth",
    "passphrase",
    "password_hash",
)
#: Keys that look close to secret ones and must stay visible.
NEAR_MISSES = ("author", "token_count", "secretary", "authority", "tokenizer", "passwords_reset")


def _camel(key: str) -> str:
    first, *rest = key.split("_")
    return first + "".join(part.capitalize() for part in rest)


SPELLING_RULES: dict[str, Callable[[str], str]] = {
    "snake": lambda k: k,
    "upper": str.upper,
    "camel": _camel,
    "pascal": lambda k: "".join(part.capitalize() for part in k.split("_")),
    "header": lambda k: "-".join(part.capitalize() for part in k.split("_")),
    "kebab": lambda k: k.replace("_", "-"),
    "dotted": lambda k: k.replace("_", "."),
    "padded": lambda k: f" {k} ",
}


def spellings(identifiers_only: bool = False) -> list[str]:
    found = {rule(key) for key in SECRET_KEYS for rule in SPELLING_RULES.values()}
    if identifiers_only:  # named tuple, dataclass and pydantic fields
        found = {s for s in found if s.isidentifier() and not keyword.iskeyword(s)}
        found = {s for s in found if not s.startswith("_")}
    return sorted(found)


class _Text(enum.StrEnum):
    pass


KEY_TYPES = ("str", "bytes", "enum", "strenum")


def key_of(spelling: str, key_type: str, index: int) -> Any:
    """The key ``spelling`` as a value of ``key_type`` (enum members are named M<index>, so
    only their value says what they are)."""
    if key_type == "str":
        return spelling
    if key_type == "bytes":
        return spelling.encode()
    cls = enum.Enum if key_type == "enum" else enum.StrEnum
    return cls("Key", {f"M{index}": spelling})[f"M{index}"]  # type: ignore[call-overload]


class Values:
    """Unique secret and visible values; what a line leaked or lost."""

    def __init__(self) -> None:
        self._run = uuid.uuid4().hex[:10]
        self._count = itertools.count()
        self.secret_values: list[str] = []
        self.visible_values: list[str] = []

    def secret(self) -> str:
        value = f"s3cr3t-{self._run}-{next(self._count)}"
        self.secret_values.append(value)
        return value

    def visible(self) -> str:
        value = f"v1s1ble-{self._run}-{next(self._count)}"
        self.visible_values.append(value)
        return value

    def leaked(self, text: str) -> list[str]:
        return [v for v in self.secret_values if v in text]

    def lost(self, text: str) -> list[str]:
        return [v for v in self.visible_values if v not in text]


def pairs(values: Values, key_type: str, identifiers_only: bool = False) -> list[tuple[Any, str]]:
    items = [
        (key_of(spelling, key_type, index), values.secret())
        for index, spelling in enumerate(spellings(identifiers_only))
    ]
    offset = len(items)
    items += [
        (key_of(name, key_type, offset + index), values.visible())
        for index, name in enumerate(NEAR_MISSES)
    ]
    return items


# -- shapes -------------------------------------------------------------------------------------


def _dict(items: list[tuple[Any, str]]) -> Any:
    return {"outer": {"inner": dict(items)}}


def _list_of_dicts(items: list[tuple[Any, str]]) -> Any:
    return [1, [dict(items)]]


def _tuple_of_dicts(items: list[tuple[Any, str]]) -> Any:
    return ("x", (dict(items),))


def _mapping(items: list[tuple[Any, str]]) -> Any:
    return types.MappingProxyType(dict(items))


def _pairs_list(items: list[tuple[Any, str]]) -> Any:
    return list(items)  # ASGI's scope["headers"]


def _pairs_frozenset(items: list[tuple[Any, str]]) -> Any:
    return frozenset(items)  # frozenset(d.items())


def _namedtuple(items: list[tuple[Any, str]]) -> Any:
    cls = collections.namedtuple("Creds", [k for k, _ in items])  # type: ignore[misc]
    return cls(*(v for _, v in items))


def _dataclass(items: list[tuple[Any, str]]) -> Any:
    cls = dataclasses.make_dataclass("Creds", [k for k, _ in items])
    return cls(*(v for _, v in items))


def _pydantic(items: list[tuple[Any, str]]) -> Any:
    cls = pydantic.create_model("Creds", **{k: (str, ...) for k, _ in items})  # type: ignore[call-overload]
    return cls(**dict(items))


SHAPES: dict[str, Callable[[list[tuple[Any, str]]], Any]] = {
    "dict": _dict,
    "list_of_dicts": _list_of_dicts,
    "tuple_of_dicts": _tuple_of_dicts,
    "mapping": _mapping,
    "pairs_list": _pairs_list,
    "pairs_frozenset": _pairs_frozenset,
    "namedtuple": _namedtuple,
    "dataclass": _dataclass,
    "pydantic": _pydantic,
}
#: Shapes whose keys are field names: text only, identifiers only.
FIELD_NAME_SHAPES = frozenset({"namedtuple", "dataclass", "pydantic"})
#: The serializer turns these into objects; in a message they would be their repr(), which no
#: policy can redact (the README says so).
SERIALIZER_SHAPES = frozenset({"mapping", "dataclass", "pydantic"})

# -- front-ends ---------------------------------------------------------------------------------

LOGGER = "matrix"
FIELD_FRONTENDS = ("structlog_kw", "stdlib_extra", "loguru_bind", "bound_context")
ARGS_FRONTENDS = ("stdlib_args", "structlog_args", "loguru_kwargs")


def log_value(frontend: str, value: Any) -> None:
    """One call carrying ``value`` under the visible key ``payload`` (or as the argument)."""
    if frontend == "structlog_kw":
        alkana_logging.get_logger(LOGGER).info("m", payload=value)
    elif frontend == "stdlib_extra":
        logging.getLogger(LOGGER).info("m", extra={"payload": value})
    elif frontend == "loguru_bind":
        loguru_logger.bind(payload=value).info("m")
    elif frontend == "bound_context":
        with alkana_logging.bound_context(payload=value):
            logging.getLogger(LOGGER).info("m")
    elif frontend == "stdlib_args":
        logging.getLogger(LOGGER).info("m %s", value)
    elif frontend == "structlog_args":
        alkana_logging.get_logger(LOGGER).info("m %s", value)
    elif frontend == "loguru_kwargs":
        loguru_logger.info("m {payload}", payload=value)
    else:  # pragma: no cover - a typo in a test
        raise ValueError(frontend)


def log_fields(frontend: str, fields: Mapping[str, str]) -> None:
    """One call whose own keys are ``fields`` (the top level of the line, or named arguments)."""
    fields = dict(fields)
    named = " ".join(f"%({k})s" for k in fields)
    if frontend == "structlog_kw":
        alkana_logging.get_logger(LOGGER).info("m", **fields)
    elif frontend == "stdlib_extra":
        logging.getLogger(LOGGER).info("m", extra=fields)
    elif frontend == "loguru_bind":
        loguru_logger.bind(**fields).info("m")
    elif frontend == "bound_context":
        with alkana_logging.bound_context(**fields):
            logging.getLogger(LOGGER).info("m")
    elif frontend == "stdlib_args":
        logging.getLogger(LOGGER).info("m " + named, fields)
    elif frontend == "structlog_args":
        alkana_logging.get_logger(LOGGER).info("m " + named, fields)
    elif frontend == "loguru_kwargs":
        formatted = " ".join("{" + k + "}" for k in fields if k.isidentifier())
        loguru_logger.info("m " + formatted, **fields)
    else:  # pragma: no cover
        raise ValueError(frontend)


def _cases() -> list[Any]:
    cases = []
    for frontend in FIELD_FRONTENDS + ARGS_FRONTENDS:
        cases.append(pytest.param(frontend, "top", "str", id=f"{frontend}-top-str"))
        for shape in SHAPES:
            if frontend in ARGS_FRONTENDS and shape in SERIALIZER_SHAPES:
                continue
            key_types = ("str",) if shape in FIELD_NAME_SHAPES else KEY_TYPES
            cases.extend(
                pytest.param(frontend, shape, key_type, id=f"{frontend}-{shape}-{key_type}")
                for key_type in key_types
            )
    return cases


CASES = _cases()
#: How many (front-end, shape, key type, spelling) combinations the matrix checks.
MATRIX_SIZE = sum(
    len(spellings(identifiers_only=case.values[1] in FIELD_NAME_SHAPES)) for case in CASES
)


@pytest.mark.parametrize(("frontend", "shape", "key_type"), CASES)
def test_no_secret_reaches_the_file(
    tmp_path: Path, frontend: str, shape: str, key_type: str
) -> None:
    path = setup_file(tmp_path)
    values = Values()
    items = pairs(values, key_type, identifiers_only=shape in FIELD_NAME_SHAPES)
    if shape == "top":
        log_fields(frontend, dict(items))
    else:
        log_value(frontend, SHAPES[shape](items))
    alkana_logging.shutdown()
    (line,) = read_lines(path)
    text = line.decode("utf-8")
    assert values.leaked(text) == [], f"secrets written: {text[:300]}"
    if not (frontend == "loguru_kwargs" and shape == "top"):  # not all are in its format
        assert values.lost(text) == [], f"visible values lost: {text[:300]}"


def test_the_matrix_is_as_large_as_the_readme_says() -> None:
    assert len(CASES) == 178
    assert MATRIX_SIZE == 13_033
