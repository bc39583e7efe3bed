from __future__ import annotations

import gzip
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import alkana_logging
from alkana_logging import _state
from alkana_logging import fields as F
from alkana_logging import freshness as Fresh
from alkana_logging.ops import presets as P
from alkana_logging.ops import report as Rep
from alkana_logging.ops.cli import main

NOW = 1_800_000_000.0
HOUR = 3600.0

# The known workload: what the generated files hold, and so what the report must find.
ITEMS = "/items/{item_id}"
HEALTH = "/health"
ODD = "/odd"
ITEM_DURATIONS = [float(ms) for ms in range(1, 101)]  # 1..100 ms
ITEM_ERRORS = {10: 500, 20: 500, 30: 502, 40: 503, 50: 500, 60: 500, 70: 599}  # by duration
HEALTH_DURATIONS = [2500.0] * 10  # all slow
NON_JSON_LINES = [b"Traceback (most recent call last):\n", b"  oops\n", b"[1, 2]\n", b"42\n"]


def _request(route: str, status: Any, duration: Any) -> None:
    _state.emit(
        F.INFO,
        "alkana.http",
        f"GET {route}",
        {
            F.EVENT: F.EVENT_HTTP_REQUEST,
            F.ROUTE: route,
            F.STATUS_CODE: status,
            F.DURATION_MS: duration,
        },
    )


def _etl(event: str, table: str, level: str = F.INFO, **fields: Any) -> None:
    _state.emit(level, "alkana.etl", event, {F.EVENT: event, F.TABLE: table, **fields})


def _finished(table: str, status: str, finished_at: float) -> None:
    level = F.INFO if status == F.STATUS_SUCCESS else F.ERROR
    _etl(
        F.EVENT_ETL_RUN_FINISHED,
        table,
        level,
        **{F.STATUS: status, F.FINISHED_AT: finished_at, F.DURATION_MS: 1234.5, F.ROWS: 10},
    )


def make_workload(directory: Path) -> Path:
    """Write the known workload with the library itself: rotated, gzipped and dateext files."""
    app_log = directory / "app.log"
    alkana_logging.setup(
        log_file=str(app_log), stdout=False, level="DEBUG", max_bytes=8000, backup_count=100
    )
    for duration in ITEM_DURATIONS:
        _request(ITEMS, ITEM_ERRORS.get(int(duration), 200), duration)
    for duration in HEALTH_DURATIONS:
        _request(HEALTH, 200, duration)
    # A hostile line: neither the status nor the duration is a number.
    _request(ODD, "oops", "fast")
    log = logging.getLogger("app.worker")
    for _ in range(3):
        try:
            raise ValueError("bad value")
        except ValueError:
            log.exception("failed")
    try:
        raise KeyError("k")
    except KeyError:
        log.critical("gone", exc_info=True)
    log.warning("careful")
    log.warning("careful again")
    log.debug("noise")
    alkana_logging.shutdown()

    etl_log = directory / "etl.log"
    alkana_logging.setup(log_file=str(etl_log), stdout=False, level="DEBUG")
    _etl(F.EVENT_ETL_RUN_STARTED, "raw_mb51")
    _finished("raw_mb51", F.STATUS_SUCCESS, NOW - 1 * HOUR)
    _etl(F.EVENT_ETL_RUN_STARTED, "raw_mb51")
    _finished("raw_mb51", F.STATUS_FAILED, NOW - 0.5 * HOUR)
    _etl(F.EVENT_ETL_RUN_STARTED, "mv_stock")
    _finished("mv_stock", F.STATUS_SUCCESS, NOW - 30 * HOUR)
    _etl(F.EVENT_ETL_RUN_STARTED, "hung_table")
    alkana_logging.shutdown()
    # As logrotate leaves it: a dateext name, uncompressed (delaycompress).
    etl_log.rename(directory / "etl.log-20270115-1800000000")

    with app_log.open("ab") as stream:
        stream.writelines(NON_JSON_LINES)
    # One rotated file compressed, as logrotate's compress leaves it.
    rotated = directory / "app.log.2"
    assert rotated.exists(), "the workload is meant to rotate at least twice"
    with gzip.open(directory / "app.log.2.gz", "wb") as packed:
        packed.write(rotated.read_bytes())
    rotated.unlink()
    # Files the report must skip: the rotation lock and a file that is not a log.
    (directory / "app.log.lock").write_bytes(b'{"event": "http_request"}\n')
    (directory / "notes.txt").write_bytes(b'{"event": "http_request"}\n')
    return directory


@pytest.fixture
def workload(tmp_path: Path) -> Path:
    return make_workload(tmp_path)


# -- Loki's quantile ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "values", "expected"),
    [
        (0.5, [1.0, 2.0, 3.0, 4.0], 2.5),
        (0.95, [4.0, 1.0, 3.0, 2.0], 3.85),  # rank 2.85: 3 + 0.85 * (4 - 3); order does not matter
        (0.99, [float(v) for v in range(1, 101)], 99.01),
        (0.0, [5.0, 7.0], 5.0),
        (1.0, [5.0, 7.0], 7.0),
        (0.95, [42.0], 42.0),
    ],
)
def test_loki_quantile_interpolates_at_rank_q_times_n_minus_one(
    q: float, values: list[float], expected: float
) -> None:
    assert Rep.loki_quantile(q, values) == pytest.approx(expected, rel=1e-12)


def test_loki_quantile_of_nothing_is_none() -> None:
    assert Rep.loki_quantile(0.5, []) is None


# -- files ----------------------------------------------------------------------------------------


def test_directories_give_current_rotated_and_compressed_logs_only(workload: Path) -> None:
    names = sorted(p.name for p in Fresh.log_files([workload]))
    assert "app.log" in names
    assert "app.log.1" in names
    assert "app.log.2.gz" in names
    assert "etl.log-20270115-1800000000" in names
    assert "app.log.lock" not in names
    assert "notes.txt" not in names


def test_a_file_named_explicitly_is_read_whatever_its_name(workload: Path) -> None:
    assert Fresh.log_files([workload / "notes.txt"]) == [(workload / "notes.txt").resolve()]


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(Fresh.ReportError, match=r"nope: no such file or directory"):
        Rep.build_report([tmp_path / "nope"])


# -- the numbers ----------------------------------------------------------------------------------


def test_http_numbers_are_exactly_those_of_the_workload(workload: Path) -> None:
    report = Rep.build_report([workload], now=NOW)
    assert report.requests == 111
    assert report.errors == 7
    assert report.error_ratio == 7 / 111
    # All 110 numeric durations: 1..100 and ten times 2500.
    # p50: rank 54.5 -> 55.5; p95: rank 103.55 and p99: rank 107.91 -> both 2500.
    assert report.latency_ms == {"p50": 55.5, "p95": 2500.0, "p99": 2500.0}
    assert report.slow_requests == 10
    by_route = {r.route: r for r in report.routes}
    assert [r.route for r in report.routes] == [ITEMS, HEALTH, ODD]
    items = by_route[ITEMS]
    assert (items.requests, items.errors, items.slow) == (100, 7, 0)
    assert items.error_ratio == 0.07
    assert items.p50_ms == pytest.approx(50.5, rel=1e-12)
    assert items.p95_ms == pytest.approx(95.05, rel=1e-12)
    assert items.p99_ms == pytest.approx(99.01, rel=1e-12)
    health = by_route[HEALTH]
    assert (health.requests, health.errors, health.slow, health.p95_ms) == (10, 0, 10, 2500.0)
    odd = by_route[ODD]
    assert (odd.requests, odd.errors, odd.p50_ms) == (1, 0, None)


def test_slow_threshold_is_a_parameter(workload: Path) -> None:
    report = Rep.build_report([workload], now=NOW, slow_ms=90)
    assert report.slow_requests == 10 + 10  # 91..100 ms and the ten health checks


def test_levels_exceptions_and_non_json_lines(workload: Path) -> None:
    report = Rep.build_report([workload], now=NOW)
    # info: 111 requests + 4 runs started + 2 successful runs; error: 3 exceptions + 1 failed run.
    assert report.levels == {"debug": 1, "info": 117, "warning": 2, "error": 4, "critical": 1}
    assert report.top_exceptions == (("ValueError", 3), ("KeyError", 1))
    assert report.non_json_lines == len(NON_JSON_LINES)
    assert report.lines == 117 + 1 + 2 + 4 + 1 + len(NON_JSON_LINES)
    assert report.unreadable == ()


_HTTP = b'"level": "info", "event": "http_request", "route": "/r", "status_code": 200'


@pytest.mark.parametrize(
    ("raw", "lines", "non_json"),
    [
        # Not UTF-8 in a key the report skips: not JSON, as in a key it reads.
        (b'{"level": "info", "message": "caf\xe9"}\n', 1, 1),
        (b'{"level": "caf\xe9"}\n', 1, 1),
        (b'{"level": "info", "message": "caf\xc3\xa9"}\n', 1, 0),
        # Two objects on a line, one object over two lines: each line is read by itself.
        (b'{"level": "info"}{"level": "info"}\n', 1, 1),
        (b'{"level":\n "info"}\n', 2, 2),
        (b'{"level": "info"} x\n', 1, 1),
        (b'["level", "info"]\n"info"\nnull\n', 3, 3),
        (b'{"x": NaN}\n{"x": "\\ud800"}\n', 2, 2),
        (b"\n  \r\n\t\n", 0, 0),
        # An escaped key is the key; of a key twice, the last.
        (b'{"lev\\u0065l": "info"}\n{"level": 1, "level": "info"}\n', 2, 0),
        # An integer beyond a float's range where a number is read: not a number.
        (b"{" + _HTTP + b', "duration_ms": 1' + b"0" * 400 + b"}\n", 1, 0),
        (b"{" + _HTTP + b', "status_code": 1' + b"0" * 400 + b', "duration_ms": 5}\n', 1, 0),
    ],
)
def test_each_line_is_read_as_the_json_object_it_holds(
    tmp_path: Path, raw: bytes, lines: int, non_json: int
) -> None:
    (tmp_path / "app.log").write_bytes(raw)
    report = Rep.build_report([tmp_path], now=NOW)
    assert (lines, non_json) == (report.lines, report.non_json_lines)
    assert report.levels == ({"info": lines - non_json} if lines > non_json else {})


@pytest.mark.parametrize("unhashable", [False, True])
def test_a_level_that_is_not_text_is_not_counted_whatever_its_type(
    tmp_path: Path, unhashable: bool
) -> None:
    levels = ["info", "", None, 1, 1.5, True, "warning", "info", "1", "True"]
    if unhashable:  # a list or an object as the level: counted apart, the others as usual
        levels += [["info"], {"info": 1}]
    text = "".join(json.dumps({"level": level}) + "\n" for level in levels)
    (tmp_path / "app.log").write_text(text + '{"message": "no level"}\n')
    report = Rep.build_report([tmp_path], now=NOW)
    assert report.levels == {"info": 2, "warning": 1, "1": 1, "True": 1}
    assert (report.lines, report.non_json_lines) == (len(levels) + 1, 0)


def test_the_keys_decoded_from_every_line_are_the_contracts() -> None:
    expected = (F.LEVEL, F.EXCEPTION_TYPE, F.EVENT, F.ROUTE, F.STATUS_CODE, F.DURATION_MS)
    assert expected == Rep._Line.__struct_fields__


def test_a_number_out_of_a_floats_range_is_left_out_of_the_numbers(tmp_path: Path) -> None:
    huge = "1" + "0" * 400
    (tmp_path / "app.log").write_bytes(
        b"".join(
            [
                b"{" + _HTTP + b', "duration_ms": ' + huge.encode() + b"}\n",
                b"{" + _HTTP + b', "status_code": ' + huge.encode() + b', "duration_ms": 7}\n',
                b'{"event": "metric", "metric": "m", "value": ' + huge.encode() + b"}\n",
                b'{"event": "etl_run_finished", "table": "t", "status": "success", '
                b'"finished_at": ' + huge.encode() + b"}\n",
            ]
        )
    )
    report = Rep.build_report([tmp_path], now=NOW)
    (route,) = report.routes
    assert (route.requests, route.errors, route.p50_ms) == (2, 0, 7.0)
    assert report.metrics == ()
    ((table),) = report.etl
    assert (table.runs, table.last_run_at) == (1, None)


def test_a_float_beyond_range_in_a_key_the_report_reads_is_not_a_number(tmp_path: Path) -> None:
    """1e400 (JSON, beyond a float's range) where a number is read: the line is a JSON line
    whose value is not a number, as for the ETL runs; in the level, it is not a level."""
    (tmp_path / "app.log").write_bytes(
        b"".join(
            [
                b"{" + _HTTP + b', "duration_ms": 1e400}\n',
                b"{" + _HTTP + b', "status_code": 1e400, "duration_ms": 4}\n',
                b"{" + _HTTP + b', "duration_ms": 6, "level": 1e400}\n',
                b"{" + _HTTP + b', "duration_ms": 8, "other": -1e400}\n',
            ]
        )
    )
    report = Rep.build_report([tmp_path], now=NOW)
    assert (report.lines, report.non_json_lines, report.requests) == (4, 0, 4)
    (route,) = report.routes
    assert (route.errors, route.p50_ms) == (0, 6.0)


def test_a_writer_whose_last_sample_is_at_the_epoch_is_a_silent_writer(tmp_path: Path) -> None:
    def sample(value: int, stamp: str, host: str) -> bytes:
        return json.dumps(
            {"event": "metric", "metric": P.DB_CONNECTIONS_METRIC, "value": value,
             "timestamp": stamp, "host": host, "pid": 1}
        ).encode() + b"\n"  # fmt: skip

    (tmp_path / "app.log").write_bytes(
        sample(99, "1970-01-01T00:00:00.000Z", "old") + sample(3, "2023-11-14T22:13:20.000Z", "new")
    )
    (metric,) = Rep.build_report([tmp_path], now=1.7e9).metrics
    assert (metric.latest, metric.writers, metric.above_threshold) == (3, 1, False)


def test_a_zero_duration_is_0_0_in_the_quantiles_whichever_sign_it_was_written_with() -> None:
    from array import array

    for values in ([0.0, -0.0], [-0.0, 0.0], [-0.0]):
        assert str(Rep.loki_quantile(0.5, values)) == "0.0"
        runs = [array("d", [v]) for v in values]
        assert {str(v) for v in Rep._run_quantiles(runs).values()} == {"0.0"}


def test_a_float_beyond_range_in_a_key_the_report_skips_does_not_stop_it(tmp_path: Path) -> None:
    # 1e400 in a key the first decode skips: the ETL run and the metric line are decoded again
    # whole, where msgspec refuses it; the report reads them with the stdlib's json instead.
    (tmp_path / "app.log").write_bytes(
        (
            b'{"event": "etl_run_finished", "table": "t", "status": "success", "rows": 1e400, '
            b'"finished_at": %d}\n'
        )
        % (NOW - 60)
        + b'{"event": "etl_run_started", "table": "t", "note": -1e400}\n'
        b'{"event": "metric", "metric": "m", "value": 3, "other": 1e400}\n'
        b'{"level": "info", "message": "ok"}\n'
    )
    for workers in (1, 2):
        report = Rep.build_report([tmp_path], now=NOW, workers=workers)
        assert (report.lines, report.non_json_lines) == (4, 0)
        ((table),) = report.etl
        assert (table.table, table.runs, table.started) == ("t", 1, 1)
        assert (table.last_status, table.last_success_at) == (F.STATUS_SUCCESS, NOW - 60)
        ((metric),) = report.metrics
        assert (metric.metric, metric.latest) == ("m", 3.0)


def test_etl_tables_runs_failures_last_status_and_staleness(workload: Path) -> None:
    report = Rep.build_report([workload], now=NOW)
    tables = {t.table: t for t in report.etl}
    assert sorted(tables) == ["hung_table", "mv_stock", "raw_mb51"]
    raw = tables["raw_mb51"]
    assert (raw.runs, raw.failures, raw.started) == (2, 1, 2)
    assert raw.last_status == F.STATUS_FAILED
    assert raw.last_run_at == NOW - 0.5 * HOUR
    assert raw.last_success_at == NOW - 1 * HOUR
    assert raw.last_success_age_s == 1 * HOUR
    assert raw.stale is False
    stock = tables["mv_stock"]
    assert (stock.runs, stock.failures, stock.last_status) == (1, 0, F.STATUS_SUCCESS)
    assert stock.last_success_age_s == 30 * HOUR
    assert stock.stale is True
    hung = tables["hung_table"]
    assert (hung.runs, hung.started, hung.last_status, hung.last_success_at) == (0, 1, None, None)
    assert hung.stale is True


def test_stale_is_measured_from_now_and_stale_after(workload: Path) -> None:
    report = Rep.build_report([workload], now=NOW - 6 * HOUR, stale_after_s=25 * HOUR)
    assert {t.table: t.stale for t in report.etl}["mv_stock"] is False  # 24 h old then
    report = Rep.build_report([workload], now=NOW, stale_after_s=31 * HOUR)
    assert {t.table: t.stale for t in report.etl}["mv_stock"] is False


def test_a_truncated_gzip_file_is_reported_and_the_rest_counted(tmp_path: Path) -> None:
    line = json.dumps({F.LEVEL: F.INFO, F.EVENT: F.EVENT_HTTP_REQUEST, F.ROUTE: "/a"}).encode()
    (tmp_path / "app.log").write_bytes(line + b"\n")
    packed = gzip.compress((line + b"\n") * 1000)
    (tmp_path / "app.log.1.gz").write_bytes(packed[: len(packed) // 2])
    report = Rep.build_report([tmp_path], now=NOW)
    assert len(report.unreadable) == 1
    assert "app.log.1.gz" in report.unreadable[0]
    assert report.requests >= 1


def test_an_empty_directory_gives_an_empty_report(tmp_path: Path) -> None:
    report = Rep.build_report([tmp_path], now=NOW)
    assert (report.requests, report.error_ratio, report.etl, report.routes) == (0, None, (), ())
    assert report.latency_ms == {"p50": None, "p95": None, "p99": None}
    assert "(no ETL runs)" in report.format()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("slow_ms", -1.0, r"slow_ms: got -1.0; expected a number >= 0"),
        ("stale_after_s", 0.0, r"stale_after_s: got 0.0; expected a number > 0"),
        ("top", 0, r"top: got 0; expected an integer >= 1"),
    ],
)
def test_bad_options_are_rejected(tmp_path: Path, option: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rep.build_report([tmp_path], **{option: value})


# -- output ---------------------------------------------------------------------------------------


def test_json_output_has_the_keys_the_issue_lists(
    workload: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(workload), "--json", "--now", str(NOW)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"requests", "error_ratio", "latency_ms", "routes", "etl", "levels"} <= set(data)
    assert set(data["latency_ms"]) == {"p50", "p95", "p99"}
    assert {"route", "requests", "error_ratio", "p95_ms"} <= set(data["routes"][0])
    assert {"table", "runs", "failures", "last_status", "last_success_at", "stale"} <= set(
        data["etl"][0]
    )
    assert data["requests"] == 111
    raw = next(t for t in data["etl"] if t["table"] == "raw_mb51")
    assert raw["last_success_at"] == "2027-01-15T07:00:00.000000Z"  # NOW - 1 h
    assert raw["stale"] is False
    assert data["now"] == "2027-01-15T08:00:00.000000Z"


def test_text_output_is_readable(workload: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(workload), "--now", "2027-01-15T08:00:00Z"]) == 0
    text = capsys.readouterr().out
    assert "HTTP: 111 requests, 5xx 6.31 % (7)" in text
    assert "latency ms: p50 55.5  p95 2,500  p99 2,500" in text
    assert "/items/{item_id}" in text
    assert "mv_stock" in text
    assert "STALE" in text
    assert "ValueError" in text


@pytest.mark.parametrize(("option", "shown"), [(None, "25h"), ("90m", "90m"), ("1.5h", "90m")])
def test_the_stale_threshold_is_written_as_the_option_takes_it(
    workload: Path, capsys: pytest.CaptureFixture[str], option: str | None, shown: str
) -> None:
    argv = ["report", str(workload)] + (["--stale-after", option] if option else [])
    assert main(argv) == 0
    assert f"ETL tables (stale: no success for {shown}):" in capsys.readouterr().out
    assert P.DEFAULT_STALE_AFTER == "25h"  # the option's default, the presets' and the rules'


def test_report_of_a_missing_path_exits_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "missing")]) == 1
    assert "no such file or directory" in capsys.readouterr().err


def test_report_reads_files_written_by_other_processes(tmp_path: Path) -> None:
    # The report must not depend on this process: lines from another pid count the same.
    line = {F.LEVEL: F.INFO, F.EVENT: F.EVENT_HTTP_REQUEST, F.ROUTE: "/x", F.STATUS_CODE: 500}
    (tmp_path / "app.log").write_text(json.dumps({**line, F.PID: os.getpid() + 1}) + "\n")
    report = Rep.build_report([tmp_path], now=NOW)
    assert (report.requests, report.errors) == (1, 1)


# -- metric events (DatabaseConnectionsHigh) ------------------------------------------------------


def test_metrics_report_the_latest_value_of_each_name_and_flag_db_connections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False, max_bytes=2000)
    for value in (10, 95, 60, 85):
        alkana_logging.metric(P.DB_CONNECTIONS_METRIC, value, pool="main")
    alkana_logging.metric("queue_depth", 3)
    alkana_logging.shutdown()
    # A later file name holding earlier samples: latest is by timestamp, not by file order;
    # a value that is not a number is left out.
    (tmp_path / "app.log.9").write_text(
        "".join(
            json.dumps(
                {
                    F.TIMESTAMP: "2000-01-01T00:00:00.000000Z",
                    F.EVENT: F.EVENT_METRIC,
                    F.METRIC: P.DB_CONNECTIONS_METRIC,
                    F.VALUE: value,
                }
            )
            + "\n"
            for value in (5, "lots")
        )
    )
    report = Rep.build_report([tmp_path])
    metrics = {m.metric: m for m in report.metrics}
    assert set(metrics) == {P.DB_CONNECTIONS_METRIC, "queue_depth"}
    db = metrics[P.DB_CONNECTIONS_METRIC]
    assert (db.samples, db.latest, db.max, db.threshold) == (5, 85.0, 95.0, 80.0)
    assert db.above_threshold is True
    assert (metrics["queue_depth"].threshold, metrics["queue_depth"].above_threshold) == (
        None,
        False,
    )
    calm = Rep.build_report([tmp_path], metric_thresholds={P.DB_CONNECTIONS_METRIC: 90})
    assert next(m for m in calm.metrics if m.metric == P.DB_CONNECTIONS_METRIC).above_threshold is (
        False
    )
    assert main(["report", str(tmp_path), "--json"]) == 0
    (entry,) = [
        m for m in json.loads(capsys.readouterr().out)["metrics"] if m["metric"] == "queue_depth"
    ]
    assert entry["latest"] == 3.0
    assert entry["latest_at"].endswith("Z")
    assert main(["report", str(tmp_path)]) == 0
    line = next(
        line for line in capsys.readouterr().out.splitlines() if P.DB_CONNECTIONS_METRIC in line
    )
    assert "HIGH" in line
    assert "85" in line


# -- ETL freshness (tests/test_freshness.py): the recent read agrees with the full report ---------


def test_etl_freshness_agrees_with_the_report_on_the_workload(workload: Path) -> None:
    for path in workload.iterdir():
        os.utime(path, (NOW, NOW))
    # The workload's lines carry the time they were written: measure from there.
    now = time.time()
    recent = Fresh.etl_freshness([workload], now=now)
    full = Rep.build_report([workload], now=now).etl
    assert recent == full


def _metric_line(ts: float, pid: int, value: float, host: str = "web-1") -> str:
    record = {F.TIMESTAMP: Fresh.iso(ts), F.LEVEL: F.INFO, F.HOST: host, F.PID: pid}
    record.update({F.EVENT: F.EVENT_METRIC, F.METRIC: P.DB_CONNECTIONS_METRIC, F.VALUE: value})
    return json.dumps(record) + "\n"


def test_db_connections_are_judged_per_writer_not_by_the_newest_line(tmp_path: Path) -> None:
    # Two workers, each with its own pool, every 10 s: worker 101's pool is exhausted (95),
    # worker 102 idles at 10 and writes 1 s later each time, so the newest line is always 10.
    now = time.time()
    lines = []
    for i in range(60):
        t = now - 600 + i * 10
        lines += [_metric_line(t, 101, 95.0), _metric_line(t + 1, 102, 10.0)]
        lines.append(_metric_line(t + 2, 103, 12.0, host="web-2"))
    # A worker restarted 20 minutes ago: its last value is no longer a pool's state.
    lines.insert(0, _metric_line(now - 1200, 99, 99.0))
    (tmp_path / "app.log").write_text("".join(lines))
    (db,) = Rep.build_report([tmp_path], now=now).metrics
    assert (db.latest, db.writers, db.max, db.above_threshold) == (95.0, 3, 99.0, True)
    calm = tmp_path / "calm"
    calm.mkdir()
    (calm / "app.log").write_text("".join(line for line in lines if '"pid": 101' not in line))
    (db,) = Rep.build_report([calm], now=now).metrics
    assert (db.latest, db.writers, db.above_threshold) == (12.0, 2, False)


# -- reading in parallel ---------------------------------------------------------------------------


def _line(ts: float, **fields: Any) -> bytes:
    return json.dumps({F.TIMESTAMP: Fresh.iso(ts), F.LEVEL: F.INFO, **fields}).encode() + b"\n"


def _with_awkward_lines(directory: Path) -> None:
    """A file whose lines cross any range boundary: long lines, blank and CRLF lines, a line
    with no newline at the end, lines of other routes and a metric; and a truncated gzip file."""
    (directory / "odd.log").write_bytes(
        b"".join(
            [
                _line(
                    NOW - 50,
                    event=F.EVENT_HTTP_REQUEST,
                    route="/long",
                    status_code=200,
                    duration_ms=3.25,
                    message="x" * 5000,
                ),
                b"\n",
                b"\r\n",
                _line(
                    NOW - 40,
                    event=F.EVENT_HTTP_REQUEST,
                    route="/long",
                    status_code=503,
                    duration_ms=7,
                ).rstrip(b"\n")
                + b"\r\n",
                _line(
                    NOW - 30,
                    event=F.EVENT_METRIC,
                    metric="db_connections_active",
                    value=91,
                    host="h",
                    pid=1,
                ),
                _line(
                    NOW - 30,
                    event=F.EVENT_HTTP_REQUEST,
                    route=["not", "text"],
                    status_code=True,
                    duration_ms="12.5",
                ),
                b"not json at all\n",
                _line(
                    NOW - 20,
                    event=F.EVENT_HTTP_REQUEST,
                    route="/long",
                    status_code=200,
                    duration_ms=1.5,
                ).rstrip(b"\n"),
            ]
        )
    )
    # Ties that only the order of the lines settles, far apart (in different ranges): runs
    # finished at the same time (the later line's status wins), and one writer's samples of a
    # metric at the same time (the later value wins).
    ties = []
    for status, value in ((F.STATUS_SUCCESS, 1), (F.STATUS_SUCCESS, 5), (F.STATUS_FAILED, 3)):
        ties.append(
            _line(
                NOW - 5,
                event=F.EVENT_ETL_RUN_FINISHED,
                table="tied",
                status=status,
                finished_at=NOW - 5,
            )
            + _line(
                NOW - 5, event=F.EVENT_METRIC, metric="tied_gauge", value=value, host="h", pid=7
            )
            + _line(NOW - 6, message="padding " * 200)
        )
    (directory / "ties.log").write_bytes(b"".join(ties))
    packed = gzip.compress(_line(NOW - 10, level="error", exception_type="Cut") * 50)
    (directory / "odd.log.1.gz").write_bytes(packed[: len(packed) // 2])


_RANGES_CHILD = """
import json, sys
from alkana_logging.ops import report as Rep
directory, now = sys.argv[1], float(sys.argv[2])
one = Rep.build_report([directory], now=now, workers=1).to_dict()
used = []
original = Rep._in_workers
def recording(tasks, *args):
    results = original(tasks, *args)
    used.append((sum(not t.stream for t in tasks), results is not None))
    return results
Rep._in_workers = recording
out = {"one": one, "runs": []}
for range_bytes in (1, 7, 64, 333, 4096):
    Rep._RANGE_BYTES = range_bytes
    for workers in (2, 3):
        used.clear()
        got = Rep.build_report([directory], now=now, workers=workers).to_dict()
        out["runs"].append({"same": got == one, "used": used[:], "bytes": range_bytes})
print(json.dumps(out))
"""


def test_reading_in_ranges_by_worker_processes_gives_the_same_report(workload: Path) -> None:
    from tests._children import run_child

    _with_awkward_lines(workload)
    child = run_child(_RANGES_CHILD, str(workload), str(NOW))
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout)
    one = out["one"]
    assert one["requests"] > 100
    assert one["non_json_lines"] > 0
    assert len(one["unreadable"]) == 1
    tied = next(t for t in one["etl"] if t["table"] == "tied")
    assert (tied["runs"], tied["last_status"]) == (3, F.STATUS_FAILED)
    gauge = next(m for m in one["metrics"] if m["metric"] == "tied_gauge")
    assert (gauge["latest"], gauge["max"]) == (3, 5)
    for run in out["runs"]:
        assert run["same"], run
        # Worker processes read the plain files in several ranges each time.
        ((ranges, finished),) = run["used"]
        assert ranges > 3
        assert finished


@pytest.mark.parametrize("piece", [1, 3, 16, 100, 1 << 20])
def test_ranges_read_in_pieces_give_every_line_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece: int
) -> None:
    _with_awkward_lines(tmp_path)
    raw = (tmp_path / "odd.log").read_bytes() + b"\n\n" + b"y" * 300  # blank lines, no newline
    (tmp_path / "odd.log").write_bytes(raw)
    expected = [line for line in raw.split(b"\n") if line]
    monkeypatch.setattr(Rep, "_PIECE", piece)
    for range_bytes in (1, 2, 7, 64, 333, 4096, len(raw) - 1, len(raw), 1 << 30):
        fds: list[int] = []
        try:
            tasks = Rep._open_tasks([tmp_path / "odd.log"], range_bytes, fds)
            read = [
                line.rstrip(b"\n")
                for task in tasks
                for lines, ascii in Rep._range_pieces(task)
                for line in lines
                if line.rstrip(b"\n") and ascii == all(line.isascii() for line in lines)
            ]
        finally:
            for fd in fds:
                os.close(fd)
        assert read == expected, (range_bytes, len(tasks))


def test_a_file_rotated_while_the_workers_read_it_is_read_as_it_was(tmp_path: Path) -> None:
    from tests._children import run_child

    child = run_child(
        _WORKLOAD_CHILD
        + """
fds = []
tasks = Rep._open_tasks([path], Rep._RANGE_BYTES, fds)
path.rename(path.with_name("app.log.1"))  # logrotate: the file moved away, a new one made
path.write_bytes(b'{"level": "info"}\\n')
acc = Rep._Accumulator(slow_ms=2000, now=1.8e9)
for part, error in Rep._in_workers(tasks, 2000, 1.8e9, 2):
    assert error is None, error
    acc.merge(part)
print(json.dumps({"lines": acc.lines, "expected": expected["lines"], "tasks": len(tasks)}))
""",
        str(tmp_path),
    )
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout)
    assert out["tasks"] > 10
    assert out["lines"] == out["expected"] == 3000


_SLOW_WORKER_CHILD = """
import json, os, sys, time
from pathlib import Path
from alkana_logging.ops import report as Rep
directory = Path(sys.argv[1])
path = directory / "app.log"
path.write_bytes(b"".join(b'{"level": "info", "n": %d}\\n' % i for i in range(400)))
fds = []
tasks = Rep._open_tasks([path], 512, fds)
original = Rep._scan
def scan(task, slow_ms, now):
    acc, error = original(task, slow_ms, now)
    if task is tasks[0]:
        # The worker that took the first task stops until the other has sent all its counts.
        deadline = time.monotonic() + 60
        while not list(directory.glob("sent-*")) and time.monotonic() < deadline:
            time.sleep(0.01)
    acc.levels = {"pid": os.getpid()}
    return acc, error
Rep._scan = scan
sort = Rep._sort_durations
def sorted_and_said(accs):
    sort(accs)
    (directory / f"sent-{os.getpid()}").touch()
Rep._sort_durations = sorted_and_said
started = time.monotonic()
results = Rep._in_workers(tasks, 2000, 1.8e9, 2)
print(json.dumps({"tasks": len(tasks), "lines": sum(acc.lines for acc, _ in results),
                  "pids": [acc.levels["pid"] for acc, _ in results],
                  "seconds": time.monotonic() - started}))
"""


def test_a_worker_the_machine_slows_down_leaves_the_other_tasks_to_the_others(
    tmp_path: Path,
) -> None:
    # Each worker takes the next range when it is done with the last: while one is held up
    # inside its first range, the other reads every other range (with ranges dealt out in
    # turn, half of them would wait for the slow one).
    from tests._children import run_child

    child = run_child(_SLOW_WORKER_CHILD, str(tmp_path))
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout)
    assert out["tasks"] > 20
    assert out["lines"] == 400
    slow, *others = out["pids"]
    assert len(set(others)) == 1
    assert slow not in others
    assert out["seconds"] < 30  # the slow one went on when the other was done, not at its deadline


_INTERRUPTED_CHILD = """
import json, os, signal, sys, tempfile, time
import alkana_logging.ops.report as Rep
where, nth = sys.argv[1], int(sys.argv[2])
d = tempfile.mkdtemp()
for i in range(4):
    open(f"{d}/app.log.{i}", "w").write('{"level": "info"}\\n' * 100)
if where == "close":
    Rep._in_workers = lambda *a: None  # as when a worker died: the files are read here
name = {"pipe": "pipe", "waitpid": "waitpid", "close": "close"}[where]
real, calls = getattr(os, name), [0]
def interrupted(*args):
    calls[0] += 1
    result = real(*args)
    if calls[0] == nth:
        signal.raise_signal(signal.SIGINT)  # Ctrl-C, right after the call returns
    return result
def fds():
    return set(os.listdir("/proc/self/fd"))
before = fds()
setattr(os, name, interrupted)
try:
    Rep.build_report([d], workers=2)
    raised = None
except BaseException as exc:
    raised = type(exc).__name__
finally:
    setattr(os, name, real)
time.sleep(0.2)
children = open(f"/proc/self/task/{os.getpid()}/children").read().split()
print(json.dumps({"raised": raised, "calls": calls[0], "leaked": sorted(fds() - before),
                  "children": children}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    ("where", "nth"), [("pipe", 1), ("pipe", 2), ("waitpid", 1), ("close", 1), ("close", 2)]
)
def test_ctrl_c_anywhere_leaves_no_descriptor_and_no_worker_behind(where: str, nth: int) -> None:
    # Ctrl-C right after an os.pipe() (the task queue's, a worker's), while the first worker is
    # reaped, or while this process closes the files it opened for the workers: the
    # KeyboardInterrupt is raised, every descriptor closed once, every worker reaped.
    from tests._children import run_child

    child = run_child(_INTERRUPTED_CHILD, where, str(nth))
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout)
    assert out["calls"] >= nth, out
    assert out["raised"] == "KeyboardInterrupt", out
    assert out["leaked"] == [], out
    assert out["children"] == [], out


def test_the_task_queue_hands_out_every_task_once_in_at_most_a_page() -> None:
    for tasks in (1, 2, 511, 512, 513, 1000, 5000, 100_003):
        queue = Rep._task_queue(tasks)
        try:
            taken = []
            while entry := Rep._taken(queue):
                taken.append(entry)
        finally:
            os.close(queue)
        assert [i for entry in taken for i in entry] == list(range(tasks))
        assert len(taken) <= Rep._QUEUE_ENTRIES
        if tasks <= Rep._QUEUE_ENTRIES:
            assert all(len(entry) == 1 for entry in taken)


def test_the_report_reads_in_a_worker_a_core_when_there_is_enough_to_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Rep, "_cores", lambda: 4)
    assert Rep._workers(None, tasks=40, input_bytes=Rep._WORKERS_FROM - 1) == 1
    assert Rep._workers(None, tasks=40, input_bytes=Rep._WORKERS_FROM) == 4
    assert Rep._workers(None, tasks=3, input_bytes=1 << 40) == 3
    assert Rep._workers(8, tasks=3, input_bytes=0) == 3
    monkeypatch.setattr(Rep, "_cores", lambda: 1)
    assert Rep._workers(None, tasks=40, input_bytes=1 << 40) == 1
    with pytest.raises(ValueError, match="workers: got 0"):
        Rep.build_report([tmp_path], workers=0)


_DEFAULT_CHILD = """
import json, sys
from alkana_logging.ops import report as Rep
directory, now = sys.argv[1], float(sys.argv[2])
one = Rep.build_report([directory], now=now, workers=1).to_dict()
used = []
original = Rep._in_workers
def recording(tasks, slow_ms, now, count):
    used.append(count)
    return original(tasks, slow_ms, now, count)
Rep._in_workers = recording
Rep._cores = lambda: 2
Rep._RANGE_BYTES = 512
got = Rep.build_report([directory], now=now).to_dict()
small = used[:]
Rep._WORKERS_FROM = 0
got_workers = Rep.build_report([directory], now=now).to_dict()
print(json.dumps({"small": small, "used": used, "same": got == one == got_workers}))
"""


def test_by_default_enough_to_read_is_read_by_workers_with_the_same_numbers(
    workload: Path,
) -> None:
    from tests._children import run_child

    _with_awkward_lines(workload)
    child = run_child(_DEFAULT_CHILD, str(workload), str(NOW))
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == {"small": [], "used": [2], "same": True}


def test_quantiles_selected_from_sorted_chunks_equal_loki_quantile_of_all() -> None:
    import random
    from array import array

    rnd = random.Random(5)
    for _ in range(300):
        values = [
            float(rnd.choice([rnd.randint(0, 9), round(rnd.uniform(0, 1e4), 3)]))
            for _ in range(rnd.randint(1, 200))
        ]
        cuts = sorted(rnd.sample(range(len(values) + 1), min(len(values) + 1, rnd.randint(1, 6))))
        runs = [
            array("d", sorted(values[a:b]))
            for a, b in zip([0, *cuts], [*cuts, len(values)], strict=True)
        ]
        got = Rep._run_quantiles(runs)
        for name, q in P.LATENCY_QUANTILES.items():
            assert got[name.removeprefix("latency_")] == Rep.loki_quantile(q, values)
    assert Rep._run_quantiles([array("d")]) == {"p50": None, "p95": None, "p99": None}


_WORKLOAD_CHILD = """
import json, os, sys, time
from pathlib import Path
from alkana_logging.ops import report as Rep
lines = b"".join(
    json.dumps({"timestamp": "2027-01-15T08:00:00.000000Z", "level": "info",
                "event": "http_request", "route": f"/r{i % 5}", "status_code": 200 + i % 400,
                "duration_ms": i / 7}).encode() + b"\\n"
    for i in range(3000)
)
path = Path(sys.argv[1]) / "app.log"
path.write_bytes(lines)
Rep._RANGE_BYTES = 4096  # about 60 tasks
expected = Rep.build_report([path], now=1.8e9, workers=1).to_dict()
parent = os.getpid()
original = Rep._scan
"""


def test_a_killed_worker_gives_the_same_report_read_in_this_process(tmp_path: Path) -> None:
    from tests._children import run_child

    child = run_child(
        _WORKLOAD_CHILD
        + """
def dying(task, slow_ms, now):
    if os.getpid() != parent and task.start == 4096 * 20:
        os.kill(os.getpid(), 9)  # as the OOM killer would
    return original(task, slow_ms, now)
Rep._scan = dying
got = Rep.build_report([path], now=1.8e9, workers=2).to_dict()
print(json.dumps({"same": got == expected, "requests": got["requests"]}))
""",
        str(tmp_path),
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == {"same": True, "requests": 3000}


def test_ctrl_c_stops_the_workers_at_once_without_their_tracebacks(tmp_path: Path) -> None:
    from tests._children import run_child

    child = run_child(
        _WORKLOAD_CHILD
        + """
import signal
def slow(task, slow_ms, now):
    if os.getpid() != parent:
        time.sleep(60)
    return original(task, slow_ms, now)
Rep._scan = slow
# Ctrl-C in a second, to the whole group (a timer, not a thread: one thread forks the workers).
signal.signal(signal.SIGALRM, lambda *_: os.killpg(os.getpgid(0), signal.SIGINT))
signal.setitimer(signal.ITIMER_REAL, 1.0)
started = time.monotonic()
try:
    Rep.build_report([path], now=1.8e9, workers=2)
except KeyboardInterrupt:
    print(json.dumps({"interrupted_after_s": time.monotonic() - started}))
else:
    print(json.dumps({"not_interrupted_after_s": time.monotonic() - started}))
""",
        str(tmp_path),
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout)["interrupted_after_s"] < 10
    assert "Traceback" not in child.stderr, child.stderr


def test_a_daemonic_process_reads_in_itself() -> None:
    from tests._children import run_child

    child = run_child(
        """
import multiprocessing
from alkana_logging.ops import report as Rep
def job(_):
    return Rep._can_fork()
if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(1) as pool:
        print(pool.apply(job, (0,)))
"""
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "False"


# -- the workers under attack: Ctrl-C, a killed caller, no fork, SIGCHLD ignored ----------------
# Each attack runs the report with workers in a child process of its own session (so every
# process it forks can be found by the session id afterwards, wherever it was reparented).

_ATTACK_LINES = b"".join(
    json.dumps(
        {
            F.TIMESTAMP: "2027-01-15T08:00:00.000000Z",
            F.LEVEL: F.INFO,
            F.EVENT: F.EVENT_HTTP_REQUEST,
            F.ROUTE: f"/r{i % 5}",
            F.STATUS_CODE: 200 + i % 400,
            F.DURATION_MS: i / 7,
        }
    ).encode()
    + b"\n"
    for i in range(3000)
)

_ATTACK_CHILD = """
import json, os, sys, time
from pathlib import Path
from alkana_logging.ops import report as Rep
path, pause = Path(sys.argv[1]), float(sys.argv[2])
Rep._RANGE_BYTES = 4096  # about 60 tasks, 30 a worker: 9 s at 0.3 s a task
Rep._WORKERS_FROM = 0
Rep._cores = lambda: 2
parent = os.getpid()
original = Rep._scan
def slow(task, slow_ms, now):
    if os.getpid() != parent:
        time.sleep(pause)  # a slow disk: the attack comes while the workers read
    return original(task, slow_ms, now)
Rep._scan = slow
if len(sys.argv) > 3:  # the application's own SIGTERM handler, which raises
    import signal
    def stop(*_):
        raise SystemExit(3)
    signal.signal(signal.SIGTERM, stop)
    if sys.argv[3] == "sigterm-at-fork":  # SIGTERM the instant a worker is forked, in it
        real_fork = os.fork
        def fork():
            pid = real_fork()
            if pid == 0:
                os.kill(os.getpid(), signal.SIGTERM)
            return pid
        os.fork = fork
    try:
        Rep.build_report([path], now=1.8e9)
    except SystemExit:
        print("caller saw the exit in", os.getpid(), "parent", parent, flush=True)
        raise
else:
    Rep.build_report([path], now=1.8e9)
print("finished")
"""


def _processes() -> list[tuple[int, str, int, int]]:
    """Every process as (pid, state, parent pid, session id), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid, _group, session = stat[stat.rindex(")") + 2 :].split()[:4]
        found.append((int(entry.name), state, int(ppid), int(session)))
    return found


def _children_of(pid: int) -> list[int]:
    return [p for p, state, ppid, _ in _processes() if ppid == pid and state != "Z"]


def _left_in_session(session: int, within_s: float) -> list[int]:
    """The live processes of ``session`` still there after up to ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        left = [p for p, state, _, sid in _processes() if sid == session and state != "Z"]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def _start_attacked(path: Path, pause: float, *extra: str) -> Any:
    import subprocess
    import sys

    from tests._children import child_env

    return subprocess.Popen(
        [sys.executable, "-c", _ATTACK_CHILD, str(path), str(pause), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        start_new_session=True,
    )


def _wait_for_workers(proc: Any, count: int) -> list[int]:
    deadline = time.monotonic() + 60
    while len(workers := _children_of(proc.pid)) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.002)
    return workers


@pytest.fixture(scope="module")
def attack_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("attack") / "app.log"
    path.write_bytes(_ATTACK_LINES)
    return path


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.parametrize("attempt", range(20))
def test_ctrl_c_mid_run_ends_the_report_and_every_worker(attack_log: Path, attempt: int) -> None:
    import random
    import signal
    import subprocess

    proc = _start_attacked(attack_log, pause=0.3)
    try:
        # Half the attempts: while the second worker is being forked; half: while both read.
        _wait_for_workers(proc, 1 + attempt % 2)
        time.sleep(random.Random(attempt).uniform(0, 0.3) * (attempt % 2))
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        try:  # at once: not after the workers' 9 s
            _, err = proc.communicate(timeout=3)
        except subprocess.TimeoutExpired:
            pytest.fail("the report did not end within 3 s of Ctrl-C")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == -signal.SIGINT, err  # as Python ends on an uncaught Ctrl-C
    assert err.count("Traceback") == 1, err  # this process's KeyboardInterrupt, no worker's
    assert "KeyboardInterrupt" in err
    assert _left_in_session(proc.pid, within_s=0) == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.parametrize("attempt", range(20))
def test_a_raising_sigterm_handler_never_runs_the_callers_code_in_a_worker(
    attack_log: Path, attempt: int
) -> None:
    """SIGTERM to the group (as a supervisor stops a job) with the application's handler that
    raises SystemExit: in a worker it ends the worker (even the instant after its fork), and
    only the caller itself sees the exit."""
    import random
    import signal
    import subprocess

    proc = _start_attacked(attack_log, 0.3, "sigterm-handler")
    try:
        _wait_for_workers(proc, 1 + attempt % 2)
        time.sleep(random.Random(attempt).uniform(0, 0.3) * (attempt % 2))
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=3)
        except subprocess.TimeoutExpired:
            pytest.fail("the report did not end within 3 s of SIGTERM")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 3, err
    assert out.splitlines() == [f"caller saw the exit in {proc.pid} parent {proc.pid}"], out
    assert "Traceback" not in err, err
    assert _left_in_session(proc.pid, within_s=0) == []


def test_sigterm_in_a_worker_the_instant_it_is_forked_ends_only_that_worker(
    attack_log: Path,
) -> None:
    """The signal lands in the worker before it has reached its own code: it waits (blocked)
    until the worker is inside it, and never unwinds into the caller's code there. The parent
    then reads alone: the report ends with its numbers."""
    import subprocess

    proc = _start_attacked(attack_log, 0.0, "sigterm-at-fork")
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        pytest.fail("the report did not end")
    assert (proc.returncode, out) == (0, "finished\n"), err
    assert _left_in_session(proc.pid, within_s=0) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("attempt", range(20))
def test_a_killed_caller_leaves_no_worker_behind(attack_log: Path, attempt: int) -> None:
    import random
    import signal

    proc = _start_attacked(attack_log, pause=0.3)
    try:
        _wait_for_workers(proc, 1 + attempt % 2)
        time.sleep(random.Random(attempt).uniform(0, 0.3) * (attempt % 2))
        os.kill(proc.pid, signal.SIGKILL)  # the OOM killer, kill -9: no handler runs
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert _left_in_session(proc.pid, within_s=3) == []  # not after their 9 s


_NO_FORK_CHILD = """
import json, os, resource, sys
from pathlib import Path
from alkana_logging.ops import report as Rep
path, fails_at = Path(sys.argv[1]), int(sys.argv[2])
Rep._RANGE_BYTES = 4096
Rep._WORKERS_FROM = 0
Rep._cores = lambda: 4  # four forks unless one fails
expected = Rep.build_report([path], now=1.8e9, workers=1).to_dict()
# The user's processes may number fork attempt - 1 more than now: that fork fails (EAGAIN).
me = os.getuid()
mine = sum(
    1 for entry in Path("/proc").iterdir()
    if entry.name.isdigit() and (entry / "status").exists()
    and f"Uid:\\t{me}\\t" in (entry / "status").read_text()
)
resource.setrlimit(resource.RLIMIT_NPROC, (mine + fails_at - 1, mine + fails_at - 1))
forks = []
original = os.fork
def counting():
    forks.append(1)
    return original()
os.fork = counting
fds = sorted(os.listdir("/proc/self/fd"))
got = Rep.build_report([path], now=1.8e9).to_dict()
try:
    os.waitpid(-1, os.WNOHANG)
    children = "some"
except ChildProcessError:
    children = "none"
print(json.dumps({"same": got == expected, "forks": len(forks), "children": children,
                  "fds_kept": sorted(os.listdir("/proc/self/fd")) == fds}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="counts processes in /proc")
@pytest.mark.parametrize("fails_at", [1, 2, 3])
@pytest.mark.parametrize("attempt", range(7))
def test_a_fork_refused_by_rlimit_nproc_reads_in_this_process(
    attack_log: Path, fails_at: int, attempt: int
) -> None:
    import shutil

    from tests._children import run_child

    # RLIMIT_NPROC binds neither the root user nor a process with CAP_SYS_RESOURCE or
    # CAP_SYS_ADMIN: root's child runs with nobody as its real user (the one the limit counts)
    # and without those capabilities; it still reads files as root.
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) runs the child as another user"
        dropped = "-sys_resource,-sys_admin"
        prefix = (setpriv, "--ruid=65534", f"--bounding-set={dropped}", f"--inh-caps={dropped}")
    child = run_child(_NO_FORK_CHILD, str(attack_log), str(fails_at), prefix=prefix)
    assert child.returncode == 0, child.stderr
    # The fork that failed was tried (the workers before it were started, then stopped).
    out = json.loads(child.stdout)
    assert out == {"same": True, "forks": fails_at, "children": "none", "fds_kept": True}


_SIGCHLD_CHILD = """
import json, os, signal, sys, threading
from pathlib import Path
from alkana_logging.ops import report as Rep
path, how = Path(sys.argv[1]), sys.argv[2]
Rep._RANGE_BYTES = 4096
Rep._WORKERS_FROM = 0
Rep._cores = lambda: 2
expected = Rep.build_report([path], now=1.8e9, workers=1).to_dict()
forks = []
original = os.fork
def counting():
    forks.append(1)
    return original()
os.fork = counting
stop = threading.Event()
if how == "ignored":
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
elif how == "handled":
    signal.signal(signal.SIGCHLD, lambda *_: os.waitpid(-1, os.WNOHANG))
elif how == "thread":
    threading.Thread(target=stop.wait).start()
fds = sorted(os.listdir("/proc/self/fd"))
got = Rep.build_report([path], now=1.8e9).to_dict()
stop.set()
print(json.dumps({"same": got == expected, "forks": len(forks),
                  "fds_kept": sorted(os.listdir("/proc/self/fd")) == fds}))
"""


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="lists descriptors in /proc")
@pytest.mark.parametrize(
    ("how", "forks"), [("ignored", 0), ("handled", 0), ("thread", 0), ("default", 2)]
)
def test_workers_only_with_sigchld_at_its_default_and_one_thread(
    attack_log: Path, how: str, forks: int
) -> None:
    from tests._children import run_child

    # SIGCHLD ignored or handled: a worker could be reaped by someone else and its PID reused
    # before this process kills it; another thread: a forked child can deadlock.
    child = run_child(_SIGCHLD_CHILD, str(attack_log), how)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == {"same": True, "forks": forks, "fds_kept": True}
