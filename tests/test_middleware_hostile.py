"""The middleware against what a hostile or broken server or application hands it.

The ASGI spec says what a scope and a message hold; a server or an application that breaks it
(a method that is not text, a client that is not a pair, a status that is not an int) must not
make the middleware raise into the request, lose the request's line, or write a secret the
value carries. Each case is one raw ASGI call, as such a server makes it, and the line read
back from the file.
"""

from __future__ import annotations

import asyncio
import enum
import http
import uuid
from pathlib import Path
from typing import Any

import pytest

import alkana_logging
from alkana_logging import _state
from alkana_logging import fields as F
from alkana_logging.middleware import RequestContextMiddleware
from tests._logfiles import read_records

SECRET = f"s3cr3t{uuid.uuid4().hex[:12]}"


def _scope(**changes: Any) -> dict[str, Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/hello",
        "raw_path": b"/hello",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("192.0.2.1", 40000),
        "server": ("testserver", 80),
    }
    scope.update(changes)
    return scope


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _app_sending(status: Any) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    return app


def _run(app: Any, scope: dict[str, Any], **options: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(RequestContextMiddleware(app, **options)(scope, receive, send))
    return sent


def _event(log_file: Path) -> dict[str, Any]:
    assert _state.current().health.internal_errors == 0
    alkana_logging.shutdown()
    text = log_file.read_text()
    assert SECRET not in text
    records = read_records(log_file)
    events = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert len(events) == 1, records
    # No internal error, no line about a failed event (asyncio's debug line aside).
    others = [r for r in records if r.get(F.EVENT) != F.EVENT_HTTP_REQUEST]
    assert [r for r in others if r[F.LOGGER] != "asyncio"] == [], others
    return events[0]


class _Host(str):
    """A str subclass a server might hand over: written as its text."""


@pytest.mark.parametrize(
    ("method", "written"),
    [
        ({"password": SECRET}, "<dict>"),
        ([SECRET], "<list>"),
        (b"POST", "POST"),
        (None, "<NoneType>"),
        (42, "<int>"),
        (_Host("PATCH"), "PATCH"),
    ],
)
@pytest.mark.parametrize("trusted", [False, True])
def test_a_method_that_is_not_text_is_written_as_text_without_its_secrets(
    log_file: Path, method: Any, written: str, trusted: bool
) -> None:
    options = {"trusted_proxies": ["10.0.0.0/8"]} if trusted else {}
    _run(_ok, _scope(method=method), **options)
    event = _event(log_file)
    assert event[F.METHOD] == written
    assert event[F.MESSAGE] == f"{written} /hello"
    assert event[F.STATUS_CODE] == 200


@pytest.mark.parametrize(
    ("client", "written"),
    [
        (None, None),
        ((), None),
        ([], None),
        (["192.0.2.7", 1], "192.0.2.7"),  # a list is an iterable pair too
        (("192.0.2.8",), "192.0.2.8"),
        (_Host("192.0.2.9"), None),  # text, not a pair: no address to tell
        (5, None),
        (object(), None),
        (({"token": SECRET}, 1), "<dict>"),
        ((b"192.0.2.10", 1), "192.0.2.10"),
        ((_Host("192.0.2.11"), 1), "192.0.2.11"),
        ({"host": SECRET}, None),
    ],
)
@pytest.mark.parametrize("trusted", [False, True])
def test_a_client_that_is_not_an_address_pair_still_gets_its_line(
    log_file: Path, client: Any, written: str | None, trusted: bool
) -> None:
    options = {"trusted_proxies": ["10.0.0.0/8"]} if trusted else {}
    headers = [(b"x-forwarded-for", b"198.51.100.1")]
    _run(_ok, _scope(client=client, headers=headers), **options)
    event = _event(log_file)
    assert event.get(F.CLIENT_IP) == written
    assert event[F.STATUS_CODE] == 200


class _Status(enum.IntEnum):
    TEAPOT = 418


@pytest.mark.parametrize(
    ("status", "written", "level"),
    [
        (http.HTTPStatus.NOT_FOUND, 404, F.WARNING),  # an IntEnum: an int
        (_Status.TEAPOT, 418, F.WARNING),
        (True, 500, F.ERROR),  # a bool is no status
        ("200", 500, F.ERROR),
        (200.0, 200, F.INFO),  # a whole float: servers accept it
        (200.5, 500, F.ERROR),
        (float("nan"), 500, F.ERROR),
        (None, 500, F.ERROR),
        ({"password": SECRET}, 500, F.ERROR),
    ],
)
def test_a_status_that_is_not_an_int_is_written_as_500(
    log_file: Path, status: Any, written: int, level: str
) -> None:
    sent = _run(_app_sending(status), _scope())
    assert sent[0]["status"] is status  # what the server gets is the application's business
    event = _event(log_file)
    assert event[F.STATUS_CODE] == written
    assert type(event[F.STATUS_CODE]) is int
    assert event[F.LEVEL] == level


@pytest.mark.parametrize("path", [["/hello"], b"/hello", None, 7])
def test_a_path_that_is_not_text_still_gets_its_line(log_file: Path, path: Any) -> None:
    _run(_ok, _scope(path=path), skip_paths=["/metrics"], debug_paths=["/healthz"])
    event = _event(log_file)
    assert type(event[F.PATH]) is str
    assert event[F.STATUS_CODE] == 200


@pytest.mark.parametrize("root_path", [b"/api", ["/api"], None, 0])
def test_a_root_path_that_is_not_text_still_gets_its_line(log_file: Path, root_path: Any) -> None:
    _run(_ok, _scope(path="/api/hello", root_path=root_path), skip_paths=["/metrics"])
    event = _event(log_file)
    assert event[F.PATH] == "/api/hello"
    assert event[F.STATUS_CODE] == 200


@pytest.mark.parametrize(
    ("value", "written"),
    [("in-1", "in-1"), (bytearray(b"in-2"), "in-2"), (memoryview(b"in-3"), "in-3"), (7, None)],
)
def test_a_header_value_that_is_not_bytes_is_read_as_bytes(
    log_file: Path, value: Any, written: str | None
) -> None:
    headers = [(b"x-request-id", value), (b"x-forwarded-for", value), (b"traceparent", value)]
    sent = _run(_ok, _scope(headers=headers), trusted_proxies=["192.0.2.0/24"])
    event = _event(log_file)
    if written is None:
        assert len(event[F.REQUEST_ID]) == 32  # a new one
    else:
        assert event[F.REQUEST_ID] == written
    assert dict(sent[0]["headers"])[b"x-request-id"] == event[F.REQUEST_ID].encode()


@pytest.mark.parametrize(
    "headers",
    [[(b"x-request-id",)], [b"x-request-id"], [([b"x"], b"v")], 5, None, [(b"a", b"b", b"c")]],
)
def test_headers_that_are_not_pairs_give_a_new_id_and_say_so(log_file: Path, headers: Any) -> None:
    health = _state.current().health
    sent = _run(_ok, _scope(headers=headers))
    # Counted and said (on stderr, once), as every failure of the middleware's own work.
    assert health.internal_errors == 1
    assert "request headers could not be read" in str(health.last_error)
    alkana_logging.shutdown()
    records = read_records(log_file)
    [event] = [r for r in records if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert len(event[F.REQUEST_ID]) == 32
    assert event[F.STATUS_CODE] == 200
    assert dict(sent[0]["headers"])[b"x-request-id"] == event[F.REQUEST_ID].encode()


# -- values that lie about their type, or override what reading them calls ----------------------


def _id(value: Any) -> str | None:
    """pytest's id of a case: the type's own name for anything but plain text and numbers
    (pytest reads a value that claims to be a tuple as one)."""
    if type(value) in (str, type(None)) or (type(value) is int and abs(value) < 10**6):
        return None
    return type(value).__name__


def _spoof(cls: type, **methods: Any) -> Any:
    """An object whose ``__class__`` claims ``cls`` and whose text is the secret."""
    namespace = {
        "__class__": property(lambda self: cls),
        "__str__": lambda self: SECRET,
        "__repr__": lambda self: SECRET,
        "__format__": lambda self, spec: SECRET,
        **methods,
    }
    return type("Spoof", (), namespace)()


class _SecretBytes(bytes):
    def __bytes__(self) -> bytes:
        return SECRET.encode()


class _RaisingBytes(bytes):
    def __bytes__(self) -> bytes:
        raise RuntimeError(SECRET)


class _SecretStr(str):
    def __str__(self) -> str:
        return SECRET

    def encode(self, *args: Any, **kwargs: Any) -> bytes:  # type: ignore[override]
        return SECRET.encode()


class _NotBytesStr(str):
    def encode(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return 5


class _RaisingInt(int):
    def __int__(self) -> int:
        raise RuntimeError(SECRET)


class _SecretList(list):  # type: ignore[type-arg]
    def __getitem__(self, index: Any) -> Any:
        return SECRET


class _RaisingLenTuple(tuple):  # type: ignore[type-arg]
    def __len__(self) -> int:
        raise RuntimeError(SECRET)


class _RaisingBool:
    def __bool__(self) -> bool:
        raise RuntimeError(SECRET)

    def __len__(self) -> int:
        raise RuntimeError(SECRET)


@pytest.mark.parametrize("key", ["method", "path"])  # the scope's keys, and the line's
@pytest.mark.parametrize(
    ("value", "written"),
    [
        (_spoof(str), "<Spoof>"),
        (_spoof(_Host), "<Spoof>"),
        (_SecretBytes(b"/x"), "/x"),
        (_RaisingBytes(b"/y"), "/y"),
        (_SecretStr("/z"), "/z"),
    ],
    ids=_id,
)
def test_a_method_or_path_that_lies_about_its_type_is_never_read_through_its_overrides(
    log_file: Path, key: str, value: Any, written: str
) -> None:
    _run(_ok, _scope(**{key: value}))
    assert _event(log_file)[key] == written


@pytest.mark.parametrize(
    "root_path",
    [_RaisingBool(), _spoof(str), _spoof(_Host), _RaisingBytes(b"/r"), _SecretBytes(b"/r")],
    ids=_id,
)
def test_a_root_path_that_lies_about_its_type_still_gets_its_line(
    log_file: Path, root_path: Any
) -> None:
    health = _state.current().health
    _run(_ok, _scope(path="/r/hello", root_path=root_path))
    # The route is matched from the scope, whose root_path cannot be read: when that fails,
    # the line has no route and the failure is counted.
    assert health.internal_errors in (0, 1)
    alkana_logging.shutdown()
    assert SECRET not in log_file.read_text()
    [event] = [r for r in read_records(log_file) if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert event[F.PATH] == "/r/hello"
    assert event[F.STATUS_CODE] == 200


@pytest.mark.parametrize(
    ("client", "written"),
    [
        ((None, 0), None),
        ([None, 0], None),
        ((_spoof(str), 1), "<Spoof>"),
        (_spoof(tuple, __bool__=lambda self: True, __getitem__=lambda self, i: SECRET), None),
        (_SecretList(["192.0.2.12", 1]), "192.0.2.12"),
        (_RaisingLenTuple(("192.0.2.13", 1)), "192.0.2.13"),
        ((_SecretBytes(b"192.0.2.14"), 1), "192.0.2.14"),
        ((_SecretStr("192.0.2.15"), 1), "192.0.2.15"),
    ],
    ids=_id,
)
@pytest.mark.parametrize("trusted", [False, True])
def test_a_client_that_lies_about_its_type_is_never_read_through_its_overrides(
    log_file: Path, client: Any, written: str | None, trusted: bool
) -> None:
    options = {"trusted_proxies": ["10.0.0.0/8"]} if trusted else {}
    _run(_ok, _scope(client=client), **options)
    assert _event(log_file).get(F.CLIENT_IP) == written


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (_spoof(bytes), None),
        (_SecretBytes(b"in-4"), "in-4"),
        (_SecretStr("in-5"), "in-5"),
        (_NotBytesStr("in-6"), "in-6"),
    ],
    ids=_id,
)
def test_a_header_value_that_lies_about_its_type_is_never_read_through_its_overrides(
    log_file: Path, value: Any, written: str | None
) -> None:
    headers = [(b"x-request-id", value), (b"traceparent", value), (b"x-forwarded-for", value)]
    _run(_ok, _scope(client=("10.0.0.5", 1), headers=headers), trusted_proxies=["10.0.0.0/8"])
    event = _event(log_file)
    assert event[F.REQUEST_ID] == written if written else len(event[F.REQUEST_ID]) == 32


@pytest.mark.parametrize(
    ("status", "written"),
    [
        (_spoof(int, __eq__=lambda self, other: False, __ge__=lambda self, other: False), 500),
        (_spoof(int, __ge__=lambda self, other: 1 / 0), 500),
        (_RaisingInt(201), 201),
        (2**64, 500),
        (10**5000, 500),
        (1000, 500),
        (-1, 500),
        (999, 999),
    ],
    ids=_id,
)
def test_a_status_that_lies_about_its_type_or_is_no_status_is_written_as_an_int(
    log_file: Path, status: Any, written: int
) -> None:
    _run(_app_sending(status), _scope())
    event = _event(log_file)
    assert event[F.STATUS_CODE] == written
    assert type(event[F.STATUS_CODE]) is int


def test_a_str_subclass_path_keeps_its_route(log_file: Path) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request: Any) -> PlainTextResponse:
        return PlainTextResponse("x")

    app = Starlette(routes=[Route("/items/{item_id}", item)])
    _run(app, _scope(path=_Host("/items/42")))
    event = _event(log_file)
    assert (event[F.ROUTE], event[F.PATH]) == ("/items/{item_id}", "/items/42")


class _Sliced(str):
    """A path whose slices are a secret: the route is matched from its own text."""

    def __getitem__(self, index: Any) -> Any:
        return f"/{SECRET}/"

    def __len__(self) -> int:
        return 100


def test_a_str_subclass_path_is_never_sliced_through_its_overrides(log_file: Path) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["fastapi"] = {"frontend_path": "/"}  # a FastAPI page: the path is cut at root_path
        await _ok(scope, receive, send)

    _run(app, _scope(path=_Sliced("/api/x"), root_path="/api"))
    event = _event(log_file)
    assert (event[F.ROUTE], event[F.PATH]) == (F.ROUTE_UNMATCHED, "/api/x")


class _RaisingName(bytes):
    def __eq__(self, other: object) -> bool:
        raise RuntimeError(SECRET)

    __hash__ = bytes.__hash__


@pytest.mark.parametrize(
    "start",
    [
        {"type": "http.response.start", "status": 200, "headers": None},
        {"type": "http.response.start", "status": 200, "headers": [b"x"]},
        {"type": "http.response.start", "status": 200, "headers": [(_RaisingName(b"a"), b"v")]},
        {"type": "http.response.start", "status": 200, "headers": 5},
    ],
)
def test_a_response_start_the_server_must_refuse_goes_to_it_as_sent(
    log_file: Path, start: dict[str, Any]
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start)

    sent = _run(app, _scope())
    assert sent == [start]  # as the application sent it: the server says what is wrong
    event = _event(log_file)
    assert event[F.STATUS_CODE] == 200


def test_a_response_start_without_a_status_is_written_as_500(log_file: Path) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "headers": []})

    sent = _run(app, _scope())
    assert "status" not in sent[0]  # the server's to refuse
    event = _event(log_file)
    assert (event[F.STATUS_CODE], event[F.LEVEL]) == (500, F.ERROR)


class _SecretNameType(type):
    @property
    def __name__(cls) -> str:  # type: ignore[override]
        return SECRET


class _NamedSecretly(metaclass=_SecretNameType):
    def __repr__(self) -> str:
        return SECRET


class _RaisingFormat(str):
    def __format__(self, spec: str) -> str:
        raise RuntimeError(SECRET)


_OddlyNamed = type("Odd", (), {})
_OddlyNamed.__name__ = _RaisingFormat("Odd")


@pytest.mark.parametrize("value", [_NamedSecretly(), _OddlyNamed()], ids=_id)
def test_a_value_whose_type_lies_about_its_name_is_written_by_the_types_own_name(
    log_file: Path, value: Any
) -> None:
    called = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(True)
        await _ok(scope, receive, send)

    _run(app, _scope(path=value, method=value, client=(value, 1)))
    assert called == [True]
    event = _event(log_file)
    name = "<_NamedSecretly>" if isinstance(value, _NamedSecretly) else "<Odd>"
    assert (event[F.METHOD], event[F.PATH], event[F.CLIENT_IP]) == (name, name, name)


def test_response_headers_from_a_generator_are_read_once_and_all_go_to_the_server(
    log_file: Path,
) -> None:
    pairs = [(b"content-type", b"text/plain"), (b"b",)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": (p for p in pairs)}
        await send(start)

    sent = _run(app, _scope())
    assert sent[0]["headers"] == pairs  # as given, every one: the server's to refuse
    assert _event(log_file)[F.STATUS_CODE] == 200


def test_response_headers_whose_iteration_raises_raise_into_the_application(
    log_file: Path,
) -> None:
    def broken() -> Any:
        yield (b"content-type", b"text/plain")
        raise LookupError("the application's own")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": broken()})

    with pytest.raises(LookupError, match="the application's own"):
        _run(app, _scope())
    alkana_logging.shutdown()
    [event] = [r for r in read_records(log_file) if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST]
    assert (event[F.STATUS_CODE], event[F.LEVEL]) == (500, F.ERROR)


class _Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError(SECRET)


class _RaisingHeaders:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __iter__(self) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error", [ValueError(SECRET), ValueError(_Unprintable()), RuntimeError()], ids=_id
)
def test_headers_whose_iteration_raises_are_said_by_the_errors_type_alone(
    log_file: Path, error: BaseException, capsys: pytest.CaptureFixture[str]
) -> None:
    health = _state.current().health
    _run(_ok, _scope(headers=_RaisingHeaders(error)))
    assert health.internal_errors == 1
    assert health.last_error == f"request headers could not be read: {type(error).__name__}"
    alkana_logging.shutdown()
    assert SECRET not in capsys.readouterr().err
    assert SECRET not in log_file.read_text()
