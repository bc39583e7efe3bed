"""HTTP servers on 127.0.0.1 that misbehave: for the tests of the bounded Loki clients.

Each server accepts connections in a thread and hands each one to a behaviour (a function of
the connected socket and the server); :class:`HostileServer` counts the requests it saw and the
headers of each. Behaviours: hang after accepting, trickle the status line byte by byte, stream
a body for ever, answer with a huge body, redirect, reset mid-body. Stopping closes every socket,
so no behaviour outlives its test.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

Behaviour = Callable[[socket.socket, "HostileServer"], None]

_CHUNK = b"x" * 65536


class HostileServer:
    """A listening socket on 127.0.0.1 and one thread per connection running ``behaviour``."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port: int = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopped = threading.Event()
        self.connections: list[socket.socket] = []
        self.requests: list[dict[str, str]] = []
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.behaviour(conn, self)

    def read_request(self, conn: socket.socket) -> dict[str, str] | None:
        """Read one request (head and ``Content-Length`` body); its headers, or None at EOF."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {"_request_line": lines[0]}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        remaining = int(headers.get("content-length", "0")) - len(rest)
        while remaining > 0:
            chunk = conn.recv(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)
        with self._lock:
            self.requests.append(headers)
        return headers

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.bytes_sent += len(data)

    def sleep(self, seconds: float) -> bool:
        """Wait; False when the server was stopped meanwhile."""
        return not self.stopped.wait(seconds)

    def stop(self) -> None:
        self.stopped.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() won't
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        self._thread.join(5)


@contextlib.contextmanager
def serving(behaviour: Behaviour) -> Iterator[HostileServer]:
    server = HostileServer(behaviour)
    try:
        yield server
    finally:
        server.stop()


# -- behaviours -------------------------------------------------------------------------------


def hang(conn: socket.socket, server: HostileServer) -> None:
    """Accept, read nothing, answer nothing."""
    server.stopped.wait()


def trickle(conn: socket.socket, server: HostileServer, interval: float = 0.2) -> None:
    """Read the request, then send the status line and headers one byte every ``interval``
    seconds, for ever (each byte comes well within any read timeout)."""
    if server.read_request(conn) is None:
        return
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"y" * 1_000_000
    for index in range(len(head)):
        server.send(conn, head[index : index + 1])
        if not server.sleep(interval):
            return


def stream_forever(status: int = 200) -> Behaviour:
    """Answer ``status`` with a chunked body that never ends, as fast as the client reads."""

    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        if server.read_request(conn) is None:
            return
        server.send(
            conn,
            f"HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode(),
        )
        chunk = b"%x\r\n" % len(_CHUNK) + _CHUNK + b"\r\n"
        while not server.stopped.is_set():
            server.send(conn, chunk)

    return behaviour


def huge_body(status: int, size: int) -> Behaviour:
    """Answer ``status`` with a ``Content-Length`` body of ``size`` bytes, sent in full."""

    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        while not server.stopped.is_set():
            if server.read_request(conn) is None:
                return
            server.send(
                conn,
                f"HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {size}\r\n\r\n".encode(),
            )
            sent = 0
            while sent < size and not server.stopped.is_set():
                part = _CHUNK[: min(len(_CHUNK), size - sent)]
                server.send(conn, part)
                sent += len(part)

    return behaviour


def redirect(location: str, status: int = 307) -> Behaviour:
    """Answer every request with a redirect to ``location``."""

    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        while server.read_request(conn) is not None:
            answer = f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
            server.send(conn, answer.encode())

    return behaviour


@functools.cache
def _gzip_of_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip member
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, packer.flush()])


def gzip_bomb(status: int, size: int) -> Behaviour:
    """Answer ``status`` with a small gzip body (``Content-Encoding: gzip``) that unpacks to
    ``size`` bytes of zeros."""
    body = _gzip_of_zeros(size)

    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        while server.read_request(conn) is not None:
            head = (
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            server.send(conn, head.encode() + body)

    return behaviour


def reset_mid_body(conn: socket.socket, server: HostileServer) -> None:
    """Promise a body, send part of it, then reset the connection (RST, not FIN)."""
    if server.read_request(conn) is None:
        return
    server.send(conn, b"HTTP/1.1 500 X\r\nContent-Length: 100000\r\n\r\n" + b"e" * 1000)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def accept_all(conn: socket.socket, server: HostileServer) -> None:
    """A well-behaved Loki: 204 to every request."""
    while server.read_request(conn) is not None:
        server.send(conn, b"HTTP/1.1 204 No Content\r\n\r\n")


# -- memory -----------------------------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set size, from ``/proc/self/status``."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class PeakRss:
    """Samples RSS every 50 ms in a thread; ``growth`` is the peak over the start value."""

    def __init__(self) -> None:
        self.start = rss_bytes()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
