"""Request context for Starlette and FastAPI: one pure-ASGI middleware.

``RequestContextMiddleware`` binds ``request_id`` (and ``trace_id``/``span_id`` from a W3C
``traceparent``) for everything logged while a request is handled, echoes the id in the
response, and writes exactly one ``http_request`` event per request when the response has
finished. It needs starlette (the ``starlette`` extra; FastAPI depends on it) for route matching.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import logging
import os
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from starlette.convertors import FloatConvertor, IntegerConvertor, StringConvertor, UUIDConvertor
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Match, Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alkana_logging import _state, stdlib
from alkana_logging import fields as F
from alkana_logging.context import _CONTEXT, bind_context, reset_context
from alkana_logging.context import current as current_context
from alkana_logging.health import PipelineHealth
from alkana_logging.pipeline import _STDLIB_CALL_HANDLERS, Pipeline
from alkana_logging.redaction import safe_repr

__all__ = [
    "RequestContextMiddleware",
    "instrument",
    "is_safe_request_id",
    "new_request_id",
    "parse_traceparent",
    "scope_user",
    "silence_uvicorn_access",
]

#: The logger named in the ``http_request`` events.
LOGGER_NAME: Final = "alkana_logging.middleware"
#: The status written when the client went away before the response was complete (as nginx does).
STATUS_CLIENT_CLOSED: Final = 499
UVICORN_ACCESS_LOGGER: Final = "uvicorn.access"
#: The scope key where the outermost middleware leaves the request's id: a middleware nested
#: inside it (on a mounted sub-application) reuses that id and writes no event of its own.
SCOPE_REQUEST_ID: Final = "alkana_logging.request_id"
MAX_REQUEST_ID_LENGTH: Final = 128

_SAFE_ID: Final = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_SAFE_ID_TEXT: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Version 00 only: a later version may add fields, and we cannot know what they mean.
_TRACEPARENT: Final = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE: Final = b"0" * 32
_ZERO_SPAN: Final = b"0" * 16
# RFC 9110 token characters: what a header name may be made of.
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TRACEPARENT_HEADER: Final = b"traceparent"
_FORWARDED_FOR_HEADER: Final = b"x-forwarded-for"
_LEVEL_NUMBERS: Final = F.LEVEL_NUMBERS
_perf_counter: Final = time.perf_counter
_time_ns: Final = time.time_ns
# The event's fields in their order; a copy of it is filled in per request (cheaper than a
# literal with F.* keys).
_HTTP_REQUEST_FIELDS: Final[dict[str, Any]] = {
    F.EVENT: F.EVENT_HTTP_REQUEST,
    F.METHOD: None,
    F.ROUTE: None,
    F.PATH: None,
    F.STATUS_CODE: None,
    F.DURATION_MS: None,
    F.CLIENT_IP: None,
}
# The same with the request's ids first: they stand for the bound context (see _filled).
_ID_FIRST_FIELDS: Final[dict[str, Any]] = {F.REQUEST_ID: None, **_HTTP_REQUEST_FIELDS}
_IDS_FIRST_FIELDS: Final[dict[str, Any]] = {
    F.REQUEST_ID: None,
    F.TRACE_ID: None,
    F.SPAN_ID: None,
    **_HTTP_REQUEST_FIELDS,
}

# New ids are made 256 at a time from one os.urandom() call, as uuid.uuid4() would make them
# (version 4, RFC 4122 variant): one system call per id costs more than the rest of the id.
# list.pop() and list.extend() are atomic, so threads need no lock; a forked child drops the ids
# it inherited, or parent and child would hand out the same ones.
_IDS_PER_BATCH: Final = 256
# Byte 6 of each 16 keeps its low nibble under the version (4), byte 8 its low 6 bits under the
# variant bits (10): two translations of every 16th byte, all in C.
_VERSION_4: Final = bytes(b & 0x0F | 0x40 for b in range(256))
_VARIANT_RFC_4122: Final = bytes(b & 0x3F | 0x80 for b in range(256))
_ids: list[str] = []
os.register_at_fork(after_in_child=_ids.clear)


def _id_batch() -> list[str]:
    raw = bytearray(os.urandom(16 * _IDS_PER_BATCH))
    raw[6::16] = raw[6::16].translate(_VERSION_4)
    raw[8::16] = raw[8::16].translate(_VARIANT_RFC_4122)
    # hex() puts a space after every 16 bytes, split() cuts there: 256 ids without a Python loop.
    return raw.hex(" ", 16).split(" ")


IdGenerator = Callable[[], str]
IdValidator = Callable[[str], bool]
UserResolver = Callable[[Scope], "str | None"]


def new_request_id() -> str:
    """A new request id: a random UUID4 as 32 lower-case hex digits (``uuid.uuid4().hex``)."""
    while True:
        try:
            return _ids.pop()
        except IndexError:
            _ids.extend(_id_batch())


def is_safe_request_id(value: str) -> bool:
    """Whether ``value`` is a token that may be logged and echoed: 1 to 128 ``[A-Za-z0-9._-]``."""
    return _SAFE_ID_TEXT.fullmatch(value) is not None


def parse_traceparent(value: bytes | str) -> tuple[str, str] | None:
    """The ``(trace_id, span_id)`` of a W3C ``traceparent`` header, or None if it is not valid.

    Valid means version ``00``, a 32-hex trace id and a 16-hex span id (lower case, not all
    zeros) and 2 hex digits of flags, exactly as the W3C Trace Context recommendation says.
    """
    raw = value.encode("latin-1", "replace") if isinstance(value, str) else value
    match = _TRACEPARENT.fullmatch(raw)
    if match is None:
        return None
    trace_id, span_id = match.groups()
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id.decode("ascii"), span_id.decode("ascii")


def scope_user(scope: Scope) -> str | None:
    """The authenticated user of a request, as Starlette's ``AuthenticationMiddleware`` left it.

    Returns the user's ``display_name`` when ``scope["user"]`` is authenticated, else None.
    """
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    name = getattr(user, "display_name", None)
    if name is None or name == "":
        return None
    return str(name)


def silence_uvicorn_access() -> None:
    """Keep uvicorn's access logger quiet: the ``http_request`` event replaces its line.

    uvicorn writes its access line at info level on the ``uvicorn.access`` logger; raising that
    logger's level to warning drops the line before it is formatted (uvicorn writes nothing above
    info there). ``--log-level debug`` or a ``--log-config`` applied later sets it again; the
    middleware calls this once more when the server starts (the lifespan or the first request).
    """
    logging.getLogger(UVICORN_ACCESS_LOGGER).setLevel(logging.WARNING)


class _Exchange:
    """One request's receive() and send() as the application gets them, and what they saw.

    Made by ``RequestContextMiddleware.__call__``, which sets every attribute.
    """

    __slots__ = ("app_receive", "app_send", "disconnected", "end", "id_header", "status")

    app_receive: Receive
    app_send: Send
    id_header: tuple[bytes, bytes]
    status: Any  # the application's, whatever it is: checked when the event is written
    end: float
    disconnected: bool

    def send(self, message: Message) -> Awaitable[None]:
        # A plain method handing back the server's awaitable: no coroutine of its own, but for
        # a last body chunk, whose end is taken once it was sent.
        if message["type"] == "http.response.start":
            try:
                self.status = message["status"]  # checked when the event is written
            except KeyError:  # the server's to refuse
                self.status = None
            given = message.get("headers", ())
            copied = type(given) is not list and type(given) is not tuple
            if copied:  # another iterable, read once (a generator is not read again), or none
                try:
                    given = iter(given)
                except TypeError:  # not iterable: the message goes on as sent, for the server
                    return self.app_send(message)
            headers = list(given)  # what the application's own iterator raises is its own
            if copied:
                message = {**message}  # the application's own message stays as it was
                message["headers"] = headers
            header_key = self.id_header[0]
            try:
                for name, _ in headers:
                    # ASGI response header names are lower case.
                    if name == header_key:  # the application set it: keep its own
                        break
                else:
                    headers.append(self.id_header)
                    if not copied:
                        message = {**message}  # the application's own message stays as it was
                        message["headers"] = headers
            except Exception:  # noqa: BLE001, S110 - headers that are not (name, value) pairs
                pass  # go on as the application gave them, for the server to refuse
            return self.app_send(message)
        if message.get("more_body", False):
            return self.app_send(message)
        return self._send_last(message)

    async def _send_last(self, message: Message) -> None:
        if not self.disconnected:
            # uvicorn's request cycle, read at once (the first step of _server_disconnected(),
            # inline: two calls less on every request under uvicorn).
            known = getattr(getattr(self.app_receive, "__self__", None), "disconnected", None)
            if type(known) is bool:
                self.disconnected = known
            else:
                self._poll_disconnect()
        await self.app_send(message)
        self.end = _perf_counter()

    def _poll_disconnect(self) -> None:
        """Whether the client has gone, asked before the last body chunk goes out: servers
        (uvicorn) drop what is sent after a disconnect without a word, and an endpoint that does
        not read its request (most) never sees the ``http.disconnect``. Under uvicorn its
        request cycle's ``disconnected`` says it; otherwise ``receive()`` is run up
        to its first wait and no further, as ``asyncio.wait_for(receive(), 0)`` would, without
        a round through the event loop: a message that is there is taken, a wait is abandoned
        (closed, which runs its clean-up as a cancellation does). A request body the
        application left unread is passed over (two chunks at most). Under asyncio only (a
        trio wait cannot be abandoned that way)."""
        # uvicorn's receive() is a method of the request's cycle, which knows: read it, at no
        # cost and with no side effect, also through a middleware's wrapper in front of ours
        # (OpenTelemetry's ASGI middleware: a closure over it).
        known = _server_disconnected(self.app_receive)
        if known is not None:
            self.disconnected = known
            return
        if _get_running_loop() is None or _instrumented(self.app_receive):
            # A wrapper that traces every receive() (a span each): not probed.
            return
        try:
            for _ in range(3):
                pending: Any = self.app_receive()
                step = getattr(pending, "send", None)
                if step is None:  # not a coroutine: cannot be run without waiting on it
                    return
                try:
                    step(None)
                except StopIteration as done:
                    message = done.value
                else:  # it waits: the client is still there
                    pending.close()
                    return
                kind = message.get("type") if isinstance(message, dict) else None
                if kind == "http.disconnect":
                    self.disconnected = True
                    return
                if kind != "http.request":
                    return
        except Exception as exc:  # noqa: BLE001 - the response must go out whatever happened
            _report(f"checking for a disconnected client failed: {exc!r}")

    async def receive(self) -> Message:
        message = await self.app_receive()
        # After the response, servers answer every receive() with a disconnect: not a sign.
        if message["type"] == "http.disconnect" and self.end == 0.0:
            self.disconnected = True
        return message


def _server_disconnected(receive: Any) -> bool | None:
    """The ``disconnected`` flag of uvicorn's request cycle behind ``receive`` (itself, or
    what a wrapper closes over, a few levels deep), or None when there is none."""
    stack = [receive]
    for _ in range(8):
        if not stack:
            return None
        current = stack.pop()
        known = getattr(getattr(current, "__self__", None), "disconnected", None)
        if type(known) is bool:
            return known
        wrapped = getattr(current, "__wrapped__", None)  # functools.wraps
        if wrapped is not None:
            stack.append(wrapped)
        for cell in getattr(current, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(value):
                stack.append(value)
    return None


def _instrumented(receive: Any) -> bool:
    """Whether ``receive`` is another middleware's wrapper (``functools.wraps``, as
    OpenTelemetry's, which opens a span for each call), which a probe must not call."""
    if getattr(receive, "__wrapped__", None) is not None:
        return True
    code = getattr(receive, "__code__", None)
    return code is not None and "opentelemetry" in code.co_filename


#: Every key the event may have: judged once per renderer (``Renderer.plain_keys``).
_EVENT_KEYS: Final = (*_HTTP_REQUEST_FIELDS, F.REQUEST_ID, F.TRACE_ID, F.SPAN_ID, F.USER)
#: The records the event is filled into when the bound context is the one the middleware bound:
#: (the renderer's ``_template`` they were made from, with the request's id first, with its
#: three ids first), or ``None`` for the last two when some key of the event is not plain. A
#: new renderer (setup()) or a fork (a new ``pid``) gives a new ``_template``: made again.
_filled: tuple[Any, Any, Any] = (None, None, None)


def _filled_templates(renderer: Any) -> tuple[Any, Any, Any]:
    global _filled  # noqa: PLW0603
    if renderer.plain_keys(_EVENT_KEYS):
        _filled = (
            renderer._template,
            renderer.record_template(_ID_FIRST_FIELDS),
            renderer.record_template(_IDS_FIRST_FIELDS),
        )
    else:
        _filled = (renderer._template, None, None)
    return _filled


def _write_event(
    pipeline: Pipeline,
    ns: int,
    level: str,
    message: str,
    fields: dict[str, Any],
    error: BaseException | None,
    filled: bool,
) -> None:
    """``pipeline.emit()`` for the event, whose fields are str keys and scalar values: the same
    line to the same sinks. ``filled``: ``fields`` is a copy of the renderer's record template
    filled in (see ``_filled``), rendered by ``Renderer.render_filled``; else the event's
    fields, rendered by ``Renderer.render_plain`` (which reads the bound context). The span's
    ids are not read again: the request's were bound (or put in ``fields``) when it came in,
    and the span outside the middleware is the same one now."""
    renderer = pipeline.renderer
    try:
        if filled:
            record, line = renderer.render_filled(ns, level, LOGGER_NAME, message, fields, error)
        else:
            record, line = renderer.render_plain(ns, level, LOGGER_NAME, message, fields, error)
    except Exception as err:  # noqa: BLE001 - the pipeline must not break the request
        problem = f"rendering failed: {safe_repr(err)}"
        pipeline.health.internal_error(problem)
        record, line = renderer.fallback(ns, level, LOGGER_NAME, problem)
    for sink in pipeline.sinks:
        try:
            sink.write(line, record, ns)
        except Exception as err:  # noqa: BLE001
            pipeline.health.internal_error(f"{type(sink).__name__} failed: {err!r}")


_root: Final = logging.root
_Logger: Final = logging.Logger
_new_exchange: Final = object.__new__
_get_running_loop: Final = asyncio._get_running_loop

#: The exception the middleware last logged with the event of a request, in that request's
#: context: the server (uvicorn) logs the same exception once more when it reaches it, in the
#: same task, and that line is dropped (see :class:`_AlreadyLogged`).
_LOGGED_ERROR: Final[contextvars.ContextVar[BaseException | None]] = contextvars.ContextVar(
    "alkana_logging_logged_error", default=None
)
UVICORN_ERROR_LOGGER: Final = "uvicorn.error"


class _AlreadyLogged(logging.Filter):
    """On ``uvicorn.error``: drops uvicorn's "Exception in ASGI application" line when its
    exception is the one the middleware has just logged with the request's event (which has the
    request's id, the route and the traceback): one line and one count per exception. Any
    other exception there is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        if not info or info[1] is None:
            return True
        return info[1] is not _LOGGED_ERROR.get()


_ALREADY_LOGGED: Final = _AlreadyLogged()


def _drop_uvicorn_duplicates() -> None:
    logging.getLogger(UVICORN_ERROR_LOGGER).addFilter(_ALREADY_LOGGED)  # once: addFilter checks


class RequestContextMiddleware:
    """Binds the request's ids while it is handled and logs one ``http_request`` event for it.

    Pure ASGI (Starlette's ``BaseHTTPMiddleware`` loses context changes), for Starlette and
    FastAPI. Installed by :func:`instrument` (``instrument(app, **options)``: outside
    Starlette's ``ServerErrorMiddleware``, so the 500 of an unhandled exception and the
    responses of the app's own exception handlers carry the id, and those handlers run with it
    bound), or around any ASGI application (``RequestContextMiddleware(app)``).
    ``app.add_middleware(RequestContextMiddleware)`` works too, but puts it inside
    ``ServerErrorMiddleware``: the 500 that one sends lacks the id header, and an
    ``Exception``/500 handler runs without the id (the event is still written).

    Nested inside another ``RequestContextMiddleware`` (a mounted sub-application that has its
    own), it reuses the outer one's id and writes no event of its own: one id and one event a
    request, with the outer one's options.

    Per request:

    - ``request_id`` is the incoming header's value when it is a safe token (1 to 128
      characters of ``[A-Za-z0-9._-]``: UUIDs, nginx's ``$request_id``, ...) and passes
      ``id_validator``; otherwise a new id. A rejected value is never logged or echoed.
    - ``trace_id`` and ``span_id`` come from a valid W3C ``traceparent`` header; inside a
      recording OpenTelemetry span (OpenTelemetry's FastAPI instrumentation), every line and the
      event carry the span's instead.
    - They are bound to the context for the whole request (async endpoints, sync endpoints run
      in the threadpool and background tasks see them) and reset afterwards.
    - The id goes back in the response header (unless the application set that header itself).
    - One ``http_request`` event when the application returns: ``method``, ``route`` (the matched
      route's template; ``<unmatched>`` when none matched), ``path`` (no query string: it is
      never logged, nor are any headers), ``status_code``, ``duration_ms`` (until the last body
      chunk was sent), ``client_ip``, ``user`` (when known) and ``request_id``. Level info below
      400, warning for 4xx, error for 5xx and for any exception. An unhandled exception raised
      before the response was complete gives status 500 with the exception's fields, one raised
      after it (in a background task) keeps the status sent; either is re-raised. A client that
      disconnected before the response was complete gives status 499: one the application
      saw (``http.disconnect``, a cancelled request), or one found before the last body chunk
      was sent (uvicorn's request cycle says so; any other asyncio server is asked with a
      non-waiting ``receive()``). Under trio, only one the application saw.

    Websocket connections get their ids bound and pass through; lifespan passes through.

    uvicorn's access line would duplicate the event, so the middleware raises the level of the
    ``uvicorn.access`` logger to warning (see :func:`silence_uvicorn_access`), when it is
    created and again when the server starts; ``silence_uvicorn_access=False`` leaves it alone.

    Args:
        app: the ASGI application to wrap.
        header_name: the request and response header of the id.
        id_generator: makes a new id (default: a random UUID4 as 32 hex digits). Its ids must be
            safe tokens; one that is not is replaced by a default id.
        id_validator: an extra check of an incoming id, after the safe-token check (e.g. accept
            UUIDs only); False or an exception rejects the id.
        trust_incoming_id: False ignores incoming ids (a new id for every request).
        user_resolver: returns the ``user`` of a request from its scope, after the application
            ran (default: :func:`scope_user`); None or an exception leaves ``user`` out.
        skip_paths: paths (exact, without query string, without the ``root_path``) that get no
            event (ids are still bound).
        debug_paths: paths (without the ``root_path``) whose requests are logged at debug level
            whatever their status, so that a failing probe (503) counts in no error alert; an
            unhandled exception there is still an error (health checks;
            default: :data:`DEFAULT_DEBUG_PATHS`, the routes of ``alkana_logging.healthcheck``).
        trusted_proxies: addresses or networks of reverse proxies; when the peer is one of
            them, ``client_ip`` is the nearest untrusted address of ``X-Forwarded-For``.
        silence_uvicorn_access: whether to silence uvicorn's access logger.

    Raises:
        TypeError: an option has the wrong type.
        ValueError: an option has a value that is not accepted.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header_name: str = "X-Request-ID",
        id_generator: IdGenerator | None = None,
        id_validator: IdValidator | None = None,
        trust_incoming_id: bool = True,
        user_resolver: UserResolver | None = None,
        skip_paths: Iterable[str] = (),
        debug_paths: Iterable[str] | None = None,
        trusted_proxies: Iterable[str] = (),
        silence_uvicorn_access: bool = True,
    ) -> None:
        if not isinstance(header_name, str) or not _HEADER_NAME.fullmatch(header_name):
            raise ValueError(
                f"header_name: expected an HTTP header name (letters, digits, '-'), "
                f"got {header_name!r}"
            )
        for option, value in (
            ("id_generator", id_generator),
            ("id_validator", id_validator),
            ("user_resolver", user_resolver),
        ):
            if value is not None and not callable(value):
                raise TypeError(f"{option}: expected a callable or None, got {value!r}")
        for option, flag in (
            ("trust_incoming_id", trust_incoming_id),
            ("silence_uvicorn_access", silence_uvicorn_access),
        ):
            if not isinstance(flag, bool):
                raise TypeError(f"{option}: expected True or False, got {flag!r}")
        self.app = app
        self.header_name = header_name
        self._header_key = header_name.lower().encode("latin-1")
        self._wanted_headers = frozenset(
            (self._header_key, _TRACEPARENT_HEADER, _FORWARDED_FOR_HEADER)
        )
        self._id_generator = id_generator
        self._id_validator = id_validator
        self._trust_incoming_id = trust_incoming_id
        self._user_resolver: UserResolver = user_resolver or scope_user
        # scope_user() finds no user in a scope without "user": a custom resolver may.
        self._any_scope_user = self._user_resolver is not scope_user
        self._skip_paths = _paths("skip_paths", skip_paths)
        self._debug_paths = _paths(
            "debug_paths", DEFAULT_DEBUG_PATHS if debug_paths is None else debug_paths
        )
        self._trusted_proxies = _networks(trusted_proxies)
        self._silence = silence_uvicorn_access
        self._silence_pending = silence_uvicorn_access
        if silence_uvicorn_access:
            _silence_uvicorn_access()
        _drop_uvicorn_duplicates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: PLR0912, PLR0915
        # One frame for the whole request, few calls: this runs for every request.
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        if SCOPE_REQUEST_ID in scope:  # an outer middleware has the request: one id, one event
            await self.app(scope, receive, send)
            return
        if self._silence_pending:
            self._silence_pending = False
            _silence_uvicorn_access()
        start = _perf_counter()
        path: str = scope["path"]
        # type(), which no object can lie about (its __class__ it can): a server breaking the
        # spec gets its line all the same, with text where text is due.
        if type(path) is not str:
            path = _as_text(path)
        root_path: str = scope.get("root_path", "")
        if type(root_path) is not str:
            root_path = _root_path_text(root_path)
        raw_id = traceparent = forwarded = None
        header_key = self._header_key
        wanted = self._wanted_headers
        try:
            for name, value in scope["headers"]:
                if name in wanted:  # one set lookup a header, three comparisons for the few
                    if type(value) is not bytes:  # a server breaking the spec
                        value = _header_bytes(value)  # noqa: PLW2901
                    if name == header_key:
                        raw_id = value
                    elif name == _TRACEPARENT_HEADER:
                        traceparent = value
                    else:
                        forwarded = value
        except Exception as exc:  # noqa: BLE001 - headers that are not (name, value) pairs
            # The type alone: the exception's text is the server's, and may hold anything.
            _report(f"request headers could not be read: {_type_name(exc)}")
            raw_id = traceparent = forwarded = None
        if raw_id is None and self._id_generator is None:
            try:
                request_id = _ids.pop()
            except IndexError:
                request_id = new_request_id()
        else:
            request_id = self._request_id(raw_id)
        ids = {F.REQUEST_ID: request_id}
        trace = None
        if traceparent is not None:
            trace = parse_traceparent(traceparent)
            if trace is not None:
                ids[F.TRACE_ID], ids[F.SPAN_ID] = trace
        pipeline = _state._pipeline  # _state.current() without the call
        if pipeline is not None:
            # The server span of OpenTelemetry's middleware (outside this one) ends when the
            # last body chunk is sent, before the event is written: its ids are taken now,
            # while it records, and bound for the whole request.
            # pipeline.span_ids(), inline (None at once without opentelemetry-api).
            span_ids = None
            otel_context = pipeline._otel_context
            if otel_context is not None:
                try:
                    otel = otel_context()
                except Exception as err:  # noqa: BLE001 - a tracing failure must not fail it
                    pipeline._span_failed(err)
                    otel = None
                last, span_ids = pipeline._last_span
                if otel is not last:
                    span_ids = pipeline._span_ids(otel)
            if span_ids is not None:
                trace = span_ids
                ids[F.TRACE_ID], ids[F.SPAN_ID] = span_ids
        # bind_context(**ids) inline: a call and a copy of ids less.
        bound = current_context()
        bound = {**bound, **ids} if bound else ids
        token = _CONTEXT.set(bound)
        scope[SCOPE_REQUEST_ID] = request_id
        # Set here rather than in an __init__: a Python __init__ called from C costs more.
        exchange = _new_exchange(_Exchange)
        exchange.app_receive = receive
        exchange.app_send = send
        exchange.id_header = (header_key, request_id.encode())  # a safe token: ASCII
        exchange.status = 0
        exchange.end = 0.0
        exchange.disconnected = False

        error: BaseException | None = None
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                # The paths are the application's own: without the root_path a proxy or
                # uvicorn's --root-path put in front of them (as route templates are).
                own_path = _route_path(path, root_path) if root_path else path
                if not self._skip_paths or own_path not in self._skip_paths:
                    status = exchange.status
                    if type(status) is not int or not 0 <= status <= 999:  # _MAX_STATUS
                        status = _int_status(status)  # an application breaking the spec
                    end = exchange.end
                    if exchange.disconnected:
                        # The client left before the response was complete; what the app sent
                        # after that went nowhere, and an error was the departure's consequence.
                        status = STATUS_CLIENT_CLOSED
                        error = None
                    if end == 0.0:  # the response did not complete
                        end = _perf_counter()
                        if isinstance(error, asyncio.CancelledError):
                            status = STATUS_CLIENT_CLOSED
                            error = None
                        elif error is not None or status == 0:
                            # What ServerErrorMiddleware or the server sends in this case.
                            status = 500
                    if error is not None:
                        level = F.ERROR
                    elif self._debug_paths and own_path in self._debug_paths:
                        # Whatever the status: a failing probe is the health endpoint reporting
                        # (in its answer), not an error of the requests the alerts watch.
                        level = F.DEBUG
                    elif status >= 500:
                        level = F.ERROR
                    elif status >= 400:
                        level = F.WARNING
                    else:
                        level = F.INFO
                    pipeline = _state._pipeline
                    if pipeline is None or _LEVEL_NUMBERS[level] >= pipeline.level:
                        try:
                            method: str = scope["method"]
                            if type(method) is not str:  # a server breaking the spec
                                method = _as_text(method)
                            # route_template() for a route seen matching a whole path, when
                            # this path has no prefix before it either (see _WHOLE).
                            matched: Any = scope.get("route")
                            seen = _WHOLE.get(id(matched))
                            try:
                                if (
                                    seen is not None
                                    and seen[0]() is matched
                                    and matched.path is seen[1]  # type: ignore[union-attr]
                                    and scope["path"] is path  # as route_template() reads it
                                    and own_path.count("/") == seen[2]
                                ):
                                    template = seen[1]
                                elif scope["path"] is path:
                                    template = route_template(scope, root_path, status)
                                elif _is_text(scope["path"]):  # matched as its own text
                                    template = route_template(
                                        {**scope, "path": path}, root_path, status
                                    )
                                else:  # a path that was not text: no route to match it with
                                    template = F.ROUTE_UNMATCHED
                            except Exception as exc:  # noqa: BLE001 - a route object that fails
                                # The request is logged all the same, with no route to tell.
                                _report(f"http_request route could not be read: {exc!r}")
                                template = F.ROUTE_UNMATCHED
                            # Written from the context when it still holds them (the endpoint
                            # may have cleared it, or bound more); from the fields, first, when
                            # it is the one bound here: then, with every key of the event plain,
                            # the event is filled straight into a copy of the line's record.
                            context = current_context()
                            filled = None
                            if context is ids and pipeline is not None:
                                base, with_id, with_ids = _filled
                                renderer = pipeline.renderer
                                if base is not renderer._template:
                                    base, with_id, with_ids = _filled_templates(renderer)
                                if with_id is not None:
                                    if trace is None:
                                        filled = with_id.copy()
                                    else:
                                        filled = with_ids.copy()
                                        filled[F.TRACE_ID], filled[F.SPAN_ID] = trace
                                    filled[F.REQUEST_ID] = request_id
                            if filled is not None:
                                fields = filled
                            elif context is not ids:
                                fields = _HTTP_REQUEST_FIELDS.copy()
                            elif trace is None:
                                fields = _ID_FIRST_FIELDS.copy()
                                fields[F.REQUEST_ID] = request_id
                            else:
                                fields = _IDS_FIRST_FIELDS.copy()
                                fields[F.REQUEST_ID] = request_id
                                fields[F.TRACE_ID], fields[F.SPAN_ID] = trace
                            plain = True  # str keys and scalar values only
                            fields[F.METHOD] = method
                            fields[F.ROUTE] = template
                            fields[F.PATH] = path
                            fields[F.STATUS_CODE] = status
                            # Whole microseconds (the clock's noise is larger than that); a
                            # duration is never negative: // 1.0 is int() without the call.
                            fields[F.DURATION_MS] = (end - start) * 1_000_000.0 // 1.0 / 1000.0
                            client = scope.get("client")
                            if not (
                                type(client) is tuple and client and type(peer := client[0]) is str
                            ):
                                peer = _peer(client)  # a server breaking the spec
                            fields[F.CLIENT_IP] = (
                                self._client_ip(peer, forwarded) if self._trusted_proxies else peer
                            )
                            if context is not bound:
                                if context.get(F.REQUEST_ID) is not request_id:
                                    fields[F.REQUEST_ID] = request_id
                                if trace is not None and context.get(F.TRACE_ID) is not trace[0]:
                                    fields[F.TRACE_ID], fields[F.SPAN_ID] = trace
                            if self._any_scope_user or "user" in scope:
                                user = self._user(scope)  # the application's code: may fork
                                if filled is not None and base is not renderer._template:
                                    filled[F.PID] = renderer.pid  # the child's, after a fork
                                if user is not None:
                                    fields[F.USER] = user
                                    # A resolver's value of another type: the general line.
                                    plain = type(user) is str
                            message = f"{method} {path}"  # the status is a field: cheaper
                        except Exception as exc:  # noqa: BLE001 - the request must not fail
                            _report(f"http_request event failed: {exc!r}")
                        else:
                            if pipeline is not None:
                                ns = _time_ns()
                                # has_foreign_handlers() inline.
                                foreign = (
                                    len(_root.handlers) > 1
                                    or _Logger.callHandlers is not _STDLIB_CALL_HANDLERS
                                )
                                if filled is not None and (foreign or not plain):
                                    # The fields alone (the rendering fills in the record).
                                    fields = renderer.filled_fields(filled)
                                    if not plain:
                                        filled = None
                                if filled is not None:
                                    _write_event(pipeline, ns, level, message, filled, error, True)
                                elif plain:
                                    _write_event(pipeline, ns, level, message, fields, error, False)
                                else:
                                    pipeline.emit(ns, level, LOGGER_NAME, message, fields, error)
                                if foreign:
                                    # Error trackers group by the message: the route's, not
                                    # the path's (one issue per route, not one per item id).
                                    pipeline.forward(
                                        ns,
                                        level,
                                        LOGGER_NAME,
                                        f"{method} {template}",
                                        fields,
                                        error,
                                    )
                            else:
                                _state.emit(level, LOGGER_NAME, message, fields, exc=error)
                            if error is not None:
                                _LOGGED_ERROR.set(error)
            finally:
                error = None  # no reference cycle through the traceback
                _CONTEXT.reset(token)  # reset_context() without the call

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "websocket":
            if SCOPE_REQUEST_ID in scope:
                await self.app(scope, receive, send)
                return
            request_id, trace, _ = self._incoming(scope["headers"])
            scope[SCOPE_REQUEST_ID] = request_id
            ids = {F.REQUEST_ID: request_id}
            if trace is not None:
                ids[F.TRACE_ID], ids[F.SPAN_ID] = trace
            token = bind_context(**ids)
            try:
                await self.app(scope, receive, self._websocket_send(scope, send, request_id))
            finally:
                reset_context(token)
            return
        if scope_type == "lifespan":
            # uvicorn (a --log-config) or gunicorn's UvicornWorker may have configured logging
            # after setup() and __init__ (in each worker, after a --preload master's setup()).
            if _state.is_configured():
                stdlib.adopt_framework_loggers()
            if self._silence:
                self._silence_pending = False
                _silence_uvicorn_access()
            _drop_uvicorn_duplicates()
        await self.app(scope, receive, send)

    def _websocket_send(self, scope: Scope, send: Send, request_id: str) -> Send:
        """``send`` with the id added to the handshake's response (``websocket.accept`` has
        headers from ASGI spec 2.1 on; an older server gets ``send`` itself)."""
        spec = str(scope.get("asgi", {}).get("spec_version", "2.0"))
        try:
            supported = tuple(int(part) for part in spec.split(".")[:2]) >= (2, 1)
        except ValueError:
            supported = False
        if not supported:
            return send
        id_header = (self._header_key, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "websocket.accept":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == id_header[0] for name, _ in headers):
                    message = {**message, "headers": [*headers, id_header]}
            await send(message)

        return send_with_id

    def _incoming(
        self, headers: Iterable[tuple[bytes, bytes]]
    ) -> tuple[str, tuple[str, str] | None, bytes | None]:
        """The request id, the trace ids and ``X-Forwarded-For`` of a request's headers."""
        raw_id = traceparent = forwarded = None
        header_key = self._header_key
        for name, value in headers:
            if name == header_key:
                raw_id = value
            elif name == _TRACEPARENT_HEADER:
                traceparent = value
            elif name == _FORWARDED_FOR_HEADER:
                forwarded = value
        trace = parse_traceparent(traceparent) if traceparent is not None else None
        return self._request_id(raw_id), trace, forwarded

    def _user(self, scope: Scope) -> str | None:
        try:
            return self._user_resolver(scope)
        except Exception as exc:  # noqa: BLE001 - a user resolver must not lose the event
            _report(f"user_resolver failed: {exc!r}")
            return None

    def _request_id(self, raw: bytes | None) -> str:
        if (
            raw is not None
            and self._trust_incoming_id
            and len(raw) <= MAX_REQUEST_ID_LENGTH
            and _SAFE_ID.fullmatch(raw) is not None
        ):
            request_id = raw.decode("ascii")
            validator = self._id_validator
            if validator is None:
                return request_id
            try:
                if validator(request_id):
                    return request_id
            except Exception as exc:  # noqa: BLE001 - a failing validator rejects the id
                _report(f"id_validator failed: {exc!r}")
        generator = self._id_generator
        if generator is None:
            return new_request_id()
        try:
            request_id = generator()
        except Exception as exc:  # noqa: BLE001
            _report(f"id_generator failed: {exc!r}")
            return new_request_id()
        if isinstance(request_id, str) and _SAFE_ID_TEXT.fullmatch(request_id):
            return request_id
        _report(f"id_generator returned {request_id!r}, not a safe token; a new id was used")
        return new_request_id()

    def _client_ip(self, peer: str | None, forwarded: bytes | None) -> str | None:
        if peer is None:
            return None
        networks = self._trusted_proxies
        if forwarded is None:
            return peer
        try:
            address: Any = ipaddress.ip_address(peer)
        except ValueError:
            return peer
        if not any(address in network for network in networks):
            return peer
        client_ip = peer
        # From the right: each trusted proxy appended the address it received the request from.
        for hop in reversed(forwarded.decode("latin-1").split(",")):
            try:
                address = ipaddress.ip_address(hop.strip())
            except ValueError:
                break  # not an address: never log what a client can write freely
            client_ip = str(address)
            if not any(address in network for network in networks):
                break
        return client_ip


# The method's parameter of the same name hides the function inside __init__.
_silence_uvicorn_access = silence_uvicorn_access

_INSTRUMENTED: Final = "_alkana_logging_instrumented"


class _StackTop(ServerErrorMiddleware):
    """The top of an instrumented stack: a pass-through that keeps the stack's shape (a
    ``ServerErrorMiddleware`` on top) for instrumentations applied after ours, such as
    OpenTelemetry's ``FastAPIInstrumentor.instrument_app``, which unwrap it. Errors are handled
    by Starlette's own ``ServerErrorMiddleware`` inside ours."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def instrument(app: Any, **options: Any) -> Any:
    """Install :class:`RequestContextMiddleware` on a Starlette or FastAPI application, outside
    Starlette's ``ServerErrorMiddleware``, and return the same application.

    ``add_middleware`` can only put a middleware inside ``ServerErrorMiddleware``, which sends
    the 500 of an unhandled exception and runs the app's ``Exception``/500 handler; wrapping
    the application hands back an object without ``include_router``, ``state`` or
    ``exception_handler``. This uses Starlette's own seam instead, as OpenTelemetry's FastAPI
    instrumentation does: it wraps ``app.build_middleware_stack``, so the id is on every
    response (unhandled 500s, the debug page and the app's exception handlers included) and is
    bound while those handlers run. The middleware goes right outside Starlette's
    ``ServerErrorMiddleware``, inside OpenTelemetry's middleware when the app was instrumented
    by it first (the event is then written inside the server span, and has its ids), and works
    with OpenTelemetry instrumenting afterwards too. Middleware added later with
    ``add_middleware`` and routers included later are all inside it.

    Args:
        app: a ``starlette.applications.Starlette`` (``fastapi.FastAPI`` is one).
        **options: the keyword options of :class:`RequestContextMiddleware`.

    Returns:
        ``app`` itself. Instrumenting it again changes nothing; after OpenTelemetry's
        ``uninstrument_app(app)`` the middleware stays.

    Raises:
        TypeError: ``app`` is not a Starlette application, or an option has the wrong type.
        ValueError: an option has a value that is not accepted.
        RuntimeError: the application has already started (its middleware stack is built).
    """
    build = getattr(app, "build_middleware_stack", None)
    if not callable(build) or not hasattr(app, "middleware_stack"):
        raise TypeError(
            f"instrument(): expected a Starlette or FastAPI application, got {app!r}; "
            "wrap any other ASGI application: RequestContextMiddleware(app)"
        )
    ours = getattr(app, _INSTRUMENTED, ())
    otel_original = getattr(app, _OTEL_ORIGINAL, None)
    if any(build is wrapper or otel_original is wrapper for wrapper in ours):
        return app  # in place (inside OpenTelemetry's wrapper, when it came after ours)
    if app.middleware_stack is not None:
        raise RuntimeError(
            "instrument(): the application has already started; call it where the app is made"
        )
    RequestContextMiddleware(app, **options)  # the options are checked now, not at startup
    wrappers = [_with_middleware(build, options)]
    app.build_middleware_stack = wrappers[0]
    if callable(otel_original):
        # OpenTelemetry's FastAPIInstrumentor came first: its uninstrument_app() puts this
        # back, which then keeps the middleware.
        wrappers.append(_with_middleware(otel_original, options))
        setattr(app, _OTEL_ORIGINAL, wrappers[1])
    setattr(app, _INSTRUMENTED, (*ours, *wrappers))
    return app


#: Where OpenTelemetry's ``FastAPIInstrumentor.instrument_app`` keeps the method it replaced.
_OTEL_ORIGINAL: Final = "_original_build_middleware_stack"


def _with_middleware(
    build: Callable[[], ASGIApp], options: dict[str, Any]
) -> Callable[[], ASGIApp]:
    """``build_middleware_stack`` with the middleware right outside ``ServerErrorMiddleware``."""

    def build_middleware_stack() -> ASGIApp:
        stack: ASGIApp = build()
        middleware = RequestContextMiddleware
        parent, errors = _server_error_middleware(stack)
        if errors is None:  # not Starlette's usual stack: outermost, as a wrapper would be
            return middleware(stack, **options)
        if parent is None:
            return _StackTop(middleware(errors, **options), debug=errors.debug)
        parent.app = middleware(errors, **options)
        return stack

    return build_middleware_stack


def _server_error_middleware(stack: Any) -> tuple[Any, Any]:
    """Starlette's own ``ServerErrorMiddleware`` in a built stack (the innermost one: an
    instrumentation may have put another above it) and the layer above it (None at the top)."""
    parent = found = found_parent = None
    layer = stack
    for _ in range(64):
        if isinstance(layer, ExceptionMiddleware):
            break
        if isinstance(layer, ServerErrorMiddleware):
            found, found_parent = layer, parent
        parent, layer = layer, getattr(layer, "app", None)
        if layer is None:
            break
    return found_parent, found


def route_template(scope: Scope, root_path: str, status: int = 200) -> str:
    """The template of the route that handled a request (``/items/{item_id}``), after the app ran.

    Starlette's router leaves the matched route in ``scope["route"]``. Behind a ``Mount`` or a
    FastAPI router included with a prefix (FastAPI 0.141+ leaves the router's own route, whose
    template is relative), the prefix is found by matching the route against the tails of the
    path, the empty tail included (a route ``""`` under a prefix), and path parameters in the
    prefix are put back as ``{name}`` (from the routes matched again when the values cannot
    tell: parameters in the prefix, a route parameter of a mount's name); a route with a
    parameter that can hold a "/" (``{p:path}``), which matches the whole path too, gets its
    mount's template from the routes matched again. Starlette before 0.47 leaves no route:
    then the routes are matched again from ``scope["router"]``. A page of FastAPI's
    ``app.frontend(path)`` gets ``path``; an application mounted without routes of its own
    (static files, a plain ASGI app) gets its mount's template, found from how the mount
    extended ``root_path``.

    Args:
        scope: the request's scope, as the application left it.
        root_path: the ``root_path`` of the scope when the request came in.
        status: the response status (a 404 without a route is not matched again).
    """
    route = scope.get("route")
    route_path = _route_path(scope["path"], root_path) if root_path else scope["path"]
    if route is None:
        return _template_without_route(scope, root_path, route_path, status)
    try:
        template: str = route.path
        if template == route_path or route.path_regex.match(route_path):
            if _learn_whole(route, template) or isinstance(route, Mount):
                return template or "/"
            # A parameter that can hold a "/" ({p:path}) matches a prefix before the route too:
            # under a Mount (not the mount itself), the routes are matched again.
            return _mounted_template(scope, root_path, route_path, route, template) or "/"
    except AttributeError:  # not a Starlette route: its path, if it has one, is all we know
        path = getattr(route, "path", None)
        return path if isinstance(path, str) and path else F.ROUTE_UNMATCHED
    # A route relative to a Mount or an included router: the routes are matched again from the
    # outermost router (Starlette sets scope["router"] once), which gives each mount's own path
    # format, parameters inside a segment and repeated values included.
    # Only when a prefix has parameters (path_params beyond the route's own): a literal prefix
    # is the path's head, found below without matching every route.
    # A walk that stops at a mount whose routes it cannot read (an app wrapped in a middleware)
    # gives that mount's template: put before the route's when it matches the whole prefix,
    # else kept as it is (short, never a value).
    router = scope.get("router")
    own = getattr(route, "param_convertors", {})
    stopped = None
    if router is not None and any(name not in own for name in scope.get("path_params", ())):
        stopped = _rematched(scope, root_path)
        if stopped is not None and _template_matches(stopped, route_path):
            return stopped
    return _tail_template(scope, root_path, route_path, route, template, stopped)


def _tail_template(
    scope: Scope, root_path: str, route_path: str, route: Any, template: str, stopped: str | None
) -> str:
    """route_template() for a route that matched a tail of the path: the prefix before the
    longest tail it matches, with its parameters' names (or the walk's template, ``stopped``)."""
    router = scope.get("router")
    own = getattr(route, "param_convertors", {})
    regex = route.path_regex
    params = scope.get("path_params", {})
    start = route_path.find("/", 1)
    while True:
        if start < 0:  # last, the empty tail: a route "" under a prefix that is the whole path
            start = len(route_path)
        if regex.match(route_path[start:]):
            head = route_path[:start]
            if (
                stopped is None
                and own
                and router is not None
                and _under_a_parameterised_mount(router, route)
            ):
                # A mount's parameter of the same name as the route's (``/orgs/{org}`` around
                # ``/{org}/x``): path_params kept the inner value only, so the prefix cannot be
                # told from the values. The routes know its name.
                stopped = _rematched(scope, root_path)
                if stopped is not None and _template_matches(stopped, route_path):
                    return stopped
            if stopped is not None:
                return stopped + template if _template_matches(stopped, head) else stopped
            return _prefix_template(head, params, own) + template or "/"
        if start == len(route_path):
            return stopped or template or "/"
        start = route_path.find("/", start + 1)


def _template_matches(template: str, text: str) -> bool:
    """Whether ``text`` is a path of ``template`` (as Starlette compiles it)."""
    try:
        return compile_path(template)[0].match(text) is not None
    except Exception:  # noqa: BLE001 - a template Starlette would not compile (a name twice)
        return False


def _mounted_template(
    scope: Scope, root_path: str, route_path: str, route: Any, template: str
) -> str:
    """The template of a catch-all ``route`` that also matches the whole path: when a Mount put
    it under a prefix (extended ``root_path``, the route matching the rest of the path), the
    routes matched again from the outermost router, which gives the mount's own path format
    (``/t/{tenant}``, ``{n:int}``); else, or when they find nothing, the route's own. A walk
    that stops at a mount whose routes it cannot read (an app wrapped in a middleware) gives
    that mount's template: it is put before the route's when it matches the whole prefix."""
    prefix = _mount_added(scope, root_path)
    if not (
        prefix
        and route_path.startswith(prefix)
        and route.path_regex.match(route_path[len(prefix) :])
    ):
        return template
    found = _rematched(scope, root_path)
    if found is None:
        return template
    # The walk reached the route (a mount and the route may share a parameter's name, which
    # compile_path() refuses) or it stopped at a mount.
    if found.endswith(template) or _template_matches(found, route_path):
        return found
    return found + template if _template_matches(found, prefix) else template


#: id(route) -> (a weak reference to the route, its path, how many "/" the path has), for routes
#: seen matching a whole path whose parameters never hold a "/" (Starlette's str, int, float and
#: uuid convertors). Such a route matches a path with exactly as many "/" as its template: a
#: request whose path (after the server's root_path) has that many has no prefix before the
#: route (a Mount's or an included router's adds at least one "/"), so its template is the
#: route's own path, as route_template() finds, whatever router or application it came
#: through; the middleware then takes it after one lookup and a count. The references are weak
#: (a dropped application's routes are not kept), the route is checked by identity (a reused
#: id is a miss) and its path too (a path changed since is a miss).
_WHOLE: dict[int, tuple[weakref.ref[Any], str, int]] = {}
_WHOLE_LIMIT: Final = 4096
#: Starlette's convertors whose values never hold a "/": its own classes with their own regex (a
#: convertor registered in their place under the same name, whose regex may allow one, is not).
_SLASHLESS: Final = frozenset({StringConvertor, IntegerConvertor, FloatConvertor, UUIDConvertor})


def _learn_whole(route: Any, template: str) -> bool:
    """Put ``route`` in :data:`_WHOLE` when none of its parameters can hold a "/" (its
    template is then the whole path's); whether none can."""
    try:
        if not all(
            type(convertor) in _SLASHLESS and convertor.regex == type(convertor).regex
            for convertor in route.param_convertors.values()
        ):
            return False
    except (AttributeError, TypeError):  # not a Starlette route
        return False
    if not template:
        return True
    try:
        reference = weakref.ref(route)
    except TypeError:  # no weak reference to it
        return True
    if len(_WHOLE) >= _WHOLE_LIMIT:
        _WHOLE.clear()
    _WHOLE[id(route)] = (reference, template, template.count("/"))
    return True


# id(router) -> (router, ids of the routes under a mount with path parameters), for the routers
# seen last: an application has one, a test suite a few.
_PARAMETERISED: dict[int, tuple[Any, frozenset[int]]] = {}
_PARAMETERISED_LIMIT: Final = 8
#: In those ids: a mount with path parameters whose routes cannot be read (no id is negative).
_UNSEEN: Final = -1


def _under_a_parameterised_mount(router: Any, route: Any) -> bool:
    entry = _PARAMETERISED.get(id(router))
    if entry is None or entry[0] is not router:
        ids: set[int] = set()
        _collect_parameterised(getattr(router, "routes", ()), False, ids, 0)
        if len(_PARAMETERISED) >= _PARAMETERISED_LIMIT:
            _PARAMETERISED.clear()
        entry = _PARAMETERISED[id(router)] = (router, frozenset(ids))
    return id(route) in entry[1] or _UNSEEN in entry[1]


def _collect_parameterised(routes: Iterable[Any], under: bool, ids: set[int], depth: int) -> None:
    if depth > 16:  # mounts inside mounts that deep are a cycle
        return
    for route in routes:
        try:
            inner = getattr(route, "routes", None)
        except Exception:  # noqa: BLE001, S112 - a mount whose app fails on any attribute
            continue
        if inner is None:
            if under:
                ids.add(id(route))
            continue
        with contextlib.suppress(Exception):  # a route whose routes cannot be read
            params = bool(getattr(route, "param_convertors", None))
            if params and not inner:  # a wrapped app's routes: any of them may be under it
                ids.add(_UNSEEN)
            _collect_parameterised(inner, under or params, ids, depth + 1)


def _template_without_route(scope: Scope, root_path: str, route_path: str, status: int) -> str:
    frontend = scope.get("fastapi")
    if isinstance(frontend, dict):
        page = frontend.get("frontend_path")  # FastAPI's app.frontend(): the path under it
        if isinstance(page, str) and route_path.endswith(page):
            return route_path[: len(route_path) - len(page)].rstrip("/") or "/"
    router = scope.get("router")
    if status != 404:
        found = _rematched(scope, root_path)
        if found is not None:
            return found
    inner_app = scope.get("app")
    inner_router = getattr(inner_app, "router", None)
    if (
        status == 404
        and router is not None
        and inner_router is not None
        and inner_router is not router
        and getattr(inner_router, "routes", None)
    ):
        return F.ROUTE_UNMATCHED  # a mounted application with routes matched none of them
    added = _mount_added(scope, root_path)
    if added:
        # A mount set root_path to its own prefix; its parameters' values are in path_params:
        # with some, the routes matched again give the mount's own format (`/org-{org}`).
        params = scope.get("path_params", {})
        found = _rematched(scope, root_path) if params else None
        return found if found is not None else _prefix_template(added, params, {})
    return F.ROUTE_UNMATCHED


def _rematched(scope: Scope, root_path: str) -> str | None:
    """The template found by matching the request again from the outermost router (Starlette
    sets ``scope["router"]`` once), ``None`` when there is none or nothing matches."""
    router = scope.get("router")
    if router is None:
        return None
    return _match_routes(getattr(router, "routes", ()), _view(scope, root_path))


def _mount_added(scope: Scope, root_path: str) -> str:
    """What a Mount added to ``root_path`` (the request's when it came in), or ``""``."""
    mounted = scope.get("root_path", "")
    if isinstance(mounted, str) and len(mounted) > len(root_path) and mounted.startswith(root_path):
        return mounted[len(root_path) :]
    return ""


def _view(scope: Scope, root_path: str) -> dict[str, Any]:
    """The request as the routes matched it when it came in."""
    return {
        "type": scope["type"],
        "path": scope["path"],
        "root_path": root_path,
        "method": scope.get("method", "GET"),
        "headers": scope.get("headers", []),
    }


def _route_path(path: str, root_path: str) -> str:
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if rest == "" or rest[0] == "/":
            return rest
    return path


def _prefix_template(prefix: str, path_params: Any, own: Any) -> str:
    """A mount's or router's prefix with the values of its path parameters replaced by names."""
    names = {str(v): k for k, v in path_params.items() if k not in own}
    if not names:
        return prefix
    return "/".join(
        "{" + names[part] + "}" if part in names else part for part in prefix.split("/")
    )


def _match_routes(routes: Iterable[Any], view: dict[str, Any], depth: int = 0) -> str | None:
    if depth > 16:  # mounts inside mounts that deep are a cycle
        return None
    partial: tuple[Any, dict[str, Any]] | None = None
    for route in routes:
        try:
            match, child = route.matches(view)
        except Exception:  # noqa: BLE001, S112 - a route that cannot match this view does not
            continue
        if match is Match.FULL:
            return _template_of(route, {**view, **child}, depth)
        if match is Match.PARTIAL and partial is None:
            partial = (route, {**view, **child})
    if partial is not None:
        return _template_of(*partial, depth)
    return None


def _template_of(route: Any, view: dict[str, Any], depth: int) -> str | None:
    try:
        prefix = getattr(route, "path", None)
        # A Mount reads its app's routes: an app may raise anything on an attribute it lacks.
        inner = getattr(route, "routes", None)
    except Exception:  # noqa: BLE001 - a route whose attributes fail: none of its templates
        return None
    if not isinstance(prefix, str):  # a Host, or a route of unknown kind (FastAPI's own)
        if inner is None:
            return None
        prefix = ""
    if inner is None:  # a plain route
        return prefix or "/"
    if inner:  # a Mount or Host of a router: the full template is the mount's plus the route's
        found = _match_routes(inner, view, depth + 1)
        if found is not None:
            return prefix + found
    return prefix or None


#: Logged at debug level unless ``debug_paths`` says otherwise: the health routes.
DEFAULT_DEBUG_PATHS: Final = ("/health", "/health/detailed")


def _paths(option: str, paths: Iterable[str]) -> frozenset[str]:
    if isinstance(paths, (str, bytes)):
        raise TypeError(f"{option}: expected a collection of paths, got the single value {paths!r}")
    result = frozenset(paths)
    for path in result:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"{option}: expected paths starting with '/', got {path!r}")
    return result


def _networks(proxies: Iterable[str]) -> tuple[Any, ...]:
    if isinstance(proxies, (str, bytes)):
        raise TypeError(
            f"trusted_proxies: expected a collection of addresses or networks, "
            f"got the single value {proxies!r}"
        )
    networks = []
    for proxy in proxies:
        try:
            networks.append(ipaddress.ip_network(proxy, strict=False))
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"trusted_proxies: expected IP addresses or networks (e.g. '10.0.0.0/8'), "
                f"got {proxy!r}"
            ) from err
    return tuple(networks)


#: The largest status an HTTP response can carry (three digits); anything above is not one.
_MAX_STATUS: Final = 999


_TYPE_NAME: Final = type.__dict__["__name__"]


def _type_name(value: Any) -> str:
    """The name of ``value``'s type as the type holds it: a metaclass's ``__name__`` is not
    asked, and a name set to a str subclass is read as plain text."""
    return str.__str__(_TYPE_NAME.__get__(type(value)))


def _is_text(value: Any) -> bool:
    return issubclass(type(value), str)


def _as_text(value: Any) -> str:
    """A scope value the ASGI spec says is text, as text: a str subclass's own text, bytes
    decoded; of anything else only its type's name (its repr may hold a secret). By ``type()``
    and the base types' own methods: a subclass's overrides (``__str__``, ``__bytes__``) are
    never called."""
    kind = type(value)
    if issubclass(kind, str):
        return str.__str__(value)
    if issubclass(kind, bytes):
        return bytes.decode(value, "utf-8", "replace")
    if issubclass(kind, bytearray):
        return bytearray.decode(value, "utf-8", "replace")
    return "<" + _type_name(value) + ">"


def _root_path_text(root_path: Any) -> str:
    """A ``root_path`` that is not a str: its text when it is text or bytes, else none."""
    if issubclass(type(root_path), (str, bytes, bytearray)):
        return _as_text(root_path)
    return ""


def _header_bytes(value: Any) -> bytes:
    """A header value that is not bytes, as bytes: text as Latin-1 (what HTTP carries), a
    buffer copied; anything else as no value at all (an empty one). The base types' own
    methods, as in :func:`_as_text`."""
    kind = type(value)
    if issubclass(kind, str):
        return str.encode(value, "latin-1", "replace")
    if issubclass(kind, bytes):
        return bytes.decode(value, "latin-1").encode("latin-1")
    if issubclass(kind, bytearray):
        return bytearray.decode(value, "latin-1").encode("latin-1")
    if kind is memoryview:
        try:
            data: bytes = value.tobytes()
        except (ValueError, TypeError):  # released, or not a byte format
            return b""
        return data
    return b""


def _peer(client: Any) -> str | None:
    """The host of a scope's ``client`` that is not a ``(host, port)`` tuple of text: a list
    or a one-item tuple is a pair too; anything that is not a sequence, or whose host is None,
    has no host. The base types' own methods, as in :func:`_as_text`."""
    kind = type(client)
    base = tuple if issubclass(kind, tuple) else list if issubclass(kind, list) else None
    if base is None or base.__len__(client) == 0:
        return None
    host = base.__getitem__(client, 0)
    if host is None:
        return None
    return host if type(host) is str else _as_text(host)


def _int_status(status: Any) -> int:
    """The status of an application's ``http.response.start`` that is not an int from 0 to
    999: an int subclass (``HTTPStatus``) or a whole float (``200.0``, which servers accept) as
    its value when that is one; anything else (a bool, text, an int too large to be a status)
    as 500, what no server can send for it."""
    kind = type(status)
    value: Any = None
    if issubclass(kind, int) and not issubclass(kind, bool):
        value = int.__int__(status)  # the value itself: a subclass's __int__ is not called
    elif issubclass(kind, float) and float.is_integer(status):
        value = int(float.__float__(status))
    if value is not None and 0 <= value <= _MAX_STATUS:
        return int(value)
    return 500


def _report(message: str) -> None:
    """Count and report a failure of the middleware's own work (it never fails the request)."""
    pipeline = _state.current()
    if pipeline is not None:
        pipeline.health.internal_error(message)
    else:
        PipelineHealth.report(message)
