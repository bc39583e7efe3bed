"""A cron-style ETL script: several tables, each one run with ``etl_run``, one of which fails.

Run it as cron would (the log goes where ``LOG_FILE`` says, ``logs/app.log`` by default)::

    .venv/bin/python integrations/examples/etl_job.py

Every table is attempted even when an earlier one failed: a failing table writes its
``etl_run_finished`` event with ``status: failed`` and the stack trace, and the next table runs.
The exit code is 1 when any table failed (0 when all succeeded), so that cron's mail, a systemd
``OnFailure=`` unit or a CI step notice it too; the alerts and the freshness panel read the
events, not the exit code. Ctrl-C (``KeyboardInterrupt``) stops the script at once: the table in
progress is logged as failed and the interrupt goes on.
"""

from __future__ import annotations

import sys
import time

import alkana_logging
from alkana_logging.etl import etl_run
from alkana_logging.metrics import metric, timed

JOB = "nightly"

log = alkana_logging.get_logger("etl_job")


def extract(table: str, count: int) -> list[dict[str, object]]:
    time.sleep(0.01)  # stands for the query against the source system
    return [{"table": table, "n": n, "qty": n % 17} for n in range(count)]


def transform(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [row for row in rows if row["qty"] != 0]


def load(table: str, rows: list[dict[str, object]]) -> int:
    if table == "raw_prices":
        raise ValueError(f"{table}: column 'price' has a non-numeric value in row 1187")
    time.sleep(0.01)  # stands for the COPY into the warehouse
    return len(rows)


def load_table(table: str, count: int) -> None:
    with etl_run(table, job=JOB, source="sap") as run:
        with run.step("extract") as step:
            rows = extract(table, count)
            step.rows(len(rows))
        with run.step("transform") as step:
            rows = transform(rows)
            step.rows(len(rows))
        with run.step("load") as step:
            loaded = load(table, rows)
            step.rows(loaded)
        run.rows(loaded)
        log.info("table loaded", rows=loaded)  # carries etl_run_id, table and etl_job


TABLES: list[tuple[str, int]] = [
    ("raw_mb51", 1200),
    ("raw_mb52", 640),
    ("raw_prices", 1500),  # fails in its load step
    ("raw_mara", 300),
]


def main() -> int:
    alkana_logging.setup()  # LOG_FILE, LOG_LEVEL, APP_NAME, ... from the environment
    failed: list[str] = []
    for table, count in TABLES:
        try:
            load_table(table, count)
        except Exception:  # noqa: BLE001 - already logged by etl_run; the next table still runs
            failed.append(table)
    with timed("refresh_materialized_views", views="mv_stock"):
        time.sleep(0.01)
    metric("etl_tables_failed", len(failed), etl_job=JOB)
    if failed:
        log.error("tables failed", failed=failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
