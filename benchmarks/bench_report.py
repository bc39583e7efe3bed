"""``alkana-logging report`` against DuckDB over the same log file: wall time and peak memory.

Writes a log file of ``--lines`` contract lines (70% ``http_request`` over 8 routes, 25%
application lines with some exceptions, ETL run events, ``metric`` events; about 360 bytes a
line), then runs, in interleaved rounds, each in its own process:

- ``report``: :func:`alkana_logging.ops.report.build_report` as the CLI runs it (worker processes
  when there are 32 MiB or more to read and more than one core);
- ``report, 1 process``: the same with ``workers=1``;
- ``duckdb``: ``read_json`` into a temporary table, then the same numbers with ``quantile_cont``
  (request count, 5xx count, slow count and p50/p95/p99 per route and overall, levels, top
  exceptions, ETL runs per table, the latest metric values).

It checks that both give the same numbers (to 1e-6) and prints the median wall time of each,
its ratio to DuckDB's, the median CPU time (the process and its workers, or DuckDB's threads),
and its peak RSS (the largest of the process and its workers). On a machine others share, the
kernel's autogroup scheduler gives each session its share of the cores, so workers (and
DuckDB's threads) gain wall time only on cores that are free.

    .venv/bin/python benchmarks/bench_report.py                    # 1M lines, 5 rounds
    .venv/bin/python benchmarks/bench_report.py --lines 10000000 --rounds 1 --no-duckdb
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

ROUTES = [
    "/api/items",
    "/api/items/{item_id}",
    "/api/orders",
    "/api/orders/{order_id}",
    "/health",
    "/api/users/{user_id}",
    "/api/reports/{report_id}/export",
    "/login",
]
BASE = 1_764_600_000
NOW = BASE + 100_000

REPORT = r"""
import json, resource, sys, time
from alkana_logging.ops.report import build_report
path, workers, now = sys.argv[1], sys.argv[2], float(sys.argv[3])
start = time.perf_counter()
report = build_report([path], now=now, workers=None if workers == "auto" else int(workers))
wall = time.perf_counter() - start
d = report.to_dict()
numbers = {
    "requests": d["requests"], "errors": d["errors"], "slow": d["slow_requests"],
    "latency": d["latency_ms"],
    "routes": {r["route"]: [r["requests"], r["errors"], r["slow"], r["p50_ms"], r["p95_ms"],
                            r["p99_ms"]] for r in d["routes"]},
    "levels": d["levels"],
    "exceptions": {e["exception_type"]: e["count"] for e in d["top_exceptions"]},
    "etl": {t["table"]: [t["runs"], t["failures"]] for t in d["etl"]},
    "metrics": {m["metric"]: [m["samples"], m["max"]] for m in d["metrics"]},
}
me, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
rss = max(me.ru_maxrss, workers.ru_maxrss)
cpu = me.ru_utime + me.ru_stime + workers.ru_utime + workers.ru_stime
print(json.dumps({"wall": wall, "cpu": cpu, "rss_kib": rss, "numbers": numbers}))
"""

DUCKDB = r"""
import json, resource, sys, time
import duckdb
path = sys.argv[1]
start = time.perf_counter()
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
con.execute(f'''CREATE TEMP TABLE logs AS SELECT * FROM read_json('{path}',
  format='newline_delimited', ignore_errors=true, columns={{timestamp: 'VARCHAR',
  level: 'VARCHAR', event: 'VARCHAR', route: 'VARCHAR', status_code: 'DOUBLE',
  duration_ms: 'DOUBLE', exception_type: 'VARCHAR', "table": 'VARCHAR', status: 'VARCHAR',
  metric: 'VARCHAR', value: 'DOUBLE'}})''')
q = lambda sql: con.execute(sql).fetchall()
total = q('''SELECT count(*), count(*) FILTER (status_code >= 500),
  count(*) FILTER (duration_ms > 2000), quantile_cont(duration_ms, 0.5),
  quantile_cont(duration_ms, 0.95), quantile_cont(duration_ms, 0.99)
  FROM logs WHERE event = 'http_request' ''')[0]
routes = q('''SELECT route, count(*), count(*) FILTER (status_code >= 500),
  count(*) FILTER (duration_ms > 2000), quantile_cont(duration_ms, 0.5),
  quantile_cont(duration_ms, 0.95), quantile_cont(duration_ms, 0.99)
  FROM logs WHERE event = 'http_request' GROUP BY route''')
levels = q("SELECT level, count(*) FROM logs WHERE level IS NOT NULL GROUP BY level")
exceptions = q('''SELECT exception_type, count(*) AS n FROM logs
  WHERE exception_type IS NOT NULL GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10''')
etl = q('''SELECT "table", count(*) FILTER (event = 'etl_run_finished'),
  count(*) FILTER (event = 'etl_run_finished' AND status = 'failed') FROM logs
  WHERE event IN ('etl_run_started', 'etl_run_finished') GROUP BY 1''')
metrics = q("SELECT metric, count(*), max(value) FROM logs WHERE event = 'metric' GROUP BY 1")
wall = time.perf_counter() - start
numbers = {
    "requests": total[0], "errors": total[1], "slow": total[2],
    "latency": {"p50": total[3], "p95": total[4], "p99": total[5]},
    "routes": {r[0]: list(r[1:]) for r in routes},
    "levels": dict(levels),
    "exceptions": dict(exceptions),
    "etl": {t[0]: list(t[1:]) for t in etl},
    "metrics": {m[0]: list(m[1:]) for m in metrics},
}
me = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
print(json.dumps({"wall": wall, "cpu": me.ru_utime + me.ru_stime, "rss_kib": me.ru_maxrss,
                  "numbers": numbers}))
"""


def write_log(path: Path, lines: int) -> None:
    rnd = random.Random(7)
    with path.open("wb") as out:
        for i in range(lines):
            ts = BASE + i * 0.01
            sec = int(ts)
            stamp = "2025-12-01T%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 - fixed-width fields
                (sec // 3600) % 24,
                (sec // 60) % 60,
                sec % 60,
                int((ts - sec) * 1e6),
            )
            rec: dict[str, object] = {
                "timestamp": stamp,
                "level": "info",
                "logger": "app.api",
                "message": "",
                "app": "alkana-dashboard",
                "env": "production",
                "host": f"web-{i % 3}",
                "pid": 4000 + i % 7,
            }
            r = rnd.random()
            if r < 0.70:
                route = rnd.choice(ROUTES)
                status = 500 if rnd.random() < 0.02 else (404 if rnd.random() < 0.05 else 200)
                rec.update(
                    logger="alkana_logging.middleware",
                    message=f"GET {route} {status}",
                    event="http_request",
                    method="GET",
                    route=route,
                    path=route.replace("{", "").replace("}", ""),
                    status_code=status,
                    duration_ms=round(rnd.lognormvariate(3, 1.2), 3),
                    request_id=f"{rnd.getrandbits(128):032x}",
                )
                if status >= 500:
                    rec["level"] = "error"
            elif r < 0.95:
                level = rnd.choices(["debug", "info", "warning", "error"], [5, 70, 20, 5])[0]
                rec.update(level=level, message=f"processed batch {i % 97} of 100", batch=i % 97)
                if level == "error":
                    rec.update(
                        exception_type=rnd.choice(["ValueError", "KeyError", "TimeoutError"]),
                        exception_message="boom",
                        exception='Traceback (most recent call last):\n  File "app.py"\nboom',
                    )
            elif r < 0.99:
                table = rnd.choice(["raw_mb51", "raw_mara", "fact_sales", "dim_customer"])
                finished = rnd.random() < 0.5
                rec.update(
                    logger="alkana_logging.etl",
                    event="etl_run_finished" if finished else "etl_run_started",
                    table=table,
                    run_id=f"{rnd.getrandbits(64):016x}",
                )
                if finished:
                    rec.update(
                        status="failed" if rnd.random() < 0.1 else "success",
                        rows=rnd.randint(0, 100_000),
                        duration_ms=round(rnd.uniform(100, 100_000), 3),
                        finished_at=ts,
                    )
            else:
                rec.update(event="metric", metric="db_connections_active", value=rnd.randint(1, 99))
            out.write(orjson.dumps(rec) + b"\n")


def run(code: str, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def same(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))
    return a == b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-duckdb", action="store_true", help="measure the report only")
    parser.add_argument("--dir", help="where to write the log (default: a temporary directory)")
    args = parser.parse_args()
    cases = {
        "report": (REPORT, "auto"),
        "report, 1 process": (REPORT, "1"),
    }
    if not args.no_duckdb:
        cases["duckdb"] = (DUCKDB, "")
    print(f"# Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.lines:,} lines")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        log = Path(tmp) / "app.log"
        write_log(log, args.lines)
        print(f"# {log.stat().st_size / 2**20:,.0f} MiB")
        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        rss: dict[str, int] = dict.fromkeys(cases, 0)
        numbers: dict[str, object] = {}
        names = list(cases)
        for index in range(args.rounds):
            order = names[index % len(names) :] + names[: index % len(names)]
            for name in order:
                code, workers = cases[name]
                extra = (workers, str(NOW)) if code is REPORT else ()
                result = run(code, str(log), *extra)
                walls[name].append(float(result["wall"]))  # type: ignore[arg-type]
                cpus[name].append(float(result["cpu"]))  # type: ignore[arg-type]
                rss[name] = max(rss[name], int(result["rss_kib"]))  # type: ignore[call-overload]
                numbers[name] = result["numbers"]
            print(f"  round {index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    for name in names[1:]:
        if not same(numbers[names[0]], numbers[name]):
            print(f"!! {name} gives other numbers than {names[0]}:")
            print(json.dumps(numbers[names[0]], sort_keys=True))
            print(json.dumps(numbers[name], sort_keys=True))
    anchor = statistics.median(walls["duckdb"]) if "duckdb" in walls else None
    # CPU seconds: the process and its workers (DuckDB: all its threads), counting the start-up.
    print("| case | median wall s | vs duckdb | median CPU s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        median = statistics.median(walls[name])
        ratio = f"{median / anchor:.2f}x" if anchor else "-"
        cpu = statistics.median(cpus[name])
        print(f"| {name} | {median:.2f} | {ratio} | {cpu:.2f} | {rss[name] / 1024:.0f} |")


if __name__ == "__main__":
    main()
