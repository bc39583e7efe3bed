"""The sinks' own mechanisms: re-entry from a signal handler, what a forked child re-makes, the
monotonic schedule of checks, and backups kept while a writer still has them open.

The same promises are attacked with real processes and real signals in
``tests/guarantees/test_process_safety.py``; these tests pin each mechanism down in one process,
where a failure says exactly which one broke.
"""

from __future__ import annotations

import fcntl
import io
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from alkana_logging.health import PipelineHealth
from alkana_logging.loki import LokiSink
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


def _read_now(fd: int) -> bytes:
    try:
        return os.read(fd, 1000)
    except BlockingIOError:
        return b""


def test_stream_sink_re_entered_writes_the_line_at_once_to_the_descriptor() -> None:
    """A handler that logs and then ends the process with os._exit() keeps its line: it is on
    the stream's descriptor before the handler returns, not waiting for the interrupted call."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)  # nothing there fails the test rather than hangs it
    stream = open(write_fd, "w", encoding="utf-8", closefd=True)  # noqa: SIM115
    try:
        sink = StreamSink(stream)
        sink._lock.acquire()  # the interrupted write()
        try:
            sink.write(line(1), {}, 0)
            assert _read_now(read_fd) == line(1)  # already written, not deferred
        finally:
            sink._lock.release()
        sink.write(line(2), {}, 0)
        assert _read_now(read_fd) == line(2)
        assert sink._deferred == []
    finally:
        stream.close()
        os.close(read_fd)


def test_stream_sink_re_entered_without_a_descriptor_writes_right_after_the_interrupted_one() -> (
    None
):
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


def another_thread_can_take(lock: Any) -> bool:
    taken: list[bool] = []

    def take() -> None:
        if lock.acquire(timeout=5):
            taken.append(True)
            lock.release()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(10)
    return taken == [True]


class _Interrupting:
    """A lock whose acquire() raises KeyboardInterrupt after taking it: the worst moment."""

    def __init__(self, lock: Any = None) -> None:
        self.lock: Any = threading.RLock() if lock is None else lock
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

    def _release_save(self) -> Any:
        return self.lock._release_save()

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
    assert another_thread_can_take(lock.lock)  # nothing is left held
    sink.close()


class _InterruptedTwice(_Interrupting):
    """A second interrupt lands right after ``_is_owned()`` says the lock is held, as a Ctrl-C
    storm does: undoing the acquire with `if _is_owned(): release()` leaves it taken."""

    def _is_owned(self) -> bool:
        owned = bool(self.lock._is_owned())
        if owned:
            raise KeyboardInterrupt
        return owned


def sink_of(kind: str, tmp_path: Path) -> Any:
    if kind == "file":
        return FileSink(tmp_path / "app.log")
    if kind == "stream":
        return StreamSink(io.StringIO())
    # Nothing listens there: a line only has to be queued.
    return LokiSink("http://127.0.0.1:9/loki/api/v1/push", labels={"app": "t"})


def close(sink: Any) -> None:
    if isinstance(sink, LokiSink):
        sink.close(timeout=0.5)
    else:
        sink.close()


class _InterruptedWhileWaiting(_Interrupting):
    """acquire() interrupted while another thread holds the lock: nothing was taken."""

    def acquire(self, *args: Any) -> bool:
        raise KeyboardInterrupt

    def release(self) -> None:
        self.lock.release()


@pytest.mark.parametrize("kind", ["file", "stream", "loki"])
def test_an_interrupt_while_waiting_leaves_the_other_threads_lock_alone(
    tmp_path: Path, kind: str
) -> None:
    sink = sink_of(kind, tmp_path)
    real = sink._lock
    held, done = threading.Event(), threading.Event()
    released: list[bool] = []

    def holder() -> None:  # another thread inside write()
        with real:
            held.set()
            done.wait(10)
        released.append(True)  # its release worked: nobody released its lock under it

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    sink._lock = _InterruptedWhileWaiting(real)
    try:
        with pytest.raises(KeyboardInterrupt):
            sink.write(LINE, {}, 0)
        assert not real.acquire(False)  # still the other thread's
    finally:
        done.set()
        thread.join(10)
    assert released == [True]
    sink._lock = real
    close(sink)


@pytest.mark.parametrize("kind", ["file", "stream", "loki"])
def test_a_second_interrupt_while_undoing_the_acquire_leaves_the_lock_free(
    tmp_path: Path, kind: str
) -> None:
    sink = sink_of(kind, tmp_path)
    lock = sink._lock = _InterruptedTwice(sink._lock)  # the Loki sender waits on the real one
    with pytest.raises(KeyboardInterrupt):
        sink.write(LINE, {}, 0)
    assert not lock.lock._is_owned()
    sink._lock = lock.lock
    sink.write(LINE, {}, 0)  # and the sink goes on
    assert not lock.lock._is_owned()
    close(sink)


def test_loki_sink_re_entered_queues_the_line_and_keeps_the_outer_lock_count(
    tmp_path: Path,
) -> None:
    sink = LokiSink("http://127.0.0.1:9/loki/api/v1/push", labels={"app": "t"})
    sink._lock.acquire()  # the interrupted write(); a handler logs on the same thread
    try:
        sink.write(LINE, {}, 0)
        assert len(sink._queue) == 1
    finally:
        sink._lock.release()
    # Released once, it is free: the re-entered call took nothing of its own to leave held.
    assert another_thread_can_take(sink._lock)
    sink.close(timeout=0.5)


# -- the shared lock of a writer on the file it writes -------------------------------------------


def test_a_file_renamed_away_before_its_shared_lock_is_taken_is_opened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between open() and flock(), another process rotates: the file opened is a backup
    already, unprotected by the lock, and may fall past backup_count. The writer must end up
    holding the file at the path."""
    path = tmp_path / "app.log"
    real_flock = fcntl.flock
    rotated: list[bool] = []

    def flock(fd: int, operation: int) -> None:
        if operation & fcntl.LOCK_SH and not rotated:
            rotated.append(True)
            os.rename(path, tmp_path / "app.log.1")  # the other process's rotation
        real_flock(fd, operation)

    monkeypatch.setattr("alkana_logging.sinks.fcntl.flock", flock)
    sink = FileSink(path, max_bytes=1000, backup_count=1)
    monkeypatch.undo()
    st = os.stat(path)
    assert (st.st_dev, st.st_ino) == sink._identity
    sink.write(line(1), {}, 0)
    assert read_lines(path) == [line(1).strip()]
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):  # held: a rotation would keep it
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    sink.close()


def test_the_shared_lock_is_taken_when_another_process_probes_the_file_at_that_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rotation's probe (LOCK_EX, non-blocking) holds the file for an instant: the writer's
    LOCK_SH that meets it must be taken again, not given up for the file's whole life."""
    path = tmp_path / "app.log"
    real_flock = fcntl.flock
    busy = [3]

    def flock(fd: int, operation: int) -> None:
        if operation & fcntl.LOCK_SH and busy[0]:
            busy[0] -= 1
            raise BlockingIOError(11, "Resource temporarily unavailable")
        real_flock(fd, operation)

    monkeypatch.setattr("alkana_logging.sinks.fcntl.flock", flock)
    sink = FileSink(path, max_bytes=1000, backup_count=1)
    monkeypatch.undo()
    assert busy == [0]
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
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
    for ever, so the sink no longer flushes the stream, and writes to the descriptor."""
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
    assert not sink._flush_first
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


def test_the_loki_sender_thread_never_takes_the_applications_signals() -> None:
    """A process's SIGTERM goes to any thread that does not block it; given to the sender, a
    main thread blocked in a wait (a Pool worker waiting for a task) would never run its
    handler. The sender blocks them, and so do the threads it starts."""
    sink = LokiSink("http://127.0.0.1:9/loki/api/v1/push", labels={"app": "t"})
    try:
        sink.write(LINE, {}, 0)  # starts the sender
        thread = sink._thread
        assert thread is not None
        deadline = threading.Event()
        for _ in range(100):  # until the thread has set its mask
            status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
            blocked = int(status.split("SigBlk:")[1].split()[0], 16)
            if blocked:
                break
            deadline.wait(0.01)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            assert blocked & (1 << (signum - 1)), f"{signum!r} is not blocked in the sender"
        assert not signal.pthread_sigmask(signal.SIG_BLOCK, set())  # the caller's: untouched
    finally:
        sink.close(timeout=0.5)


# -- a line a full disk took only part of ------------------------------------------------------


def test_the_part_a_full_disk_took_is_blanked_in_place_and_the_line_kept_whole(
    tmp_path: Path,
) -> None:
    """The part ends at the descriptor's offset: it becomes spaces and a newline, the same
    length, and the line is to be written again whole (no newline before it)."""
    sink = FileSink(tmp_path / "app.log", max_bytes=0)
    os.write(sink._fd, line(0))
    whole = b'{"n":1,"pad":"' + b"p" * 50 + b'"}\n'
    os.write(sink._fd, whole[:20])  # what the disk took
    assert sink._cut(whole, 20) == whole
    assert (tmp_path / "app.log").read_bytes() == line(0) + b" " * 19 + b"\n"
    sink.close()


def test_a_part_that_is_no_longer_the_last_write_is_left_alone(tmp_path: Path) -> None:
    """A forked child shares the descriptor's offset: when its line moved the offset after the
    part, the bytes before the offset are not this line's and must not be overwritten. The part
    stays, and the line goes again after a newline, so it starts a line of its own."""
    sink = FileSink(tmp_path / "app.log", max_bytes=0)
    whole = b'{"n":1,"pad":"' + b"p" * 50 + b'"}\n'
    os.write(sink._fd, whole[:20])
    os.write(sink._fd, line(2))  # another process sharing the offset, right after
    assert sink._cut(whole, 20) == b"\n" + whole
    assert (tmp_path / "app.log").read_bytes() == whole[:20] + line(2)
    sink.close()
