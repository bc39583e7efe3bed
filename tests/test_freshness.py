"""ETL freshness read from the log files (alkana_logging.freshness): the recent part of the files
only, across blocks and compressed files, with hostile run times, unreadable files and lines
without an end. The local report, which reads everything, is compared where both must agree."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from alkana_logging import fields as F
from alkana_logging import freshness as Fresh
from alkana_logging.ops import report as Rep
from alkana_logging.ops.cli import main

NOW = 1_800_000_000.0
HOUR = 3600.0


def _line(ts: float, **fields: Any) -> bytes:
    return json.dumps({F.TIMESTAMP: Fresh.iso(ts), F.LEVEL: F.INFO, **fields}).encode() + b"\n"


def _run(ts: float, table: str, status: str, **fields: Any) -> bytes:
    values = {F.EVENT: F.EVENT_ETL_RUN_FINISHED, F.TABLE: table, F.STATUS: status}
    return _line(ts, **{**values, F.FINISHED_AT: ts, **fields})


def test_etl_freshness_reads_across_blocks_and_stops_at_the_window(tmp_path: Path) -> None:
    # Ten days of ETL lines, more than 3 MiB: the backward read crosses several 1 MiB blocks,
    # and at each boundary a run line straddles it (losing one changes the counts).
    start = NOW - 10 * 86400
    lines: list[bytes] = []
    runs: list[tuple[float, str, str]] = []
    steps = 9_000
    for n in range(steps):
        ts = start + n * (10 * 86400 / steps)
        table = f"table_{n % 3}"
        status = F.STATUS_FAILED if n % 7 == 0 else F.STATUS_SUCCESS
        lines.append(_run(ts, table, status, pad="x" * (300 + n % 97)))
        runs.append((ts, table, status))
    # A table that ran only before the window (8 days ago) is not listed, as in etl_stale.
    lines.insert(100, _run(NOW - 9.5 * 86400, "ancient_table", F.STATUS_SUCCESS))
    # A line out of order, far before the window in the file: the read stops before it.
    lines.insert(101, _run(NOW - HOUR, "misplaced_table", F.STATUS_SUCCESS))
    (tmp_path / "app.log").write_bytes(b"".join(lines))
    os.utime(tmp_path / "app.log", (NOW, NOW))
    assert (tmp_path / "app.log").stat().st_size > 3 * (1 << 20)

    tables = {t.table: t for t in Fresh.etl_freshness([tmp_path], now=NOW)}
    assert "misplaced_table" in {t.table for t in Rep.build_report([tmp_path], now=NOW).etl}
    since = NOW - 7 * 86400
    recent = [r for r in runs if r[0] >= since]
    assert set(tables) == {table for _, table, _ in recent}
    for name, table in tables.items():
        mine = [r for r in recent if r[1] == name]
        assert table.runs == len(mine)
        assert table.last_status == mine[-1][2]
        assert table.last_run_at == mine[-1][0]
        successes = [ts for ts, _, status in mine if status == F.STATUS_SUCCESS]
        assert table.last_success_at == (successes[-1] if successes else None)
        assert table.stale is (not successes or NOW - successes[-1] > 25 * HOUR)


def test_a_number_orjson_refuses_does_not_hide_an_etl_run(tmp_path: Path) -> None:
    # JSON allows 1e400 and a 400-digit integer; orjson refuses both. The health endpoint's
    # freshness and the report must agree that these runs happened.
    huge = "1" + "0" * 400
    ts = NOW - HOUR
    (tmp_path / "app.log").write_bytes(
        _run(ts - 60, "float_table", F.STATUS_SUCCESS).replace(b"}\n", b', "rows": 1e400}\n')
        + _run(ts, "int_table", F.STATUS_SUCCESS).replace(
            b"}\n", b', "rows": ' + huge.encode() + b"}\n"
        )
    )
    os.utime(tmp_path / "app.log", (NOW, NOW))
    fresh = {t.table: (t.runs, t.last_success_at) for t in Fresh.etl_freshness([tmp_path], now=NOW)}
    assert fresh == {"float_table": (1, ts - 60), "int_table": (1, ts)}
    report = {
        t.table: (t.runs, t.last_success_at) for t in Rep.build_report([tmp_path], now=NOW).etl
    }
    assert report == fresh


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param((b"{", b', "x": NaN}\n'), id="nan"),
        pytest.param((b"{", b', "x": -Infinity}\n'), id="infinity"),
        pytest.param((b"\xef\xbb\xbf{", b"}\n"), id="bom"),
        pytest.param((b"{", b', "x": "\\ud800"}\n'), id="lone-surrogate"),
    ],
)
def test_the_fallback_decode_is_as_strict_as_the_first(
    tmp_path: Path, bad: tuple[bytes, bytes]
) -> None:
    # Not JSON for either reader: the freshness read and the report both leave the run out.
    start, end = bad
    line = _run(NOW - HOUR, "t", F.STATUS_FAILED)
    (tmp_path / "app.log").write_bytes(start + line[1:].replace(b"}\n", end))
    os.utime(tmp_path / "app.log", (NOW, NOW))
    assert tuple(Fresh.etl_freshness([tmp_path], now=NOW)) == ()
    report = Rep.build_report([tmp_path], now=NOW)
    assert (report.etl, report.non_json_lines) == ((), 1)


def test_etl_freshness_skips_files_last_written_before_the_window(tmp_path: Path) -> None:
    # Lines that claim to be recent, in a file last modified 8 days ago: not read at all.
    old = tmp_path / "app.log-20270107-1799300000"
    old.write_bytes(_run(NOW - HOUR, "from_an_old_file", F.STATUS_SUCCESS))
    os.utime(old, (NOW - 8 * 86400, NOW - 8 * 86400))
    current = tmp_path / "app.log"
    current.write_bytes(_run(NOW - HOUR, "current", F.STATUS_SUCCESS))
    os.utime(current, (NOW, NOW))
    packed = tmp_path / "app.log.1.gz"
    packed.write_bytes(gzip.compress(_run(NOW - 2 * HOUR, "packed", F.STATUS_FAILED)))
    os.utime(packed, (NOW - HOUR, NOW - HOUR))
    tables = {t.table: t for t in Fresh.etl_freshness([tmp_path], now=NOW)}
    assert set(tables) == {"current", "packed"}
    assert tables["current"].stale is False
    assert (tables["packed"].last_status, tables["packed"].stale) == (F.STATUS_FAILED, True)
    # The full report reads everything, whatever the files' times.
    assert "from_an_old_file" in {t.table for t in Rep.build_report([tmp_path], now=NOW).etl}


@pytest.mark.parametrize("option", ["stale_after_s", "lookback_s"])
def test_etl_freshness_rejects_bad_windows(tmp_path: Path, option: str) -> None:
    with pytest.raises(ValueError, match=rf"{option}: got 0; expected a number > 0"):
        Fresh.etl_freshness([tmp_path], **{option: 0})


def test_implausible_run_times_are_skipped_and_counted_not_a_crash(tmp_path: Path) -> None:
    now = time.time()
    (tmp_path / "app.log").write_bytes(
        b"".join(
            [
                _run(now - HOUR, "orders", F.STATUS_SUCCESS),
                # finished_at in milliseconds: beyond what a datetime can hold.
                _run(now - 60, "events", F.STATUS_SUCCESS, **{F.FINISHED_AT: int(now * 1000)}),
                # A success stamped a year ahead, then the real latest run, which failed.
                _run(now - 2 * HOUR, "stock", F.STATUS_SUCCESS, **{F.FINISHED_AT: now + 3e7}),
                _run(now - 60, "stock", F.STATUS_FAILED),
            ]
        )
    )
    for tables in (
        Fresh.etl_freshness([tmp_path], now=now),
        Rep.build_report([tmp_path], now=now).etl,
    ):
        found = {t.table: t for t in tables}
        assert found["orders"].implausible_times == 0
        assert found["orders"].stale is False
        # The millisecond time is replaced by the line's own timestamp, and counted.
        assert found["events"].implausible_times == 1
        assert found["events"].last_success_at == pytest.approx(now - 60, abs=1e-3)
        # The future success cannot hide the failure after it.
        assert found["stock"].implausible_times == 1
        assert found["stock"].last_status == F.STATUS_FAILED
        assert found["stock"].last_run_at == pytest.approx(now - 60, abs=1e-3)
    # The command prints it (it crashed with "year 58... is out of range").
    assert main(["report", str(tmp_path), "--json"]) == 0
    assert main(["report", str(tmp_path)]) == 0


def test_plausible_time_bounds() -> None:
    now = 1_800_000_000.0
    assert Fresh.plausible_time(now, now)
    assert Fresh.plausible_time(now + Fresh.MAX_CLOCK_SKEW_S, now)
    assert not Fresh.plausible_time(now + Fresh.MAX_CLOCK_SKEW_S + 1, now)
    assert not Fresh.plausible_time(now * 1000, None)  # milliseconds: past year 9999
    assert not Fresh.plausible_time(5.0, now)  # a duration, not a time
    assert not Fresh.plausible_time(float("inf"), None)


def test_files_that_cannot_be_read_are_said_by_the_freshness_read(tmp_path: Path) -> None:
    now = time.time()
    (tmp_path / "app.log").write_bytes(_run(now - HOUR, "orders", F.STATUS_SUCCESS))
    packed = gzip.compress(_run(now - 60, "orders", F.STATUS_FAILED) * 2000)
    (tmp_path / "app.log.1.gz").write_bytes(packed[: len(packed) // 2])
    report = Rep.build_report([tmp_path], now=now)
    assert "app.log.1.gz" in report.unreadable[0]
    assert "warning: 1 file(s) could not be read" in report.format()
    found = Fresh.read_etl_freshness([tmp_path], now=now)
    assert len(found.unreadable) == 1
    assert "app.log.1.gz" in found.unreadable[0]
    assert "truncated" in found.unreadable[0]
    assert [t.table for t in found.tables] == ["orders"]


def _no_newline_file(path: Path, before: bytes, megabytes: int, after: bytes) -> None:
    with path.open("wb") as out:
        out.write(before)
        chunk = b"x" * (1 << 20)
        for _ in range(megabytes):
            out.write(chunk)
        out.write(b"\n" + after)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_long_stretch_without_newline_is_dropped_in_bounded_memory(
    tmp_path: Path, compressed: bool
) -> None:
    import tracemalloc

    now = time.time()
    log = tmp_path / "app.log"
    _no_newline_file(
        log,
        _run(now - HOUR, "before", F.STATUS_SUCCESS),
        64,
        _run(now - 60, "after", F.STATUS_FAILED),
    )
    if compressed:
        packed = tmp_path / "app.log.1.gz"
        with log.open("rb") as src, gzip.open(packed, "wb", compresslevel=1) as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        log.unlink()
    tracemalloc.start()
    try:
        found = Fresh.read_etl_freshness([tmp_path], now=now)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Bounded by the block and the longest line kept (1 MiB each), not by the 64 MiB stretch
    # (the carry grew to all of it, and each block searched the whole carry again).
    assert peak < 8 * (1 << 20), peak
    assert found.long_lines_dropped == 1
    assert {t.table: t.last_status for t in found.tables} == {
        "before": F.STATUS_SUCCESS,
        "after": F.STATUS_FAILED,
    }
