"""The pipeline's counters (alkana_logging.health.PipelineHealth) and ``pipeline_health()``."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import alkana_logging
from alkana_logging.health import PipelineHealth


def test_a_new_health_is_all_zero() -> None:
    assert PipelineHealth().snapshot() == {
        "lines_written": 0,
        "write_errors": 0,
        "rotations": 0,
        "internal_errors": 0,
        "dropped": {},
        "dropped_total": 0,
        "last_error": None,
        "last_error_at": None,
    }


def test_drops_are_counted_by_reason_and_in_total() -> None:
    health = PipelineHealth()
    health.drop("queue_full")
    health.drop("queue_full", 4)
    health.drop("loki_rejected_400", 2)
    snapshot = health.snapshot()
    assert snapshot["dropped"] == {"queue_full": 5, "loki_rejected_400": 2}
    assert snapshot["dropped_total"] == 7


def test_the_snapshot_is_a_copy() -> None:
    health = PipelineHealth()
    health.drop("queue_full")
    snapshot = health.snapshot()
    snapshot["dropped"]["queue_full"] = 99
    assert health.snapshot()["dropped"] == {"queue_full": 1}


def test_a_write_error_is_counted_and_reported_only_when_asked(
    capfd: pytest.CaptureFixture[str],
) -> None:
    health = PipelineHealth()
    health.write_error("disk full", report=False)
    assert capfd.readouterr().err == ""
    health.write_error("disk still full", report=True)
    assert capfd.readouterr().err == "alkana_logging: disk still full\n"
    snapshot = health.snapshot()
    assert (snapshot["write_errors"], snapshot["last_error"]) == (2, "disk still full")
    assert isinstance(snapshot["last_error_at"], float)


def test_internal_errors_are_reported_once_and_counted_each_time(
    capfd: pytest.CaptureFixture[str],
) -> None:
    health = PipelineHealth()
    for n in range(3):
        health.internal_error(f"renderer failed {n}")
    assert capfd.readouterr().err == "alkana_logging: renderer failed 0\n"
    snapshot = health.snapshot()
    assert (snapshot["internal_errors"], snapshot["last_error"]) == (3, "renderer failed 2")


def test_url_credentials_never_reach_the_counters_or_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    health = PipelineHealth()
    health.write_error("push to http://alice:S3cret-pw@loki:3100 failed", report=True)
    written = str(health.snapshot())
    health.internal_error("again http://alice:S3cret-pw@loki:3100")
    internal = str(health.snapshot())
    err = capfd.readouterr().err
    assert err.count("alkana_logging: ") == 2
    for text in (written, internal, err):
        assert "S3cret-pw" not in text
        assert "alice" not in text


def test_extra_values_and_callables_are_in_the_snapshot() -> None:
    health = PipelineHealth(extra={"loki_url": "http://loki:3100", "queued": lambda: 12})
    snapshot = health.snapshot()
    assert (snapshot["loki_url"], snapshot["queued"]) == ("http://loki:3100", 12)


def test_after_fork_the_child_counts_from_zero_with_a_lock_of_its_own() -> None:
    health = PipelineHealth(lines_written=10, rotations=2)
    health.drop("queue_full")
    health.write_error("x", report=False)
    parent_lock = health._lock
    health.after_fork()
    snapshot = health.snapshot()
    assert {k: snapshot[k] for k in ("lines_written", "write_errors", "rotations")} == {
        "lines_written": 0,
        "write_errors": 0,
        "rotations": 0,
    }
    assert (snapshot["dropped"], snapshot["last_error"]) == ({}, None)
    assert health._lock is not parent_lock


def test_report_never_raises_when_stderr_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    read, write = os.pipe()
    os.close(read)
    stream = os.fdopen(write, "w")
    stream.close()
    monkeypatch.setattr("sys.stderr", stream)
    PipelineHealth.report("nowhere to go")  # must not raise


def test_counts_from_many_threads_add_up() -> None:
    health = PipelineHealth()

    def drop() -> None:
        for _ in range(1000):
            health.drop("queue_full")

    threads = [threading.Thread(target=drop) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert health.snapshot()["dropped"] == {"queue_full": 8000}


def test_pipeline_health_counts_the_lines_of_the_running_pipeline(log_file: Path) -> None:
    log = alkana_logging.get_logger("x")
    for n in range(5):
        log.info("line", n=n)
    health = alkana_logging.pipeline_health()
    assert health["lines_written"] == 5
    assert (health["write_errors"], health["dropped_total"]) == (0, 0)
