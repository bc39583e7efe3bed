"""Secrets never reach the file: redaction through every front-end at every depth, the caller's
objects untouched, tracebacks without local variables, and no log injection.

Every secret value is unique, so a test can grep the raw line (and stderr) for each of them: a
secret is written nowhere, not only "not under its key".
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import itertools
import logging
import types
import uuid
from pathlib import Path
from typing import Any

import pytest
from loguru import logger as loguru_logger

import alkana_logging
from alkana_logging import fields as F
from alkana_logging.redaction import REDACTED, SECRET_SUFFIXES
from alkana_logging.settings import DEFAULT_REDACT_KEYS
from tests._frontends import (
    FIELD_FRONTENDS,
    FRONTENDS,
    STDLIB_ARGS,
    STDLIB_EXTRA,
    STRUCTLOG,
    log_and_read_one,
    log_call,
    read_lines,
    read_records,
    setup_file,
)

MESSAGE = "config"

#: Every key redacted by default, and one key per secret-looking suffix.
SECRET_KEYS = sorted(DEFAULT_REDACT_KEYS) + [f"db_{suffix}" for suffix in SECRET_SUFFIXES]
#: Keys that look close to secret ones and must stay visible.
NEAR_MISSES = {
    "token_count": 3,
    "author": "ann",
    "secretary": "bob",
    "passwords_reset": 2,
    "tokenizer": "bpe",
    "cookies_enabled": True,
}


def spellings(key: str) -> list[str]:
    """The key as written in code, in an environment variable and in an HTTP header."""
    header = "-".join(part.capitalize() for part in key.split("_"))
    return sorted({key, key.upper(), header})


class Secrets:
    """Unique secret values; ``leaked(text)`` lists those that appear in ``text``."""

    def __init__(self) -> None:
        self._run = uuid.uuid4().hex[:12]
        self._counter = itertools.count()
        self.values: list[str] = []

    def new(self) -> str:
        value = f"s3cr3t-{self._run}-{next(self._counter)}"
        self.values.append(value)
        return value

    def leaked(self, text: bytes | str) -> list[str]:
        data = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        return [value for value in self.values if value in data]


@pytest.fixture
def secrets() -> Secrets:
    return Secrets()


def secret_dict(secrets: Secrets) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in SECRET_KEYS:
        for spelling in spellings(key):
            values[spelling] = secrets.new()
    values.update(NEAR_MISSES)
    return values


def redacted(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if k in NEAR_MISSES else REDACTED) for k, v in values.items()}


def nest(value: Any, depth: int, shape: str) -> Any:
    """``value`` inside ``depth`` containers of ``shape``, each with a visible sibling."""
    for level in range(depth):
        if shape == "dict":
            value = {f"level_{level}": value, "sibling": level}
        elif shape == "list":
            value = [level, value]
        else:
            value = (level, value)
    return value


def as_json(value: Any) -> Any:
    """What JSON makes of a nested value (tuples become lists)."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    return value


def assert_no_leak(secrets: Secrets, *texts: bytes | str) -> None:
    for text in texts:
        assert secrets.leaked(text) == [], "secret values written"


# -- every key, every front-end, every depth -------------------------------------------------------

DEPTH_PARAMS = [
    pytest.param(frontend, depth, shape, id=f"{frontend}-depth{depth}-{shape}")
    for frontend in FRONTENDS
    for depth in range(6)
    for shape in ("dict", "list", "tuple")
    if not (depth == 0 and shape != "dict")
]


@pytest.mark.parametrize(("frontend", "depth", "shape"), DEPTH_PARAMS)
def test_default_keys_are_redacted_at_every_depth(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    secrets: Secrets,
    frontend: str,
    depth: int,
    shape: str,
) -> None:
    path = setup_file(tmp_path)
    values = secret_dict(secrets)
    # Depth 0: the secrets are the call's own keys. The %-args front-end takes them as one
    # mapping argument, so its depth counts the containers inside that argument.
    if frontend == STDLIB_ARGS:
        fields = {"payload": nest(values, depth, shape)}
    elif depth == 0:
        fields = values
    else:
        fields = {"payload": nest(values, depth - 1, shape)}
    record, line = log_and_read_one(path, frontend, MESSAGE, fields)
    assert_no_leak(secrets, line, capfd.readouterr().err)
    if frontend == STDLIB_ARGS:
        assert record[F.MESSAGE].count(f"'{REDACTED}'") == len(values) - len(NEAR_MISSES)
        return
    expected = redacted(values)
    if depth == 0:
        assert {k: record[k] for k in expected} == expected
    else:
        assert record["payload"] == as_json(nest(expected, depth - 1, shape))


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_a_secret_key_hides_its_whole_value(
    tmp_path: Path, secrets: Secrets, frontend: str
) -> None:
    """A secret key with a container value: the container is not written at all."""
    path = setup_file(tmp_path)
    inner = {"user": "ann", "nested": [secrets.new(), {"x": secrets.new()}]}
    fields = {"payload": {"credentials": inner, "Authorization": [secrets.new()]}}
    record, line = log_and_read_one(path, frontend, MESSAGE, fields)
    assert_no_leak(secrets, line)
    if frontend != STDLIB_ARGS:
        assert record["payload"] == {"credentials": REDACTED, "Authorization": REDACTED}


# -- containers the redactor must see into ------------------------------------------------------


@dataclasses.dataclass
class Credentials:
    user: str
    password: str
    extra: dict[str, Any]


class PydanticLike:
    """Stands in for a pydantic model (not installed here): anything with ``model_dump``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def model_dump(self) -> dict[str, Any]:
        return {"name": "model", "api_key": self._token}


class UserMapping(collections.UserDict[str, Any]):
    pass


CONTAINER_CASES = {
    "dataclass": lambda s: (
        Credentials("ann", s.new(), {"token": s.new(), "ok": 1}),
        {"user": "ann", "password": REDACTED, "extra": {"token": REDACTED, "ok": 1}},
    ),
    "dataclass_in_list": lambda s: (
        [Credentials("bob", s.new(), {})],
        [{"user": "bob", "password": REDACTED, "extra": {}}],
    ),
    "ordered_dict": lambda s: (
        collections.OrderedDict(password=s.new(), ok=1),
        {"password": REDACTED, "ok": 1},
    ),
    "defaultdict": lambda s: (
        collections.defaultdict(int, {"secret": s.new(), "ok": 1}),
        {"secret": REDACTED, "ok": 1},
    ),
    "mapping_proxy": lambda s: (
        types.MappingProxyType({"client_secret": s.new(), "ok": 1}),
        {"client_secret": REDACTED, "ok": 1},
    ),
    "user_dict": lambda s: (
        UserMapping({"Set-Cookie": s.new(), "ok": 1}),
        {"Set-Cookie": REDACTED, "ok": 1},
    ),
    "model_dump": lambda s: (PydanticLike(s.new()), {"name": "model", "api_key": REDACTED}),
}

CONTAINER_PARAMS = [
    pytest.param(name, frontend, id=f"{name}-{frontend}")
    for name in CONTAINER_CASES
    for frontend in FIELD_FRONTENDS
]


@pytest.mark.parametrize(("name", "frontend"), CONTAINER_PARAMS)
def test_secrets_inside_other_containers(
    tmp_path: Path, secrets: Secrets, name: str, frontend: str
) -> None:
    path = setup_file(tmp_path)
    value, expected = CONTAINER_CASES[name](secrets)
    record, line = log_and_read_one(path, frontend, MESSAGE, {"payload": {"inner": value}})
    assert_no_leak(secrets, line)
    assert record["payload"] == {"inner": expected}


# -- user keys ----------------------------------------------------------------------------------


def _user_key_fields(secrets: Secrets) -> dict[str, Any]:
    return {
        "ssn": secrets.new(),
        "payload": [{"CARD-NUMBER": secrets.new(), "Card_Number": secrets.new()}],
        "password": secrets.new(),
        "visible": "yes",
    }


USER_KEYS_EXPECTED = {
    "ssn": REDACTED,
    "payload": [{"CARD-NUMBER": REDACTED, "Card_Number": REDACTED}],
    "password": REDACTED,
    "visible": "yes",
}


@pytest.mark.parametrize("frontend", FIELD_FRONTENDS)
def test_user_keys_from_setup(tmp_path: Path, secrets: Secrets, frontend: str) -> None:
    path = setup_file(tmp_path, redact_keys=["SSN", "card-number"])
    record, line = log_and_read_one(path, frontend, MESSAGE, _user_key_fields(secrets))
    assert_no_leak(secrets, line)
    assert {k: record[k] for k in USER_KEYS_EXPECTED} == USER_KEYS_EXPECTED


@pytest.mark.parametrize("frontend", FIELD_FRONTENDS)
def test_user_keys_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secrets: Secrets, frontend: str
) -> None:
    monkeypatch.setenv("LOG_REDACT_KEYS", " ssn , Card-Number ,")
    path = setup_file(tmp_path)
    record, line = log_and_read_one(path, frontend, MESSAGE, _user_key_fields(secrets))
    assert_no_leak(secrets, line)
    assert {k: record[k] for k in USER_KEYS_EXPECTED} == USER_KEYS_EXPECTED


def test_user_keys_do_not_outlive_their_setup(tmp_path: Path) -> None:
    setup_file(tmp_path / "first", redact_keys=["ssn"])
    path = setup_file(tmp_path / "second")
    record, _ = log_and_read_one(path, STRUCTLOG, MESSAGE, {"ssn": "123", "password": "x"})
    assert (record["ssn"], record["password"]) == ("123", REDACTED)


def test_structlog_bound_values_and_loguru_contextualize_are_redacted(
    tmp_path: Path, secrets: Secrets
) -> None:
    path = setup_file(tmp_path)
    log = alkana_logging.get_logger("svc", api_key=secrets.new()).bind(
        session={"sessionid": secrets.new()}
    )
    log.info("bound")
    with loguru_logger.contextualize(refresh_token=secrets.new()):
        loguru_logger.info("contextualized")
    with alkana_logging.bound_context(request={"headers": {"Cookie": secrets.new()}}):
        logging.getLogger("svc").info("context")
    lines = read_lines(path)
    assert len(lines) == 3
    assert_no_leak(secrets, b"".join(lines))
    first, second, third = read_records(path)
    assert (first["api_key"], first["session"]) == (REDACTED, {"sessionid": REDACTED})
    assert second["refresh_token"] == REDACTED
    assert third["request"] == {"headers": {"Cookie": REDACTED}}


# -- the caller's objects are never changed ------------------------------------------------------


def caller_payload(secrets: Secrets) -> dict[str, Any]:
    return {
        "password": secrets.new(),
        "payload": {
            "users": [
                {"name": "ann", "token": secrets.new()},
                ("tuple", {"secret": secrets.new()}),
            ],
            "creds": Credentials("ann", secrets.new(), {"api_key": secrets.new()}),
            "tags": {"a", "b"},
            "level": "not the schema's",
        },
        "level": "collides",
    }


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_caller_objects_are_never_mutated(tmp_path: Path, secrets: Secrets, frontend: str) -> None:
    path = setup_file(tmp_path)
    fields = caller_payload(secrets)
    before = copy.deepcopy(fields)
    inner = fields["payload"]
    users = inner["users"]
    context_before = alkana_logging.get_context()
    log_call(frontend, MESSAGE, fields)
    log_call(frontend, MESSAGE, fields)  # twice: a cache must not change the second call
    assert fields == before
    assert fields["payload"] is inner
    assert inner["users"] is users
    assert users[0] == before["payload"]["users"][0]
    assert fields["payload"]["creds"].password == before["payload"]["creds"].password
    assert alkana_logging.get_context() == context_before
    assert len(read_lines(path)) == 2


# -- tracebacks carry no local variables -----------------------------------------------------------


def _connect(api_key: str, secrets: Secrets) -> None:
    password = secrets.new()
    connection = {"dsn": f"postgres://etl:{password}@db/etl", "token": api_key}
    assert connection  # a local with a secret in it, alive when the exception is raised
    raise ConnectionError("database refused the login")


def _load(secrets: Secrets) -> None:
    client_secret = secrets.new()
    try:
        _connect(secrets.new(), secrets)
    except ConnectionError as err:
        raise RuntimeError(f"load failed ({len(client_secret)} chars of config)") from err


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_tracebacks_never_carry_local_variables(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], secrets: Secrets, frontend: str
) -> None:
    path = setup_file(tmp_path)
    try:
        _load(secrets)
    except RuntimeError as err:
        record, line = log_and_read_one(path, frontend, "load failed", exc=err, level=F.ERROR)
    stack = record[F.EXCEPTION_STACKTRACE]
    # The traceback is there, through both frames and the chained cause...
    assert "in _connect" in stack
    assert "in _load" in stack
    assert "ConnectionError: database refused the login" in stack
    assert "The above exception was the direct cause" in stack
    # ...but no value of a local variable or argument, in the file or on stderr.
    out, err_text = capfd.readouterr()
    assert_no_leak(secrets, line, out, err_text)


def test_exception_methods_inside_except_carry_no_locals(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], secrets: Secrets
) -> None:
    path = setup_file(tmp_path)
    try:
        _load(secrets)
    except RuntimeError:
        alkana_logging.get_logger("svc").exception("structlog")
        logging.getLogger("svc").exception("stdlib", stack_info=True)
        loguru_logger.exception("loguru")
    records = read_records(path)
    assert [r[F.MESSAGE] for r in records] == ["structlog", "stdlib", "loguru"]
    assert all(r[F.EXCEPTION_TYPE] == "RuntimeError" for r in records)
    out, err_text = capfd.readouterr()
    assert_no_leak(secrets, path.read_bytes(), out, err_text)


# -- log injection ------------------------------------------------------------------------------

FORGED = (
    'alice"}\n{"timestamp":"1970-01-01T00:00:00.000000Z","level":"critical",'
    '"message":"forged","app":"evil","user":"root"}\r\n'
)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_forged_request_id_and_user_cannot_add_a_line(tmp_path: Path, frontend: str) -> None:
    """What a middleware binds from request headers, forged: still one line, schema intact."""
    path = setup_file(tmp_path)
    with alkana_logging.bound_context(request_id=FORGED, user=FORGED):
        record, line = log_and_read_one(path, frontend, FORGED, {F.ROUTE: FORGED})
    expected_message = FORGED if frontend != STDLIB_ARGS else f"{FORGED} {F.ROUTE}={FORGED}"
    assert record[F.MESSAGE] == expected_message
    assert (record[F.REQUEST_ID], record[F.USER]) == (FORGED, FORGED)
    if frontend != STDLIB_ARGS:
        assert record[F.ROUTE] == FORGED
    assert b"\n" not in line
    assert b"\r" not in line


@pytest.mark.parametrize("frontend", FIELD_FRONTENDS)
def test_forged_schema_keys_cannot_change_the_schema(tmp_path: Path, frontend: str) -> None:
    path = setup_file(tmp_path)
    forged = {
        key: FORGED for key in F.SCHEMA_KEYS if not (frontend == STDLIB_EXTRA and key == F.MESSAGE)
    }
    record, _ = log_and_read_one(path, frontend, "honest", forged)
    assert record[F.MESSAGE] == "honest"
    assert {k: record[F.COLLISION_PREFIX + k] for k in forged} == forged


def test_bound_context_and_call_fields_redacted_together(tmp_path: Path, secrets: Secrets) -> None:
    """The context and the call's fields are two sources of keys; both are redacted."""
    path = setup_file(tmp_path)
    with alkana_logging.bound_context(token=secrets.new(), request_id="r-1"):
        record, line = log_and_read_one(
            path, STRUCTLOG, MESSAGE, {"password": secrets.new(), "rows": 3}
        )
    assert_no_leak(secrets, line)
    assert (record["token"], record["password"], record["rows"]) == (REDACTED, REDACTED, 3)
    assert record[F.REQUEST_ID] == "r-1"
