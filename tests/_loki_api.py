"""A small stand-in for Loki's query API on 127.0.0.1, for the query client and CLI tests.

It answers ``GET /ready``, ``/loki/api/v1/labels``, ``/loki/api/v1/query`` and
``/loki/api/v1/query_range`` with what a test scripted, in Loki's response formats (built by the
helpers below from Loki's HTTP API documentation: ``{"status": "success", "data": {"resultType":
..., "result": [...]}}``), and records every request (path, query parameters, headers). It is a
fake because Loki cannot be installed here; the opt-in ``loki`` test runs against a real one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    delay: float = 0.0


@dataclasses.dataclass(frozen=True)
class Seen:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


def success(result_type: str, result: Any) -> Answer:
    data = {"resultType": result_type, "result": result, "stats": {"summary": {}}}
    return Answer(200, json.dumps({"status": "success", "data": data}).encode())


def vector(*samples: tuple[dict[str, str], str], at: float = 1_800_000_000.0) -> Answer:
    return success(
        "vector", [{"metric": labels, "value": [at, value]} for labels, value in samples]
    )


def matrix(*series: tuple[dict[str, str], list[tuple[float, str]]]) -> Answer:
    return success(
        "matrix",
        [{"metric": labels, "values": [[t, v] for t, v in points]} for labels, points in series],
    )


def streams(*streams_: tuple[dict[str, str], list[tuple[int, str]]]) -> Answer:
    return success(
        "streams",
        [
            {"stream": labels, "values": [[str(ns), line] for ns, line in entries]}
            for labels, entries in streams_
        ],
    )


def text_error(status: int, message: str) -> Answer:
    return Answer(status, message.encode(), "text/plain; charset=utf-8")


def json_error(status: int, message: str) -> Answer:
    body = {"code": status, "status": "error", "message": message}
    return Answer(status, json.dumps(body).encode())


class LokiApi:
    """The server: ``answers`` maps a path (``by_query`` a query) to what it answers; ``seen``
    lists the requests."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {
            "/ready": Answer(200, b"ready\n", "text/plain"),
            "/loki/api/v1/labels": Answer(
                200, json.dumps({"status": "success", "data": ["app", "env", "job"]}).encode()
            ),
        }
        #: Answers to one query string (LogQL) in particular, before ``answers``.
        self.by_query: dict[str, Answer] = {}
        self.seen: list[Seen] = []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
                api.seen.append(Seen(parsed.path, params, dict(self.headers.items())))
                answer = api.by_query.get(params.get("query", "")) or api.answers.get(
                    parsed.path, text_error(404, "404 page not found\n")
                )
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that gave up (the timeout test) closes its end: not an error here.
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def last(self, path: str) -> Seen:
        return [s for s in self.seen if s.path == path][-1]


@contextlib.contextmanager
def running() -> Iterator[LokiApi]:
    api = LokiApi()
    api.start()
    try:
        yield api
    finally:
        api.stop()
