"""A small Loki push receiver on 127.0.0.1, for tests and benchmarks.

It implements ``POST /loki/api/v1/push`` as Loki's HTTP API documentation defines the JSON
form: ``Content-Type: application/json``, optionally ``Content-Encoding: gzip``, a body
``{"streams": [{"stream": {label: value}, "values": [[ns, line], [ns, line, metadata]]}]}``
where ``ns`` is a string of nanoseconds since the epoch, ``line`` a string and the optional
``metadata`` an object of string keys and string values (no nesting). Anything else is
answered 400 with a message, as Loki does, and recorded in :attr:`LokiReceiver.violations`.
Accepted pushes are answered 204.

It can be told to answer the next requests with a status (429 with ``Retry-After``, 500,
400 with a message), to hold every request until released (a slow Loki), or to be down (stop
listening and drop its connections) and come back on the same port.

Run as a script (``python tests/_loki_receiver.py``) it prints its port and serves until its
standard input closes; ``GET /stats`` then answers the counts as JSON (not a Loki endpoint).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import http.server
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

PUSH_PATH = "/loki/api/v1/push"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class PushError(ValueError):
    """The push body breaks Loki's documented format."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One accepted log entry."""

    labels: dict[str, str]
    ns: str
    line: str
    metadata: dict[str, str] | None


@dataclasses.dataclass
class Request:
    """One push request as received, and what it was answered."""

    headers: dict[str, str]
    arrived: float  # time.monotonic()
    status: int = 0
    streams: list[dict[str, Any]] | None = None
    error: str = ""
    # The push was accepted but its 204 never reached the client (the connection was cut, as
    # :meth:`LokiReceiver.down` does): the client rightly sends it again. Loki drops such a resend
    # (same stream, timestamp and line); this receiver keeps both, so tests can tell it apart
    # from a client that sends twice for no reason.
    answer_lost: bool = False


@dataclasses.dataclass
class _Scripted:
    status: int
    body: str
    retry_after: str | None


def validate_push(payload: Any) -> list[dict[str, Any]]:
    """Check a decoded push body against the documented JSON format; return its streams."""
    if not isinstance(payload, dict) or set(payload) != {"streams"}:
        raise PushError(f"expected an object with the one key 'streams', got {_brief(payload)}")
    streams = payload["streams"]
    if not isinstance(streams, list) or not streams:
        raise PushError("'streams' must be a non-empty array")
    for index, stream in enumerate(streams):
        where = f"streams[{index}]"
        if not isinstance(stream, dict) or set(stream) != {"stream", "values"}:
            raise PushError(
                f"{where}: expected the keys 'stream' and 'values', got {_brief(stream)}"
            )
        labels = stream["stream"]
        if not isinstance(labels, dict) or not labels:
            raise PushError(f"{where}.stream: expected a non-empty object of labels")
        for name, value in labels.items():
            if not _LABEL_NAME.match(name):
                raise PushError(f"{where}.stream: invalid label name {name!r}")
            if not isinstance(value, str) or not value:
                raise PushError(f"{where}.stream[{name!r}]: expected a non-empty string")
        values = stream["values"]
        if not isinstance(values, list) or not values:
            raise PushError(f"{where}.values: expected a non-empty array")
        for number, value in enumerate(values):
            # Every value is checked: the common shapes here, inline (this loop is the
            # receiver's cost per line); anything else, and every error, by _validate_value.
            if type(value) is list:
                size = len(value)
                if size == 2:
                    ns, line = value
                    if type(ns) is str and type(line) is str and ns.isdigit():
                        continue
                elif size == 3:
                    ns, line, metadata = value
                    if (
                        type(ns) is str
                        and type(line) is str
                        and ns.isdigit()
                        and type(metadata) is dict
                    ):
                        for item in metadata.values():
                            if type(item) is not str:
                                break
                        else:
                            continue
            _validate_value(f"{where}.values[{number}]", value)
    return streams


def _validate_value(where: str, value: Any) -> None:
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise PushError(
            f"{where}: expected [ns, line] or [ns, line, metadata], got {_brief(value)}"
        )
    ns, line = value[0], value[1]
    if not isinstance(ns, str) or not ns.isdigit():
        # Loki answers 400 to a number: the timestamp must be a string of nanoseconds.
        raise PushError(f"{where}[0]: expected nanoseconds as a string, got {ns!r}")
    if not isinstance(line, str):
        raise PushError(f"{where}[1]: expected the log line as a string, got {_brief(line)}")
    if len(value) == 3:
        metadata = value[2]
        if not isinstance(metadata, dict):
            raise PushError(f"{where}[2]: expected a metadata object, got {_brief(metadata)}")
        for key, item in metadata.items():
            if not isinstance(item, str):
                raise PushError(f"{where}[2][{key!r}]: expected a string value, got {_brief(item)}")


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: LokiReceiver


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Loki serves it
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.receiver._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.receiver._connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path != "/stats":
            self._answer(404, "not found")
            return
        self._answer(200, json.dumps(self.server.receiver.stats()), "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.server.receiver._handle(self, body)

    def _answer(
        self, status: int, text: str = "", content_type: str = "text/plain", extra: Any = ()
    ) -> None:
        data = text.encode()
        self.send_response(status)
        for name, value in extra:
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 204:
            self.wfile.write(data)


class LokiReceiver:
    """The receiver; use as a context manager, or ``start()`` / ``stop()``.

    Args:
        keep_entries: keep every accepted entry (tests); False only counts them (benchmarks).
    """

    def __init__(self, *, keep_entries: bool = True) -> None:
        self.keep_entries = keep_entries
        self.port = 0
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self.line_count = 0
        self._entries: list[Entry] = []
        self._script: list[_Scripted] = []
        self._cond = threading.Condition()
        self._gate: threading.Event | None = None  # new requests wait on it while holding
        self._gates: list[threading.Event] = []
        self._holding = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> LokiReceiver:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.receiver = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self.down()

    def __enter__(self) -> LokiReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def down(self) -> None:
        """Stop listening and cut every open connection: clients get connection errors."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._cond:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()

    def up(self) -> None:
        """Listen again, on the same port."""
        if self._server is None:
            self.start()

    # -- behaviour --------------------------------------------------------------------------------

    def respond(
        self, status: int, *, times: int = 1, body: str = "", retry_after: str | None = None
    ) -> None:
        """Answer the next ``times`` push requests with ``status`` (and ``Retry-After``)."""
        with self._cond:
            self._script.extend(_Scripted(status, body, retry_after) for _ in range(times))

    def hold(self) -> None:
        """Hold every request that arrives from now on, until :meth:`release` (a stuck Loki)."""
        with self._cond:
            self._gate = threading.Event()
            self._gates.append(self._gate)

    def pass_new(self) -> None:
        """Let new requests through again; those held so far stay held until :meth:`release`."""
        with self._cond:
            self._gate = None

    def release(self) -> None:
        """Answer every held request, and hold no more."""
        with self._cond:
            self._gate = None
            gates, self._gates = self._gates, []
        for gate in gates:
            gate.set()

    @property
    def holding(self) -> int:
        """How many requests are being held right now."""
        with self._cond:
            return self._holding

    # -- observations -----------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        with self._cond:
            return list(self._entries)

    def lines(self) -> list[str]:
        return [entry.line for entry in self.entries()]

    def stats(self) -> dict[str, int]:
        """The counts so far, and this process's CPU time (``cpu_ns``)."""
        with self._cond:
            return {
                "lines": self.line_count,
                "requests": len(self.requests),
                "violations": len(self.violations),
                # The receiver's own CPU (this process's), for the benchmark's split of the time.
                "cpu_ns": time.process_time_ns(),
            }

    def wait_until(self, predicate: Callable[[LokiReceiver], bool], timeout: float = 30.0) -> bool:
        """Wait for ``predicate(self)`` to hold; the timeout only keeps a failing test from
        hanging."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
            return True

    def wait_for_lines(self, count: int, timeout: float = 30.0) -> bool:
        return self.wait_until(lambda r: r.line_count >= count, timeout)

    # -- request handling ---------------------------------------------------------------------

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._cond:
            self._connections.add(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._cond:
            self._connections.discard(connection)

    def _handle(self, handler: _Handler, body: bytes) -> None:
        request = Request(headers=dict(handler.headers.items()), arrived=time.monotonic())
        with self._cond:
            self.requests.append(request)
            gate = self._gate
            if gate is not None:
                self._holding += 1
                self._cond.notify_all()
        if gate is not None:
            gate.wait()
        with self._cond:
            if gate is not None:
                self._holding -= 1
            scripted = self._script.pop(0) if self._script else None
        if handler.path != PUSH_PATH:
            self._finish(request, 404, f"no route {handler.path}")
            handler._answer(404, "404 page not found\n")
            return
        if scripted is not None:
            self._finish(request, scripted.status, scripted.body)
            extra = [("Retry-After", scripted.retry_after)] if scripted.retry_after else []
            handler._answer(scripted.status, scripted.body, extra=extra)
            return
        try:
            streams = self._decode(handler, body)
        except PushError as err:
            with self._cond:
                self.violations.append(str(err))
            self._finish(request, 400, str(err))
            handler._answer(400, f"{err}\n")
            return
        request.streams = streams if self.keep_entries else None
        count = sum(len(stream["values"]) for stream in streams)
        with self._cond:
            if self.keep_entries:
                for stream in streams:
                    labels = stream["stream"]
                    for value in stream["values"]:
                        metadata = value[2] if len(value) == 3 else None
                        self._entries.append(Entry(labels, value[0], value[1], metadata))
            self.line_count += count
            request.status = 204
            self._cond.notify_all()
        try:
            handler._answer(204)
        except OSError:
            with self._cond:
                request.answer_lost = True
            handler.close_connection = True

    def _finish(self, request: Request, status: int, error: str) -> None:
        with self._cond:
            request.status = status
            request.error = error
            self._cond.notify_all()

    @staticmethod
    def _decode(handler: _Handler, body: bytes) -> list[dict[str, Any]]:
        content_type = handler.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise PushError(f"expected Content-Type application/json, got {content_type!r}")
        encoding = handler.headers.get("Content-Encoding", "").strip().lower()
        if encoding == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError) as err:
                raise PushError(f"Content-Encoding gzip but the body is not gzip: {err}") from err
        elif encoding not in ("", "identity"):
            raise PushError(f"unsupported Content-Encoding {encoding!r}")
        try:
            # orjson (Go's JSON decoding in Loki is as fast); it refuses a little that Python's
            # json accepts, such as NaN: the json module decides those, as it always did.
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            try:
                payload = json.loads(body)
            except ValueError as err:
                raise PushError(f"the body is not JSON: {err}") from err
        return validate_push(payload)


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[LokiReceiver]:
    receiver = LokiReceiver(**kwargs).start()
    try:
        yield receiver
    finally:
        receiver.stop()


def main() -> None:
    receiver = LokiReceiver(keep_entries=False).start()
    print(receiver.port, flush=True)
    try:
        sys.stdin.read()  # serve until the parent closes our stdin
    finally:
        receiver.stop()


if __name__ == "__main__":
    main()
