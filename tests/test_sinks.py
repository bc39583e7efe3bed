"""The sinks' own mechanisms: re-entry from a signal handler, what a forked child re-makes, the
monotonic schedule of checks, and backups kept while a writer still has them open.

The same promises are attacked with real processes and real signals in
``test_process_safety.py``; these tests pin each mechanism down in one process, where a failure
says exactly which one broke.
"""

from __future__ import annotations

import fcntl
import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from alkana_logging.health import PipelineHealth
from alkana_logging.sinks import FileSink, ListSink, StreamSink, was_busy
from tests._logfiles import read_lines

LINE = b'{"message":"x"}\n'


def line(n: int) -> bytes:
    return b'{"n":%d}\n' % n


# -- re-entry: a signal handler that logs while its thread is inside write() -----------------------


def test_file_sink_written_to_while_its_thread_holds_the_lock_writes_at_once(
    tmp_path: Path,
) -> None:
    """What a signal handler sees: the same thread holds the lock. The line is written, not
    waited for (a plain lock would wait for itself for ever)."""
    health = PipelineHealth()
    sink = FileSink(tmp_path / "app.log", health=health)
    sink._lock.acquire()  # the interrupted write(); a handler runs on the same thread
    try:
        sink.write(line(1), {}, 0)
    finally:
        sink._lock.release()
    sink.write(line(2), {}, 0)
    sink.close()
    assert read_lines(tmp_path / "app.log") == [line(1).strip(), line(2).strip()]
    assert health.lines_written == 2


def test_file_sink_re_entered_while_writing_fails_keeps_the_line_in_order(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "app.log")
    sink._pending.append(line(0))  # lines kept while writing failed come first
    sink._lock.acquire()
    try:
        sink.write(line(1), {}, 0)
    finally:
        sink._lock.release()
    assert list(sink._pending) == [line(0), line(1)]
    sink.flush()
    sink.close()
    assert read_lines(tmp_path / "app.log") == [line(0).strip(), line(1).strip()]


def test_stream_sink_re_entered_writes_the_line_right_after_the_interrupted_one() -> None:
    stream = io.StringIO()
    sink = StreamSink(stream)
    sink._lock.acquire()
    try:
        sink.write(line(1), {}, 0)  # deferred: the stream may be inside its own write()
        assert stream.getvalue() == ""
    finally:
        sink._lock.release()
    sink.write(line(2), {}, 0)
    assert stream.getvalue() == (line(2) + line(1)).decode()


def test_stream_sink_deferred_line_is_written_by_close() -> None:
    """The handler raised out of the interrupted write (SystemExit after "finishing"): the line
    waits for shutdown(), which runs at exit."""
    stream = io.StringIO()
    sink = StreamSink(stream)
    sink._lock.acquire()
    sink.write(line(1), {}, 0)
    sink._lock.release()
    sink.close()
    assert stream.getvalue() == line(1).decode()


def test_list_sink_re_entered_keeps_both() -> None:
    sink = ListSink()
    with sink._lock:
        sink.write(line(1), {"n": 1}, 0)
    assert sink.records == [{"n": 1}]


class _Interrupting:
    """A lock whose acquire() raises KeyboardInterrupt after taking it: the worst moment."""

    def __init__(self) -> None:
        self.lock: Any = threading.RLock()
        self.interrupt = True

    def acquire(self, *args: Any) -> bool:
        taken = bool(self.lock.acquire(*args))
        if self.interrupt:
            self.interrupt = False
            raise KeyboardInterrupt
        return taken

    def release(self) -> None:
        self.lock.release()

    def _is_owned(self) -> bool:
        return bool(self.lock._is_owned())

    def __enter__(self) -> None:
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


@pytest.mark.parametrize("kind", ["file", "stream"])
def test_an_interrupt_right_after_the_lock_is_taken_leaves_it_free(
    tmp_path: Path, kind: str
) -> None:
    sink: Any = FileSink(tmp_path / "app.log") if kind == "file" else StreamSink(io.StringIO())
    lock = sink._lock = _Interrupting()
    with pytest.raises(KeyboardInterrupt):
        sink.write(LINE, {}, 0)
    assert not lock._is_owned()
    # Another thread can take it: nothing is left held.
    taken: list[bool] = []

    def take() -> None:
        if lock.lock.acquire(timeout=5):
            taken.append(True)
            lock.lock.release()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(10)
    assert taken == [True]
    sink.close()


# -- fork: what the child re-makes --------------------------------------------------------------


def test_was_busy_tells_a_lock_held_by_another_thread() -> None:
    lock: Any = threading.RLock()
    assert not was_busy(lock)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    try:
        assert was_busy(lock)
    finally:
        release.set()
        thread.join(10)
    with lock:
        assert was_busy(lock)  # this thread's own: a fork from inside write()


def test_file_sink_after_fork_drops_the_inherited_rotation_lock_and_kept_lines(
    tmp_path: Path,
) -> None:
    health = PipelineHealth()
    sink = FileSink(tmp_path / "app.log", max_bytes=200, backup_count=3, health=health)
    for n in range(100):
        sink.write(line(n), {}, 0)
    assert health.rotations >= 1
    inherited = sink._lock_fd
    assert inherited >= 0  # kept open between rotations
    sink._pending.append(line(99))  # the parent's to write
    sink.after_fork()
    assert sink._lock_fd == -1
    assert list(sink._pending) == []
    with pytest.raises(OSError):
        os.fstat(inherited)  # closed in the "child"; the parent's own stays open there
    sink.write(line(100), {}, 0)
    sink.close()


def test_health_after_fork_counts_from_zero() -> None:
    health = PipelineHealth(lines_written=5, rotations=2, dropped={"x": 1}, last_error="e")
    health.after_fork()
    snapshot = health.snapshot()
    assert (snapshot["lines_written"], snapshot["rotations"], snapshot["dropped"]) == (0, 0, {})
    assert snapshot["last_error"] is None


# -- the schedule of checks runs on the monotonic clock ------------------------------------------


def test_external_rotation_is_noticed_when_the_wall_clock_went_back(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    sink = FileSink(path, rotation="external", check_interval=0.05)
    now = 1_800_000_000 * 10**9
    sink.write(line(1), {}, now)
    path.rename(tmp_path / "app.log.1")  # logrotate
    threading.Event().wait(0.1)
    sink.write(line(2), {}, now - 3600 * 10**9)  # the line's time: an hour earlier
    sink.close()
    assert path.read_bytes() == line(2)
    assert (tmp_path / "app.log.1").read_bytes() == line(1)


# -- backups a writer still has open ------------------------------------------------------------


def test_a_backup_still_open_by_a_writer_is_kept_past_the_count(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    fast = FileSink(path, max_bytes=100, backup_count=2, check_interval=3600)
    lagging = FileSink(path, max_bytes=100, backup_count=2, check_interval=3600)
    lagging.write(line(0), {}, 0)  # opened app.log, holds its shared lock
    for n in range(1, 60):  # many rotations: app.log of before is shifted past .2
        fast.write(line(n), {}, 0)
    lagging.write(line(1000), {}, 0)  # its next line, before it looks at the path again
    fast.close()
    lagging.close()
    found = read_lines(path)
    # The fast writer's oldest lines went with backups past the count; the lagging writer's
    # file was kept because it still had it open.
    assert line(0).strip() in found
    assert line(1000).strip() in found
    assert len(found) == len(set(found))


def test_a_backup_nobody_has_open_goes_at_the_count(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    sink = FileSink(path, max_bytes=100, backup_count=2)
    for n in range(60):
        sink.write(line(n), {}, 0)
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "app.log",
        "app.log.1",
        "app.log.2",
        "app.log.lock",
    ]


def test_each_writer_holds_a_shared_lock_on_its_file(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    sink = FileSink(path, max_bytes=1000, backup_count=2)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        sink.close()
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once the writer let go
    finally:
        os.close(fd)


def test_stream_sink_in_a_child_forked_mid_write_bypasses_the_inherited_buffer() -> None:
    """A thread was inside write() at fork(): in the child the stream's buffer lock may be held
    for ever, so the sink writes to the descriptor itself."""
    read_fd, write_fd = os.pipe()
    stream = open(write_fd, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    sink = StreamSink(stream)
    held, release = threading.Event(), threading.Event()

    def writing() -> None:
        with sink._lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=writing)
    thread.start()
    held.wait(10)
    try:
        sink.after_fork()  # what the child's hook does, with the lock held by another thread
    finally:
        release.set()
        thread.join(10)
    assert sink._raw_fd == write_fd
    sink.write(line(1), {}, 0)
    assert os.read(read_fd, 100) == line(1)
    stream.close()
    os.close(read_fd)


def test_stream_sink_after_a_quiet_fork_keeps_the_stream() -> None:
    stream = io.StringIO()
    sink = StreamSink(stream)
    sink.after_fork()
    sink.write(line(1), {}, 0)
    assert stream.getvalue() == line(1).decode()
