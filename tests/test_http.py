"""The Loki clients against servers that misbehave: memory stays bounded, the failure is reported,
``shutdown()`` ends in time.

Every server is a real socket server on 127.0.0.1 (tests/_hostile_http.py): it hangs after
accepting, trickles its answer a byte at a time, streams a body for ever, sends a huge body,
redirects to another host, or resets the connection mid-body.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import alkana_logging
from alkana_logging import _http
from alkana_logging.loki import LokiSink
from alkana_logging.ops.query import (
    LokiClient,
    LokiQueryError,
    LokiRejectedError,
    LokiUnreachableError,
)
from tests import _hostile_http as H

MiB = 1024 * 1024
#: What a bounded client may grow by while a server misbehaves (the line buffer, a few
#: capped answers, threads); the unbounded one grew by hundreds of MiB.
RSS_BOUND = 48 * MiB
LINES = 20
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
FLUSH_TIMEOUT = 2.0
TIMEOUTS: dict[str, Any] = {
    "loki_connect_timeout": 0.5,
    "loki_read_timeout": 1.0,  # a request's deadline: 1.5 s in all
    "loki_max_retry_time": 3.0,
    "loki_flush_timeout": FLUSH_TIMEOUT,
    "loki_batch_wait": 0.05,
}

ENVIRONMENT = ("LOKI_URL", "LOKI_TENANT", "LOKI_USERNAME", "LOKI_PASSWORD", "LOKI_TOKEN")


@pytest.fixture(autouse=True)
def _no_loki_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def setup_loki(url: str, tmp_path: Path, **overrides: Any) -> None:
    alkana_logging.setup(
        loki_url=url,
        log_file=str(tmp_path / "app.log"),
        stdout=False,
        **{**TIMEOUTS, **overrides},
    )


def log_lines(count: int = LINES) -> None:
    log = logging.getLogger("hostile")
    for index in range(count):
        log.warning("line %d", index)


def dropped(reason: str) -> int:
    return int(alkana_logging.pipeline_health()["dropped"].get(reason, 0))


def timed_shutdown() -> float:
    started = time.monotonic()
    alkana_logging.shutdown()
    return time.monotonic() - started


PUSH_CASES = [
    pytest.param(H.hang, "loki_unreachable", r"ReadTimeout", id="hang-after-accept"),
    pytest.param(
        H.trickle,
        "loki_unreachable",
        r"DeadlineExceeded: no complete answer within 1\.5 s",
        id="trickle",
    ),
    pytest.param(
        H.stream_forever(200),
        "loki_rejected_200",
        r"HTTP 200 with an answer over 65536 bytes",
        id="200-body-forever",
    ),
    pytest.param(
        H.stream_forever(500),
        "loki_unreachable",
        r"HTTP 500: x+ …\[answer cut at 65536 bytes\]",
        id="500-body-forever",
    ),
    pytest.param(
        H.huge_body(400, 200 * MiB),
        "loki_rejected_400",
        r"HTTP 400: x{400}",
        id="400-with-200MiB",
    ),
    pytest.param(H.reset_mid_body, "loki_unreachable", r"ConnectionError", id="reset-mid-body"),
    pytest.param(
        H.gzip_bomb(400, 256 * MiB),
        "loki_rejected_400",
        r"HTTP 400: .*answer cut at 65536 bytes",
        id="400-gzip-bomb",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("behaviour", "reason", "error"), PUSH_CASES)
def test_a_hostile_loki_costs_bounded_memory_is_reported_and_shutdown_ends(
    tmp_path: Path, behaviour: H.Behaviour, reason: str, error: str
) -> None:
    with H.serving(behaviour) as server, H.PeakRss() as rss:
        setup_loki(server.url, tmp_path)
        log_lines()
        # LOKI_MAX_RETRY_TIME (3 s) applies to every failure that is retried; the timeout only
        # keeps a failing test from hanging.
        assert H.wait_for(lambda: dropped(reason) == LINES, timeout=20), (
            alkana_logging.pipeline_health()
        )
        health = alkana_logging.pipeline_health()
        assert health["loki_lines_shipped"] == 0
        assert health["loki_buffer_lines"] == 0
        assert health["loki_last_error"] is not None
        assert pytest.approx(time.time(), abs=20) == health["loki_last_error_at"]
        assert re.search(error, health["loki_last_error"]), health["loki_last_error"]
        # What a server sends is printed escaped: no control character reaches stderr.
        assert not CONTROL.search(health["loki_last_error"])
        log_lines(5)  # buffered behind the same server at shutdown
        took = timed_shutdown()
    assert rss.growth < RSS_BOUND, f"RSS grew by {rss.growth / MiB:.0f} MiB"
    assert took < FLUSH_TIMEOUT + 2.0, f"shutdown() took {took:.1f} s"


@pytest.mark.slow
def test_a_request_stuck_behind_a_trickle_gives_up_at_its_deadline(tmp_path: Path) -> None:
    with H.serving(H.trickle) as server:
        setup_loki(server.url, tmp_path, loki_max_retry_time=30.0)
        started = time.monotonic()
        log_lines(1)
        assert H.wait_for(
            lambda: alkana_logging.pipeline_health()["loki_batches_retried"] >= 1, timeout=10
        )
        first_failure = time.monotonic() - started
        timed_shutdown()
    # One attempt: 1.5 s (connect + read timeout) whatever the server trickles.
    assert first_failure < 1.5 + 1.0, first_failure


def test_a_redirect_to_another_host_is_not_followed_and_credentials_stay(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with H.serving(H.accept_all) as elsewhere:
        target = f"http://localhost:{elsewhere.port}/loki/api/v1/push"
        with H.serving(H.redirect(target)) as server:
            url = f"http://alice:S3cret-pw@127.0.0.1:{server.port}"
            setup_loki(url, tmp_path)
            log_lines()
            assert H.wait_for(lambda: dropped("loki_rejected_307") == LINES, timeout=20)
            health = alkana_logging.pipeline_health()
            took = timed_shutdown()
        assert elsewhere.requests == []
    assert server.requests, "the push never reached the server"
    # The credentials of the URL were sent, as basic auth, to the URL's host only.
    assert all(r.get("authorization", "").startswith("Basic ") for r in server.requests)
    assert "not followed" in health["loki_last_error"]
    assert "S3cret-pw" not in str(health)
    assert "S3cret-pw" not in capfd.readouterr().err
    assert took < FLUSH_TIMEOUT + 2.0


@pytest.mark.slow
def test_the_caller_never_waits_while_the_server_trickles(tmp_path: Path) -> None:
    with H.serving(H.trickle) as server:
        setup_loki(server.url, tmp_path)
        log = logging.getLogger("hostile")
        started = time.monotonic()
        for index in range(2000):
            log.info("line %d", index)
        elapsed = time.monotonic() - started
        took = timed_shutdown()
    assert elapsed < 2.0, elapsed  # appends to a buffer only: about a microsecond a line
    assert took < FLUSH_TIMEOUT + 2.0


# -- the query client ---------------------------------------------------------------------------


QUERY_CASES = [
    pytest.param(H.hang, LokiUnreachableError, r"no answer within 1\.5 s", id="hang"),
    pytest.param(H.trickle, LokiUnreachableError, r"no answer within 1\.5 s", id="trickle"),
    pytest.param(
        H.stream_forever(200), LokiQueryError, r"more than 1048576 bytes", id="200-body-forever"
    ),
    pytest.param(
        H.huge_body(400, 200 * MiB), LokiQueryError, r"more than 1048576 bytes", id="huge-400"
    ),
    pytest.param(H.reset_mid_body, LokiUnreachableError, r"cannot reach Loki", id="reset"),
    pytest.param(H.gzip_bomb(200, 256 * MiB), LokiQueryError, r"not JSON", id="gzip-bomb"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("behaviour", "error", "match"), QUERY_CASES)
def test_the_query_client_is_bounded_too(
    behaviour: H.Behaviour, error: type[Exception], match: str
) -> None:
    with H.serving(behaviour) as server, H.PeakRss() as rss:
        client = LokiClient(server.url, timeout=1.5, max_response_bytes=MiB)
        started = time.monotonic()
        with pytest.raises(error, match=match):
            client.query('sum(count_over_time({job="x"}[1m]))')
        took = time.monotonic() - started
        client.close()
    assert took < 1.5 + 1.0, took
    assert rss.growth < RSS_BOUND, f"RSS grew by {rss.growth / MiB:.0f} MiB"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (Debian's openssl), and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ["-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", *subject, *files],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def tls(behaviour: H.Behaviour, certificate: tuple[Path, Path]) -> H.Behaviour:
    """``behaviour`` behind a TLS handshake with ``certificate``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)

    def behind_tls(conn: socket.socket, server: H.HostileServer) -> None:
        with context.wrap_socket(conn, server_side=True) as wrapped:
            server.connections.append(wrapped)  # closed by server.stop(), as the others
            behaviour(wrapped, server)

    return behind_tls


@pytest.fixture
def system_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUESTS_CA_BUNDLE set, as on many CI and corporate machines: requests prefers it to a
    session's own ``verify``."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile)


@pytest.mark.usefixtures("system_ca_bundle")
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # asked for
def test_a_ca_bundle_path_is_used_whatever_the_environment_says(
    certificate: tuple[Path, Path],
) -> None:
    with H.serving(tls(H.accept_all, certificate)) as server:
        https = server.url.replace("http://", "https://")
        client = LokiClient(https, timeout=5, verify_tls=str(certificate[0]))
        with pytest.raises(LokiRejectedError, match=r"HTTP 204"):  # the push server's answer
            client.ready()
        client.close()
        sink = LokiSink(https, labels={"job": "j"}, verify_tls=False, flush_timeout=5.0)
        try:
            sink.write(b'{"message":"over tls"}\n', {}, time.time_ns())
            assert sink.wait_sent(10)
        finally:
            sink.close(timeout=1.0)
    assert (sink.lines_shipped, sink.health.dropped, sink.last_error) == (1, {}, None)


def test_the_deadline_holds_over_tls_too(certificate: tuple[Path, Path]) -> None:
    # The TLS connection class carries the same socket hooks as the plain one: without them
    # the deadline finds no socket to shut down and the trickle keeps the request alive.
    outcome: list[BaseException] = []
    with H.serving(tls(H.trickle, certificate)) as server:
        client = LokiClient(
            server.url.replace("http://", "https://"), timeout=1.5, verify_tls=str(certificate[0])
        )

        def query() -> None:
            try:
                client.ready()
            except BaseException as err:
                outcome.append(err)

        worker = threading.Thread(target=query, daemon=True)
        started = time.monotonic()
        worker.start()
        worker.join(10)  # a hook missing: the request would run for ever
        took = time.monotonic() - started
        client.close()
    assert not worker.is_alive(), "the request outlived its deadline by far"
    assert len(outcome) == 1
    assert isinstance(outcome[0], LokiUnreachableError)
    assert re.search(r"no answer within 1\.5 s", str(outcome[0]))
    assert took < 1.5 + 1.0, took
    assert server.requests, "the TLS handshake and the request reached the server"


def test_the_query_client_follows_no_redirect_to_another_host() -> None:
    with H.serving(H.accept_all) as elsewhere:
        target = f"http://localhost:{elsewhere.port}/loki/api/v1/query"
        with H.serving(H.redirect(target)) as server:
            client = LokiClient(
                f"http://alice:S3cret-pw@127.0.0.1:{server.port}", tenant="team-a", timeout=2.0
            )
            with pytest.raises(LokiQueryError, match="another host: not followed") as caught:
                client.query("vector(1)")
            client.close()
        assert elsewhere.requests == []
    assert "S3cret-pw" not in str(caught.value)
    assert server.requests[0]["authorization"].startswith("Basic ")


def test_the_query_client_follows_a_redirect_on_the_same_host() -> None:
    answer = b'{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}'

    def behaviour(conn: Any, server: H.HostileServer) -> None:
        while (request := server.read_request(conn)) is not None:
            if request["_request_line"].startswith("GET /moved"):
                server.send(
                    conn,
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer) + answer,
                )
            else:
                server.send(
                    conn,
                    b"HTTP/1.1 302 Found\r\nLocation: /moved/loki/api/v1/query?query=1\r\n"
                    b"Content-Length: 0\r\n\r\n",
                )

    with H.serving(behaviour) as server:
        client = LokiClient(server.url, timeout=2.0)
        result = client.query("vector(1)")
        client.close()
    assert result.scalar == 2.0
    assert [r["_request_line"].split()[1].split("?")[0] for r in server.requests] == [
        "/loki/api/v1/query",
        "/moved/loki/api/v1/query",
    ]


# -- what a push costs the process: threads, the environment -------------------------------------

PROXY_VARIABLES = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "NETRC",
)


@pytest.fixture
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def push_sink(url: str, **options: Any) -> LokiSink:
    return LokiSink(url, labels={"job": "tests"}, batch_wait=0.05, flush_timeout=5.0, **options)


def push_one(sink: LokiSink, text: str) -> None:
    sink.write(b'{"message":"%s"}' % text.encode(), {}, time.time_ns())
    assert sink.wait_sent(5.0)


def test_pushes_start_no_thread_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    with H.serving(H.accept_all) as server:
        sink = push_sink(server.url)
        push_one(sink, "first")  # the sender thread, and the deadline watchdog if not yet
        monkeypatch.setattr(threading.Thread, "start", counting_start)
        for index in range(20):
            push_one(sink, f"line {index}")
        sink.close()
    assert len(server.requests) == 21
    # A timer thread a request started one thread a push (and took two turns of the GIL).
    assert started == []


def test_the_deadline_watchdog_of_a_forked_child_is_its_own() -> None:
    with H.serving(H.accept_all) as quick, H.serving(H.trickle) as slow:
        session = _http.bounded_session()
        _http.request(session, "GET", quick.url, deadline=2.0, timeout=(1.0, 1.0), max_body=10)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the parent's watchdog thread is not here
            code = 1
            try:
                os.close(read)
                started = time.monotonic()
                try:
                    _http.request(
                        _http.bounded_session(),
                        "GET",
                        slow.url,
                        deadline=0.5,
                        timeout=(5.0, 5.0),  # only the deadline can end it in time
                        max_body=1 << 20,
                    )
                    outcome = "answered"
                except _http.DeadlineExceeded:
                    outcome = "deadline"
                os.write(write, f"{outcome} {time.monotonic() - started:.2f}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        deadline = time.monotonic() + 20
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if done[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the child's request outlived its deadline by far")
        with os.fdopen(read) as pipe:
            outcome, took = pipe.read().split()
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert outcome == "deadline"
    assert float(took) < 0.5 + 1.0


def test_a_push_goes_through_the_proxy_the_environment_names(
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    with H.serving(H.accept_all) as proxy:
        no_proxy_settings.setenv("HTTP_PROXY", proxy.url)
        sink = push_sink("http://loki.invalid:3100")
        push_one(sink, "via the proxy")
        sink.close()
    assert [r["_request_line"] for r in proxy.requests] == [
        "POST http://loki.invalid:3100/loki/api/v1/push HTTP/1.1"
    ]


def test_the_push_session_reads_the_environment_once(
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    with H.serving(H.accept_all) as server:
        sink = push_sink(server.url)
        push_one(sink, "before")
        # Read per request (requests' way), this proxy would take the next push: nothing listens.
        no_proxy_settings.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        push_one(sink, "after")
        health = sink.health.snapshot()
        sink.close()
    assert len(server.requests) == 2
    assert health["loki_lines_shipped"] == 2


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ({}, "Basic " + base64.b64encode(b"netrc-user:netrc-pw").decode()),
        (
            {"username": "alice", "password": "pw"},
            "Basic " + base64.b64encode(b"alice:pw").decode(),
        ),
        ({"token": "t0ken"}, "Bearer t0ken"),
    ],
    ids=["netrc", "basic-auth-given", "token-given"],
)
def test_a_netrc_login_is_used_only_when_no_credentials_were_given(
    no_proxy_settings: pytest.MonkeyPatch,
    tmp_path: Path,
    credentials: dict[str, str],
    expected: str,
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pw\n")
    netrc.chmod(0o600)
    no_proxy_settings.setenv("NETRC", str(netrc))
    with H.serving(H.accept_all) as server:
        sink = push_sink(server.url, **credentials)
        push_one(sink, "who")
        sink.close()
    assert [r["authorization"] for r in server.requests] == [expected]


def test_the_deadline_watchdog_ends_when_it_has_nothing_to_watch() -> None:
    # A child forked from a thread ends when its last thread does: an idle watchdog must not be
    # that thread (tests/guarantees/test_process_safety.py has the child itself).
    def watchdogs() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "alkana-logging-http-deadline"]

    with H.serving(H.accept_all) as server:
        session = _http.bounded_session()
        _http.request(session, "GET", server.url, deadline=2.0, timeout=(1.0, 1.0), max_body=10)
        assert watchdogs()
        assert H.wait_for(lambda: not watchdogs(), timeout=_http._WATCHDOG_IDLE + 5.0)
        # The next request has a watchdog again, and its deadline still holds.
        _http.request(session, "GET", server.url, deadline=2.0, timeout=(1.0, 1.0), max_body=10)
        assert watchdogs()
