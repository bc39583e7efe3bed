"""Faults: a full disk, a deleted log directory, an unwritable ``LOG_FILE``, signals, exit,
``fork()`` and many threads. The caller never fails, what could not be written is reported once
and counted, and what was logged before a crash or an exit is in the file.

Some faults need privileges that CI may not have: a small tmpfs needs ``mount`` (root or
CAP_SYS_ADMIN); denying a write to root needs ``setpriv`` to drop CAP_DAC_OVERRIDE. Those tests
skip with the reason when the machine cannot do it; ``/dev/full`` and a path under a regular
file fail writes everywhere, so the same code paths are always covered.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import alkana_logging
from alkana_logging import fields as F
from alkana_logging.exceptions import ConfigurationError
from tests._children import CHILD_TIMEOUT, child_env, run_child
from tests._frontends import (
    APP,
    assert_schema,
    log_call,
    parse_line,
    read_lines,
    read_records,
    setup_file,
)


def stderr_lines(capfd: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if line.strip()]


def indices(path: Path, key: str = "i") -> list[int]:
    return [record[key] for record in read_records(path) if key in record]


# -- file modes -----------------------------------------------------------------------------------


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o000, 0o077], ids=oct)
def test_log_file_is_created_0640_never_world_readable(tmp_path: Path, mask: int) -> None:
    with umask(mask):
        path = setup_file(tmp_path)
        log_call("structlog", "one")
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o640 & ~mask
    assert not mode & 0o007


@pytest.mark.parametrize("mask", [0o022, 0o000], ids=oct)
def test_created_log_directory_is_not_world_writable(tmp_path: Path, mask: int) -> None:
    """Under any umask: a world-writable log directory lets anyone replace or delete the logs."""
    with umask(mask):
        path = setup_file(tmp_path)
    assert not stat.S_IMODE(path.parent.stat().st_mode) & 0o002


def test_rotated_files_and_lock_file_keep_0640(tmp_path: Path) -> None:
    with umask(0o022):
        path = setup_file(tmp_path, max_bytes=16 * 1024, backup_count=3)
        for i in range(400):
            log_call("stdlib_extra", "fill", {"i": i, "pad": "p" * 100})
    files = sorted(p for p in path.parent.iterdir())
    names = {p.name for p in files}
    assert {"app.log", "app.log.1", "app.log.lock"} <= names, names
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o640 for p in files}


# -- a full disk ----------------------------------------------------------------------------------


def test_disk_full_dev_full_is_reported_once_counted_and_recovered(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """``LOG_FILE`` is a symlink to ``/dev/full``: every write fails with ENOSPC. Removing the
    symlink makes writing possible again (the sink reopens the path and creates a file)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full does not exist on this system")
    path = tmp_path / "logs" / "app.log"
    path.parent.mkdir()
    path.symlink_to("/dev/full")
    setup_file(tmp_path)
    for i in range(50):
        log_call("structlog", "while full", {"i": i})  # never raises
    health = alkana_logging.pipeline_health()
    assert health["lines_written"] == 0
    assert health["write_errors"] >= 50
    assert "No space left on device" in health["last_error"]
    reports = stderr_lines(capfd)
    assert len(reports) == 1, reports
    assert "No space left on device" in reports[0]
    assert str(path) in reports[0]

    path.unlink()  # the disk has room again
    log_call("structlog", "after", {"i": 50})
    assert indices(path) == list(range(51))  # kept lines written first, in order
    health = alkana_logging.pipeline_health()
    assert health["lines_written"] == 51
    assert health["dropped_total"] == 0
    reports = stderr_lines(capfd)
    assert len(reports) == 1, reports
    assert "works again" in reports[0]


def test_disk_full_beyond_the_pending_bound_drops_the_oldest_and_counts_them(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "logs" / "app.log"
    path.parent.mkdir()
    path.symlink_to("/dev/full")
    setup_file(tmp_path)
    # FileSink keeps at most 10,000 lines in memory while writing fails.
    total = 10_250
    for i in range(total):
        logging.getLogger("etl").info("while full", extra={"i": i})
    path.unlink()
    logging.getLogger("etl").info("after", extra={"i": total})
    kept = indices(path)
    health = alkana_logging.pipeline_health()
    assert health["dropped"] == {"file_write_failed": total - 10_000}
    assert kept == list(range(total - 10_000, total + 1))
    assert len(stderr_lines(capfd)) == 2  # the failure, then "works again"


def _can_mount() -> str | None:
    """None when a tmpfs can be mounted here, else the reason why not."""
    if sys.platform != "linux" or shutil.which("mount") is None:
        return "no Linux mount(8)"
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    return None


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A private tmpfs mounted at ``where`` for the block; always unmounted afterwards."""
    reason = _can_mount()
    if reason is not None:
        pytest.skip(f"cannot mount a tmpfs ({reason}); /dev/full covers ENOSPC")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        alkana_logging.shutdown()  # close the log file before unmounting
        subprocess.run(["umount", str(where)], check=False, capture_output=True)
        if os.path.ismount(where):
            subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` to the last byte; return the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def test_disk_full_on_a_small_filesystem_no_torn_or_lost_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A real full filesystem: the last line that fits only partly must not be torn, and no line
    may be written twice."""
    with tmpfs(tmp_path / "mnt", "size=64k,mode=0755") as mnt:
        path = setup_file(mnt)
        for i in range(5):
            log_call("structlog", "before", {"i": i, "pad": "b" * 150})
        filler = fill(mnt)
        for i in range(5, 105):  # the file's last page fills, then writes fail
            log_call("stdlib_extra", "while full", {"i": i, "pad": "w" * 150})
        health = alkana_logging.pipeline_health()
        assert health["write_errors"] >= 1
        assert health["lines_written"] < 105
        reports = stderr_lines(capfd)
        assert len(reports) == 1, reports
        assert "No space left on device" in reports[0]

        filler.unlink()
        log_call("structlog", "after", {"i": 105})
        assert indices(path) == list(range(106))  # read_lines refuses torn lines
        assert alkana_logging.pipeline_health()["lines_written"] == 106
        assert ["works again" in line for line in stderr_lines(capfd)] == [True]


# -- the log directory deleted while running ------------------------------------------------------


def test_deleted_log_directory_is_recreated_and_the_loss_reported(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Lines written to a deleted file between two checks of the path are gone; the sink must
    notice at its next check (every max_bytes/64 bytes, at least 4 KiB, or every second),
    recreate the directory, report once and count what it lost."""
    # max_bytes / 64 = 4 KiB between two checks; 500 lines stay below max_bytes (no rotation).
    path = setup_file(tmp_path, max_bytes=256 * 1024)
    for i in range(10):
        log_call("structlog", "before", {"i": i})
    shutil.rmtree(path.parent)
    for i in range(10, 510):
        log_call("structlog", "after deletion", {"i": i, "pad": "d" * 120})  # never raises
    assert path.exists()
    kept = indices(path)
    assert kept == list(range(kept[0], 510))  # nothing missing after the reopen
    line_bytes = len(read_lines(path)[0]) + 1
    lost = kept[0] - 10
    assert lost * line_bytes <= 4096 + line_bytes  # bounded by one check interval in bytes
    health = alkana_logging.pipeline_health()
    assert health["dropped_total"] >= lost, health
    reports = stderr_lines(capfd)
    assert len(reports) == 1, reports
    assert str(path) in reports[0]


def test_log_directory_replaced_by_a_file_then_restored(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """While the directory cannot be recreated (a regular file took its name), nothing goes to
    the deleted file: lines are kept (bounded), the failure is reported once, not once per line,
    and everything kept is written when the path is usable again."""
    path = setup_file(tmp_path, max_bytes=256 * 1024)
    for i in range(10):
        log_call("structlog", "before", {"i": i})
    shutil.rmtree(path.parent)
    path.parent.write_text("not a directory\n")
    for i in range(10, 1010):
        log_call("stdlib_extra", "blocked", {"i": i, "pad": "x" * 120})
    blocked_reports = stderr_lines(capfd)
    assert len(blocked_reports) == 1, blocked_reports
    path.parent.unlink()  # writing is possible again
    log_call("structlog", "restored", {"i": 1010})
    kept = indices(path)
    assert kept == list(range(kept[0], 1011))
    lost = kept[0] - 10
    line_bytes = len(read_lines(path)[-1]) + 1
    assert lost * line_bytes <= 4096 + line_bytes  # only what went to the deleted file
    health = alkana_logging.pipeline_health()
    assert health["dropped_total"] >= lost, health
    assert ["works again" in line for line in stderr_lines(capfd)] == [True]


# -- LOG_FILE that cannot be written at setup() ---------------------------------------------------

_DENIED_CHILD = """
    import json, sys
    import alkana_logging
    mode, log_file = sys.argv[1], sys.argv[2]
    try:
        if mode == "raise":
            alkana_logging.setup(log_file=log_file, stdout=False)
        else:
            alkana_logging.setup(log_file=log_file, stdout=mode == "stdout_too",
                                 on_file_error="stdout", app_name="denied")
            alkana_logging.get_logger("child").info("still logged", n=1)
    except alkana_logging.ConfigurationError as err:
        print(json.dumps({"error": type(err).__name__, "message": str(err)}))
"""


def _dac_prefix() -> tuple[str, ...]:
    """A command prefix under which permission bits apply (root bypasses them)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root bypasses permission bits and setpriv(1) is missing to drop them")
    caps = "-dac_override,-dac_read_search"
    prefix = (setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}")
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:  # e.g. a container without CAP_SETPCAP
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {probe.stderr.strip()}")
    return prefix


@pytest.fixture
def denied_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "denied"
    directory.mkdir()
    directory.chmod(0o500)
    yield directory
    directory.chmod(0o700)


def test_setup_permission_denied_is_a_clear_configuration_error(denied_dir: Path) -> None:
    log_file = denied_dir / "logs" / "app.log"
    done = run_child(_DENIED_CHILD, "raise", str(log_file), prefix=_dac_prefix())
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["error"] == "ConfigurationError"
    assert "LOG_FILE" in result["message"]
    assert str(log_file) in result["message"]
    assert "Permission denied" in result["message"]
    assert "LOG_ON_FILE_ERROR=stdout" in result["message"]


@pytest.mark.parametrize("mode", ["stdout_fallback", "stdout_too"])
def test_setup_permission_denied_falls_back_to_stdout(denied_dir: Path, mode: str) -> None:
    log_file = denied_dir / "app.log"
    done = run_child(_DENIED_CHILD, mode, str(log_file), prefix=_dac_prefix())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.encode().split(b"\n")
    assert lines[-1] == b""
    [line] = lines[:-1]  # exactly one line, whether stdout was on or not
    record = parse_line(line)
    assert_schema(
        record, logger="child", app="denied", env="dev", host=socket.gethostname(), pid=done.pid
    )
    assert (record[F.MESSAGE], record["n"]) == ("still logged", 1)
    warnings = [w for w in done.stderr.splitlines() if w.strip()]
    assert len(warnings) == 1, warnings
    assert "LOG_FILE" in warnings[0]
    assert "Permission denied" in warnings[0]
    assert "stdout" in warnings[0]
    assert not log_file.exists()


def test_setup_log_file_under_a_regular_file(tmp_path: Path) -> None:
    """Fails for root too: the parent of LOG_FILE is a file."""
    (tmp_path / "plain").write_text("x")
    log_file = tmp_path / "plain" / "logs" / "app.log"
    with pytest.raises(
        ConfigurationError, match=r"LOG_FILE=.*plain/logs/app\.log.*cannot be opened"
    ):
        alkana_logging.setup(log_file=str(log_file), stdout=False)
    assert not alkana_logging.is_configured()


def test_setup_log_file_from_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plain").write_text("x")
    monkeypatch.setenv("LOG_FILE", str(tmp_path / "plain" / "app.log"))
    with pytest.raises(ConfigurationError, match="LOG_FILE="):
        alkana_logging.setup(stdout=False)


def test_setup_on_a_read_only_filesystem(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with tmpfs(tmp_path / "ro", "size=64k,ro") as ro:
        log_file = ro / "logs" / "app.log"
        with pytest.raises(ConfigurationError, match="Read-only file system"):
            alkana_logging.setup(log_file=str(log_file), stdout=False)
        alkana_logging.setup(
            log_file=str(log_file), stdout=False, on_file_error="stdout", app_name=APP
        )
        alkana_logging.get_logger("ro").info("to stdout")
        out, err = capfd.readouterr()
        [record] = [parse_line(line.encode()) for line in out.splitlines()]
        assert (record[F.MESSAGE], record[F.APP]) == ("to stdout", APP)
        assert "Read-only file system" in err
        assert len(err.splitlines()) == 1


# -- signals and exit: what was logged is in the file ---------------------------------------------

_LOAD_CHILD = """
    import logging, mmap, os, signal, sys, time
    import alkana_logging
    from loguru import logger as loguru_logger
    mode, log_file, counter_file, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    alkana_logging.setup(log_file=log_file, stdout=False, max_bytes=0)
    if mode == "sigterm_handler":
        # What servers do: turn SIGTERM into a normal exit (atexit handlers run).
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with open(counter_file, "r+b") as f:
        counter = mmap.mmap(f.fileno(), 8)
    log = alkana_logging.get_logger("load")
    std = logging.getLogger("load")
    pad = "x" * 100
    i = 0
    while i < total:
        kind = i % 3
        if kind == 0:
            log.info("line", i=i, pad=pad)
        elif kind == 1:
            std.info("line", extra={"i": i, "pad": pad})
        else:
            loguru_logger.bind(i=i, pad=pad).info("line")
        i += 1
        counter[:8] = i.to_bytes(8, "little")  # calls that returned
"""


def _returned(counter_file: Path) -> int:
    return int.from_bytes(counter_file.read_bytes()[:8], "little")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "signum"),
    [
        ("sigterm_default", signal.SIGTERM),
        ("sigterm_handler", signal.SIGTERM),
        ("sigint", signal.SIGINT),
        ("sigkill", signal.SIGKILL),
    ],
)
def test_signal_during_heavy_logging_keeps_every_returned_line(
    tmp_path: Path, mode: str, signum: int
) -> None:
    log_file = tmp_path / "logs" / "app.log"
    counter_file = tmp_path / "counter"
    counter_file.write_bytes(b"\0" * 8)
    command = [sys.executable, "-c", textwrap.dedent(_LOAD_CHILD)]
    command += [mode, str(log_file), str(counter_file), str(10**9)]
    with subprocess.Popen(
        command, env=child_env(), stderr=subprocess.PIPE, start_new_session=True
    ) as proc:
        try:
            # Wait until the child logs at full speed (no time limit on the count itself).
            while _returned(counter_file) < 20_000 and proc.poll() is None:
                time.sleep(0.01)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            proc.send_signal(signum)
            proc.communicate(timeout=CHILD_TIMEOUT)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    returned = _returned(counter_file)
    if mode in ("sigterm_default", "sigkill"):
        # A signal that ends the process at once can cut the write it lands in (the kernel
        # copies a write page by page): that call never returned, and its part stops at a
        # page boundary. The next writer to open the file ends it (see the test below).
        whole, part = _cut_at_page_boundary(log_file)
        if part:
            log_file.write_bytes(whole)
            found = indices(log_file)
            assert found == list(range(returned)), "only the interrupted call may be cut"
            return
    found = indices(log_file)  # read_lines fails on a torn last line
    # Every call that returned is in the file; the one interrupted may or may not be.
    assert len(found) in (returned, returned + 1)
    assert found == list(range(len(found)))


def _cut_at_page_boundary(path: Path) -> tuple[bytes, bytes]:
    """The file's whole lines and the part of a line a dying process's write left after them
    (empty if the file ends with a newline); a part must end at a 4 KiB page boundary."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    whole, part = data[:end], data[end:]
    if part:
        assert len(data) % 4096 == 0, f"a torn last line not at a page boundary: {part[-200:]!r}"
        assert part.startswith(b'{"'), part[:200]
    return whole, part


_ONE_HUGE_WRITE = """
    import os, sys
    from pathlib import Path
    from alkana_logging.sinks import FileSink
    sink = FileSink(Path(sys.argv[1]), max_bytes=0)
    line = b'{"event":"huge","pad":"' + b"x" * (256 << 20) + b'"}\\n'
    os.write(1, b"go")
    sink.write(line, {}, 0)  # 256 MiB in one write(): the parent kills the process inside it
    os.write(1, b"returned")
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_line_cut_by_a_killed_process_is_ended_by_the_next_writer(
    tmp_path: Path, signum: int
) -> None:
    log_file = tmp_path / "app.log"
    log_file.write_bytes(b'{"event":"before"}\n')
    command = [sys.executable, "-c", textwrap.dedent(_ONE_HUGE_WRITE), str(log_file)]
    with subprocess.Popen(
        command, env=child_env(), stdout=subprocess.PIPE, start_new_session=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.read(2) == b"go"
            deadline = time.monotonic() + CHILD_TIMEOUT
            while log_file.stat().st_size < 1 << 20 and time.monotonic() < deadline:
                time.sleep(0.0005)  # the write has begun
            proc.send_signal(signum)
            out, _ = proc.communicate(timeout=CHILD_TIMEOUT)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signum
    assert b"returned" not in out, "the write finished before the signal: make the line longer"
    whole, part = _cut_at_page_boundary(log_file)
    assert whole == b'{"event":"before"}\n'
    assert 0 < len(part) < (256 << 20)

    alkana_logging.setup(log_file=str(log_file), stdout=False, max_bytes=0)
    try:
        alkana_logging.get_logger("after").info("after")
    finally:
        alkana_logging.shutdown()
    lines = log_file.read_bytes().split(b"\n")
    assert lines[0] == b'{"event":"before"}'
    assert lines[1] == part, "the part stays one line of its own"
    assert json.loads(lines[2])[F.MESSAGE] == "after", "the next line is whole, not glued to it"
    assert lines[3:] == [b""]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", b""),
        (b'{"event":"a"}\n', b'{"event":"a"}\n'),
        (b'{"event":"a"}\n{"ev', b'{"event":"a"}\n{"ev\n'),
        (b"no newline at all", b"no newline at all\n"),
    ],
    ids=["empty", "ends-a-line", "torn", "one-torn-line"],
)
def test_opening_a_file_ends_a_torn_last_line_only(
    tmp_path: Path, content: bytes, expected: bytes
) -> None:
    from alkana_logging.sinks import FileSink

    log_file = tmp_path / "app.log"
    log_file.write_bytes(content)
    sink = FileSink(log_file, max_bytes=0)
    sink.write(b'{"event":"next"}\n', {}, 0)
    sink.close()
    assert log_file.read_bytes() == expected + b'{"event":"next"}\n'


@pytest.mark.slow
def test_normal_exit_without_shutdown_keeps_every_line(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "app.log"
    counter_file = tmp_path / "counter"
    counter_file.write_bytes(b"\0" * 8)
    done = run_child(_LOAD_CHILD, "normal", str(log_file), str(counter_file), "30000")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert indices(log_file) == list(range(30_000))


# -- fork() after setup() -------------------------------------------------------------------------

_FORK_CHILD = """
    import json, logging, os, sys, threading
    import alkana_logging
    from loguru import logger as loguru_logger
    log_file, forks = sys.argv[1], int(sys.argv[2])
    alkana_logging.setup(log_file=log_file, stdout=False, max_bytes=0)
    log = alkana_logging.get_logger("fork")
    std = logging.getLogger("fork")
    stop = threading.Event()

    def busy():
        # Keeps the pipeline's locks (sink, loguru handler) taken as often as possible.
        while not stop.is_set():
            log.info("busy")
            std.info("busy")
            loguru_logger.info("busy")

    threads = [threading.Thread(target=busy) for _ in range(2)]
    for t in threads:
        t.start()
    children = {}
    for k in range(forks):
        pid = os.fork()
        if pid == 0:
            try:
                with alkana_logging.bound_context(child=k):
                    for j in range(100):
                        log.info("child", j=j)
                        std.info("child", extra={"j": j})
                        loguru_logger.bind(j=j).info("child")
                alkana_logging.shutdown()
            finally:
                os._exit(0)
        children[pid] = k
    statuses = {pid: os.waitpid(pid, 0)[1] for pid in children}
    stop.set()
    for t in threads:
        t.join()
    print(json.dumps({
        "parent": os.getpid(),
        "children": {str(pid): k for pid, k in children.items()},
        "statuses": list(statuses.values()),
    }))
"""


@pytest.mark.slow
def test_fork_while_threads_log_no_deadlock_and_child_lines_are_its_own(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "app.log"
    forks = 20
    done = run_child(_FORK_CHILD, str(log_file), str(forks))  # a deadlock fails on the timeout
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["statuses"] == [0] * forks
    records = read_records(log_file)  # every line is strict JSON, none torn
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        by_pid.setdefault(record[F.PID], []).append(record)
    children = {int(pid): k for pid, k in result["children"].items()}
    assert set(by_pid) == {result["parent"], *children}
    for pid, k in children.items():
        lines = by_pid[pid]
        assert len(lines) == 300
        assert all(r["child"] == k and r[F.MESSAGE] == "child" for r in lines)
        for kind in range(3):  # each front-end wrote j = 0..99 in order
            assert [r["j"] for r in lines[kind::3]] == list(range(100))
    parent = by_pid[result["parent"]]
    # Python 3.12+ warns that fork() in a multi-threaded process may deadlock the child. That is
    # true here (the busy threads run), so the library leaves the warning alone: with
    # captureWarnings on, it is one line from `py.warnings` (once per call site, by default).
    warned = [r for r in parent if r[F.LOGGER] == "py.warnings"]
    if sys.version_info >= (3, 12):
        assert len(warned) == 1, warned
        assert warned[0][F.LEVEL] == "warning"
        assert (
            f"DeprecationWarning: This process (pid={result['parent']}) is multi-threaded, "
            "use of fork() may lead to deadlocks in the child."
        ) in warned[0][F.MESSAGE]
    else:
        assert warned == []
    busy = [r for r in parent if r[F.LOGGER] != "py.warnings"]
    assert busy
    assert all(r[F.MESSAGE] == "busy" and "child" not in r for r in busy)


# -- many threads ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_16_threads_10000_lines_each_exact_count_no_torn_line(tmp_path: Path) -> None:
    path = setup_file(tmp_path, max_bytes=0)
    threads, per_thread = 16, 10_000
    frontends = ("structlog", "stdlib_extra", "loguru_bind", "bound_context")
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            barrier.wait()
            frontend = frontends[t % len(frontends)]
            for i in range(per_thread):
                log_call(frontend, "load", {"worker": t, "i": i})
        except BaseException as err:
            errors.append(err)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    records = read_records(path)  # strict JSON, line by line: a torn line fails here
    assert len(records) == threads * per_thread
    seen: dict[int, list[int]] = {t: [] for t in range(threads)}
    for record in records:
        seen[record["worker"]].append(record["i"])
    assert seen == {t: list(range(per_thread)) for t in range(threads)}
    assert alkana_logging.pipeline_health()["lines_written"] == threads * per_thread


# -- kept lines, signal handlers and counts ------------------------------------------------------

_RETRY_RACE = """
    import json, os, resource, signal, sys
    import alkana_logging
    log_file = sys.argv[1]
    alkana_logging.setup(log_file=log_file, stdout=False, max_bytes=0)
    log = alkana_logging.get_logger("x")
    log.info("start")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # The file may not grow (EFBIG: CPython ignores SIGXFSZ), as on a full disk.
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(log_file), hard))
    for i in range(10_005):
        log.info("kept", seq=i)  # 10,000 kept; 0..4 dropped, counted
    signal.signal(signal.SIGUSR1, lambda *a: log.info("from handler"))

    class Stderr:  # a signal lands while the first kept line is written again
        def write(self, text):
            if "works again" in text:
                os.kill(os.getpid(), signal.SIGUSR1)
            return sys.__stderr__.write(text)

        def flush(self):
            sys.__stderr__.flush()

    sys.stderr = Stderr()
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # room again
    log.info("after")
    dropped = alkana_logging.pipeline_health()["dropped"]
    alkana_logging.shutdown()
    print(json.dumps(dropped))
"""


@pytest.mark.slow
def test_a_handler_that_logs_while_kept_lines_are_written_again_loses_none_uncounted(
    tmp_path: Path,
) -> None:
    """10,000 lines kept (the bound) while the file cannot grow; when it can, a signal handler
    logs while the first kept line is being written again. Its line joins the kept ones, which
    drops the oldest: the line being written. Every line not in the file is counted, and every
    line counted is not in the file."""
    log_file = tmp_path / "app.log"
    done = run_child(_RETRY_RACE, str(log_file))
    assert done.returncode == 0, done.stderr
    dropped = json.loads(done.stdout)
    records = read_records(log_file)
    seqs = [r["seq"] for r in records if "seq" in r]
    missing = set(range(10_005)) - set(seqs)
    assert len(seqs) == len(set(seqs)), "a kept line written twice"
    assert seqs == sorted(seqs), "kept lines out of order"
    # The lines dropped are the oldest, and only those: each one counted.
    assert missing == set(range(dropped.get("file_write_failed", 0))), (sorted(missing), dropped)
    assert [r[F.MESSAGE] for r in records].count("from handler") == 1
    assert records[-1][F.MESSAGE] == "after"


_DROPS_UNDER_SIGNALS = """
    import gc, json, signal, sys
    import alkana_logging
    from alkana_logging.sinks import FileSink
    alkana_logging.setup(log_file="/dev/full", stdout=False)
    log = alkana_logging.get_logger("x")
    calls = [0]

    def handler(*args):
        calls[0] += 1
        log.info("from handler")

    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
    for i in range(60_000):
        calls[0] += 1
        log.info("line", seq=i)
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    dropped = alkana_logging.pipeline_health()["dropped"].get("file_write_failed", 0)
    (sink,) = [o for o in gc.get_objects() if isinstance(o, FileSink)]
    print(json.dumps({"calls": calls[0], "kept": len(sink._pending), "dropped": dropped}))
"""


@pytest.mark.slow
def test_every_line_a_full_disk_drops_is_counted_while_signal_handlers_log(tmp_path: Path) -> None:
    done = run_child(_DROPS_UNDER_SIGNALS)
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout.splitlines()[0])
    assert counts["calls"] > 60_000, "no handler ran: the test tested nothing"
    assert counts["calls"] == counts["kept"] + counts["dropped"], counts


def test_closing_while_writing_still_fails_counts_and_reports_the_kept_lines(
    capfd: pytest.CaptureFixture[str],
) -> None:
    from alkana_logging.health import PipelineHealth
    from alkana_logging.sinks import FileSink

    health = PipelineHealth()
    sink = FileSink(Path("/dev/full"), max_bytes=0, health=health)
    for i in range(5):
        sink.write(b'{"i":%d}\n' % i, {}, 0)
    sink.close()
    assert health.dropped == {"file_write_failed": 5}
    assert "5 kept lines are lost" in capfd.readouterr().err


_TORN_AND_FULL = """
    import os, resource, sys
    from pathlib import Path
    from alkana_logging.sinks import FileSink
    log_file = Path(sys.argv[1])
    log_file.write_bytes(b'{"event":"a"}\\\\n{"ev')
    resource.setrlimit(resource.RLIMIT_FSIZE, (log_file.stat().st_size, resource.RLIM_INFINITY))
    calls = [0]
    end_torn_line = FileSink._end_torn_line

    def counted(self, fd, st):
        calls[0] += 1
        end_torn_line(self, fd, st)

    FileSink._end_torn_line = counted
    sink = FileSink(log_file, max_bytes=0)
    for _ in range(200):
        sink.write(b'{"event":"next"}\\\\n', {}, 0)  # fails: each one tries the kept lines again
    print(calls[0], len(sink._pending))
"""


def test_a_torn_end_is_looked_at_once_per_file_not_at_every_retry(tmp_path: Path) -> None:
    """While writing fails, every line reopens the file to try again; the torn end of that same
    file is looked at (and waited on) once, not on every line."""
    done = run_child(_TORN_AND_FULL, str(tmp_path / "app.log"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "200"]


def test_lines_written_to_a_deleted_file_are_counted_at_close_without_a_later_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """No log call after the deletion (the check runs in write()): closing counts them."""
    from alkana_logging.health import PipelineHealth
    from alkana_logging.sinks import FileSink

    health = PipelineHealth()
    log_file = tmp_path / "app.log"
    sink = FileSink(log_file, max_bytes=0, health=health)
    sink.write(b'{"i":0}\n', {}, 0)
    log_file.unlink()
    for i in range(1, 4):
        sink.write(b'{"i":%d}\n' % i, {}, 0)
    sink.close()
    assert health.dropped == {"file_deleted": 4}
    assert "was removed" in capfd.readouterr().err
    assert not log_file.exists()


def test_closing_a_file_that_was_not_deleted_counts_nothing(tmp_path: Path) -> None:
    from alkana_logging.health import PipelineHealth
    from alkana_logging.sinks import FileSink

    health = PipelineHealth()
    log_file = tmp_path / "app.log"
    sink = FileSink(log_file, max_bytes=0, health=health)
    sink.write(b'{"i":0}\n', {}, 0)
    os.rename(log_file, tmp_path / "app.log.1")  # logrotate: renamed, not deleted
    sink.write(b'{"i":1}\n', {}, 0)
    sink.close()
    assert health.dropped == {}
