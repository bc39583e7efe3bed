"""ETL freshness over a year of logs: what ``/health/detailed`` reads, against full reads.

Makes a log directory as a year of logrotate leaves it (``--size-gb``, 1.1 GB by default: one
file a day named ``app.log-YYYYMMDD-EPOCH``, each last modified at the end of its day, plus
today's ``app.log``), with HTTP request lines and a day's ETL runs of 20 tables among them, then
measures in one run, interleaved:

- ``etl_freshness``: :func:`alkana_logging.freshness.etl_freshness`, the health endpoint's read
  (files written in the last 7 days, read backwards until the lines are older);
- ``HealthCheck.detailed()``: the whole detailed answer with that source, uncached;
- anchors: the same ETL numbers from every line of every file (``build_report``, the full
  report), the same with a byte pre-filter before JSON (what the recent-part read adds beyond
  the pre-filter), and reading every byte of the directory without parsing (the floor of any
  full read).

The directory is cached between runs under ``--dir`` (default: a temporary one, removed).
Times are wall clock and process CPU, median over the rounds; the files sit in the page cache
(24 GB of memory), so the full reads are not measured against a cold disk.

    .venv/bin/python benchmarks/bench_freshness.py [--size-gb 1.1] [--rounds 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import orjson

from alkana_logging import fields as F
from alkana_logging import freshness as Fresh
from alkana_logging import healthcheck as H
from alkana_logging.ops import report as Rep

DAY = 86400.0
TABLES = [f"table_{n:02d}" for n in range(20)]


def _request_line(ts: str, n: int) -> bytes:
    return (
        f'{{"timestamp":"{ts}","level":"info","logger":"alkana.http","message":"GET /items/{n}",'
        f'"app":"alkana-dashboard","env":"production","host":"web-1","pid":4242,'
        f'"request_id":"{n:032x}","event":"http_request","method":"GET",'
        f'"route":"/items/{{item_id}}","path":"/items/{n}","status_code":200,'
        f'"duration_ms":{n % 97}.5,"client_ip":"10.0.0.{n % 250}","user":"alice"}}\n'
    ).encode()


def _etl_line(ts: str, epoch: float, table: str, status: str) -> bytes:
    return (
        f'{{"timestamp":"{ts}","level":"info","logger":"alkana.etl",'
        f'"message":"etl run of {table} {status}","app":"alkana-etl","env":"production",'
        f'"host":"etl-1","pid":77,"event":"etl_run_finished","etl_job":"daily",'
        f'"table":"{table}","etl_run_id":"r{int(epoch)}","status":"{status}","rows":1200,'
        f'"duration_ms":5321.5,"finished_at":{epoch}}}\n'
    ).encode()


def make_year(directory: Path, size_bytes: int, now: float) -> int:
    """A year of daily files totalling at least ``size_bytes``; returns the bytes written."""
    directory.mkdir(parents=True, exist_ok=True)
    per_day = size_bytes // 365 + 1
    written = 0
    sample = len(_request_line("2026-01-01T00:00:00.000000Z", 123456))
    lines_per_day = per_day // sample + 1
    for day in range(365, -1, -1):
        start = now - (day + 1) * DAY if day else now - DAY
        end = now - day * DAY
        chunks: list[bytes] = []
        step = (end - start) / lines_per_day
        etl_every = lines_per_day // len(TABLES)
        for n in range(lines_per_day):
            epoch = start + n * step
            ts = Fresh.iso(epoch)
            chunks.append(_request_line(ts, n))
            if n % etl_every == etl_every // 2:
                table = TABLES[(n // etl_every) % len(TABLES)]
                # table_13 has not run for 30 h (stale); table_07 fails today.
                if table == "table_13" and epoch > now - 30 * 3600:
                    continue
                failing = table == "table_07" and day == 0
                status = F.STATUS_FAILED if failing else F.STATUS_SUCCESS
                chunks.append(_etl_line(ts, epoch, table, status))
        data = b"".join(chunks)
        if day == 0:
            path = directory / "app.log"
        else:
            stamp = time.strftime("%Y%m%d", time.gmtime(end))
            path = directory / f"app.log-{stamp}-{int(end)}"
        path.write_bytes(data)
        os.utime(path, (end, end))
        written += len(data)
    return written


def _full_prefiltered(directory: Path) -> object:
    """The ETL numbers from every line of every file, parsing only the ETL lines."""
    runs = Fresh.EtlRuns()
    for path in Fresh.log_files([directory]):
        for raw in Fresh.read_lines(path):
            if b'"etl_run_' in raw:
                runs.add(raw)
    return runs.tables


def _raw_read(directory: Path) -> int:
    total = 0
    for path in Fresh.log_files([directory]):
        with path.open("rb") as stream:
            while block := stream.read(1 << 20):
                total += len(block)
    return total


def _time(run: Callable[[], object]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=1.1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--full-rounds", type=int, default=2, help="rounds of the full reads")
    parser.add_argument("--dir", help="keep the generated directory here (reused if present)")
    args = parser.parse_args()

    now = time.time()
    keep = args.dir is not None
    directory = Path(args.dir) if keep else Path(tempfile.mkdtemp(prefix="alkana-bench-"))
    try:
        marker = directory / ".generated"
        size = int(args.size_gb * 1e9)
        if not (keep and marker.exists() and int(marker.read_text().split()[0]) >= size):
            shutil.rmtree(directory, ignore_errors=True)
            print(f"writing {args.size_gb:g} GB of logs under {directory} ...", flush=True)
            started = time.perf_counter()
            written = make_year(directory, size, now)
            # The size asked for: a later run asking for the same reuses the directory.
            (directory / ".generated").write_text(f"{size} {now}\n")
            print(f"  {written / 1e9:.2f} GB in {time.perf_counter() - started:.0f} s", flush=True)
        else:
            now = float(marker.read_text().split()[1])
        files = Fresh.log_files([directory])
        total = sum(p.stat().st_size for p in files)
        print(f"{len(files)} files, {total / 1e9:.2f} GB\n", flush=True)

        health = H.HealthCheck(etl=H.LogDirFreshness(directory), cache_seconds=0, clock=lambda: now)
        cases: dict[str, Callable[[], object]] = {
            "etl_freshness (the health endpoint's read)": lambda: Fresh.etl_freshness(
                [directory], now=now
            ),
            "HealthCheck.detailed(), uncached": lambda: asyncio.run(health.detailed()),
        }
        anchors: dict[str, Callable[[], object]] = {
            "full report over every file (build_report)": lambda: Rep.build_report(
                [directory], now=now
            ),
            "every line of every file, ETL lines parsed": lambda: _full_prefiltered(directory),
            "read every byte, no parsing": lambda: _raw_read(directory),
        }
        # The answers agree: the recent read finds what the full report finds in the window.
        recent = {t.table: t for t in Fresh.etl_freshness([directory], now=now)}
        assert set(recent) == set(TABLES), sorted(recent)
        assert recent["table_13"].stale
        assert recent["table_07"].last_status == F.STATUS_FAILED
        _, body = asyncio.run(health.detailed())
        tables = body["components"]["etl"]["tables"]
        assert (tables["table_13"]["status"], tables["table_07"]["status"]) == ("stale", "failed")
        _ = orjson  # the report's parser, imported here so that its import is not timed

        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in (*cases, *anchors)}
        for round_ in range(max(args.rounds, args.full_rounds)):
            order = list(cases.items()) + list(anchors.items())
            if round_ % 2:
                order.reverse()
            for name, run in order:
                rounds = args.full_rounds if name in anchors else args.rounds
                if len(samples[name]) < rounds:
                    samples[name].append(_time(run))
            print(f"  round {round_ + 1} done", flush=True)

        def median(name: str, index: int) -> float:
            return statistics.median(sample[index] for sample in samples[name])

        base = median("etl_freshness (the health endpoint's read)", 0)
        rows = []
        for name in samples:
            wall, cpu = median(name, 0), median(name, 1)
            rows.append(
                (
                    name,
                    f"{wall * 1000:,.1f}",
                    f"{cpu * 1000:,.1f}",
                    f"{wall / base:,.1f}x",
                    f"{total / 1e6 / wall:,.0f}",
                )
            )
        print()
        print(_common.machine())
        print(
            f"{len(files)} files, {total / 1e9:.2f} GB; median of {args.rounds} rounds "
            f"({args.full_rounds} for the full reads)\n"
        )
        print(
            _common.table(
                ("case", "wall ms", "CPU ms", "wall vs etl_freshness", "MB/s of the directory"),
                rows,
            )
        )
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
