"""etl_run(): run and step events read back from a real log file; a real cron-style process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import alkana_logging
from alkana_logging import fields as F
from alkana_logging.etl import current_run, etl_run
from tests._logfiles import read_records

REPO = Path(__file__).resolve().parent.parent
RUN_EVENTS = (F.EVENT_ETL_RUN_STARTED, F.EVENT_ETL_RUN_FINISHED)


def events(path: Path, *names: str) -> list[dict[str, Any]]:
    return [r for r in read_records(path) if r.get(F.EVENT) in names]


def test_successful_run_writes_started_and_finished(log_file: Path) -> None:
    log = alkana_logging.get_logger("job")
    before = time.time()
    with etl_run("raw_mb51", job="daily", source="sap") as run:
        log.info("inside")
        run.rows(1000)
        run.rows(200)
        assert run.row_count == 1200
    after = time.time()

    started, finished = events(log_file, *RUN_EVENTS)
    assert started[F.EVENT] == F.EVENT_ETL_RUN_STARTED
    assert finished[F.EVENT] == F.EVENT_ETL_RUN_FINISHED
    for event in (started, finished):
        assert run.run_id == event[F.ETL_RUN_ID]
        assert event[F.TABLE] == "raw_mb51"
        assert event[F.ETL_JOB] == "daily"
        assert event["source"] == "sap"
        assert event[F.LOGGER] == "alkana_logging.etl"
        assert event[F.LEVEL] == F.INFO
    assert finished[F.STATUS] == F.STATUS_SUCCESS
    assert finished[F.ROWS] == 1200
    assert isinstance(finished[F.DURATION_MS], float)
    assert isinstance(finished[F.FINISHED_AT], float)
    assert before <= finished[F.FINISHED_AT] <= after
    assert F.ERROR_FIELD not in finished
    [inside] = [r for r in read_records(log_file) if r[F.MESSAGE] == "inside"]
    assert (run.run_id, "raw_mb51", "daily") == (
        inside[F.ETL_RUN_ID],
        inside[F.TABLE],
        inside[F.ETL_JOB],
    )
    assert alkana_logging.get_context() == {}


def test_run_without_job_has_no_etl_job(log_file: Path) -> None:
    with etl_run("raw_mara"):
        pass

    started, finished = events(log_file, *RUN_EVENTS)
    assert (started[F.TABLE], finished[F.TABLE]) == ("raw_mara", "raw_mara")
    assert F.ETL_JOB not in started
    assert F.ETL_JOB not in finished


def test_failed_run_logs_the_error_and_reraises(log_file: Path) -> None:
    def load() -> None:
        with etl_run("raw_prices", job="daily") as run:
            run.rows(10)
            raise ValueError("column 'price' is non-numeric")

    with pytest.raises(ValueError, match="non-numeric"):
        load()

    _, finished = events(log_file, *RUN_EVENTS)
    assert finished[F.STATUS] == F.STATUS_FAILED
    assert finished[F.LEVEL] == F.ERROR
    assert finished[F.ROWS] == 10
    assert finished[F.ERROR_FIELD] == "ValueError: column 'price' is non-numeric"
    assert finished[F.EXCEPTION_TYPE] == "ValueError"
    assert "raise ValueError" in finished[F.EXCEPTION_STACKTRACE]
    assert alkana_logging.get_context() == {}


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(0), SystemExit(2)])
def test_interrupt_and_exit_mark_the_run_failed(log_file: Path, exc: BaseException) -> None:
    with pytest.raises(type(exc)), etl_run("raw_mb52"):
        raise exc

    _, finished = events(log_file, *RUN_EVENTS)
    assert finished[F.STATUS] == F.STATUS_FAILED
    assert finished[F.ERROR_FIELD].startswith(type(exc).__name__)


def test_steps_write_their_own_events(log_file: Path) -> None:
    with etl_run("raw_mb51", job="daily") as run:
        with run.step("extract") as step:
            alkana_logging.get_logger("job").info("extracting")
            step.rows(1200)
        with run.step("load") as step:
            step.rows(1100)
        run.rows(1100)

    extract, load = events(log_file, F.EVENT_ETL_STEP_FINISHED)
    assert (
        extract[F.STEP],
        extract[F.ROWS],
        extract[F.STATUS],
    ) == ("extract", 1200, F.STATUS_SUCCESS)
    assert (load[F.STEP], load[F.ROWS], load[F.STATUS]) == ("load", 1100, F.STATUS_SUCCESS)
    for step in (extract, load):
        assert run.run_id == step[F.ETL_RUN_ID]
        assert step[F.TABLE] == "raw_mb51"
        assert isinstance(step[F.DURATION_MS], float)
    [inside] = [r for r in read_records(log_file) if r[F.MESSAGE] == "extracting"]
    assert inside[F.STEP] == "extract"
    _, finished = events(log_file, *RUN_EVENTS)
    assert finished[F.ROWS] == 1100  # step rows do not add to the run's count
    assert F.STEP not in finished


def test_failing_step_fails_the_run(log_file: Path) -> None:
    with pytest.raises(ConnectionError), etl_run("raw_mb51") as run, run.step("extract"):
        raise ConnectionError("source unreachable")

    [step] = events(log_file, F.EVENT_ETL_STEP_FINISHED)
    assert step[F.STATUS] == F.STATUS_FAILED
    assert step[F.ERROR_FIELD] == "ConnectionError: source unreachable"
    assert F.EXCEPTION_STACKTRACE not in step  # the run's finished event has it, once
    _, finished = events(log_file, *RUN_EVENTS)
    assert finished[F.STATUS] == F.STATUS_FAILED
    assert F.EXCEPTION_STACKTRACE in finished


def test_decorated_function_is_a_new_run_each_call(log_file: Path) -> None:
    @etl_run("raw_mb51", job="hourly")
    def load(n: int) -> int:
        run = current_run()
        assert run is not None
        run.rows(n)
        return n

    assert load(5) == 5
    assert load(7) == 7
    assert current_run() is None

    finished = events(log_file, F.EVENT_ETL_RUN_FINISHED)
    assert [e[F.ROWS] for e in finished] == [5, 7]
    assert len({e[F.ETL_RUN_ID] for e in finished}) == 2


def test_async_run_decorator_and_async_with(log_file: Path) -> None:
    @etl_run("raw_async")
    async def load() -> None:
        run = current_run()
        assert run is not None
        async with run.step("fetch") as step:
            await asyncio.sleep(0)
            step.rows(3)
        run.rows(3)

    async def main() -> None:
        await load()
        async with etl_run("raw_async_block") as run:
            run.rows(1)

    asyncio.run(main())

    finished = events(log_file, F.EVENT_ETL_RUN_FINISHED)
    assert [(e[F.TABLE], e[F.ROWS]) for e in finished] == [("raw_async", 3), ("raw_async_block", 1)]
    [step] = events(log_file, F.EVENT_ETL_STEP_FINISHED)
    assert step[F.ROWS] == 3


def test_concurrent_async_runs_keep_their_own_context(log_file: Path) -> None:
    log = alkana_logging.get_logger("job")

    async def one(table: str) -> str:
        async with etl_run(table) as run:
            await asyncio.sleep(0.001 * (len(table) % 3))
            log.info("working", marker=table)
            return run.run_id

    async def main() -> list[str]:
        return await asyncio.gather(*(one(f"table_{n}") for n in range(20)))

    run_ids = asyncio.run(main())

    working = [r for r in read_records(log_file) if r[F.MESSAGE] == "working"]
    assert sorted(r["marker"] for r in working) == sorted(f"table_{n}" for n in range(20))
    for record in working:
        n = int(record["marker"].split("_")[1])
        assert (f"table_{n}", run_ids[n]) == (record[F.TABLE], record[F.ETL_RUN_ID])


def test_rows_from_several_threads_add_up(log_file: Path) -> None:
    with etl_run("raw_threads") as run:

        def count() -> None:
            for _ in range(1000):
                run.rows(1)

        threads = [threading.Thread(target=count) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    _, finished = events(log_file, *RUN_EVENTS)
    assert finished[F.ROWS] == 4000


def test_a_run_runs_once() -> None:
    run = etl_run("raw_once")
    with run:
        pass
    with pytest.raises(RuntimeError, match="already"), run:
        pass


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: etl_run(""), ValueError, "table"),
        (lambda: etl_run(None), ValueError, "table"),
        (lambda: etl_run("t", job=""), ValueError, "job"),
        (lambda: etl_run("t", status="x"), ValueError, "status"),
        (lambda: etl_run("t", etl_run_id="x"), ValueError, "etl_run_id"),
        (lambda: etl_run("t").rows(-1), ValueError, "rows"),
        (lambda: etl_run("t").rows(1.5), TypeError, "rows"),
        (lambda: etl_run("t").rows(True), TypeError, "rows"),
        (lambda: etl_run("t").step(""), ValueError, "name"),
    ],
)
def test_bad_arguments_are_refused(call: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


CRON_SCRIPT = """
import sys, time
import alkana_logging
from alkana_logging.etl import etl_run

alkana_logging.setup(log_file=sys.argv[1], stdout=False)
with etl_run("raw_mb51", job="cron") as run:
    run.rows(42)
    print("ready", flush=True)
    time.sleep(60)
"""


def test_interrupted_cron_process_logs_the_run_as_failed(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(CRON_SCRIPT))
    process = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    assert process.returncode != 0
    assert b"KeyboardInterrupt" in stderr
    started, finished = events(path, *RUN_EVENTS)
    assert started[F.ETL_RUN_ID] == finished[F.ETL_RUN_ID]
    assert finished[F.STATUS] == F.STATUS_FAILED
    assert finished[F.ROWS] == 42
    assert finished[F.ERROR_FIELD] == "KeyboardInterrupt"
    assert finished[F.EXCEPTION_TYPE] == "KeyboardInterrupt"


def test_example_etl_job_logs_every_table_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    result = subprocess.run(
        [sys.executable, str(REPO / "integrations" / "examples" / "etl_job.py")],
        env={**os.environ, "PYTHONPATH": str(REPO), "LOG_FILE": str(path), "LOG_STDOUT": "false"},
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    finished = {e[F.TABLE]: e for e in events(path, F.EVENT_ETL_RUN_FINISHED)}
    assert {"raw_mb51", "raw_mb52", "raw_prices", "raw_mara"} == set(finished)
    assert finished["raw_prices"][F.STATUS] == F.STATUS_FAILED
    assert finished["raw_prices"][F.EXCEPTION_TYPE] == "ValueError"
    for table in ("raw_mb51", "raw_mb52", "raw_mara"):
        assert finished[table][F.STATUS] == F.STATUS_SUCCESS
        assert finished[table][F.ROWS] > 0
        assert finished[table][F.ETL_JOB] == "nightly"
    steps = events(path, F.EVENT_ETL_STEP_FINISHED)
    assert len(steps) == 3 * 3 + 3  # three steps each, the failing table stops after its load
    assert [e[F.EVENT] for e in events(path, F.EVENT_TIMING)] == [F.EVENT_TIMING]
    [failed_count] = events(path, F.EVENT_METRIC)
    assert failed_count[F.VALUE] == 1.0
