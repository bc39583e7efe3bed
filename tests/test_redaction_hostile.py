"""What a hostile reviewer found past the redaction policy, each case read back where it lands.

Lines offered to the stdlib's other handlers (Sentry's, caplog, an application's root handler)
carry what the file line carries; ``%`` fallbacks show redacted arguments; passwords holding an
``@``, URLs as dict keys, query strings without their ``?``, messages cut inside user-info; enum
keys that equal a plain key.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import itertools
import logging
import threading
import types
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pydantic
import pytest
from loguru import logger as loguru_logger

import alkana_logging
from alkana_logging import fields as F
from alkana_logging.redaction import REDACTED, Redactor, UrlScrubber, mask_url
from tests._frontends import read_lines, read_records, setup_file


def secret() -> str:
    return f"s3cr3t{uuid.uuid4().hex[:12]}"


class _Catch(logging.Handler):
    """A foreign handler on the root logger, as Sentry's or an application's would be."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_OWN = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)))


def _attrs(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _OWN}


@pytest.fixture
def caught() -> Iterator[_Catch]:
    handler = _Catch()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


# -- D1: what foreign handlers receive -----------------------------------------------------------


def _structlog_call(value: str) -> None:
    alkana_logging.get_logger("svc").info(
        f"GET https://api.example/x?token={value} 200",
        url=f"https://alice:{value}@h.example/x",
        nested={"urls": [f"https://h/p?api_key={value}"]},
    )


def _loguru_call(value: str) -> None:
    loguru_logger.bind(dsn=f"postgres://u:{value}@db/x").info(
        f"GET https://api.example/x?api_key={value}"
    )


def _etl_call(value: str) -> None:
    try:
        with alkana_logging.etl_run("t", job="j", dsn=f"postgresql://u:{value}@db/x"):
            raise RuntimeError(f"cannot connect https://h/x?token={value}")
    except RuntimeError:
        pass


@pytest.mark.parametrize("call", [_structlog_call, _loguru_call, _etl_call])
def test_foreign_handlers_get_urls_scrubbed_as_the_file_has_them(
    tmp_path: Path, caught: _Catch, call: Any
) -> None:
    path = setup_file(tmp_path)
    value = secret()
    call(value)
    alkana_logging.shutdown()
    assert caught.records, "nothing was offered to the root logger's handlers"
    for record in caught.records:
        assert value not in record.getMessage()
        assert value not in repr(_attrs(record))
    assert REDACTED in repr([(r.getMessage(), _attrs(r)) for r in caught.records])
    assert all(value.encode() not in line for line in read_lines(path))


class _BadItems(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise RuntimeError("items boom")

    def __iter__(self) -> Any:
        raise RuntimeError("iter boom")


# -- D11: one bad value costs only itself on the forwarded record --------------------------------


def test_a_value_that_fails_costs_only_itself_on_the_forwarded_record(
    tmp_path: Path, caught: _Catch
) -> None:
    setup_file(tmp_path)
    alkana_logging.get_logger("m").error("payment failed", order=7, bad=_BadItems(a=1))
    health = alkana_logging.pipeline_health()
    alkana_logging.shutdown()
    (record,) = caught.records
    assert record.getMessage() == "payment failed"
    attrs = _attrs(record)
    assert attrs["order"] == 7
    assert attrs["bad"] == "<unrenderable _BadItems value>"
    assert "'bad'" in attrs[F.LOG_ERROR]
    assert not health.get("internal_errors")


def test_collisions_on_the_forwarded_record_keep_every_value(
    tmp_path: Path, caught: _Catch
) -> None:
    setup_file(tmp_path)
    alkana_logging.get_logger("m").info("collide", msg="from msg", extra_msg="from extra_msg")
    alkana_logging.shutdown()
    (record,) = caught.records
    assert record.getMessage() == "collide"
    assert sorted(v for k, v in _attrs(record).items() if k.startswith("extra_msg")) == [
        "from extra_msg",
        "from msg",
    ]


# -- D2/D3: % fallbacks ----------------------------------------------------------------------


class _Headers(dict):  # type: ignore[type-arg]
    """A dict subclass whose key view is broken (its repr still shows the values)."""

    def __iter__(self) -> Any:
        raise RuntimeError("iter boom")


def test_stdlib_percent_mismatch_writes_redacted_arguments(tmp_path: Path) -> None:
    path = setup_file(tmp_path)
    value = secret()
    logging.getLogger("s").info("login %s from %s", {"user": "bob", "password": value})  # noqa: PLE1206
    logging.getLogger("s").info("headers %s", _Headers(authorization=f"Bearer {value}"))
    alkana_logging.shutdown()
    records = read_records(path)
    assert len(records) == 2
    for record in records:
        assert value not in repr(record)
    assert "message arguments did not match the format" in records[0][F.LOG_ERROR]
    assert "bob" in records[0][F.MESSAGE]
    assert REDACTED in records[0][F.MESSAGE]
    # Its keys are read as the dict's repr reads them: the broken __iter__ changes nothing.
    assert records[1][F.MESSAGE] == "headers {'authorization': '[REDACTED]'}"


def test_structlog_argument_whose_walk_raises_does_not_reach_the_caller(tmp_path: Path) -> None:
    path = setup_file(tmp_path)
    value = secret()
    log = alkana_logging.get_logger("m")
    log.info("m %s", _BadItems(authorization=value))  # must not raise
    log.info("m %s %s", 1, [_BadItems(authorization=value)])
    logging.getLogger("s").info("m %s %s", 1, [_BadItems(authorization=value)])
    alkana_logging.shutdown()
    records = read_records(path)
    assert len(records) == 3
    for record in records:
        assert value not in repr(record)
        assert "items boom" in record[F.LOG_ERROR]


# -- D4-D7: URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://alice:p@ss{s}@host:3100/x", "http://[REDACTED]@host:3100/x"),
        ("https://u:{s}@@h/p?q=1", "https://[REDACTED]@h/p?q=1"),
        ("see https://h/p and mail ann@example.com", "see https://h/p and mail ann@example.com"),
    ],
)
def test_user_info_is_masked_up_to_the_last_at(url: str, shown: str) -> None:
    value = secret()
    assert mask_url(url.replace("{s}", value)) == shown


def test_urls_as_dict_keys_are_scrubbed(tmp_path: Path) -> None:
    path = setup_file(tmp_path)
    value = secret()
    alkana_logging.get_logger("m").info(
        "m", timings={f"https://u:{value}@h/x": 1, f"https://h/y?token={value}": 2}
    )
    logging.getLogger("s").info("m", extra={"seen": {f"https://h/z?sig={value}": True}})
    alkana_logging.shutdown()
    records = read_records(path)
    assert len(records) == 2
    assert all(value not in repr(r) for r in records)
    assert records[0]["timings"] == {
        "https://[REDACTED]@h/x": 1,
        f"https://h/y?token={REDACTED}": 2,
    }


@pytest.mark.parametrize(
    "text",
    [
        "page=2&api_key={s}",  # url.query, without its "?"
        "grant_type=password&client_secret={s}",  # a form body
        "retrying with token={s} now",  # name=value in plain text
        "https://h/cb#access_token={s}&token_type=bearer",  # a fragment
        "target=https://h/p?password={s}&x=1",  # a URL as the value of another pair
    ],
)
def test_name_value_pairs_without_a_question_mark_are_scrubbed(tmp_path: Path, text: str) -> None:
    path = setup_file(tmp_path)
    value = secret()
    body = text.replace("{s}", value)
    alkana_logging.get_logger("m").info(body, query=body)
    alkana_logging.shutdown()
    (record,) = read_records(path)
    assert value not in repr(record)
    assert record["query"] == record[F.MESSAGE]
    assert REDACTED in record["query"]


def test_harmless_pairs_are_left_alone() -> None:
    scrubber = UrlScrubber(Redactor())
    for text in ("page=2&sort=asc", "x=1 y=2 why?", "a==b", "k=v; path=/"):
        assert scrubber.text(text) == text


def test_a_message_cut_inside_a_url_is_scrubbed_before_it_is_cut(tmp_path: Path) -> None:
    path = setup_file(tmp_path, max_line_bytes=4096)
    value = "P" * 40 + secret()
    prefix = "x" * (2048 - 30)  # the message is cut at 2048 characters: inside the password
    alkana_logging.get_logger("m").info(f"{prefix} https://alice:{value}@h/x?token={value} end")
    prefix2 = "y" * (2048 - 20)  # cut inside a query value
    alkana_logging.get_logger("m").info(f"{prefix2} https://h/x?token={value}&a=1 end")
    alkana_logging.shutdown()
    records = read_records(path)
    assert len(records) == 2
    for record in records:
        message = record[F.MESSAGE]
        assert "PPPP" not in message
        assert value not in message
        assert message.endswith(" chars]"), message[-80:]
        assert "…[truncated " in message


# -- D12: enum keys do not share a decision with their value ----------------------------------


class _Field(enum.StrEnum):
    password = "field_1"  # secret by its name


def test_a_strenum_key_is_judged_by_its_name_whatever_was_seen_first(tmp_path: Path) -> None:
    path = setup_file(tmp_path)
    value = secret()
    log = alkana_logging.get_logger("m")
    log.info("plain first", nested={"field_1": 1}, field_1=1)
    log.info("then the enum", nested={_Field.password: value})
    logging.getLogger("m").info("top level", extra={_Field.password: value})
    alkana_logging.shutdown()
    records = read_records(path)
    assert records[0]["field_1"] == 1
    assert records[0]["nested"] == {"field_1": 1}
    assert records[1]["nested"] == {"field_1": REDACTED}
    assert records[2]["field_1"] == REDACTED
    assert all(value not in repr(r) for r in records)


def test_redactor_cache_tells_an_enum_from_its_value() -> None:
    redactor = Redactor()
    assert not redactor.is_secret("field_1")
    assert redactor.is_secret(_Field.password)
    assert not redactor.is_secret("field_1")


# -- D9: loguru {} arguments ---------------------------------------------------------------------


class _User:
    def __init__(self, password: str) -> None:
        self.password = password
        self.name = "bob"


def test_loguru_fields_are_redacted_where_formatting_put_them(tmp_path: Path) -> None:
    path = setup_file(tmp_path)
    value = secret()
    loguru_logger.info(
        "pw={creds[password]} user={creds[user]}", creds={"password": value, "user": "bob"}
    )
    loguru_logger.info("pw={u.password} name={u.name}", u=_User(value))
    loguru_logger.opt(lazy=True).info("pw={password}", password=lambda: value)
    loguru_logger.info("{password:>40}|{password!r}|{password:.4}", password=value)
    loguru_logger.info("token={token}", token=value.encode())
    loguru_logger.info("got {c} and {n}", c={"password": value, "n": 1}, n=7)
    loguru_logger.opt(colors=True).info("<red>pw</red>={password}", password=value)
    alkana_logging.shutdown()
    messages = [r[F.MESSAGE] for r in read_records(path)]
    assert messages == [
        f"pw={REDACTED} user=bob",
        f"pw={REDACTED} name=bob",
        f"pw={REDACTED}",
        f"{REDACTED}|{REDACTED}|{REDACTED}",
        f"token={REDACTED}",
        f"got {{'password': '{REDACTED}', 'n': 1}} and 7",
        f"pw={REDACTED}",
    ]


def test_loguru_conversions_are_redacted_and_shapes_without_secrets_kept(tmp_path: Path) -> None:
    """``!r``/``!s``/``!a`` turn a container into text before its format spec is applied: the
    redaction must come first. A container without a secret keeps its own text (a tuple stays
    a tuple)."""
    path = setup_file(tmp_path)
    value = secret()
    loguru_logger.info("creds {c!r}", c={"password": value})
    loguru_logger.info("creds {c!s}", c={"password": value})
    loguru_logger.info("h {r[headers]!a}", r={"headers": {"authorization": value}})
    loguru_logger.info("point {p} tags {t!r}", p=(1, 2), t=("a",))
    alkana_logging.shutdown()
    messages = [r[F.MESSAGE] for r in read_records(path)]
    assert messages == [
        f"creds {{'password': '{REDACTED}'}}",
        f"creds {{'password': '{REDACTED}'}}",
        f"h {{'authorization': '{REDACTED}'}}",
        "point (1, 2) tags ('a',)",
    ]


def test_loguru_bound_secrets_never_change_the_callers_text(tmp_path: Path) -> None:
    path = setup_file(tmp_path)
    loguru_logger.bind(password="a").info("a cat sat on a mat")
    loguru_logger.bind(token=1).info("order 1 of 10 shipped at 11:01")
    loguru_logger.bind(api_key="").info("nothing {n}", n=3)
    alkana_logging.shutdown()
    records = read_records(path)
    assert [r[F.MESSAGE] for r in records] == [
        "a cat sat on a mat",
        "order 1 of 10 shipped at 11:01",
        "nothing 3",
    ]
    assert records[0]["password"] == REDACTED
    assert records[1]["token"] == REDACTED


# -- more spellings and shapes -------------------------------------------------------------------

GLUED = [
    "accesstoken",
    "dbpassword",
    "sslpassword",
    "clientsecret",
    "secretkey",
    "privatekey",
    "apitoken",
    "aws_secret_access_key",
    "signature",
    "bearer",
]


@pytest.mark.parametrize("key", GLUED)
def test_glued_and_signing_key_spellings_are_redacted(tmp_path: Path, key: str) -> None:
    path = setup_file(tmp_path)
    value = secret()
    alkana_logging.get_logger("m").info("m", **{key: value}, nested={key: value})
    logging.getLogger("s").info(f"url https://h/x?{key}={value}")
    alkana_logging.shutdown()
    records = read_records(path)
    assert records[0][key] == REDACTED
    assert records[0]["nested"] == {key: REDACTED}
    assert value not in repr(records)


def test_pairs_in_lists_and_deques_are_redacted(tmp_path: Path) -> None:
    import collections

    path = setup_file(tmp_path)
    value = secret()
    alkana_logging.get_logger("m").info(
        "m",
        headers=[["authorization", value], ["accept", "text/html"]],
        recent=collections.deque([{"password": value}, 3]),
    )
    alkana_logging.shutdown()
    (record,) = read_records(path)
    assert record["headers"] == [["authorization", REDACTED], ["accept", "text/html"]]
    assert record["recent"] == [{"password": REDACTED}, 3]


@pytest.mark.parametrize("name", ["X-Goog-Credential", "awsaccesskeyid", "AWSAccessKeyId"])
def test_signed_url_parameters_are_redacted(name: str) -> None:
    value = secret()
    shown = UrlScrubber(Redactor()).text(f"https://h/o?{name}={value}&x=1")
    assert shown == f"https://h/o?{name}={REDACTED}&x=1"


@pytest.mark.parametrize("name", ["token[]", "auth[token]", "user[password]"])
def test_bracketed_parameter_names_are_judged_by_their_parts(name: str) -> None:
    value = secret()
    scrubber = UrlScrubber(Redactor())
    assert scrubber.text(f"GET https://h/x?{name}={value}&a[b]=1") == (
        f"GET https://h/x?{name}={REDACTED}&a[b]=1"
    )


# -- what a forwarded record carries: the value as the line writes it ----------------------------


@dataclasses.dataclass
class _Login:
    user: str
    password: str


class _Model(pydantic.BaseModel):
    user: str
    password: str


class _UrlObject:
    """An object whose str() and repr() show a URL with credentials (a client's URL type)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"URL({self.url!r})"

    __str__ = __repr__


def _shapes(value: str) -> dict[str, Any]:
    url = f"https://alice:{value}@h.example/x"
    return {
        "model": _Model(user="bob", password=value),
        "dataclass_in_dict": {"login": _Login("bob", value)},
        "model_in_list": [_Model(user="bob", password=value)],
        "bytes_url": url.encode(),
        "bytes_key_and_value": {b"x": url.encode()},
        "bytearray_query": bytearray(f"a=1&token={value}".encode()),
        "object_with_url": _UrlObject(url),
        "frozenset_of_pairs": frozenset({("authorization", value)}),
        "deque": collections.deque([{"password": value}]),
        "mappingproxy": types.MappingProxyType({"authorization": value}),
    }


_SHAPE_NAMES = sorted(_shapes("x"))


@pytest.mark.parametrize("front_end", ["structlog", "loguru"])
@pytest.mark.parametrize("shape", _SHAPE_NAMES)
def test_a_forwarded_record_hides_what_the_file_hides_for_every_value_shape(
    tmp_path: Path, caught: _Catch, shape: str, front_end: str
) -> None:
    path = setup_file(tmp_path)
    value = secret()
    field = _shapes(value)[shape]
    if front_end == "structlog":
        alkana_logging.get_logger("svc").info("shape", field=field)
    else:
        loguru_logger.bind(field=field).info("shape")
    alkana_logging.shutdown()
    (record,) = caught.records
    shown = repr(_attrs(record)) + str(_attrs(record))
    assert value not in shown, shown
    assert value not in record.getMessage()
    (line,) = read_records(path)
    assert value not in repr(line)
    # The same value as the line writes it: JSON's types, nothing else.
    assert _attrs(record)["field"] == line["field"]


def test_a_url_used_as_a_key_loses_its_credentials_on_the_forwarded_record(
    tmp_path: Path, caught: _Catch
) -> None:
    setup_file(tmp_path)
    value = secret()
    alkana_logging.get_logger("svc").info("k", **{f"https://alice:{value}@h/": 1})
    loguru_logger.bind(**{f"https://alice:{value}@h/": 2}).info("k")
    alkana_logging.shutdown()
    assert len(caught.records) == 2
    for record in caught.records:
        assert value not in repr(_attrs(record))
        assert "https://[REDACTED]@h/" in _attrs(record)


def test_values_that_hold_no_text_are_forwarded_as_they_are(tmp_path: Path, caught: _Catch) -> None:
    setup_file(tmp_path)
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    ident = uuid.uuid4()
    alkana_logging.get_logger("svc").info(
        "kept", when=when, ident=ident, level_kind=logging.INFO, ratio=0.5, color=_Color.RED
    )
    alkana_logging.shutdown()
    attrs = _attrs(caught.records[0])
    assert attrs["when"] is when
    assert attrs["ident"] is ident
    assert attrs["ratio"] == 0.5
    assert attrs["color"] == "red"  # an enum member as the line writes it: its value may hide text


class _Color(enum.Enum):
    RED = "red"


# -- a container given as the message itself -----------------------------------------------------


def _stdlib_message(message: Any) -> None:
    logging.getLogger("svc").info(message)


def _structlog_message(message: Any) -> None:
    alkana_logging.get_logger("svc").info(message)


def _loguru_message(message: Any) -> None:
    loguru_logger.info(message)


@pytest.mark.parametrize(
    "call", [_stdlib_message, _structlog_message, _loguru_message], ids=lambda f: f.__name__
)
@pytest.mark.parametrize(
    "make",
    [
        lambda v: {"password": v},
        lambda v: [("authorization", v)],
        lambda v: _Login("bob", v),
        lambda v: _Model(user="bob", password=v),
    ],
    ids=["dict", "pairs", "dataclass", "pydantic"],
)
def test_a_container_given_as_the_message_is_written_with_its_secrets_replaced(
    tmp_path: Path, call: Any, make: Any
) -> None:
    path = setup_file(tmp_path)
    value = secret()
    call(make(value))
    alkana_logging.shutdown()
    (line,) = read_records(path)
    assert value not in repr(line)
    assert REDACTED in line["message"]
    assert "password" in line["message"] or "authorization" in line["message"]  # keys are kept


# -- user-info holding characters a URL should encode ---------------------------------------------


@pytest.mark.parametrize("char", ['"', "'", "\\", "<", ">", "`", "\x01"])
def test_user_info_holding_a_quote_or_backslash_is_masked_in_message_and_fields(
    tmp_path: Path, char: str
) -> None:
    path = setup_file(tmp_path)
    value = secret()
    url = f"postgresql://alice:p{char}{value}@db.example/app"
    alkana_logging.get_logger("svc").info(f"connecting to {url}", dsn=url, nested={"u": [url]})
    alkana_logging.shutdown()
    (line,) = read_records(path)
    assert value not in repr(line)
    assert line["dsn"] == "postgresql://[REDACTED]@db.example/app"
    assert line["message"] == "connecting to postgresql://[REDACTED]@db.example/app"


# -- enum members, kept types, the bound context on plain stdlib records --------------------------


def _conf_enum(value: str) -> type[enum.Enum]:
    return enum.Enum(  # type: ignore[return-value]
        "Conf",
        {
            "PROD": {"host": "db", "password": value},
            "PAIRS": (("authorization", value),),
            "DSN": f"postgresql://app:{value}@db/x",
        },
    )


@pytest.mark.parametrize("member", ["PROD", "PAIRS", "DSN"])
@pytest.mark.parametrize("where", ["top", "in a list", "in a dict"])
def test_an_enum_member_hides_its_values_secrets_in_the_file_and_forwarded(
    tmp_path: Path, caught: _Catch, member: str, where: str
) -> None:
    path = setup_file(tmp_path)
    value = secret()
    conf = _conf_enum(value)[member]
    field = {"top": conf, "in a list": [conf], "in a dict": {"c": conf}}[where]
    alkana_logging.get_logger("svc").info("conf", c=field)
    loguru_logger.bind(c=field).info("conf")
    logging.getLogger("svc").info("conf", extra={"c": field})
    alkana_logging.shutdown()
    lines = read_records(path)
    assert len(lines) == 3
    for line in lines:
        assert value not in repr(line)
        assert REDACTED in repr(line["c"])
    forwarded = [r for r in caught.records if r.__class__.__name__ == "ForwardedRecord"]
    assert len(forwarded) == 2
    for record in forwarded:
        assert value not in repr(_attrs(record)) + str(_attrs(record))


class _LeakyDate(datetime.date):
    def __repr__(self) -> str:
        return f"LeakyDate(token={self.secret})"  # type: ignore[attr-defined]

    __str__ = __repr__


def test_a_subclass_of_a_kept_type_is_converted_on_the_forwarded_record(
    tmp_path: Path, caught: _Catch
) -> None:
    setup_file(tmp_path)
    value = secret()
    day = _LeakyDate(2026, 1, 2)
    day.secret = value  # type: ignore[attr-defined]
    alkana_logging.get_logger("svc").info("d", day=day)
    alkana_logging.shutdown()
    (record,) = caught.records
    assert value not in repr(_attrs(record)) + str(_attrs(record))


@pytest.mark.parametrize(
    "make",
    [
        lambda v: f"https://alice:{v}@h.example/x",
        lambda v: f"https://h.example/x?token={v}",
        lambda v: _Model(user="bob", password=v),
        lambda v: _Login("bob", v),
        lambda v: f"https://alice:{v}@h/".encode(),
        lambda v: _conf_enum(v)["DSN"],
    ],
    ids=["user-info", "query", "pydantic", "dataclass", "bytes", "enum"],
)
def test_the_bound_context_on_a_plain_stdlib_record_is_redacted_for_other_handlers(
    tmp_path: Path, caught: _Catch, make: Any
) -> None:
    setup_file(tmp_path)
    value = secret()
    with alkana_logging.bound_context(upstream=make(value)):
        logging.getLogger("svc").error("upstream failed")
    alkana_logging.shutdown()
    (record,) = caught.records
    attrs = _attrs(record)
    assert "upstream" in attrs
    assert value not in repr(attrs) + str(attrs)


# -- text: quoted values, URLs next to quotes, key spellings, mistyped URLs ------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("connect password='{s}' host=db", "connect password='[REDACTED]' host=db"),
        ('export API_TOKEN="{s} x" now', 'export API_TOKEN="[REDACTED]" now'),
        ("Creds(user='a', password='{s}')", "Creds(user='a', password='[REDACTED]')"),
        ("M(id=1, token=b'{s}')", "M(id=1, token=b'[REDACTED]')"),
        ("password='ab\\'{s}' x", "password='[REDACTED]' x"),
        ('psql password=\\"{s}\\" y', 'psql password=\\"[REDACTED]\\" y'),
        ("token=u'{s}' z", "token=u'[REDACTED]' z"),
        ('https://alice:ab",{s}@db/x', "https://[REDACTED]@db/x"),
        ("postgresql://app:x'){s}@db/x", "postgresql://[REDACTED]@db/x"),
        ('redis://:p"}}{s}@cache', "redis://[REDACTED]@cache"),
        ("amqp://u:k';{s}@mq", "amqp://[REDACTED]@mq"),
        # quotes never end user-info: text like this is masked more than needed, never less
        (
            'url="https://example.com","owner":"ops@example.com"',
            'url="https://[REDACTED]@example.com"',
        ),
    ],
)
def test_quoted_values_are_redacted_whole_and_user_info_masked_across_quotes(
    text: str, shown: str
) -> None:
    value = secret()
    assert UrlScrubber().text(text.format(s=value)) == shown


@pytest.mark.parametrize(
    "key",
    [
        "password1",
        "new_password2",
        "signing_key",
        "encryption_key",
        "master_key",
        "private_key_pem",
        "PHPSESSID",
        "JSESSIONID",
        "connect.sid",
        "accessKey",
        "code_verifier",
        "SAMLResponse",
    ],
)
def test_common_secret_key_names_are_redacted(key: str) -> None:
    assert Redactor().is_secret(key)


@pytest.mark.parametrize("key", ["rows", "row2", "md5", "oauth2_enabled", "pass_count"])
def test_keys_with_numbers_stay_plain(key: str) -> None:
    assert not Redactor().is_secret(key)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("alice:{s}@loki:3100", "[REDACTED]@loki:3100"),
        ("http:/alice:{s}@loki/", "http:/[REDACTED]@loki/"),
        ("https//alice:{s}@loki", "https//[REDACTED]@loki"),
        ("//alice:{s}@loki/", "//[REDACTED]@loki/"),
        ("http://alice:{s}@loki:3100 ", "http://[REDACTED]@loki:3100"),
        ("ops@example.com", "ops@example.com"),
        ("http:/alice:{s}@loki other", "http:/[REDACTED]@loki other"),
        ("alice:{s}@loki:3100 x", "[REDACTED]@loki:3100 x"),
    ],
)
def test_a_mistyped_url_is_printed_without_its_password(url: str, shown: str) -> None:
    value = secret()
    assert mask_url(url.format(s=value)) == shown


# -- objects that misbehave as a message or a % argument -------------------------------------------


class _Meta(type):
    def __getattr__(cls, name: str) -> Any:
        raise RuntimeError("meta boom")


class _MetaObject(metaclass=_Meta):
    def __str__(self) -> str:
        return "a meta object"


class _HidingDict(dict):  # type: ignore[type-arg]
    """Its own iteration hides a key that its C repr shows."""

    def __iter__(self) -> Any:
        return iter([k for k in dict.keys(self) if k != "password"])

    def keys(self) -> Any:
        return list(self.__iter__())


class _BadIterTuple(tuple):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        raise RuntimeError("tuple iter boom")


def test_objects_that_misbehave_as_message_or_argument_keep_the_line(tmp_path: Path) -> None:
    path = setup_file(tmp_path)
    value = secret()
    logging.getLogger("s").info(_MetaObject())
    alkana_logging.get_logger("s").info(_MetaObject())
    logging.getLogger("s").info("form %s", _HidingDict(user="bob", password=value))
    logging.getLogger("s").info("%s %s", _BadIterTuple((1, 2)), 2)  # must not raise
    alkana_logging.shutdown()
    lines = read_records(path)
    assert len(lines) == 4
    assert [line[F.MESSAGE] for line in lines[:2]] == ["a meta object", "a meta object"]
    assert value not in repr(lines)
    assert "'password': '[REDACTED]'" in lines[2][F.MESSAGE]


@pytest.mark.parametrize(
    "make",
    [
        lambda v: collections.OrderedDict(password=v),
        lambda v: collections.defaultdict(list, password=v),
        lambda v: collections.deque([("authorization", v)]),
        lambda v: [{"c": _Login("bob", v)}],
        lambda v: _Token(id=1, token=v.encode()),
        lambda v: _Token(id=1, headers={"authorization": v}),
    ],
    ids=["ordereddict", "defaultdict", "deque", "nested dataclass", "bytes field", "dict field"],
)
def test_loguru_messages_that_are_objects_are_redacted(tmp_path: Path, make: Any) -> None:
    path = setup_file(tmp_path)
    value = secret()
    loguru_logger.info(make(value))
    alkana_logging.shutdown()
    (line,) = read_records(path)
    assert value not in repr(line)
    assert REDACTED in line[F.MESSAGE]


class _Token(pydantic.BaseModel):
    id: int
    token: bytes = b""
    headers: dict[str, str] = {}


def test_enum_members_in_percent_arguments_and_nested_members_are_redacted(
    tmp_path: Path,
) -> None:
    path = setup_file(tmp_path)
    value = secret()
    conf = _conf_enum(value)
    outer = enum.Enum("Outer", {"NESTED": conf["PROD"]})  # a member whose value is a member
    logging.getLogger("s").info("conf %r", conf["PROD"])
    logging.getLogger("s").info("conf %s", [conf["PROD"]])
    alkana_logging.get_logger("s").info("conf %s", (conf["PAIRS"],))
    alkana_logging.get_logger("s").info("nested", c=outer["NESTED"])
    alkana_logging.shutdown()
    lines = read_records(path)
    assert len(lines) == 4
    assert value not in repr(lines)
    assert all(REDACTED in repr(line) for line in lines)


def test_an_enum_member_whose_value_holds_itself_costs_little(tmp_path: Path) -> None:
    path = setup_file(tmp_path)
    loop: list[Any] = []
    member = enum.Enum("Loop", {"SELF": loop})["SELF"]
    loop.append(member)
    alkana_logging.get_logger("s").info("loop", c=member)
    alkana_logging.shutdown()
    (line,) = read_records(path)
    assert "nested too deep" in repr(line["c"])
    assert F.LOG_ERROR not in line  # ended by the depth limit, not by a RecursionError


def test_a_big_error_answer_is_not_parsed() -> None:
    from alkana_logging._http import Answer
    from alkana_logging._query import _error_message

    big = Answer(500, "", {}, b'{"message": "boom", "pad": [' + b"[]," * 40_000 + b"[]]}", False)
    small = Answer(500, "", {}, b'{"message": "boom"}', False)
    assert _error_message(small) == "boom"
    assert _error_message(big).startswith('{"message": "boom"')  # its text, cut, not parsed


@pytest.mark.parametrize(
    "mapping",
    [types.MappingProxyType, collections.UserDict, collections.ChainMap],
    ids=["MappingProxyType", "UserDict", "ChainMap"],
)
def test_a_mapping_that_is_not_a_dict_as_a_percent_argument_is_redacted(
    tmp_path: Path, mapping: Any
) -> None:
    path = setup_file(tmp_path)
    value = secret()
    config = mapping({"user": "u", "password": value})
    logging.getLogger("s").info("config %s", config)
    logging.getLogger("s").info("config %s and %d", config, 2)
    logging.getLogger("s").info("by name %(password)s, %(user)s", config)
    alkana_logging.get_logger("s").info("config %s", config)
    alkana_logging.get_logger("s").info("config %s and %d", config, 2)
    alkana_logging.shutdown()
    messages = [line[F.MESSAGE] for line in read_records(path)]
    assert messages == [
        f"config {{'user': 'u', 'password': '{REDACTED}'}}",
        f"config {{'user': 'u', 'password': '{REDACTED}'}} and 2",
        f"by name {REDACTED}, u",
        f"config {{'user': 'u', 'password': '{REDACTED}'}}",
        f"config {{'user': 'u', 'password': '{REDACTED}'}} and 2",
    ]


class _Endless(Mapping[str, str]):
    """A mapping whose items never end (a lazy view over a stream): % reads only its keys."""

    def __getitem__(self, key: str) -> str:
        return "value"

    def __iter__(self) -> Iterator[str]:
        return (f"k{i}" for i in itertools.count())

    def __len__(self) -> int:
        return 10**9


def test_an_endless_or_huge_mapping_argument_neither_hangs_nor_shows_a_secret(
    tmp_path: Path,
) -> None:
    path = setup_file(tmp_path)
    value = secret()
    huge = types.MappingProxyType({**{f"k{i}": i for i in range(20_000)}, "password": value})

    def calls() -> None:
        logging.getLogger("s").info("a=%(k0)s", _Endless())  # reading it whole never ends
        logging.getLogger("s").info("%s and %s", 1, _Endless())
        logging.getLogger("s").info("%s", huge)  # too many items to judge: not shown
        alkana_logging.get_logger("s").info("%s and %s", 1, _Endless())

    caller = threading.Thread(target=calls, daemon=True)  # a hang fails the test, not CI
    caller.start()
    caller.join(timeout=60)
    assert not caller.is_alive(), "a log call hung on an endless mapping"
    alkana_logging.shutdown()
    lines = read_records(path)
    assert len(lines) == 4
    assert value not in repr(lines)
    assert lines[1][F.MESSAGE] == "1 and <unrenderable _Endless value>"
