"""The health endpoints: under a real uvicorn (tests/_health_app.py) with real log files, and
the parts (checks, caching, Loki as the freshness source) in-process."""

from __future__ import annotations

import asyncio
import decimal
import json
import math
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

import alkana_logging
from alkana_logging import _state
from alkana_logging import fields as F
from alkana_logging import healthcheck as H
from alkana_logging.freshness import iso
from alkana_logging.ops import presets as P
from alkana_logging.ops.query import LokiClient
from tests import _loki_api as loki_api
from tests._uvicorn_server import serve, wait_for

HOUR = 3600.0
APP = "tests._health_app:health_app"


def _finished(table: str, status: str, finished_at: float) -> None:
    level = F.INFO if status == F.STATUS_SUCCESS else F.ERROR
    _state.emit(
        level,
        "alkana.etl",
        f"etl run of {table} {status}",
        {
            F.EVENT: F.EVENT_ETL_RUN_FINISHED,
            F.TABLE: table,
            F.STATUS: status,
            F.FINISHED_AT: finished_at,
        },
    )


def write_etl_logs(directory: Path) -> Path:
    """An ETL script's log: a fresh table, one last loaded 30 h ago, one whose last run failed."""
    directory.mkdir(parents=True, exist_ok=True)
    alkana_logging.setup(log_file=str(directory / "etl.log"), stdout=False)
    now = time.time()
    with alkana_logging.etl_run("fresh_table", job="daily") as run:
        run.rows(1200)
    _finished("old_table", F.STATUS_SUCCESS, now - 30 * HOUR)
    _finished("failing_table", F.STATUS_SUCCESS, now - 2 * HOUR)
    with pytest.raises(RuntimeError), alkana_logging.etl_run("failing_table", job="daily"):
        raise RuntimeError("the source file is missing")
    alkana_logging.shutdown()
    return directory


def _get(url: str) -> tuple[int, dict[str, Any]]:
    response = requests.get(url, timeout=20)
    return response.status_code, response.json()


# -- under a real uvicorn -------------------------------------------------------------------------


@pytest.mark.slow
def test_health_is_cheap_and_detailed_reports_fresh_stale_and_failed_tables(
    tmp_path: Path,
) -> None:
    etl_dir = write_etl_logs(tmp_path / "etl-logs")
    log_file = tmp_path / "app.log"
    with serve(APP, log_file, env={"TEST_ETL_DIR": str(etl_dir)}) as server:
        code, live = _get(f"{server.base_url}/health")
        assert code == 200
        assert live["status"] == "healthy"
        assert set(live) == {"status", "timestamp"}
        assert abs(datetime.fromisoformat(live["timestamp"]).timestamp() - time.time()) < 60

        code, detailed = _get(f"{server.base_url}/health/detailed")
        # A stale and a failed table: degraded, which a load balancer still sends traffic to.
        assert code == 200
        assert detailed["status"] == "degraded"
        components = detailed["components"]
        assert components["logging"]["status"] == "healthy"
        assert components["checks"]["database"]["status"] == "healthy"
        assert components["checks"]["database"]["pool_size"] == 5
        etl = components["etl"]
        assert (etl["status"], etl["source"], etl["stale_after_hours"]) == ("degraded", "logs", 25)
        tables = etl["tables"]
        assert set(tables) == {"fresh_table", "old_table", "failing_table"}
        fresh, old, failing = (tables[t] for t in ("fresh_table", "old_table", "failing_table"))
        assert (fresh["status"], fresh["last_status"]) == ("healthy", "success")
        assert fresh["age_hours"] < 0.1
        assert old["status"] == "stale"
        assert 29.9 < old["age_hours"] < 30.2
        assert old["last_success"].endswith("Z")
        # Its latest run failed, although it last succeeded 2 h ago.
        assert (failing["status"], failing["last_status"]) == ("failed", "failed")
        assert 1.9 < failing["age_hours"] < 2.2

        code, _ = _get(f"{server.base_url}/work")
        assert code == 200
        records = wait_for(
            log_file, lambda r: r.get(F.EVENT) == F.EVENT_HTTP_REQUEST, count=3, timeout=10
        )
    levels = {r[F.PATH]: r[F.LEVEL] for r in records}
    assert levels == {"/health": "debug", "/health/detailed": "debug", "/work": "info"}
    assert {r[F.ROUTE] for r in records} == {"/health", "/health/detailed", "/work"}


@pytest.mark.slow
def test_a_failing_check_and_one_that_times_out_make_it_unhealthy_503(tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    env = {"TEST_HEALTH_MODE": "broken", "TEST_HEALTH_COUNTER": str(counter)}
    with serve(APP, tmp_path / "app.log", env=env) as server:
        started = time.monotonic()
        code, body = _get(f"{server.base_url}/health/detailed")
        elapsed = time.monotonic() - started
        assert code == 503
        assert body["status"] == "unhealthy"
        checks = body["components"]["checks"]
        assert checks["database"]["status"] == "unhealthy"
        assert checks["database"]["error"] == "ConnectionError: connection refused by db:5432"
        assert checks["cache"] == {
            "status": "unhealthy",
            "error": "timed out after 0.5 s",
            "duration_ms": checks["cache"]["duration_ms"],
        }
        # The answer came at the timeout, not when the hanging check ended (3 s).
        assert elapsed < 2.5
        assert "etl" not in body["components"]  # no ETL source configured
        # The next probe waits on the same hanging call instead of starting another one.
        code, body = _get(f"{server.base_url}/health/detailed")
        assert (code, body["components"]["checks"]["cache"]["status"]) == (503, "unhealthy")
        assert counter.read_text().splitlines() == ["started"]
        # /health stays cheap and alive.
        code, live = _get(f"{server.base_url}/health")
        assert (code, live["status"]) == (200, "healthy")


@pytest.mark.slow
def test_a_log_file_that_cannot_be_written_makes_logging_degraded(tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full does not exist on this system")
    log_file = tmp_path / "app.log"
    env = {"TEST_DEGRADED_CODE": "503"}  # the code of "degraded" is configurable
    with serve(APP, log_file, env=env) as server:
        code, body = _get(f"{server.base_url}/health/detailed")
        assert (code, body["components"]["logging"]["status"]) == (200, "healthy")
        # The file is replaced by one whose every write fails (ENOSPC); the sink reopens it
        # within a second of noticing.
        full = tmp_path / "full"
        full.symlink_to("/dev/full")
        full.replace(log_file)
        deadline = time.monotonic() + 15
        while True:
            requests.get(f"{server.base_url}/work", timeout=10)
            code, body = _get(f"{server.base_url}/health/detailed")
            if body["components"]["logging"]["status"] == "degraded" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        logging_part = body["components"]["logging"]
        assert logging_part["status"] == "degraded", logging_part
        assert logging_part["write_errors"] >= 1
        assert any(p.startswith("writes failing: ") for p in logging_part["problems"])
        assert "No space left on device" in logging_part["last_error"]
        assert (code, body["status"]) == (503, "degraded")
        assert _get(f"{server.base_url}/health")[0] == 200


@pytest.mark.slow
def test_detailed_answers_are_cached_for_cache_seconds(tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    env = {
        "TEST_HEALTH_MODE": "counted",
        "TEST_HEALTH_COUNTER": str(counter),
        "TEST_HEALTH_CACHE": "1.0",
    }
    with serve(APP, tmp_path / "app.log", env=env) as server:
        url = f"{server.base_url}/health/detailed"
        first = _get(url)[1]
        second = _get(url)[1]
        assert (first["cached"], second["cached"]) == (False, True)
        assert first["components"]["checks"]["counted"]["calls"] == 1
        assert second["components"]["checks"]["counted"]["calls"] == 1
        time.sleep(1.2)
        third = _get(url)[1]
        assert (third["cached"], third["components"]["checks"]["counted"]["calls"]) == (False, 2)
    assert counter.read_text().splitlines() == ["called", "called"]


# -- in-process -----------------------------------------------------------------------------------


def _detailed(health: H.HealthCheck) -> tuple[int, dict[str, Any]]:
    return asyncio.run(health.detailed())


def test_concurrent_probes_share_one_computation() -> None:
    calls = []

    async def slow() -> None:
        calls.append(1)
        await asyncio.sleep(0.2)

    health = H.HealthCheck(checks={"slow": slow}, etl=None, cache_seconds=0)

    async def probe_many() -> list[tuple[int, dict[str, Any]]]:
        return await asyncio.gather(*(health.detailed() for _ in range(20)))

    answers = asyncio.run(probe_many())
    assert calls == [1]
    assert {code for code, _ in answers} == {200}


@pytest.mark.parametrize(
    ("result", "status", "extra"),
    [
        (None, "healthy", {}),
        (True, "healthy", {}),
        ({"replicas": 2}, "healthy", {"replicas": 2}),
        ({"status": "degraded", "lag_s": 40}, "degraded", {"lag_s": 40}),
        (False, "unhealthy", {"error": "the check returned False"}),
    ],
)
def test_what_a_check_returns_decides_its_status(
    result: Any, status: str, extra: dict[str, Any]
) -> None:
    alkana_logging.setup(log_file="", stdout=True)
    health = H.HealthCheck(checks={"db": lambda: result}, etl=None)
    code, body = _detailed(health)
    check = body["components"]["checks"]["db"]
    assert check["status"] == status
    assert {k: v for k, v in check.items() if k not in ("status", "duration_ms")} == extra
    assert body["status"] == status
    assert code == (503 if status == "unhealthy" else 200)


def test_a_check_that_is_not_critical_only_degrades() -> None:
    alkana_logging.setup(log_file="", stdout=True)

    def fails() -> None:
        raise OSError("replica lag")

    health = H.HealthCheck(checks=[H.Check("replica", fails, critical=False)], etl=None)
    code, body = _detailed(health)
    assert (code, body["status"], body["components"]["checks"]["replica"]["status"]) == (
        200,
        "degraded",
        "degraded",
    )


def test_logging_not_set_up_is_degraded() -> None:
    code, body = _detailed(H.HealthCheck(etl=None))
    assert (code, body["components"]["logging"]) == (
        200,
        {"status": "degraded", "problems": ["logging is not set up"]},
    )


def test_dropped_lines_degrade_logging_until_the_next_look() -> None:
    alkana_logging.setup(log_file="", stdout=True)
    health = H.HealthCheck(etl=None, cache_seconds=0)
    assert _detailed(health)[1]["components"]["logging"]["status"] == "healthy"
    pipeline = _state.current()
    assert pipeline is not None
    pipeline.health.drop("loki_buffer_full", 7)
    logging_part = _detailed(health)[1]["components"]["logging"]
    assert logging_part["status"] == "degraded"
    assert logging_part["problems"] == ["7 line(s) dropped since the last check"]
    assert logging_part["dropped"] == {"loki_buffer_full": 7}
    assert _detailed(health)[1]["components"]["logging"]["status"] == "healthy"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"check_timeout": 0}, ValueError, r"check_timeout: expected a number of seconds > 0"),
        ({"cache_seconds": -1}, ValueError, r"cache_seconds"),
        ({"status_codes": {"sick": 500}}, ValueError, r"status_codes"),
        ({"status_codes": {"degraded": 99}}, ValueError, r"status_codes"),
        ({"path": "health"}, ValueError, r"path: expected a path starting with '/'"),
        ({"checks": [lambda: None]}, TypeError, r"checks: expected Check objects"),
        ({"checks": {"db": 42}}, TypeError, r"Check 'db': expected a callable"),
    ],
)
def test_bad_options_are_rejected(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        H.HealthCheck(**kwargs)


def test_etl_auto_reads_the_log_directory_or_loki(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOKI_URL", raising=False)
    alkana_logging.setup(log_file=str(tmp_path / "logs" / "app.log"), stdout=False)
    source = H._resolve_source("auto")
    assert isinstance(source, H.LogDirFreshness)
    assert source.paths == [tmp_path / "logs"]
    alkana_logging.shutdown()
    monkeypatch.setenv("LOKI_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LOKI_JOB", "etl-jobs")
    source = H._resolve_source("auto")
    assert isinstance(source, H.LokiFreshness)
    assert source.labels == {"job": "etl-jobs"}


def test_freshness_from_loki_comes_from_the_presets() -> None:
    now = time.time()
    labels = {"job": "alkana"}
    with loki_api.running() as api:
        api.by_query[P.get("etl_last_success").render(labels, range="7d")] = loki_api.vector(
            ({"table": "fresh_table"}, str(now - 1 * HOUR)),
            ({"table": "old_table"}, str(now - 30 * HOUR)),
            ({"table": "failing_table"}, str(now - 2 * HOUR)),
        )
        api.by_query[P.get("etl_stale").render(labels, range="7d", stale_after="90000s")] = (
            loki_api.vector(
                ({"table": "old_table"}, str(now - 30 * HOUR)),
                ({"table": "never_succeeded"}, "0"),
            )
        )
        api.by_query[P.get("etl_failing").render(labels, range="7d")] = loki_api.vector(
            ({"table": "failing_table"}, str(now - 0.5 * HOUR)),
        )
        client = LokiClient(api.url, timeout=5)
        health = H.HealthCheck(etl=H.LokiFreshness(client), checks={}, clock=lambda: now)
        _, body = _detailed(health)
        queries = [seen.params["query"] for seen in api.seen if seen.path.endswith("/query")]
    etl = body["components"]["etl"]
    assert (etl["source"], etl["status"]) == ("loki", "degraded")
    statuses = {table: t["status"] for table, t in etl["tables"].items()}
    assert statuses == {
        "fresh_table": "healthy",
        "old_table": "stale",
        "failing_table": "failed",
        "never_succeeded": "stale",
    }
    assert etl["tables"]["never_succeeded"]["last_success"] is None
    assert etl["tables"]["old_table"]["age_hours"] == 30.0
    assert len(queries) == 3
    assert all(query in api.by_query for query in queries)


def test_loki_that_cannot_be_reached_degrades_etl_with_the_reason() -> None:
    alkana_logging.setup(log_file="", stdout=True)
    with loki_api.running() as api:
        url = api.url
    health = H.HealthCheck(etl=H.LokiFreshness(LokiClient(url, timeout=1)))
    code, body = _detailed(health)
    etl = body["components"]["etl"]
    assert (code, etl["status"]) == (200, "degraded")
    assert etl["error"].startswith("LokiUnreachableError: cannot reach Loki")


def test_starlette_routes_answer_get_and_head(tmp_path: Path) -> None:
    import httpx
    from starlette.applications import Starlette

    alkana_logging.setup(log_file="", stdout=True)
    etl_dir = write_etl_logs(tmp_path / "etl")
    alkana_logging.setup(log_file="", stdout=True)
    health = H.HealthCheck(etl=etl_dir, checks={"db": lambda: None})
    app = Starlette(routes=health.routes())

    async def probe() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [
                await client.get("/health"),
                await client.head("/health"),
                await client.get("/health/detailed"),
            ]

    live, head, detailed = asyncio.run(probe())
    assert (live.status_code, live.json()["status"], head.status_code) == (200, "healthy", 200)
    assert live.headers["cache-control"] == "no-store"
    assert detailed.status_code == 200
    body = detailed.json()
    assert body["status"] == "degraded"
    assert set(body["components"]["etl"]["tables"]) == {"fresh_table", "old_table", "failing_table"}
    assert health.paths == ("/health", "/health/detailed")


# -- the example backend --------------------------------------------------------------------------


@pytest.mark.slow
def test_example_backend_health_after_the_example_etl_and_the_compose_probe(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    import yaml

    from tests._uvicorn_server import EXAMPLES, REPO

    log_file = tmp_path / "logs" / "app.log"
    env = {**os.environ, "LOG_FILE": str(log_file), "LOG_STDOUT": "false"}
    etl = subprocess.run(
        [sys.executable, str(EXAMPLES / "etl_job.py")], env=env, timeout=120, check=False
    )
    assert etl.returncode == 1  # one table fails, on purpose
    with serve("backend:app", log_file, factory=False, app_dir=EXAMPLES) as server:
        code, body = _get(f"{server.base_url}/health/detailed")
        compose = yaml.safe_load((REPO / "integrations/docker-compose.yml").read_text())
        probe = compose["services"]["app"]["healthcheck"]["test"]
        probed = subprocess.run(
            [sys.executable, probe[2], probe[3].replace(":8000/", f":{server.port}/")],
            timeout=30,
            check=False,
        )
    assert probed.returncode == 0
    assert (code, body["status"]) == (200, "degraded")
    tables = body["components"]["etl"]["tables"]
    assert {name: t["status"] for name, t in tables.items()} == {
        "raw_mara": "healthy",
        "raw_mb51": "healthy",
        "raw_mb52": "healthy",
        "raw_prices": "failed",
    }
    assert body["components"]["checks"]["database"] == {
        "status": "healthy",
        "items": 7,
        "duration_ms": body["components"]["checks"]["database"]["duration_ms"],
    }


def test_the_middleware_logs_the_health_routes_at_debug_by_default() -> None:
    from alkana_logging.middleware import DEFAULT_DEBUG_PATHS

    assert H.HealthCheck(etl=None).paths == DEFAULT_DEBUG_PATHS


def test_loki_that_refuses_the_push_degrades_logging(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    alkana_logging.setup(
        log_file=str(tmp_path / "app.log"),
        stdout=False,
        loki_url=f"http://127.0.0.1:{port}",
        loki_batch_wait=0.05,
        loki_flush_timeout=0.5,
    )
    log = alkana_logging.get_logger("tests.health")
    deadline = time.monotonic() + 15
    while alkana_logging.pipeline_health().get("loki_last_error") is None:
        log.info("a line for Loki")
        assert time.monotonic() < deadline, alkana_logging.pipeline_health()
        time.sleep(0.05)
    log.info("waiting in the buffer")
    code, body = _detailed(H.HealthCheck(etl=None))
    logging_part = body["components"]["logging"]
    assert (code, logging_part["status"]) == (200, "degraded")
    assert any(p.startswith("Loki unreachable: ") for p in logging_part["problems"])
    assert logging_part["loki_buffer_lines"] >= 1


# -- hostile checks and hostile ETL lines ---------------------------------------------------------


def test_checks_raising_systemexit_keyboardinterrupt_cancellederror_fail_only_themselves(
    tmp_path: Path,
) -> None:
    # Under a real uvicorn: a BaseException from a check reached the event loop and stopped the
    # server (SystemExit, KeyboardInterrupt), or gave a 500 (CancelledError).
    with serve(APP, tmp_path / "app.log", env={"TEST_HEALTH_MODE": "fatal"}) as server:
        for _ in range(2):
            code, body = _get(f"{server.base_url}/health/detailed")
            assert (code, body["status"]) == (503, "unhealthy")
            checks = body["components"]["checks"]
            assert {name: c["status"] for name, c in checks.items()} == {
                "exits": "unhealthy",
                "interrupted": "unhealthy",
                "cancelled": "unhealthy",
            }
            assert checks["exits"]["error"] == "SystemExit: 3"
            assert checks["interrupted"]["error"] == "KeyboardInterrupt"
            assert checks["cancelled"]["error"] == "CancelledError"
            assert _get(f"{server.base_url}/work")[0] == 200
        assert server.process.poll() is None


def test_an_async_check_that_blocks_the_loop_past_its_timeout_fails() -> None:
    alkana_logging.setup(log_file="", stdout=True)

    async def blocking() -> None:
        time.sleep(0.3)  # a sync driver called from async code: wait_for cannot fire

    health = H.HealthCheck(checks=[H.Check("db", blocking, timeout=0.1)], etl=None)
    code, body = _detailed(health)
    check = body["components"]["checks"]["db"]
    assert (code, check["status"]) == (503, "unhealthy")
    # Python 3.11's wait_for() hands back the late result (the check says how late it was);
    # 3.12's (asyncio.timeout) raises TimeoutError once the blocking call returns.
    error = check["error"]
    late = error.startswith("took 0.3") and error.endswith("s, over its timeout 0.1 s")
    assert late or error == "timed out after 0.1 s", error


class _Odd:
    def __str__(self) -> str:
        return "odd object"


class _Exits:
    """str() ends the program: on the event loop, it would end the server."""

    def __str__(self) -> str:
        raise SystemExit(3)


@pytest.mark.parametrize(
    ("result", "critical", "status", "details"),
    [
        (
            {"db_time": datetime(2026, 12, 1, 12, 0), "version": decimal.Decimal("15.4")},
            True,
            "healthy",
            {"db_time": "2026-12-01 12:00:00", "version": "15.4"},
        ),
        ({"lag_s": math.nan, "rows": [1, {2, 3}], "x": _Odd()}, True, "healthy", None),
        ({"status": ["ok"]}, True, "unhealthy", None),
        ({"status": "unhealthy"}, False, "degraded", {}),
        ({"status": "unhealthy"}, True, "unhealthy", {}),
        ({"duration_ms": "forged", "status": "degraded"}, True, "degraded", {}),
        ("degraded", True, "degraded", {}),
        ("unhealthy", False, "degraded", {}),
        (0, True, "unhealthy", None),
        ("DOWN", True, "unhealthy", None),
        ([], True, "unhealthy", None),
        ([], False, "degraded", None),
        ({"conn": _Exits()}, True, "healthy", {"conn": "<unprintable _Exits>"}),
        ({"n": 10**5000}, True, "healthy", {"n": "<unprintable int>"}),
        ({"n": 2**70}, True, "healthy", {"n": str(2**70)}),
        ({"e": "x" * 5000}, True, "healthy", {"e": "x" * 2000 + "... [3000 more characters]"}),
    ],
)
def test_odd_check_results_are_plain_json_with_a_defined_status(
    result: Any, critical: bool, status: str, details: dict[str, Any] | None
) -> None:
    import httpx
    from starlette.applications import Starlette

    alkana_logging.setup(log_file="", stdout=True)
    health = H.HealthCheck(checks=[H.Check("db", lambda: result, critical=critical)], etl=None)
    app = Starlette(routes=health.routes())

    async def probe() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.get("/health/detailed") for _ in range(2)]

    for response in asyncio.run(probe()):  # the second is the cached answer
        assert response.status_code == (503 if status == "unhealthy" else 200)
        check = response.json()["components"]["checks"]["db"]
        assert check["status"] == status
        assert isinstance(check["duration_ms"], float)
        shown = {k: v for k, v in check.items() if k not in ("status", "duration_ms")}
        if details is not None:
            assert shown == details
        if status != "healthy" and details is None:
            assert "the check returned" in check["error"]
    if isinstance(result, dict) and "lag_s" in result:
        assert shown == {"lag_s": None, "rows": [1, [2, 3]], "x": "odd object"}


def _etl_line(table: str, status: str, at: float, **extra: Any) -> str:
    return (
        json.dumps(
            {
                F.TIMESTAMP: iso(at),
                F.LEVEL: F.INFO,
                F.EVENT: F.EVENT_ETL_RUN_FINISHED,
                F.TABLE: table,
                F.STATUS: status,
                F.FINISHED_AT: at,
                **extra,
            }
        )
        + "\n"
    )


def test_implausible_finished_at_degrades_etl_instead_of_a_500(tmp_path: Path) -> None:
    alkana_logging.setup(log_file="", stdout=True)
    now = time.time()
    (tmp_path / "app.log").write_text(
        _etl_line("orders", F.STATUS_SUCCESS, now - HOUR)
        # milliseconds (a foreign job writing the same schema)
        + _etl_line("events", F.STATUS_SUCCESS, now - 60, finished_at=int(now * 1000))
        # a success from a clock a year ahead, then the real latest run, which failed
        + _etl_line("stock", F.STATUS_SUCCESS, now - 120, finished_at=now + 3e7)
        + _etl_line("stock", F.STATUS_FAILED, now - 60)
    )
    code, body = _detailed(H.HealthCheck(etl=tmp_path))
    etl = body["components"]["etl"]
    assert code == 200
    assert etl["tables"]["orders"]["status"] == "healthy"
    assert etl["tables"]["events"]["implausible_times"] == 1
    assert etl["tables"]["events"]["status"] == "healthy"  # its line's own time is used
    assert etl["tables"]["stock"]["status"] == "failed"
    assert etl["tables"]["stock"]["implausible_times"] == 1
    assert etl["status"] == "degraded"
    assert any("2 run(s) with an implausible time" in p for p in etl["problems"])


def test_loki_freshness_with_an_implausible_last_success_is_not_a_crash() -> None:
    class Source:
        name = "custom"

        def tables(self, now: float, stale_after_s: float) -> list[H.TableFreshness]:
            return [H.TableFreshness("t", "healthy", now * 1000, now * 1e6, "success")]

    alkana_logging.setup(log_file="", stdout=True)
    code, body = _detailed(H.HealthCheck(etl=Source()))
    assert code == 200
    assert body["components"]["etl"]["tables"]["t"]["last_success"] is None


def test_an_unreadable_log_file_degrades_etl_and_names_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    now = time.time()
    (tmp_path / "app.log").write_text(_etl_line("orders", F.STATUS_SUCCESS, now - HOUR))
    rotated = tmp_path / "app.log.1"
    rotated.write_text(_etl_line("orders", F.STATUS_FAILED, now - 60))
    rotated.chmod(0)
    probe = (
        "import asyncio, json, sys\n"
        "from alkana_logging.healthcheck import HealthCheck\n"
        "code, body = asyncio.run(HealthCheck(etl=sys.argv[1]).detailed())\n"
        "print(json.dumps(body['components']['etl']))\n"
    )
    command = [sys.executable, "-c", probe, str(tmp_path)]
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that let it
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    env = {**os.environ, "LOG_FILE": "", "LOG_STDOUT": "false"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=True)
    etl = json.loads(done.stdout)
    assert etl["status"] == "degraded"
    assert len(etl["unreadable"]) == 1
    assert "app.log.1" in etl["unreadable"][0]
    assert "Permission denied" in etl["unreadable"][0]
    assert "1 log file(s) could not be read" in etl["problems"][0]
    # And the report says so too.
    report = subprocess.run(
        [*command[:-4], sys.executable, "-m", "alkana_logging", "report", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    assert "Permission denied" in json.loads(report.stdout)["unreadable"][0]


@pytest.mark.slow
def test_failing_probes_are_logged_at_debug_and_count_in_no_error_alert(tmp_path: Path) -> None:
    from alkana_logging.ops.report import build_report

    log_file = tmp_path / "app.log"
    env = {"TEST_HEALTH_MODE": "broken", "TEST_HEALTH_COUNTER": str(tmp_path / "calls")}
    with serve(APP, log_file, env=env) as server:
        for _ in range(3):
            assert _get(f"{server.base_url}/health/detailed")[0] == 503
        assert _get(f"{server.base_url}/work")[0] == 200
        records = wait_for(
            log_file, lambda r: r.get(F.EVENT) == F.EVENT_HTTP_REQUEST, count=4, timeout=10
        )
    probes = [r for r in records if r[F.PATH] == "/health/detailed"]
    assert [(r[F.STATUS_CODE], r[F.LEVEL]) for r in probes] == [(503, "debug")] * 3
    # At LOG_LEVEL=info (production) they are not written: no 5xx in the error ratio, no
    # error lines for ErrorLogSpike; the request after them is.
    info_log = tmp_path / "info" / "app.log"
    info_log.parent.mkdir()
    with serve(APP, info_log, env={**env, "LOG_LEVEL": "INFO"}) as server:
        for _ in range(3):
            assert _get(f"{server.base_url}/health/detailed")[0] == 503
        assert _get(f"{server.base_url}/work")[0] == 200
        wait_for(info_log, lambda r: r.get(F.PATH) == "/work", timeout=10)
    report = build_report([info_log])
    assert (report.requests, report.errors) == (1, 0)
    assert "error" not in report.levels
