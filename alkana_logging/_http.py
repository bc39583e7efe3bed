"""Loki's HTTP, for the push client (:mod:`alkana_logging.loki`) and the query client alike.

:class:`LokiEndpoint` is one Loki: its base URL and the push URL from it, the credentials taken
out of the URL (which is printed) or given apart, the tenant header, the session that sends
them, and what error texts must not show.

Every request is bounded: a total deadline per request and a capped response body.

``requests`` (urllib3 under it) has per-operation timeouts only: a server that trickles one byte
every few seconds keeps a request alive for ever, and ``response.text`` reads a body of any size.
Here a request runs under a watchdog that shuts the request's socket down when its total
deadline (connect, send and the whole answer) has passed, which makes the blocked call return at
once; the body is streamed and at most ``max_body`` bytes of it are kept.

The sockets are found through the connection classes of a mounted adapter (they note the socket
of the request in progress on this thread), so proxies, TLS and keep-alive stay requests'.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.adapters import HTTPAdapter

# Loki's URLs are the push module's (which must import without requests): this one needs it.
from alkana_logging import _lifecycle
from alkana_logging.redaction import REDACTED, mask_url, scrub_text, url_secret
from alkana_logging.settings import LOKI_PUSH_PATH as PUSH_PATH
from alkana_logging.settings import loki_base_url as base_url

#: Read this much at a time from a streamed body.
_CHUNK: Final = 64 * 1024
#: The header that names the tenant of a multi-tenant Loki.
TENANT_HEADER: Final = "X-Scope-OrgID"


class DeadlineExceeded(requests.Timeout):
    """The whole request (connect, send, answer) did not finish within its deadline."""


@dataclasses.dataclass(frozen=True)
class Answer:
    """An HTTP answer with at most ``max_body`` bytes of its body.

    Attributes:
        status: the status code.
        reason: the reason phrase.
        headers: the response headers (case-insensitive).
        body: the body, or its first ``max_body`` bytes.
        truncated: the body was longer than ``max_body`` (the rest was not read).
    """

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes | bytearray  # a bytearray as read (one buffer, never copied)
    truncated: bool

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _Guard:
    """The sockets of one request, shut down when its deadline passes."""

    __slots__ = ("_lock", "expired", "sockets")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.expired = False

    def attach(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self.sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self.sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    # The plain socket's shutdown() even for a TLS socket: SSLSocket.shutdown() would also drop
    # the TLS object under the thread that is blocked reading from it.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_local = threading.local()


def _attach(sock: Any) -> None:
    guard = getattr(_local, "guard", None)
    if guard is not None and isinstance(sock, socket.socket):
        guard.attach(sock)


class _Connection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attach(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self.sock)  # a kept-alive connection: its socket is this request's
        super().request(*args, **kwargs)


class _TLSConnection(_Connection, urllib3.connection.HTTPSConnection):
    """:class:`_Connection`'s two hooks over urllib3's TLS connection (a subclass of the plain
    one: the hooks run before its TLS wrapping)."""


class _Pool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


_POOLS: Final = {"http": _Pool, "https": _TLSPool}


class BoundedAdapter(HTTPAdapter):
    """requests' adapter with connection classes that a deadline can interrupt."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)  # a copy: never urllib3's own

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def bounded_session() -> requests.Session:
    """A ``requests.Session`` whose requests :func:`request` can bound."""
    session = requests.Session()
    # Answers are taken as sent, never decompressed: a small compressed body could unpack to
    # any size before a cap on what is kept applied.
    session.headers["Accept-Encoding"] = "identity"
    adapter = BoundedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


#: Seconds the deadline watchdog waits with nothing to watch before it ends: more than the
#: push's default ``batch_wait`` (1 s), so that a steady flow of pushes keeps one thread.
_WATCHDOG_IDLE: Final = 2.0


class _Watchdog:
    """One thread per process that expires the guards whose deadline has passed.

    A thread a request (``threading.Timer``) cost a thread start per push: CPU, and two waits
    for the GIL, each up to the switch interval (5 ms) while the application's thread logs
    flat out. This thread sleeps until the earliest deadline and is woken only when a new
    deadline comes before it, which requests of one deadline that end in time never do.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._guards: dict[_Guard, float] = {}  # guard -> its deadline (monotonic)
        # When the thread looks next: inf while it waits with nothing to watch (a new guard
        # wakes it), -inf while it is awake (it looks at every guard before it waits again).
        self._wake_at = -math.inf
        self._thread: threading.Thread | None = None

    def watch(self, guard: _Guard, seconds: float) -> bool:
        """Expire ``guard`` in ``seconds`` unless :meth:`forget` comes first.

        Returns:
            False when no thread can be had (the interpreter is shutting down).
        """
        deadline = time.monotonic() + seconds
        with self._cond:
            if self._thread is None:
                thread = threading.Thread(
                    target=self._run, name="alkana-logging-http-deadline", daemon=True
                )
                try:
                    # The application's signals stay the application's (see _lifecycle).
                    _lifecycle.start_thread(thread)
                except RuntimeError:
                    return False
                self._thread = thread
            self._guards[guard] = deadline
            if deadline < self._wake_at:
                self._cond.notify()
        return True

    def forget(self, guard: _Guard) -> None:
        with self._cond:
            self._guards.pop(guard, None)

    def _run(self) -> None:
        cond = self._cond
        with cond:
            while True:
                now = time.monotonic()
                expired = [guard for guard, at in self._guards.items() if at <= now]
                if expired:
                    for guard in expired:
                        del self._guards[guard]
                    cond.release()  # shutting sockets down takes no lock of ours
                    try:
                        for guard in expired:
                            guard.expire()
                    finally:
                        cond.acquire()
                    continue
                if not self._guards:
                    # Idle: the thread ends after a while, so that it keeps no process alive
                    # (a child forked from a thread ends when its last thread does).
                    self._wake_at = math.inf
                    cond.wait(_WATCHDOG_IDLE)
                    self._wake_at = -math.inf
                    if not self._guards:
                        self._thread = None  # the next request starts another
                        return
                    continue
                self._wake_at = min(self._guards.values())
                cond.wait(self._wake_at - now)
                self._wake_at = -math.inf


_watchdog = _Watchdog()


def _watchdog_after_fork() -> None:
    # The parent's watchdog thread is not in the child, and its lock may have been held by
    # another of the parent's threads: the child starts its own.
    global _watchdog  # noqa: PLW0603
    _watchdog = _Watchdog()


os.register_at_fork(after_in_child=_watchdog_after_fork)


def read_environment_once(session: requests.Session, url: str) -> requests.Session:
    """Have ``session`` take from the environment, now and once, what requests would read from
    it for every request to ``url``: the proxy (``HTTPS_PROXY``, ``NO_PROXY``, ...) and a
    ``.netrc`` login (only when no credentials were given, a token neither).

    requests reads them per request: it walks ``os.environ`` twice and looks for two ``.netrc``
    files, and each look is a system call that lets go of the GIL, which the sender then waits
    for (up to the switch interval, 5 ms) while the application logs flat out. A push client
    lives as long as its process, whose environment is set when it starts.
    """
    if not session.trust_env:
        return session
    for scheme, proxy in requests.utils.get_environ_proxies(url).items():
        session.proxies.setdefault(scheme, proxy)
    if session.auth is None and "Authorization" not in session.headers:
        login = requests.utils.get_netrc_auth(url)
        if login is not None:
            session.auth = login
    session.trust_env = False
    return session


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[_Guard]:
    guard = _Guard()
    watchdog = _watchdog
    previous = getattr(_local, "guard", None)
    _local.guard = guard
    # No thread to be had (interpreter shutting down): per-call timeouts only.
    watched = watchdog.watch(guard, seconds)
    try:
        yield guard
    finally:
        if watched:
            watchdog.forget(guard)
        _local.guard = previous


def request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    deadline: float,
    timeout: tuple[float, float],
    max_body: int,
    **kwargs: Any,
) -> Answer:
    """One request, finished within ``deadline`` seconds, keeping at most ``max_body`` bytes.

    Redirects are never followed here (``allow_redirects=False``): the caller decides.

    Raises:
        DeadlineExceeded: the deadline passed (a ``requests.Timeout``).
        requests.RequestException: the request failed otherwise.
    """
    # The session's TLS choice, given per request: requests prefers REQUESTS_CA_BUNDLE or
    # CURL_CA_BUNDLE over a session's verify (psf/requests#3829), so LOKI_VERIFY_TLS=false or a
    # CA bundle path would be ignored wherever those are set.
    kwargs.setdefault("verify", session.verify)
    started = time.monotonic()
    with _deadline(deadline) as guard:
        try:
            response = session.request(
                method, url, timeout=timeout, stream=True, allow_redirects=False, **kwargs
            )
            try:
                body, truncated = _read(response, max_body)
            finally:
                # Not read to its end: the connection is closed, not handed back to the pool.
                response.close()
        except Exception as err:
            if guard.expired:
                raise DeadlineExceeded(
                    f"no complete answer within {deadline:g} s "
                    f"(gave up after {time.monotonic() - started:.1f} s)"
                ) from err
            raise
        if guard.expired:  # the deadline passed as the last byte came
            raise DeadlineExceeded(f"no complete answer within {deadline:g} s")
    return Answer(response.status_code, response.reason or "", response.headers, body, truncated)


def _read(response: requests.Response, max_body: int) -> tuple[bytearray, bool]:
    # One buffer grown in place: a list of chunks joined at the end held the body twice.
    raw = response.raw
    body = bytearray()
    while len(body) <= max_body:
        # urllib3's own errors, as requests would raise them from iter_content().
        try:
            chunk = raw.read(min(_CHUNK, max_body + 1 - len(body)), decode_content=False)
        except urllib3.exceptions.ReadTimeoutError as err:
            raise requests.exceptions.ReadTimeout(err) from err
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.SSLError, OSError) as err:
            raise requests.exceptions.ConnectionError(err) from err
        except urllib3.exceptions.DecodeError as err:
            raise requests.exceptions.ContentDecodingError(err) from err
        if not chunk:
            return body, False
        body += chunk
    del body[max_body:]
    return body, True


def same_origin(url: str, other: str) -> bool:
    """Whether two URLs have the same scheme, host and port."""
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme.lower(), a.hostname, a.port) == (b.scheme.lower(), b.hostname, b.port)


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its user-info, and the user-info as ``(user, password)`` (or None).

    requests would send a URL's user-info as basic auth by itself; taken out here, the URL can
    be printed and kept as it is.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=hostport)), (unquote(user), unquote(password))


def check_credentials(*, tenant: Any, username: Any, password: Any, token: Any) -> None:
    """The tenant and credentials of a Loki client, as given (None or empty: not given).

    Raises:
        TypeError: one is not a string.
        ValueError: both basic auth and a token, or a password without a username.
    """
    for name, text in (
        ("tenant", tenant),
        ("username", username),
        ("password", password),
        ("token", token),
    ):
        if text is not None and not isinstance(text, str):
            raise TypeError(f"{name}: got {text!r}; expected a string or None")
    if token and username:
        raise ValueError(
            "username and token: got both; expected basic auth (username, password) "
            "or a bearer token, not both"
        )
    if password and not username:
        raise ValueError("password: got a password without a username; expected both")


@dataclasses.dataclass(frozen=True, repr=False)
class LokiEndpoint:
    """One Loki and who asks it: the base URL (no user-info in it), tenant and credentials.

    Build it with :meth:`of`. The URL is printed (errors, health) only as :attr:`shown`.

    Attributes:
        base: Loki's base URL, user-info taken out.
        tenant: sent as ``X-Scope-OrgID``.
        auth: basic auth, ``(user, password)``: given apart, or the URL's user-info.
        token: a bearer token (instead of basic auth).
        verify: verify Loki's certificate (True), don't (False), or a CA bundle path.
    """

    base: str
    tenant: str | None = None
    auth: tuple[str, str] | None = None
    token: str | None = None
    verify: bool | str = True

    @classmethod
    def of(
        cls,
        url: Any,
        *,
        tenant: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        verify_tls: bool | str = True,
    ) -> LokiEndpoint:
        """The endpoint of ``url`` (Loki's base URL or its push URL) with these credentials;
        explicit credentials win over the URL's user-info (requests would send that as basic
        auth by itself).

        Raises:
            TypeError: ``url`` is not a string, or a credential is not.
            ValueError: ``url`` is not http(s), or the credentials contradict each other.
        """
        if not isinstance(url, str):
            raise TypeError(f"url: got {mask_url(url)!r}; expected an http:// or https:// URL")
        if not url.strip().startswith(("http://", "https://")):
            raise ValueError(f"url: got {mask_url(url)!r}; expected an http:// or https:// URL")
        check_credentials(tenant=tenant, username=username, password=password, token=token)
        base, url_auth = split_credentials(base_url(url))
        auth = (username, password or "") if username else None
        if url_auth is not None and not username and not token:
            auth = url_auth
        return cls(base, tenant or None, auth, token or None, verify_tls)

    def shown(self, path: str = "") -> str:
        """The URL of ``path`` as printed: secret query values masked, should it carry any."""
        return str(mask_url(self.base + path))

    @property
    def push_url(self) -> str:
        return self.base + PUSH_PATH

    def scrub(self, text: str) -> str:
        """An error text that may quote the URL, without its secrets: URL credentials masked,
        and what is left of user-info no URL parser could read (a password with an unencoded
        ``/``)."""
        secret = url_secret(self.base)
        if secret is not None:
            text = text.replace(secret, REDACTED)
        return scrub_text(text)

    def session(
        self, session: requests.Session | None = None, headers: Mapping[str, str] | None = None
    ) -> requests.Session:
        """``session`` (a new :func:`bounded_session` when None) sending the tenant, the
        credentials, ``headers`` and the TLS choice with every request."""
        session = bounded_session() if session is None else session
        session.headers.update(headers or {})
        if self.tenant:
            session.headers[TENANT_HEADER] = self.tenant
        if self.token:
            session.headers["Authorization"] = f"Bearer {self.token}"
        elif self.auth:
            session.auth = self.auth
        session.verify = self.verify
        return session
