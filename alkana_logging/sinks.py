"""Where rendered lines go: a rotating file safe for several processes, a stream, a list.

A sink receives each line three ways at once: the JSON bytes (what files and Loki store), the
record they were made from (for the console format and tests) and the time in nanoseconds (for
Loki's timestamps). A sink never raises into the caller: failures are counted in
:class:`~alkana_logging.health.PipelineHealth` and reported once on stderr.
"""

from __future__ import annotations

import _thread
import codecs
import collections
import contextlib
import errno
import fcntl
import os
import select
import stat
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO, runtime_checkable

from alkana_logging._line import Renderer
from alkana_logging.exceptions import ConfigurationError
from alkana_logging.health import PipelineHealth
from alkana_logging.settings import DEFAULT_BACKUP_COUNT, DEFAULT_MAX_BYTES, Settings

FILE_MODE = 0o640
#: The log directory, when created here: never world-writable, whatever the umask.
DIR_MODE = 0o750
#: The sinks' clock: seconds as a float, not ns as an int (no big int made and compared on every
#: line: 400 instructions a line less on 3.12, callgrind).
_monotonic = time.monotonic
_RLock = _thread.RLock
#: Writes to a pipe up to this size are never split (POSIX); 512 where unknown.
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)


def new_lock() -> Any:
    """A sink's lock: re-entrant, so that a signal handler that logs while its thread holds the
    lock can tell (``_is_owned()``) instead of waiting for itself forever."""
    return _RLock()


def was_busy(lock: Any) -> bool:
    """In a forked child: whether another thread of the parent held ``lock`` at ``fork()``
    (that thread does not exist here, so what the lock guards may be half-done)."""
    if lock._is_owned():  # this thread forked from inside write() (a signal handler)
        return True
    if lock.acquire(False):
        lock.release()
        return False
    return True


@runtime_checkable
class Sink(Protocol):
    """The pluggable output of the pipeline."""

    def write(self, line: bytes, record: Mapping[str, Any], ns: int) -> None:
        """Take one line; never raise."""

    def flush(self) -> None:
        """Write out what is buffered."""

    def close(self) -> None:
        """Flush and release resources."""

    def after_fork(self) -> None:
        """Make the sink usable in a forked child (fresh locks, no inherited threads, none of
        the parent's buffered lines or counters)."""


def open_log_file(path: Path) -> int:
    """Open ``path`` for appending (creating its directory, mode 0640); return the descriptor."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)


class FileSink:
    """Appends lines to a file with one ``write()`` each, rotating by size or following logrotate.

    Several processes may share one file: each line is a single ``O_APPEND`` write, so lines are
    never torn or interleaved; a line a full disk takes only part of is never finished by a
    second write (see :meth:`_cut`). Rotation is decided by a byte counter; every ``check_bytes``
    written (or every ``check_interval`` seconds of the monotonic clock) one ``stat()`` of the
    path tells whether another process or logrotate has replaced the file (then it is reopened)
    and, in ``size`` mode, whether it is full (then, under an ``flock`` on ``<file>.lock``, the
    one process that finds it full renames ``app.log`` to ``app.log.1``, shifting older backups,
    and all reopen). A line written to the old file by a process that has not reopened yet lands
    in a backup: it is not lost. Each writer holds a shared ``flock`` on the file it has open, so
    a backup that would fall past ``backup_count`` while a lagging writer still has it open is
    kept (as the next number up) until that writer has moved on. Backups are named ``app.log.N``
    so that a shipper's ``*.log`` glob skips them.

    The lock is re-entrant for one case: a signal handler that logs while its thread is inside
    :meth:`write` gets its line written at once with one ``write()`` (see ``_write_reentered``).

    Args:
        path: the log file.
        rotation: ``"size"`` (rotate here) or ``"external"`` (logrotate rotates; reopen only).
        max_bytes: rotate when the file reaches this size (0: never).
        backup_count: how many backups to keep (0: never rotate, as the stdlib does).
        health: the counters to report into.
        check_interval: seconds between two checks of the path, at most.
        max_pending: lines kept in memory for a retry while writing fails.
    """

    def __init__(
        self,
        path: Path,
        *,
        rotation: str = "size",
        max_bytes: int = DEFAULT_MAX_BYTES,
        backup_count: int = DEFAULT_BACKUP_COUNT,
        health: PipelineHealth | None = None,
        check_interval: float = 1.0,
        max_pending: int = 10_000,
    ) -> None:
        if rotation not in ("size", "external"):
            raise ValueError(f"rotation: got {rotation!r}; expected 'size' or 'external'")
        self.path = Path(path)
        self._path = os.fspath(self.path)
        self._rotation = rotation
        self._rotates = rotation == "size" and max_bytes > 0 and backup_count > 0
        self._max_bytes = max_bytes
        self._backup_count = backup_count
        self._health = health if health is not None else PipelineHealth()
        self._interval = float(check_interval)
        self._check_bytes = max(4096, max_bytes // 64) if self._rotates else 1 << 20
        self._pending: collections.deque[bytes] = collections.deque()
        self._max_pending = max_pending
        self._failing = False
        # True while lines are kept or writing fails: one test a line sends write() the careful
        # way (see _settle()).
        self._slow = False
        self._written_at_check = self._health.lines_written
        self._identity = (-1, -1)
        self._lock = new_lock()
        self._lock_fd = -1
        self._fd = -1
        self._open()

    # -- opening --------------------------------------------------------------------------------

    def _open(self) -> None:
        fd = open_log_file(self.path)
        if self._rotates:
            fd = self._hold(fd)
        st = os.fstat(fd)
        if st.st_size and (st.st_dev, st.st_ino) != self._identity:  # not a retry's reopen
            self._end_torn_line(fd, st)
        old, self._fd = self._fd, fd
        self._identity = (st.st_dev, st.st_ino)
        self._written_at_check = self._health.lines_written
        self._size = st.st_size
        self._next_check = 0.0
        self._set_check_at()
        if old >= 0:
            os.close(old)

    def _hold(self, fd: int) -> int:
        """Take the shared ``flock`` that says "this process writes here" on the file just
        opened (a rotation keeps a backup while it is held), and make sure it is the file at
        the path: one renamed away between ``open()`` and the lock could already have fallen
        past ``backup_count``, unprotected. Returns the descriptor to use (the path opened
        again, if it had moved)."""
        for _ in range(8):
            for _ in range(40):  # another process's _in_use() probe holds LOCK_EX for µs
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.0005)
                except OSError:  # no flock here (some network file systems): unprotected
                    return fd
            else:
                return fd  # someone else holds LOCK_EX on the log file: do not wait on it
            try:
                st = os.stat(self._path)
            except FileNotFoundError:
                st = None
            held = os.fstat(fd)
            if st is not None and (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
                return fd
            os.close(fd)  # rotated away before the lock was held: open the new file
            fd = open_log_file(self.path)
        return fd

    def _end_torn_line(self, fd: int, st: os.stat_result) -> None:
        """End with a newline a file that stops inside a line, before writing to it.

        A process killed by a signal it cannot survive (``kill -9``, or ``SIGTERM`` with its
        default action) while inside a ``write()`` can leave its line cut: the kernel copies a
        write page by page and gives up at a 4 KiB page boundary once the process is dying. That
        call never returned, and the part it left is one invalid line; the newline keeps this
        process's first line from being glued to it. A live writer caught between two pages of
        its own line grows the file within microseconds and is waited for (20 ms at a time); one
        descheduled there for longer still has its line in whole before the newline
        (``O_APPEND`` writes do not interleave), which then makes one blank line, which readers
        skip. Nothing is said on stderr: the two cases look the same from here, and under load
        the second is the more frequent.
        """
        try:
            reader = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # not readable to this process: nothing to look at
            return
        try:
            here = os.fstat(reader)
            if (here.st_dev, here.st_ino) != (st.st_dev, st.st_ino):
                return  # replaced since it was opened: the next check reopens it
            size = st.st_size
            for _ in range(10):
                if os.pread(reader, 1, size - 1) in (b"\n", b""):
                    return
                # A writer between two pages of its line, or a part nobody will finish? The
                # first grows the file within microseconds, unless it is descheduled there.
                time.sleep(0.02)
                grown = os.fstat(reader).st_size
                if grown == size:
                    break
                size = grown
            os.write(fd, b"\n")
        except OSError:
            pass
        finally:
            os.close(reader)

    def _reopen(self) -> None:
        try:
            self._open()
        except OSError as err:
            self._error("reopen", err)

    # -- writing --------------------------------------------------------------------------------

    def write(self, line: bytes, record: Mapping[str, Any], ns: int) -> None:
        # The hot path: one straight function, measured (benchmarks/bench_logging.py).
        lock = self._lock
        if lock._is_owned():
            self._write_reentered(line)
            return
        # The acquire is the first call inside a try: an interrupt (KeyboardInterrupt) can only
        # land after a call returns, so it never leaves the lock taken without a release. The
        # lock is taken by hand, not with `with`: half the instructions, on every line.
        try:
            lock.acquire()
        except BaseException:  # interrupted while waiting, or just after taking it
            # One call that releases only if this thread holds it (RLock.release() checks the
            # owner): a second interrupt can land only after it has returned, where
            # `if _is_owned(): release()` leaks the lock when it lands between the two.
            try:  # noqa: SIM105 - contextlib.suppress() is Python code: interruptible
                lock.release()
            except RuntimeError:  # not held: the interrupt came while waiting
                pass
            raise
        try:
            now = _monotonic()
            if now >= self._next_check:
                # Checked before writing: after a quiet spell, logrotate may have moved the file.
                self._check(now)
            if self._slow:  # lines are kept, or writing fails
                self._write_slow(line, now)
                return
            # The usual line: one write() that takes it all.
            try:
                written = os.write(self._fd, line)
            except OSError as err:
                self._write_error(err)
                self._keep(line)
                return
            size = len(line)
            if written < size:
                # A full disk took part of it: never finish it with a second write (another
                # process may append in between); blank the part and write it again whole.
                rest = self._write(self._cut(line, written))
                if rest is not None:
                    self._keep(rest)
                    return
            self._health.lines_written += 1
            self._size += size
            if self._size >= self._check_at:
                self._check(now)
        finally:
            lock.release()

    def _write_slow(self, line: bytes, now: float) -> None:
        """:meth:`write` while lines are kept or writing fails: the kept lines first, in order."""
        if self._pending and not self._retry():
            self._keep(line)
            return
        rest = self._write(line)
        if rest is not None:
            self._keep(rest)
            return
        self._health.lines_written += 1
        self._size += len(line)
        if self._size >= self._check_at:
            self._check(now)

    def _write_reentered(self, line: bytes) -> None:
        """A line logged by a signal handler while this thread was inside :meth:`write`.

        The interrupted call stands between two bytecodes with the lock held; waiting for it
        would wait forever. Its state is left alone: the line goes to the open file with one
        ``O_APPEND`` write (whole, before or after the interrupted line, never inside it), or
        joins the kept lines while writing fails (a part a full disk took is blanked, see
        :meth:`_cut`). Counters updated here are never half-updated by the interrupted call: a
        handler runs only after a call or a backward jump.
        """
        fd = self._fd
        if self._pending or fd < 0:
            self._keep(line)
            return
        try:
            written = os.write(fd, line)
        except OSError as err:
            self._health.write_error(f"write {self._path}: {err}", report=not self._failing)
            written = 0
        if written == len(line):
            self._health.lines_written += 1
            self._size += written
        else:
            self._keep(self._cut(line, written) if written else line)

    def _write(self, line: bytes) -> bytes | None:
        """Write ``line`` with one ``write()``; None when it is in the file whole, else what to
        keep for a later try (see :meth:`_cut` for a line a full disk took only part of)."""
        try:
            written = os.write(self._fd, line)
        except OSError as err:
            self._write_error(err)
            return line
        if written < len(line):
            self._error("write", OSError(errno.ENOSPC, "only part of a line fitted (disk full?)"))
            return self._cut(line, written)
        if self._failing:
            self._failing = False
            self._settle()
            self._health.report(f"writing to {self._path} works again")
        return None

    def _cut(self, line: bytes, written: int) -> bytes:
        """A full disk took only the first ``written`` bytes of ``line``; return the line to
        write again, whole.

        Finishing it with a second write would tear it: other processes append to the same
        file, and one may write its line between the two parts when space comes back. Nor is
        the part truncated away: another process may have appended after it already, and a
        shipper that has read up to the end takes a shrinking file for a new one and reads it
        again from the start. The part is blanked where it is, through a descriptor of the same
        file without ``O_APPEND``: its bytes become spaces and a newline, one blank line that
        readers skip, and whatever comes after it starts a line of its own. Its bytes end where
        this descriptor's offset is (an ``O_APPEND`` write leaves it at the end of what it
        wrote); they are overwritten only if they are still this line's part (a forked child
        shares the offset). Where that is not possible, the line is written again after a
        newline: the part stays as one torn line of its own.
        """
        part = line[:written]
        try:
            start = os.lseek(self._fd, 0, os.SEEK_CUR) - written
            try:  # the same file, wherever it is now (renamed by a rotation)
                fd = os.open(f"/proc/self/fd/{self._fd}", os.O_RDWR | os.O_CLOEXEC)
            except OSError:  # no /proc: the path, if it is still this file
                fd = os.open(self._path, os.O_RDWR | os.O_CLOEXEC)
            try:
                st = os.fstat(fd)
                if (
                    start >= 0
                    and (st.st_dev, st.st_ino) == self._identity
                    and os.pread(fd, written, start) == part
                    and os.pwrite(fd, b" " * (written - 1) + b"\n", start) == written
                ):
                    return line[1:] if line[:1] == b"\n" else line
            finally:
                os.close(fd)
        except OSError:
            pass
        return line if line[:1] == b"\n" else b"\n" + line

    def _write_error(self, err: OSError) -> None:
        self._error("write", err)
        if err.errno in (errno.EBADF, errno.ENOENT, errno.ESTALE):
            self._reopen()

    def _keep(self, line: bytes) -> None:
        if len(self._pending) >= self._max_pending:
            self._health.drop("file_write_failed")
            self._pending.popleft()
        # A copy: a line from orjson keeps its whole (about 4 KiB) write buffer alive.
        self._pending.append(bytes(memoryview(line)))
        self._slow = True

    def _settle(self) -> None:
        """Let :meth:`write` take its fast path again once nothing is kept and writing works.

        Cleared first, tested after: a signal handler that keeps a line (``_write_reentered``)
        anywhere in between sets it again, or has its line seen by the test; testing first
        could clear it just after such a handler set it, leaving its line kept unseen.
        """
        self._slow = False
        if self._failing or self._pending:
            self._slow = True

    def _retry(self) -> bool:
        """Write the lines kept while writing failed; True when none is left."""
        if self._failing:
            self._reopen()
        pending = self._pending
        while pending:
            line = pending[0]
            rest = self._write(line)
            # A signal handler that logged meanwhile (_write_reentered) may have kept its line
            # and, at max_pending, dropped the oldest, which is this one: then the head is the
            # next line, never written.
            head = pending[0] is line if pending else False
            if rest is not None:
                if head:
                    pending[0] = rest
                # else: dropped (and counted) by that handler's _keep(), as it would have been
                return False
            if head:
                pending.popleft()
            else:  # written after all: it was counted as dropped
                self._health.undrop("file_write_failed")
            self._health.lines_written += 1
        self._settle()
        return True

    def _error(self, what: str, err: OSError) -> None:
        self._health.write_error(f"{what} {self._path}: {err}", report=not self._failing)
        self._failing = self._slow = True

    # -- rotation -------------------------------------------------------------------------------

    def _set_check_at(self) -> None:
        # One comparison a line decides both "look at the path again" (every check_bytes) and
        # "the file is full" (max_bytes, in size mode).
        check_at = self._size + self._check_bytes
        if self._rotates:
            check_at = min(check_at, self._max_bytes)
        self._check_at = check_at

    def _check(self, now: float) -> None:
        """Look at the path (``now``: the monotonic clock, in seconds)."""
        self._next_check = now + self._interval
        self._check_at = self._size + self._check_bytes  # if stat() fails: again a while later
        try:
            st = os.stat(self._path)
        except OSError as err:  # deleted, renamed by logrotate, or its directory is gone
            self._moved(err)
            return
        if (st.st_dev, st.st_ino) != self._identity:
            self._moved(None)
            return
        self._written_at_check = self._health.lines_written
        self._size = st.st_size
        self._set_check_at()
        if self._rotates and st.st_size >= self._max_bytes:
            self._rotate()

    def _moved(self, err: OSError | None) -> None:
        """The path no longer leads to the open file. If the file was renamed (logrotate, or a
        rotation by another process), reopen the path. If it was removed, what was written to it
        since the last check is gone: count it, report once, and write nothing more to it until
        the path works again."""
        try:
            deleted = self._fd >= 0 and os.fstat(self._fd).st_nlink == 0
        except OSError:
            deleted = False
        if deleted:
            # What this sink wrote since the path was last seen to lead to this file.
            lost = self._health.lines_written - self._written_at_check
            self._written_at_check = self._health.lines_written
            if lost:
                self._health.drop("file_deleted", lost)
            self._health.write_error(
                f"{self._path} was removed while this process was writing to it (deleted, or "
                f"rotated out and removed by another program); up to {lost} lines written to it "
                "since the last check are lost; reopening",
                report=not self._failing,
            )
            fd, self._fd = self._fd, -1  # -1 first: a signal handler must not use a closed fd
            os.close(fd)
            was_failing, self._failing = self._failing, True
            try:
                self._open()
            except OSError as open_err:
                self._error("reopen", open_err)  # counted; kept lines wait for the path
            else:
                self._failing = was_failing
                self._settle()
        elif err is None or isinstance(err, FileNotFoundError):
            self._reopen()
        # Otherwise (e.g. a directory made unreadable) the open file still works: keep it.

    def _lock_rotation(self) -> bool:
        """Take the ``flock`` on ``<file>.lock`` that every process sharing the file takes.

        A lock file deleted with its directory is no lock any more: a process that made the
        directory again locks a new file. So the lock held must be the file at the path now.
        """
        lock_path = self._path + ".lock"
        try:
            for _ in range(3):
                if self._lock_fd < 0:
                    self._lock_fd = os.open(
                        lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE
                    )
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
                try:
                    st = os.stat(lock_path)
                except FileNotFoundError:
                    st = None
                held = os.fstat(self._lock_fd)
                if st is not None and (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
                    return True
                fd, self._lock_fd = self._lock_fd, -1
                os.close(fd)  # releases the stale lock too
        except OSError as err:
            self._error("lock", err)
            return False
        self._error("lock", OSError(errno.ENOLCK, f"{lock_path} kept changing while locked"))
        return False

    def _rotate(self) -> None:
        if not self._lock_rotation():
            return
        try:
            try:
                st = os.stat(self._path)
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_dev, st.st_ino) == self._identity:
                if st.st_size < self._max_bytes:
                    return  # another process rotated and this one has the new file already
                self._shift_backups()
                os.replace(self._path, f"{self._path}.1")
                self._health.rotations += 1
            self._open()
        except OSError as err:
            self._error("rotate", err)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _shift_backups(self) -> None:
        """Make ``app.log.1`` free: each backup ``app.log.N`` becomes ``app.log.N+1``, highest
        first. One that would pass ``backup_count`` is deleted, unless a writer still has it open
        (a lagging process that has not reopened yet): that one is kept, one number up, and goes
        at a later rotation, once nobody writes to it."""
        directory, prefix = os.path.split(self._path)
        prefix += "."
        numbers = []
        for name in os.listdir(directory or "."):
            suffix = name[len(prefix) :]
            if (
                name.startswith(prefix)
                and suffix.isascii()
                and suffix.isdigit()
                and suffix[0] != "0"
            ):
                numbers.append(int(suffix))
        numbers.sort(reverse=True)
        for number in numbers:
            backup = f"{self._path}.{number}"
            if number >= self._backup_count and not _in_use(backup):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(backup)
            else:
                os.replace(backup, f"{self._path}.{number + 1}")

    # -- life cycle -----------------------------------------------------------------------------

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._retry()

    def close(self) -> None:
        with self._lock:
            if self._pending and not self._retry():
                lost = len(self._pending)
                self._pending.clear()
                self._health.drop("file_write_failed", lost)
                self._health.report(
                    f"closing {self._path} while writing to it still fails: {lost} kept lines "
                    "are lost"
                )
            self._count_if_deleted()
            fds = (self._fd, self._lock_fd)
            self._fd = self._lock_fd = -1
            for fd in fds:
                if fd >= 0:
                    os.close(fd)

    def _count_if_deleted(self) -> None:
        """At close: lines written to a file deleted since the last check are gone with it.
        Counted and reported here, as a check would have, instead of never."""
        try:
            deleted = self._fd >= 0 and os.fstat(self._fd).st_nlink == 0
        except OSError:
            deleted = False
        lost = self._health.lines_written - self._written_at_check
        if deleted and lost > 0:
            self._health.drop("file_deleted", lost)
            self._health.write_error(
                f"{self._path} was removed while this process was writing to it; up to {lost} "
                "lines written to it since the last check are lost",
                report=True,
            )

    def after_fork(self) -> None:
        """In a forked child: a lock of its own, its own rotation lock descriptor (an inherited
        one shares the parent's ``flock``, so both would rotate at once), none of the parent's
        kept lines (the parent writes them) and counters from zero. The data file's descriptor
        is shared with the parent, which is fine for ``O_APPEND`` writes."""
        self._lock = new_lock()
        lock_fd, self._lock_fd = self._lock_fd, -1
        if lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(lock_fd)  # the parent's descriptor keeps its lock; this copy goes
        self._pending.clear()
        self._settle()
        self._written_at_check = self._health.lines_written  # a pipeline reset it just before
        self._next_check = 0.0


def _in_use(path: str) -> bool:
    """Whether a writer holds its shared ``flock`` on ``path`` (has it open to write)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


class StreamSink:
    """Writes lines to a text stream (stdout), as JSON or, with ``format``, as human text.

    A stream with a file descriptor (stdout, a pipe, a file) gets each line with an
    ``os.write`` loop on that descriptor, after the stream's own buffer is flushed (so lines
    keep their order with ``print()``): CPython's buffered stream drops the rest of a long
    write that a signal interrupts after part of it went out (a slow reader holding the pipe
    full), and the loop retries the partial write instead. A stream without a descriptor
    (``io.StringIO``, a test capture) gets ``write()`` and ``flush()``.

    A line logged by a signal handler while its thread is inside :meth:`write` must not land
    inside the interrupted line (see ``_write_reentered``). In a child forked while another
    thread was inside :meth:`write`, the stream's own buffer lock may be held by a thread that
    does not exist there: the child no longer flushes the stream, ``os.write`` has no lock.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        format: Callable[[Mapping[str, Any]], str] | None = None,
        health: PipelineHealth | None = None,
    ) -> None:
        self._stream = stream
        self._format = format
        self._health = health if health is not None else PipelineHealth()
        self._lock = new_lock()
        self._failing = False
        self._deferred: list[bytes | str] = []
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            utf8 = codecs.lookup(self._encoding).name == "utf-8"
        except LookupError:
            utf8, self._encoding = True, "utf-8"
        self._fd = -1  # -1: write through the stream
        #: The longest write that a signal never leaves half done: PIPE_BUF bytes on a pipe
        #: (POSIX), any size on a regular file.
        self._atomic = _PIPE_BUF
        with contextlib.suppress(Exception):  # no descriptor: io.StringIO, a capture
            self._fd = stream.fileno()
            if stat.S_ISREG(os.fstat(self._fd).st_mode):
                self._atomic = sys.maxsize
        #: The JSON bytes go out as they are (no decode and encode again).
        self._raw = format is None and utf8 and self._fd >= 0
        self._flush_first = True  # False in a child forked while the stream was busy
        #: The line the os.write loop is writing, and how many of its bytes are out.
        self._out: bytes | memoryview | None = None
        self._done = 0
        #: A signal handler's exception (Ctrl-C, sys.exit() in a SIGTERM handler) left a line
        #: of unknown length out: the next write ends it with a newline first.
        self._cut = False

    def write(self, line: bytes, record: Mapping[str, Any], ns: int) -> None:  # noqa: PLR0912, PLR0915
        # The hot path: one straight function, measured (benchmarks/bench_sinks.py).
        if self._raw:
            data: bytes | str = line
        else:
            try:
                text = self._format(record) if self._format is not None else line.decode("utf-8")
            except Exception:  # noqa: BLE001 - the console format must not lose the line
                text = line.decode("utf-8")
            data = text if self._fd < 0 else text.encode(self._encoding, "replace")
        lock = self._lock
        if lock._is_owned():  # a signal handler on a thread inside write()
            self._write_reentered(data)
            return
        try:  # the acquire first inside the try, one call to undo it: see FileSink.write
            lock.acquire()
        except BaseException:
            try:  # noqa: SIM105 - contextlib.suppress() is Python code: interruptible
                lock.release()
            except RuntimeError:
                pass
            raise
        try:
            if self._cut:
                self._end_cut_line()
            if self._flush_first and type(data) is bytes:
                # The usual line, inlined from _put() and _write_fd(): print()'s text first (the
                # order is kept), then one write() that takes the line whole.
                try:
                    try:  # noqa: SIM105 - suppress() would build a context manager a line
                        self._stream.flush()
                    except RuntimeError:  # a handler interrupted print() in the stream's flush
                        pass  # the line still goes, whole, ahead of the rest of that text
                    self._done = 0
                    self._out = data
                    try:
                        written = os.write(self._fd, data)
                        if written < len(data):  # a signal, a full pipe: go on from there
                            self._done = written
                            self._write_fd(data)
                    except BlockingIOError:
                        self._write_fd(data)
                    except BaseException as err:
                        if not isinstance(err, OSError):  # raised by a signal handler
                            self._mark_cut()
                            self._after_cut()
                        raise
                    finally:
                        self._out = None
                except (OSError, ValueError, RuntimeError) as err:
                    self._stream_error(err)
                else:
                    self._failing = False
            else:
                self._put(data)
            if self._deferred:
                self._write_deferred()
        finally:
            lock.release()

    def _write_reentered(self, data: bytes | str) -> None:
        """A line logged by a signal handler while this thread was inside :meth:`write`.

        When the descriptor is between two lines, the line goes at once, whole, with
        ``os.write`` (a handler that ends the process with ``os._exit`` next keeps it). It is
        between two lines unless the interrupted call has written part of its line: some but
        not all of its bytes are known to be out, or none are known and the line is longer
        than one write a signal cannot cut (PIPE_BUF on a pipe), so that the count of a write
        that has just returned may be waiting, unseen, in the interrupted frame. Then the line
        waits, and the interrupted call writes it right after its own. A stream without a
        descriptor refuses a re-entrant write: its line waits too.
        """
        out = self._out
        if isinstance(data, str) or (
            out is not None
            and (0 < self._done < len(out) or (self._done == 0 and len(out) > self._atomic))
        ):
            self._deferred.append(data if isinstance(data, str) else bytes(memoryview(data)))
            return
        try:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(self._fd, view) :]
                except BlockingIOError:
                    _wait_writable(self._fd)
        except OSError as err:
            self._health.write_error(f"write to stream: {err}", report=not self._failing)
            self._health.drop("stream_write_failed")

    def _put(self, data: bytes | str) -> None:
        try:
            if isinstance(data, str):
                self._stream.write(data)
                self._stream.flush()
            else:
                if self._flush_first:
                    try:  # noqa: SIM105 - as in write()
                        self._stream.flush()  # print()'s text first: the order is kept
                    except RuntimeError:
                        pass
                self._done = 0
                self._write_fd(data)
        except (OSError, ValueError, RuntimeError) as err:
            self._stream_error(err)
            return
        self._failing = False

    def _stream_error(self, err: Exception) -> None:
        # ValueError: the stream was closed; RuntimeError: a re-entrant call from elsewhere
        self._health.write_error(f"write to stream: {err}", report=not self._failing)
        self._health.drop("stream_write_failed")
        self._failing = True

    def _write_fd(self, data: bytes) -> None:
        """Write all of ``data`` to the descriptor, ``self._done`` bytes of it being out already:
        a partial write (a signal, a full pipe) goes on from where it stopped; a non-blocking
        descriptor is waited on, not spun on."""
        fd = self._fd
        view = memoryview(data)
        size = len(view)
        self._out = view  # from here a signal handler's line may wait for this one
        try:
            while True:
                done = self._done
                if done == size:
                    break
                try:
                    self._done = done + os.write(fd, view[done:])
                except BlockingIOError:
                    _wait_writable(fd)
        except BaseException as err:
            # Raised by a signal handler (see _end_cut_line); a line known to be out is whole.
            if not isinstance(err, OSError) and self._done < size:
                self._mark_cut()
                self._after_cut()
            raise
        finally:
            self._out = None

    def _mark_cut(self) -> None:
        if not self._cut:
            self._cut = True
            self._health.drop("stream_interrupted")

    def _after_cut(self) -> None:
        """The lines a signal handler logged while the cut line was being written: written now,
        after the cut part is ended (its process may be ending: ``shutdown()`` and
        ``sys.exit()`` in the handler), as a line logged at exit would be, waiting for a slow
        reader. Without such lines nothing waits here."""
        if not self._deferred or self._fd < 0:
            return
        self._end_cut_line()
        self._write_deferred()

    def _end_cut_line(self, *, wait: bool = True) -> None:
        """End the line a signal handler's exception interrupted, before the next one.

        The exception (``KeyboardInterrupt``, a ``SystemExit`` raised in a SIGTERM handler) may
        come right after a write returned, before its count was kept: how much of the line is
        out is not known, so the rest cannot be written without risking it twice. A newline ends
        what is out, so the next line starts whole on its own line (the cut part is one invalid
        line that readers skip, or a blank one); the interrupted call's line was counted as
        dropped (``stream_interrupted``) when it was cut."""
        self._cut = False
        if self._fd < 0:
            return
        if not wait:  # at a flush or close: never block the exit for it on a stalled reader
            with contextlib.suppress(OSError, ValueError):
                poller = select.poll()
                poller.register(self._fd, select.POLLOUT)
                if poller.poll(0):  # room for PIPE_BUF bytes: one byte goes at once
                    os.write(self._fd, b"\n")
            return
        self._done = 0
        with contextlib.suppress(OSError):
            self._write_fd(b"\n")

    def _write_deferred(self) -> None:
        while self._deferred:
            self._put(self._deferred.pop(0))

    def flush(self) -> None:
        with self._lock:
            if self._out is not None:
                # Called from a signal handler (shutdown() in it) while this thread is in the
                # middle of a line: what waits is written by the interrupted call, after it.
                return
            if self._cut:
                self._end_cut_line(wait=False)
            if self._deferred:
                self._write_deferred()
            if self._flush_first:
                with contextlib.suppress(OSError, ValueError, RuntimeError):
                    self._stream.flush()

    def close(self) -> None:
        self.flush()

    def after_fork(self) -> None:
        if was_busy(self._lock):
            # A thread was inside the stream's write() or flush() at fork(): the stream's buffer
            # lock may be held, here, by a thread that does not exist; os.write() has no lock.
            self._flush_first = False
        self._lock = new_lock()
        self._deferred = []  # the parent writes its own
        self._out = None
        # _cut is kept: a child that writes first ends the cut part too (a blank line at worst),
        # or its line would be glued to it.


def _wait_writable(fd: int) -> None:
    """Wait until a non-blocking descriptor takes more (EAGAIN): as long as a blocking one
    would, without spinning."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    poller.poll()


class ListSink:
    """Keeps every record (with its static keys) in a list: for tests."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.lines: list[bytes] = []
        self._lock = new_lock()

    def write(self, line: bytes, record: Mapping[str, Any], ns: int) -> None:
        with self._lock:
            self.records.append(dict(record))
            self.lines.append(bytes(memoryview(line)))  # see FileSink._keep

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def after_fork(self) -> None:
        self._lock = new_lock()


def from_settings(settings: Settings, health: PipelineHealth) -> list[Sink]:
    """The outputs the settings ask for: the log file, stdout (JSON or the console format),
    Loki.

    Raises:
        ConfigurationError: the log file cannot be opened (unless ``on_file_error="stdout"``).
    """
    sinks: list[Sink] = []
    if settings.log_file is not None:
        try:
            sinks.append(
                FileSink(
                    settings.log_file,
                    rotation=settings.rotation,
                    max_bytes=settings.max_bytes,
                    backup_count=settings.backup_count,
                    health=health,
                )
            )
        except OSError as err:
            if settings.on_file_error != "stdout":
                raise ConfigurationError(
                    f"LOG_FILE={os.fspath(settings.log_file)!r} cannot be opened for writing "
                    f"({err.strerror or err}); expected a writable path, or set "
                    "LOG_ON_FILE_ERROR=stdout to fall back to stdout"
                ) from err
            health.report(
                f"LOG_FILE={os.fspath(settings.log_file)!r} cannot be opened "
                f"({err.strerror or err}); logging to stdout only"
            )
            if not settings.stdout:
                sinks.append(StreamSink(sys.stdout, health=health))
    if settings.stdout:
        console = None
        if settings.format == "console":
            from alkana_logging.console import ConsoleFormat, use_colors  # structlog's dev one

            plain = Renderer.from_settings(settings).plain  # values as the line has them
            console = ConsoleFormat(colors=use_colors(sys.stdout), plain=plain)
        sinks.append(StreamSink(sys.stdout, format=console, health=health))
    if settings.loki_url:
        from alkana_logging.loki import LokiSink

        sinks.append(LokiSink.from_settings(settings, health))
    return sinks
