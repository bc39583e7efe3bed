"""URL credentials never reach the file: user-info and secret query values, anywhere in a line.

httpx's own logger (a real request to a server on 127.0.0.1) and plain text through every
front-end; the message, fields, nested values and objects the serializer converts. Lines without
URL secrets stay byte-for-byte what they were.
"""

from __future__ import annotations

import http.server
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import alkana_logging
from alkana_logging import fields as F
from alkana_logging._line import Renderer
from alkana_logging.redaction import REDACTED, Redactor, UrlScrubber, mask_url
from alkana_logging.settings import load_settings
from tests._frontends import FRONTENDS, log_call, read_lines, read_records, setup_file


def secret() -> str:
    return f"s3cr3t{uuid.uuid4().hex[:12]}"


class _Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_httpx_request_lines_lose_their_tokens(tmp_path: Path, http_server: str) -> None:
    path = setup_file(tmp_path, level="INFO")
    token, key, signature = secret(), secret(), secret()
    with httpx.Client(timeout=5) as client:
        response = client.get(
            f"{http_server}/items?token={token}&page=2&api_key={key}&X-Amz-Signature={signature}"
        )
    assert response.status_code == 200
    alkana_logging.shutdown()
    raw = path.read_bytes().decode()
    for value in (token, key, signature):
        assert value not in raw
    (record,) = [r for r in read_records(path) if r[F.LOGGER] == "httpx"]
    assert record[F.MESSAGE] == (
        f"HTTP Request: GET {http_server}/items?token={REDACTED}&page=2&api_key={REDACTED}"
        f'&X-Amz-Signature={REDACTED} "HTTP/1.1 200 OK"'
    )


#: (id, URL with {s} where the secret goes, what is written), the query ones: {s} -> REDACTED.
_USERINFO_URLS = [
    (
        "userinfo",
        "https://alice:{s}@grafana.example/loki",
        "https://[REDACTED]@grafana.example/loki",
    ),
    ("dsn", "postgresql://app:{s}@db:5432/x", "postgresql://[REDACTED]@db:5432/x"),
    ("password-only", "redis://:{s}@cache:6379/0", "redis://[REDACTED]@cache:6379/0"),
]
_QUERY_URLS = [
    ("key-list", "https://h/p?password={s}&x=1"),
    ("camel", "https://h/p?accessToken={s}"),
    ("fragment", "https://h/p?x=1&client_secret={s}#f"),
    ("relative", "/login?next=/&pwd={s}"),
    ("otel-aws", "https://s3/k?AWSAccessKeyId={s}&Expires=1"),
    ("otel-signature", "https://h/k?Signature={s}"),
    ("otel-azure-sig", "https://blob/c?sv=2021&sig={s}"),
    ("otel-goog", "https://gcs/o?X-Goog-Signature={s}"),
    ("x-amz", "https://b.s3/k?X-Amz-Credential={s}&X-Amz-Security-Token={s}&X-Amz-Signature={s}"),
    ("percent-encoded-name", "https://h/p?X%2DAmz%2DSignature={s}"),
]
URLS = [pytest.param(url, shown, id=name) for name, url, shown in _USERINFO_URLS] + [
    pytest.param(url, url.replace("{s}", REDACTED), id=name) for name, url in _QUERY_URLS
]


@pytest.mark.parametrize(("url", "expected"), URLS)
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_urls_in_messages_and_fields_lose_their_credentials(
    tmp_path: Path, frontend: str, url: str, expected: str
) -> None:
    path = setup_file(tmp_path)
    value = secret()
    text = url.replace("{s}", value)
    log_call(frontend, f"calling {text} now", {"target": text, "nested": {"urls": [text]}})
    alkana_logging.shutdown()
    (line,) = read_lines(path)
    assert value not in line.decode()
    (record,) = read_records(path)
    assert expected in record[F.MESSAGE]
    if frontend != "stdlib_args":  # there the fields are in the message
        assert expected == record["target"]
        assert [expected] == record["nested"]["urls"]


def test_a_settings_object_logged_shows_no_credentials(tmp_path: Path) -> None:
    path = setup_file(tmp_path)
    password, token = secret(), secret()
    settings = load_settings(
        {"loki_url": f"https://alice:{password}@logs.example", "loki_token": token}
    )
    alkana_logging.get_logger("x").info("settings", settings=settings)
    logging.getLogger("x").info("settings %s", settings)
    alkana_logging.shutdown()
    raw = path.read_bytes().decode()
    assert password not in raw
    assert token not in raw
    first, second = read_records(path)
    assert first["settings"]["loki_url"] == "https://[REDACTED]@logs.example"
    assert first["settings"]["loki_token"] == REDACTED
    assert "loki_url='https://[REDACTED]@logs.example'" in second[F.MESSAGE]


# -- what stays as it was ----------------------------------------------------------------------


def _renderer() -> Renderer:
    return Renderer(app="a", env="e", host="h", redactor=Redactor(), max_line_bytes=65536)


ORDINARY = [
    pytest.param("request handled", {"route": "/items/{item_id}", "user": "ann"}, id="plain"),
    pytest.param("GET https://api.example/v1/x 200", {}, id="url-without-secrets"),
    pytest.param("see https://h/p?page=2&sort=asc", {"q": "a=b?"}, id="harmless-query"),
    pytest.param("mail ann@example.com about a/b", {"user": "ann@example.com"}, id="email"),
    pytest.param("x=1 y=2 why?", {"expr": "a==b"}, id="equals-and-question"),
]


@pytest.mark.parametrize(("message", "fields"), ORDINARY)
def test_a_line_without_url_secrets_is_written_byte_for_byte_as_before(
    message: str, fields: dict[str, Any]
) -> None:
    ns = time.time_ns()
    record, line = _renderer().render(ns, F.INFO, "x", message, dict(fields))
    expected = {
        F.TIMESTAMP: record[F.TIMESTAMP],
        F.LEVEL: F.INFO,
        F.LOGGER: "x",
        F.MESSAGE: message,
        F.APP: "a",
        F.ENV: "e",
        F.HOST: "h",
        F.PID: record[F.PID],
        **fields,
    }
    assert orjson.dumps(expected, option=orjson.OPT_APPEND_NEWLINE) == line


def test_user_keys_are_sensitive_query_parameters_too() -> None:
    scrubber = UrlScrubber(Redactor({"ssn"}))
    value = secret()
    assert scrubber.text(f"https://h/p?SSN={value}&a=1") == f"https://h/p?SSN={REDACTED}&a=1"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://alice:S3cret@host:3100", "http://[REDACTED]@host:3100"),
        ("https://host/loki?token=abc", "https://host/loki?token=[REDACTED]"),
        ("http://host:3100", "http://host:3100"),
        (None, None),
    ],
)
def test_mask_url(url: str | None, shown: str | None) -> None:
    assert shown == mask_url(url)


def plain_app() -> Any:
    """A bare ASGI app (no middleware, so uvicorn writes its own access line); run by uvicorn in a
    child process through ``tests._uvicorn_server.serve``."""
    alkana_logging.setup()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@pytest.mark.slow
def test_uvicorn_access_lines_lose_their_tokens(tmp_path: Path) -> None:
    from tests._uvicorn_server import serve

    token = secret()
    log_file = tmp_path / "app.log"
    with serve("tests.test_redaction_urls:plain_app", log_file) as server:
        response = httpx.get(f"{server.base_url}/items?token={token}&page=2", timeout=10)
        assert response.status_code == 200
    assert token not in log_file.read_text()
    (access,) = [r for r in read_records(log_file) if r[F.LOGGER] == "uvicorn.access"]
    assert f"/items?token={REDACTED}&page=2" in access[F.MESSAGE]


def test_text_before_an_equals_sign_too_long_for_a_name_is_not_judged_or_cached() -> None:
    """Base64 with its "=" padding (ordinary data) or a hostile request path put kilobytes
    before a "=": that is no parameter's name. Judging it normalised it with a regex pass and
    kept it in the cache (250x the cost of a line, and up to 4,096 such texts held)."""
    import base64

    scrubber = UrlScrubber(Redactor())
    for n in range(100):
        blob = base64.b64encode(os.urandom(3000) + bytes([n])).decode()[:-1] + "="
        assert scrubber.text(f"payload {blob}") == f"payload {blob}"
        assert not scrubber.line_needs_scrubbing(f'{{"data":"{blob}"}}'.encode())
    assert len(scrubber._cache) == 0
    assert scrubber.sensitive_param("api_key")  # a real name still is
