"""Rotation with several processes writing one file: nothing lost, duplicated or torn."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import alkana_logging
from alkana_logging.ops.configs import RenderOptions, render
from alkana_logging.sinks import FileSink
from tests._logfiles import log_files, read_lines, read_records

WRITER = Path(__file__).resolve().parents[1] / "_writer.py"
ROOT = Path(__file__).resolve().parents[2]


def start_writers(
    log_file: Path, workers: int, lines: int, *extra: str
) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [
        subprocess.Popen(
            [
                sys.executable,
                str(WRITER),
                "--file",
                str(log_file),
                "--worker",
                str(worker),
                "--lines",
                str(lines),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for worker in range(workers)
    ]


def wait_all(processes: list[subprocess.Popen[str]], timeout: float = 300) -> list[str]:
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err
        assert err == "", err
        outputs.append(out)
    return outputs


def assert_exactly_once(log_file: Path, workers: int, lines: int) -> list[dict[str, object]]:
    records = read_records(log_file)  # every line parses: none torn
    seen = Counter((r["worker"], r["seq"]) for r in records)
    expected = {(w, s) for w in range(workers) for s in range(lines)}
    assert set(seen) == expected
    assert [k for k, n in seen.items() if n > 1] == []
    assert len(records) == workers * lines
    return records


@pytest.mark.slow
@pytest.mark.parametrize("api", ["structlog", "stdlib"])
def test_size_rotation_four_processes_lose_and_duplicate_nothing(tmp_path: Path, api: str) -> None:
    log_file = tmp_path / "app.log"
    outputs = wait_all(start_writers(log_file, 4, 10_000, "--max-bytes", "65536", "--api", api))

    assert_exactly_once(log_file, 4, 10_000)
    rotated = [p for p in log_files(log_file) if p != log_file]
    assert len(rotated) >= 20
    # Backups stay near the limit: each process checks the real size every max_bytes/64 bytes.
    assert max(p.stat().st_size for p in rotated) < 65536 * 2
    assert sum(int(out.split()[2]) for out in outputs) == len(rotated)
    assert all(int(out.split()[1]) == 0 for out in outputs)  # no write errors


@pytest.mark.slow
def test_size_rotation_eight_processes_fifty_thousand_lines_each(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    wait_all(start_writers(log_file, 8, 50_000, "--max-bytes", "65536"))
    assert_exactly_once(log_file, 8, 50_000)


def test_rotated_names_fall_outside_the_shippers_glob(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    wait_all(start_writers(log_file, 1, 2_000, "--max-bytes", "16384", "--backup-count", "3"))

    assert sorted(p.name for p in tmp_path.glob("*.log")) == ["app.log"]
    assert sorted(p.name for p in log_files(log_file)) == [
        "app.log",
        "app.log.1",
        "app.log.2",
        "app.log.3",
    ]


def test_single_process_rotates_at_the_size_limit_exactly(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False, max_bytes=4096, backup_count=2)
    log = alkana_logging.get_logger("t")
    for i in range(200):
        log.info("line", seq=i)
    alkana_logging.shutdown()

    backup = tmp_path / "app.log.1"
    line_size = len(read_lines(log_file)[0]) + 1
    # A file is rotated once the line that reaches the limit is written.
    assert 4096 <= backup.stat().st_size < 4096 + line_size
    assert not (tmp_path / "app.log.3").exists()


@pytest.mark.slow
def test_after_the_directory_is_made_again_rotation_takes_the_new_lock(tmp_path: Path) -> None:
    # Rotation is serialised by an flock on app.log.lock. When the directory is deleted and made
    # again, a sink still holding the old (deleted) lock file must not rotate beside a process
    # that locks the new one.
    import fcntl

    log_dir = tmp_path / "logs"
    log_file = log_dir / "app.log"
    sink = FileSink(log_file, max_bytes=1000, backup_count=3, check_interval=0.0)
    line = b"x" * 99 + b"\n"
    for _ in range(12):  # one rotation: the lock file is open from now on
        sink.write(line, {}, time.time_ns())
    assert (log_dir / "app.log.1").exists()

    shutil.rmtree(log_dir)
    log_dir.mkdir()
    sink.write(line, {}, time.time_ns())  # the sink sees the deletion and opens a new app.log
    assert log_file.exists()

    other = os.open(log_dir / "app.log.lock", os.O_RDWR | os.O_CREAT)  # another process's lock
    fcntl.flock(other, fcntl.LOCK_EX)
    writer = threading.Thread(
        target=lambda: [sink.write(line, {}, time.time_ns()) for _ in range(12)]
    )
    writer.start()
    try:
        writer.join(timeout=2.0)
        assert writer.is_alive(), "the sink rotated while another process held the lock"
        assert not (log_dir / "app.log.1").exists()
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
        writer.join(timeout=10.0)
    sink.close()
    assert not writer.is_alive()
    assert (log_dir / "app.log.1").exists()
    total = sum(len(p.read_bytes()) for p in log_dir.glob("app.log*") if p.suffix != ".lock")
    assert total == 13 * len(line)


def test_backup_count_zero_never_rotates(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False, max_bytes=1024, backup_count=0)
    log = alkana_logging.get_logger("t")
    for i in range(100):
        log.info("line", seq=i)
    alkana_logging.shutdown()

    assert [p.name for p in log_files(log_file)] == ["app.log"]
    assert len(read_lines(log_file)) == 100


def test_external_mode_reopens_after_a_rename_without_a_signal(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    sink = FileSink(log_file, rotation="external", check_interval=0.0)
    sink.write(b"first\n", {}, time.time_ns())
    log_file.rename(tmp_path / "app.log-1")
    log_file.touch()
    sink.write(b"second\n", {}, time.time_ns())
    sink.close()

    assert (tmp_path / "app.log-1").read_bytes() == b"first\n"
    assert log_file.read_bytes() == b"second\n"


def test_external_mode_never_rotates_by_itself(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False, rotation="external", max_bytes=1024)
    log = alkana_logging.get_logger("t")
    for i in range(100):
        log.info("line", seq=i)
    alkana_logging.shutdown()
    assert [p.name for p in log_files(log_file)] == ["app.log"]


def shipped_logrotate_config(log_dir: Path) -> str:
    """The committed logrotate config, rendered for a temporary directory and this user."""
    options = RenderOptions(
        log_dir=str(log_dir),
        user=pwd.getpwuid(os.getuid()).pw_name,
        group=grp.getgrgid(os.getgid()).gr_name,
    )
    return render("logrotate", options)[0].text


@pytest.mark.slow
def test_external_mode_with_the_shipped_logrotate_config_loses_nothing(tmp_path: Path) -> None:
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    assert Path(logrotate).exists(), "logrotate is not installed (.ci/run installs it)"
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    conf = tmp_path / "logrotate.conf"
    conf.write_text(shipped_logrotate_config(log_dir))
    log_file = log_dir / "app.log"
    writers = start_writers(log_file, 4, 10_000, "--rotation", "external", "--pause-every", "2")
    rotations = 0
    stop = threading.Event()

    def rotate() -> None:
        nonlocal rotations
        while not stop.wait(1.5):
            result = subprocess.run(
                [logrotate, "-f", "-s", str(tmp_path / "state"), str(conf)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            rotations += 1

    rotator = threading.Thread(target=rotate)
    rotator.start()
    try:
        wait_all(writers)
    finally:
        stop.set()
        rotator.join()

    assert rotations >= 2
    assert any(p.suffix == ".gz" for p in log_files(log_file))  # compressed after a rotation
    assert_exactly_once(log_file, 4, 10_000)


def test_log_directory_is_created_and_the_file_is_0640(tmp_path: Path) -> None:
    log_file = tmp_path / "nested" / "logs" / "app.log"
    old_umask = os.umask(0o022)
    try:
        alkana_logging.setup(log_file=str(log_file), stdout=False)
    finally:
        os.umask(old_umask)
    alkana_logging.get_logger("t").info("x")
    alkana_logging.shutdown()
    assert oct(log_file.stat().st_mode & 0o777) == oct(0o640)
