from __future__ import annotations

import base64
import json
import math
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from alkana_logging import fields as F
from alkana_logging.loki import LokiSink
from alkana_logging.ops import configs as R
from alkana_logging.ops import presets as P
from alkana_logging.ops.configs import rules as ruler
from alkana_logging.ops.query import (
    LokiClient,
    LokiQueryError,
    LokiRejectedError,
    LokiUnreachableError,
    QueryResult,
    base_url,
    parse_result,
)
from alkana_logging.settings import Settings
from tests import _loki_api as api
from tests._children import run_child

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def loki() -> Iterator[api.LokiApi]:
    with api.running() as server:
        yield server


@pytest.fixture
def client(loki: api.LokiApi) -> Iterator[LokiClient]:
    with LokiClient(loki.url, timeout=5) as c:
        yield c


# -- answers --------------------------------------------------------------------------------------


def test_instant_query_returns_a_vector(loki: api.LokiApi, client: LokiClient) -> None:
    loki.answers["/loki/api/v1/query"] = api.vector(
        ({"route": "/a"}, "0.25"), ({"route": "/b"}, "NaN"), at=1_800_000_001.5
    )
    result = client.query("sum(x)", time=1_800_000_001.5)
    assert result.result_type == "vector"
    assert [(s.labels, s.time) for s in result.vector] == [
        ({"route": "/a"}, 1_800_000_001.5),
        ({"route": "/b"}, 1_800_000_001.5),
    ]
    assert result.vector[0].value == 0.25
    assert math.isnan(result.vector[1].value)
    seen = loki.last("/loki/api/v1/query")
    assert seen.params == {"query": "sum(x)", "time": "1800000001500000000"}


def test_range_query_returns_a_matrix_and_sends_start_end_step(
    loki: api.LokiApi, client: LokiClient
) -> None:
    loki.answers["/loki/api/v1/query_range"] = api.matrix(
        ({"level": "info"}, [(100.0, "3"), (160.0, "5")]), ({"level": "error"}, [(160.0, "+Inf")])
    )
    result = client.query_range("sum by (level) (x)", start=100.0, end=160.0, step=60)
    assert result.result_type == "matrix"
    assert result.matrix[0].labels == {"level": "info"}
    assert result.matrix[0].points == ((100.0, 3.0), (160.0, 5.0))
    assert result.matrix[1].points == ((160.0, math.inf),)
    assert loki.last("/loki/api/v1/query_range").params == {
        "query": "sum by (level) (x)",
        "start": "100000000000",
        "end": "160000000000",
        "step": "60",
        "direction": "backward",
    }


def test_log_query_returns_streams(loki: api.LokiApi, client: LokiClient) -> None:
    line = json.dumps({F.LEVEL: F.ERROR, F.MESSAGE: "boom"})
    loki.answers["/loki/api/v1/query_range"] = api.streams(
        ({"job": "alkana"}, [(1_800_000_000_000_000_001, line)])
    )
    result = client.query_range('{job="alkana"}', start=0, end=1, limit=50, direction="forward")
    assert result.result_type == "streams"
    assert result.streams[0].labels == {"job": "alkana"}
    assert result.streams[0].entries == ((1_800_000_000_000_000_001, line),)
    seen = loki.last("/loki/api/v1/query_range").params
    assert (seen["limit"], seen["direction"]) == ("50", "forward")


def test_scalar_answers_are_read() -> None:
    result = parse_result({"resultType": "scalar", "result": [1.5, "2"]})
    assert (result.result_type, result.scalar) == ("scalar", 2.0)


def test_results_convert_to_json_with_loki_spelling_of_special_values() -> None:
    result = parse_result({"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]})
    assert json.dumps(result.to_dict()) == (
        '{"result_type": "vector", "result": [{"labels": {}, "time": 1.0, "value": "NaN"}]}'
    )


@pytest.mark.parametrize(
    "data",
    [
        {"resultType": "vector", "result": [{"metric": {}, "value": [1]}]},
        {"resultType": "matrix", "result": [{"metric": {}}]},
        {"resultType": "vector"},
        {"resultType": "histogram", "result": []},
        None,
    ],
)
def test_answers_that_are_not_loki_forms_are_errors(data: object) -> None:
    with pytest.raises(LokiQueryError, match=r"cannot read Loki's answer"):
        parse_result(data)


# -- errors ---------------------------------------------------------------------------------------


def test_a_rejected_query_shows_lokis_plain_text_message(
    loki: api.LokiApi, client: LokiClient
) -> None:
    message = "parse error at line 1, col 8: syntax error: unexpected IDENTIFIER"
    loki.answers["/loki/api/v1/query"] = api.text_error(400, message + "\n")
    with pytest.raises(LokiRejectedError) as caught:
        client.query("sum(x")
    assert caught.value.status == 400
    assert caught.value.loki_message == message
    assert f"rejected the request (HTTP 400): {message}" in str(caught.value)


def test_a_rejected_query_shows_lokis_json_message(loki: api.LokiApi, client: LokiClient) -> None:
    loki.answers["/loki/api/v1/query"] = api.json_error(400, "max entries limit exceeded")
    with pytest.raises(LokiRejectedError, match=r"HTTP 400\): max entries limit exceeded$"):
        client.query("x")


def test_an_error_without_a_body_shows_the_reason(loki: api.LokiApi, client: LokiClient) -> None:
    loki.answers["/loki/api/v1/query"] = api.Answer(502, b"")
    with pytest.raises(LokiRejectedError, match=r"HTTP 502\): Bad Gateway"):
        client.query("x")


def test_a_success_status_with_no_json_is_an_error(loki: api.LokiApi, client: LokiClient) -> None:
    loki.answers["/loki/api/v1/query"] = api.Answer(200, b"<html>proxy</html>", "text/html")
    with pytest.raises(LokiQueryError, match=r"not JSON: '<html>proxy</html>'"):
        client.query("x")


def test_a_json_error_status_in_a_200_is_an_error(loki: api.LokiApi, client: LokiClient) -> None:
    body = json.dumps({"status": "error", "error": "query timed out"}).encode()
    loki.answers["/loki/api/v1/query"] = api.Answer(200, body)
    with pytest.raises(LokiQueryError, match=r"did not answer .* with success: query timed out"):
        client.query("x")


def test_an_unreachable_loki_is_named_with_the_reason() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now.
    with pytest.raises(
        LokiUnreachableError, match=rf"cannot reach Loki at http://127.0.0.1:{port}: "
    ):
        LokiClient(f"http://127.0.0.1:{port}", timeout=5).query("x")


def test_a_loki_that_does_not_answer_in_time_is_unreachable(loki: api.LokiApi) -> None:
    loki.answers["/loki/api/v1/query"] = api.Answer(200, b"{}", delay=1.0)
    with pytest.raises(LokiUnreachableError, match=r"no answer within 0.1 s"):
        LokiClient(loki.url, timeout=0.1).query("x")


def test_ready_and_labels(loki: api.LokiApi, client: LokiClient) -> None:
    assert client.ready() == "ready"
    assert client.labels() == ["app", "env", "job"]
    loki.answers["/ready"] = api.text_error(
        503, "Ingester not ready: waiting for 15s after being ready"
    )
    with pytest.raises(LokiRejectedError, match=r"HTTP 503\): Ingester not ready"):
        client.ready()


# -- identity -------------------------------------------------------------------------------------


def test_tenant_and_basic_auth_are_sent(loki: api.LokiApi) -> None:
    loki.answers["/loki/api/v1/query"] = api.vector()
    with LokiClient(loki.url, tenant="team-a", username="u", password="p:w") as c:
        c.query("x")
    headers = loki.last("/loki/api/v1/query").headers
    assert headers["X-Scope-OrgID"] == "team-a"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"u:p:w").decode()


def test_a_bearer_token_is_sent(loki: api.LokiApi) -> None:
    loki.answers["/loki/api/v1/query"] = api.vector()
    with LokiClient(loki.url, token="t0k") as c:
        c.query("x")
    headers = loki.last("/loki/api/v1/query").headers
    assert headers["Authorization"] == "Bearer t0k"
    assert "X-Scope-OrgID" not in headers


def test_from_settings_takes_url_tenant_and_credentials(loki: api.LokiApi) -> None:
    loki.answers["/loki/api/v1/query"] = api.vector()
    settings = Settings(loki_url=loki.url + "/loki/api/v1/push", loki_tenant="t", loki_token="k")
    with LokiClient.from_settings(settings) as c:
        assert c.url == loki.url
        c.query("x")
    headers = loki.last("/loki/api/v1/query").headers
    assert (headers["X-Scope-OrgID"], headers["Authorization"]) == ("t", "Bearer k")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"password": "p"}, ValueError, "password without a username"),
        ({"tenant": 7}, TypeError, "tenant: got 7; expected a string or None"),
        ({"username": "u", "token": "t"}, ValueError, "got both"),
        ({"url": 3100}, TypeError, "url: got 3100"),
    ],
)
def test_the_push_and_query_clients_refuse_the_same_identity_errors(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    # One endpoint (_http.LokiEndpoint) reads the URL and credentials for both clients: a
    # password without a user is no longer sent nowhere by the query client.
    url = kwargs.pop("url", "http://127.0.0.1:9")
    with pytest.raises(error, match=match):
        LokiClient(url, **kwargs)
    with pytest.raises(error, match=match):
        LokiSink(url, labels={"job": "j"}, **kwargs)


def test_the_push_and_query_clients_send_the_same_identity(loki: api.LokiApi) -> None:
    loki.answers["/loki/api/v1/query"] = api.vector()
    identity = {"tenant": "team-a", "username": "u", "password": "p:w"}
    with LokiClient(loki.url, **identity) as c:
        c.query("x")
    queried = loki.last("/loki/api/v1/query").headers
    sink = LokiSink(loki.url, labels={"job": "j"}, **identity)
    try:
        pushed = sink._new_session().headers
    finally:
        sink.close(timeout=0.1)
    for header in ("X-Scope-OrgID", "Accept-Encoding"):
        assert pushed[header] == queried[header], header
    assert sink.endpoint.auth == ("u", "p:w")
    assert queried["Authorization"] == "Basic " + base64.b64encode(b"u:p:w").decode()
    assert (sink.url, c.url) == (loki.url + "/loki/api/v1/push", loki.url)


def test_the_health_checks_loki_freshness_needs_no_ops_module_but_the_presets(
    loki: api.LokiApi,
) -> None:
    loki.answers["/loki/api/v1/query"] = api.vector()
    script = f"""
import asyncio, sys
from alkana_logging.healthcheck import HealthCheck, LokiFreshness
from alkana_logging.settings import load_settings
source = LokiFreshness.from_settings(load_settings({{"loki_url": {loki.url!r}}}, environ={{}}))
status, body = asyncio.run(HealthCheck(etl=source).detailed())
print(body["components"]["etl"]["status"])
print(sorted(m for m in sys.modules if m.startswith("alkana_logging.ops")))
"""
    result = run_child(script)
    assert result.returncode == 0, result.stderr
    status, modules = result.stdout.splitlines()
    assert status != "unhealthy"
    assert modules == "['alkana_logging.ops', 'alkana_logging.ops.presets']"
    assert any(seen.path == "/loki/api/v1/query" for seen in loki.seen)


def test_from_settings_without_a_url_says_how_to_give_one() -> None:
    with pytest.raises(LokiQueryError, match=r"no Loki URL: set LOKI_URL or pass --loki-url"):
        LokiClient.from_settings(Settings())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://loki:3100", "http://loki:3100"),
        ("http://loki:3100/", "http://loki:3100"),
        ("https://x.example/loki/api/v1/push", "https://x.example"),
        ("http://gw/tenant-a/loki/api/v1/push/", "http://gw/tenant-a"),
    ],
)
def test_base_url_accepts_a_push_url(url: str, expected: str) -> None:
    assert base_url(url) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "loki:3100"}, r"url: got 'loki:3100'; expected an http:// or https:// URL"),
        ({"url": "http://l", "timeout": 0}, r"timeout: got 0; expected a number of seconds > 0"),
        ({"url": "http://l", "token": "t", "username": "u"}, r"got both"),
    ],
)
def test_bad_client_options_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LokiClient(**kwargs)  # type: ignore[arg-type]


def test_range_end_before_start_is_rejected(client: LokiClient) -> None:
    with pytest.raises(ValueError, match=r"end: got 1, before start 2"):
        client.query_range("x", start=2, end=1)


# -- a real Loki (opt-in) -------------------------------------------------------------------------


def _real_loki() -> str:
    url = os.environ.get("LOKI_URL")
    if not url:
        pytest.skip(
            "LOKI_URL is not set: this test needs a real Loki "
            "(e.g. docker compose -f integrations/docker-compose.yml up)"
        )
    return url


@pytest.mark.loki
def test_every_preset_and_rule_runs_on_a_real_loki_and_error_ratio_is_right() -> None:
    url = _real_loki()
    job = f"alkana-test-{uuid.uuid4().hex[:8]}"
    now_ns = time.time_ns()
    lines = [
        json.dumps(
            {
                F.TIMESTAMP: "x",
                F.LEVEL: F.INFO,
                F.EVENT: F.EVENT_HTTP_REQUEST,
                F.ROUTE: "/items/{item_id}",
                F.STATUS_CODE: status,
                F.DURATION_MS: float(i + 1),
            }
        )
        for i, status in enumerate((200, 200, 200, 500))
    ]
    body = {
        "streams": [
            {
                "stream": {"job": job},
                "values": [[str(now_ns - 1000 + i), line] for i, line in enumerate(lines)],
            }
        ]
    }
    tenant = os.environ.get("LOKI_TENANT")
    headers = {"X-Scope-OrgID": tenant} if tenant else {}
    pushed = requests.post(
        base_url(url) + "/loki/api/v1/push", json=body, headers=headers, timeout=30
    )
    assert pushed.status_code == 204, pushed.text
    with LokiClient(url, tenant=tenant) as client:
        for preset in P.PRESETS:
            logql = preset.render(job=job)
            if preset.kind == "instant":
                client.query(logql)
            else:
                client.query_range(logql, start=time.time() - 600, end=time.time(), limit=10)
        for expr in ruler.rule_expressions(R.RenderOptions(job=job)).values():
            client.query(expr)
        # Ingestion is asynchronous: wait (not a timing assertion) for the lines to be queryable.
        result: QueryResult | None = None
        for _ in range(60):
            result = client.query(P.get("error_ratio").render(job=job))
            if result.vector:
                break
            time.sleep(0.5)
        assert result is not None
        assert [s.value for s in result.vector] == [0.25]


# -- a hostile server ---------------------------------------------------------------------------


def test_json_nested_beyond_the_stack_is_an_error_not_a_crash(
    loki: api.LokiApi, client: LokiClient
) -> None:
    depth = 200_000
    loki.answers["/loki/api/v1/query"] = api.Answer(200, b"[" * depth + b"]" * depth)
    with pytest.raises(LokiQueryError, match="nested too deep"):
        client.query("x")


def test_url_credentials_in_the_servers_error_text_are_masked(
    loki: api.LokiApi, client: LokiClient
) -> None:
    value = f"s3cr3t{uuid.uuid4().hex[:8]}"
    text = f"upstream http://alice:{value}@loki:3100/x?token={value} failed\x1b[2J"
    loki.answers["/loki/api/v1/query"] = api.text_error(502, text)
    with pytest.raises(LokiRejectedError) as caught:
        client.query("x")
    shown = str(caught.value)
    assert value not in shown
    assert "\x1b" not in shown
    assert "http://[REDACTED]@loki:3100/x?token=[REDACTED]" in shown
    body = json.dumps({"status": "error", "error": f"see https://h/?api_key={value}"}).encode()
    loki.answers["/loki/api/v1/query"] = api.Answer(200, body)
    with pytest.raises(LokiQueryError) as caught2:
        client.query("x")
    assert value not in str(caught2.value)


def test_metric_labels_from_the_server_reach_the_terminal_escaped(
    capsys: pytest.CaptureFixture[str], loki: api.LokiApi
) -> None:
    from alkana_logging.ops.cli import main

    hostile = "a\x1b]0;pwned\x07\r\nFORGED"
    loki.answers["/loki/api/v1/query"] = api.vector(({hostile: hostile}, "0.5"))
    assert main(["query", "error_ratio", "--loki-url", loki.url, "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\r" not in out
    assert "FORGED" in out  # escaped, not dropped
    assert not any(line.startswith("FORGED") for line in out.splitlines())


def _peak_of_a_refused_query(loki: api.LokiApi, body: bytes, cap: int, match: str) -> int:
    """The peak of memory traced while a client capped at ``cap`` refuses ``body``."""
    import tracemalloc

    loki.answers["/loki/api/v1/query"] = api.Answer(200, body)
    with LokiClient(loki.url, timeout=20, max_response_bytes=cap) as small:
        small.ready  # noqa: B018 - the session and its imports, before measuring
        tracemalloc.start()
        try:
            with pytest.raises(LokiQueryError, match=match):
                small.query("x")
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def test_an_oversize_answer_is_held_once_in_memory(loki: api.LokiApi) -> None:
    cap = 4 * 1024 * 1024
    peak = _peak_of_a_refused_query(loki, b"x" * (2 * cap), cap, "more than")
    # One buffer of the cap (and the last chunk); chunks joined at the end held it twice.
    assert peak < 1.5 * cap, peak


@pytest.mark.parametrize(
    "unit",
    [b"{},", b'["1","a"],', b'"ab",', b"1.5,"],
    ids=["empty objects", "stream values", "short strings", "numbers"],
)
def test_an_answer_of_many_small_values_is_refused_before_it_is_parsed(
    loki: api.LokiApi, unit: bytes
) -> None:
    cap = 4 * 1024 * 1024
    head = b'{"status":"success","data":{"resultType":"vector","result":['
    body = head + unit * ((cap - len(head) - 16) // len(unit)) + b"{}]}}"
    assert len(body) < cap  # under the byte cap: only the count stops it
    peak = _peak_of_a_refused_query(loki, body, cap, "JSON values")
    # The body once (and its read buffer); parsed, it would have been 20-30 times that.
    assert peak < 2.5 * cap, peak


def test_an_answer_with_a_value_per_32_bytes_is_read(loki: api.LokiApi) -> None:
    cap = 1024 * 1024
    result = [{"metric": {"route": f"/r{i:040d}"}, "value": [1, "0.5"]} for i in range(3000)]
    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
    assert len(body.encode()) < cap
    loki.answers["/loki/api/v1/query"] = api.Answer(200, body.encode())
    with LokiClient(loki.url, timeout=20, max_response_bytes=cap) as small:
        answer = small.query("x")
    assert len(answer.vector) == 3000
