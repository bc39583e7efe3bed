"""Process safety with real processes and real signals: fork after a rotation, signal handlers
that log, Ctrl-C while threads log, direct push to Loki from worker processes (fork, spawn,
forkserver, SIGTERM), fork from a thread while stdout is busy, external rotation with the wall
clock stepped back, a lagging writer beside a fast rotator, and sys.exit() in a child forked
from a thread.

Every scenario runs in a fresh interpreter (tests/_process_child.py), so the pytest process
never forks or receives a signal, and every child runs under a timeout: a deadlock fails the
test instead of blocking it. Lines are numbered (``worker``, ``seq``) and counted exactly: each
line sent is found once, in ``app.log*`` or at the Loki receiver, none torn or duplicated.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import alkana_logging
from alkana_logging import fields as F
from alkana_logging.sinks import FileSink
from tests._children import CHILD_TIMEOUT, Child, child_env
from tests._logfiles import log_files, read_records
from tests._loki_receiver import LokiReceiver, running

CHILD = Path(__file__).resolve().parents[1] / "_process_child.py"
#: A child that should end at once (it only has to stop its threads) gets this long.
EXIT_TIMEOUT = 10.0
#: How long to wait for a child's acknowledgement of a signal.
ACK_TIMEOUT = 10.0
HUNG = -999  # what _process_child reports for a child it had to kill


def command(mode: str, config: dict[str, Any]) -> list[str]:
    return [sys.executable, str(CHILD), mode, json.dumps(config)]


def start(
    mode: str, config: dict[str, Any], *, stdin: bool = False, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a scenario in its own session (so that a timeout kills it whole)."""
    return subprocess.Popen(
        command(mode, config),
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env() if env is None else env,
        start_new_session=True,
    )


def kill(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
    """Kill the child's whole session (unless it has been waited for); return what it wrote."""
    if proc.returncode is not None:
        return "", ""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    out, err = proc.communicate()
    return out.decode(errors="replace"), err.decode(errors="replace")


def finish(proc: subprocess.Popen[bytes], timeout: float, what: str) -> Child:
    """Wait for the child within ``timeout`` seconds, or kill it and fail the test."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        hung = True
    else:
        hung = False
    if hung:
        _, err_text = kill(proc)
        pytest.fail(f"{what}: no exit within {timeout} s (deadlock?)\n{err_text[-3000:]}")
    return Child(proc.pid, proc.returncode, out.decode(), err.decode())


def run_mode(
    mode: str,
    config: dict[str, Any],
    *,
    timeout: float = CHILD_TIMEOUT,
    env: dict[str, str] | None = None,
) -> Child:
    return finish(start(mode, config, env=env), timeout, mode)


def last_json(text: str) -> Any:
    return json.loads(text.strip().splitlines()[-1])


class Lines:
    """Reads a child's stdout line by line, each read under a timeout."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._buffer = b""

    def next(self, timeout: float) -> str | None:
        """The next line, or None if none came within ``timeout`` (or stdout closed)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([self._fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(self._fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


def assert_each_once(keys: Iterable[Any], expected: Iterable[Any], what: str = "lines") -> None:
    """Every expected key found exactly once, and nothing else."""
    found = Counter(keys)
    wanted = set(expected)
    missing = wanted - set(found)
    duplicated = {key: n for key, n in found.items() if n > 1}
    unexpected = set(found) - wanted
    summary = (
        f"{what}: sent {len(wanted)}, found {sum(found.values())} "
        f"({len(missing)} missing, e.g. {sorted(missing, key=repr)[:5]}; "
        f"{len(duplicated)} duplicated; {len(unexpected)} unexpected)"
    )
    assert not missing, summary
    assert not duplicated, summary
    assert not unexpected, summary


def numbered(records: Iterable[dict[str, Any]], message: str = "line") -> list[tuple[Any, Any]]:
    return [(r["worker"], r["seq"]) for r in records if r.get(F.MESSAGE) == message]


# -- 1. fork (and spawn, forkserver) after a rotation ---------------------------------------------

CHILDREN, CHILD_LINES = 4, 5000


@pytest.mark.slow
@pytest.mark.parametrize(
    "method",
    [
        "os_fork",
        "mp_fork",
        "pool_fork",
        "mp_spawn",
        "mp_forkserver",
        "pool_spawn",
        "pool_forkserver",
    ],
)
def test_workers_started_after_a_rotation_lose_and_duplicate_nothing(
    tmp_path: Path, method: str
) -> None:
    """The parent rotates once (so it holds the rotation lock file open), then starts workers
    that write one file with small backups: every worker's rotation must be serialised with
    every other's. Forked workers inherit the parent's lock descriptor: an ``flock`` on one
    shared open file description does not exclude them from each other. Spawned and
    forkserver workers call setup() themselves."""
    log_file = tmp_path / "logs" / "app.log"
    config = {
        "log_file": str(log_file),
        "max_bytes": 20_000,
        "backup_count": 1000,
        "method": method,
        "children": CHILDREN,
        "lines": CHILD_LINES,
    }
    done = run_mode("fork_after_rotation", config)
    assert done.returncode == 0, done.stderr[-3000:]
    result = last_json(done.stdout)
    assert result["exit_codes"] == [0] * CHILDREN
    assert result["parent_health"]["rotations"] >= 1
    expected = [("parent", s) for s in range(result["parent_lines"])]
    expected += [(w, s) for w in range(CHILDREN) for s in range(CHILD_LINES)]
    records = read_records(log_file)  # a torn line fails here
    assert_each_once(numbered(records), expected)
    assert len(log_files(log_file)) > 50  # rotated again and again, by every worker
    assert done.stderr == ""  # no failed rename, no "deleted while open"


# -- 2. a SIGTERM handler that logs ---------------------------------------------------------------


def sigterm_run(tmp_path: Path, run: int, signals: int) -> None:
    """One child logging in a tight loop, sent ``signals`` SIGTERMs one after the other, each
    handled by a handler that logs; each must be acknowledged, then the child must exit."""
    log_file = tmp_path / f"run{run}" / "app.log"
    proc = start("sigterm_handler_logs", {"log_file": str(log_file), "signals": signals})
    lines = Lines(proc)
    try:
        assert lines.next(CHILD_TIMEOUT) == "ready"
        for n in range(1, signals + 1):
            os.kill(proc.pid, signal.SIGTERM)
            ack = lines.next(ACK_TIMEOUT)
            if ack != f"ack {n}":
                _, err = kill(proc)
                pytest.fail(
                    f"run {run}: the handler of SIGTERM {n} of {signals} did not finish within "
                    f"{ACK_TIMEOUT} s (got {ack!r}): deadlock\n{err[-2000:]}"
                )
        summary = lines.next(EXIT_TIMEOUT)
        done = finish(proc, EXIT_TIMEOUT, f"run {run}: after its last SIGTERM")
    finally:
        kill(proc)  # nothing left to kill unless the test failed above
    assert done.returncode == 0, done.stderr[-2000:]
    assert summary is not None
    sent = json.loads(summary)["sent"]
    records = read_records(log_file)
    assert_each_once(numbered(records), [("main", s) for s in range(sent)], f"run {run}")
    finishing = Counter(r["n"] for r in records if r[F.MESSAGE] == "finishing")
    # One line through structlog and one through the stdlib for each signal.
    assert finishing == dict.fromkeys(range(1, signals + 1), 2)


def test_a_sigterm_handler_that_logs_while_the_main_thread_logs_never_deadlocks(
    tmp_path: Path,
) -> None:
    """A handler runs on the main thread between two bytecodes, possibly inside a log call
    that holds the sink's lock: logging from it must not wait for that lock forever.
    200 signals to one child, each one's handler logging."""
    sigterm_run(tmp_path, 0, 200)


@pytest.mark.slow
def test_a_sigterm_handler_that_logs_and_ends_the_program_exits(tmp_path: Path) -> None:
    """The usual server: SIGTERM's handler logs "finishing" and sets a flag that ends the main
    loop. 20 fresh processes, one signal each: each must exit with its line in the file."""
    for run in range(20):
        sigterm_run(tmp_path, run, 1)


def _read_all(stream: Any, into: list[bytes]) -> None:
    into.append(stream.read())


@pytest.mark.slow
def test_a_sigterm_handler_that_logs_then_calls_os_exit_keeps_its_line_on_stdout(
    tmp_path: Path,
) -> None:
    """os._exit() flushes nothing: a line the handler logged while its thread was inside the
    stdout sink's write() must be on the pipe before the handler goes on. 20 processes."""
    for run in range(20):
        log_file = tmp_path / f"run{run}" / "app.log"
        proc = start("sigterm_handler_os_exit", {"log_file": str(log_file)})
        assert proc.stderr is not None
        out: list[bytes] = []
        reader = threading.Thread(target=_read_all, args=(proc.stdout, out))
        reader.start()  # before "ready": the lines before it fill the pipe
        ready, _, _ = select.select([proc.stderr], [], [], CHILD_TIMEOUT)
        assert ready, f"run {run}: the child did not start"
        assert proc.stderr.readline() == b"ready\n", f"run {run}: {kill(proc)}"
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            kill(proc)
            pytest.fail(f"run {run}: no exit after SIGTERM")
        reader.join(EXIT_TIMEOUT)
        assert proc.stdout is not None
        proc.stdout.close()
        proc.stderr.close()
        assert proc.returncode == 0, f"run {run}: exit code {proc.returncode}"
        stdout_messages = [json.loads(text)[F.MESSAGE] for text in out[0].splitlines() if text]
        assert "finishing" in stdout_messages, f"run {run}: not on stdout"
        assert "finishing" in [r[F.MESSAGE] for r in read_records(log_file)], f"run {run}"


# -- 3. Ctrl-C while threads log ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "runs"),
    [("kill", 30), ("main_thread", 20), ("worker_thread", 20)],
)
def test_ctrl_c_while_threads_log_exits_and_keeps_every_line(
    tmp_path: Path, how: str, runs: int
) -> None:
    """SIGINT (from another process, or pthread_kill to the main thread or to a logging thread)
    while three threads and the main thread log: the KeyboardInterrupt ends the main thread,
    whose ``finally`` stops and joins the threads, then atexit shuts the library down. A
    KeyboardInterrupt raised just after a sink's lock was taken must not leave it taken."""
    for run in range(runs):
        log_file = tmp_path / f"run{run}" / "app.log"
        config = {"log_file": str(log_file), "threads": 3, "how": how}
        proc = start("sigint_threads", config)
        if how == "kill":
            line = Lines(proc).next(CHILD_TIMEOUT)
            assert line == "ready", line
            os.kill(proc.pid, signal.SIGINT)
        done = finish(proc, EXIT_TIMEOUT, f"run {run} of {runs}: after SIGINT ({how})")
        assert "KeyboardInterrupt" in done.stderr, done.stderr[-2000:]
        assert done.returncode == -signal.SIGINT, done.stderr[-2000:]
        summary, after_exit = (json.loads(text) for text in done.stdout.splitlines()[-2:])
        assert after_exit == {"atexit": True, "configured": False}  # shutdown() ran at exit
        expected = [(t, s) for t, n in summary["counts"].items() for s in range(n)]
        main_sent = summary["main_sent"]
        found = numbered(read_records(log_file))
        # The call that the interrupt cut short may or may not have written its line.
        if ("main", main_sent) in found:
            main_sent += 1
        expected += [("main", s) for s in range(main_sent)]
        assert_each_once(found, expected, f"run {run} of {runs}")


@pytest.mark.slow
def test_a_ctrl_c_storm_never_leaves_a_sink_lock_taken(tmp_path: Path) -> None:
    """SIGINT every half millisecond for a second while four threads log: a second interrupt
    can land inside the code that undoes a first one's acquire. 25 processes; in each, the
    logging threads must all end once the storm is over."""
    for run in range(25):
        log_file = tmp_path / f"run{run}" / "app.log"
        proc = start("sigint_storm", {"log_file": str(log_file)}, stdin=True)
        lines = Lines(proc)
        assert lines.next(CHILD_TIMEOUT) == "ready", f"run {run}"
        end = time.monotonic() + 1.0
        while time.monotonic() < end and proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
            time.sleep(0.0005)
        time.sleep(0.1)  # the last one handled before the child is told the storm is over
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(b"over\n")
            proc.stdin.flush()
        done = finish(proc, CHILD_TIMEOUT, f"run {run} of 25: after the storm")
        assert done.stdout.strip(), f"run {run}: no summary\n{done.stderr[-3000:]}"
        summary = last_json(done.stdout)
        assert summary["interrupts"] > 0, f"run {run}: no interrupt landed"
        assert summary["stuck"] == 0, f"run {run}: {summary}\n{done.stderr[-2000:]}"


# -- 4. direct push to Loki from worker processes -------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[LokiReceiver]:
    with running() as loki:
        yield loki
    assert loki.violations == []


def loki_env(receiver: LokiReceiver, **extra: str) -> dict[str, str]:
    # A batch is due only after 30 s: what arrives was sent because the worker ended.
    return child_env(LOKI_URL=receiver.url, LOKI_BATCH_WAIT="30", **extra)


def received(receiver: LokiReceiver) -> list[dict[str, Any]]:
    return [json.loads(line) for line in receiver.lines()]


LOKI_CHILDREN, LOKI_LINES = 3, 2000


@pytest.mark.slow
@pytest.mark.parametrize(
    "method",
    [
        "mp_fork",
        "pool_fork",
        "mppool_fork",
        "mp_spawn",
        "mp_forkserver",
        "pool_spawn",
        "pool_forkserver",
        "mppool_spawn",
        "mppool_forkserver",
    ],
)
def test_loki_push_from_worker_processes_delivers_every_line(
    tmp_path: Path, receiver: LokiReceiver, method: str
) -> None:
    """Workers of multiprocessing and ProcessPoolExecutor log and end normally. Forked and
    forkserver workers leave through ``os._exit()`` (no atexit): what their sender had
    buffered must still reach Loki, exactly once."""
    log_file = tmp_path / "app.log"
    config = {
        "log_file": str(log_file),
        "method": method,
        "children": LOKI_CHILDREN,
        "lines": LOKI_LINES,
    }
    done = run_mode("loki_children", config, env=loki_env(receiver))
    assert done.returncode == 0, done.stderr[-3000:]
    assert last_json(done.stdout)["exit_codes"] == [0] * LOKI_CHILDREN
    expected = [(w, s) for w in range(LOKI_CHILDREN) for s in range(LOKI_LINES)]
    total = len(expected) + 2
    receiver.wait_for_lines(total, timeout=5)  # all sent before the workers ended: no wait
    records = received(receiver)
    assert_each_once(numbered(records), expected, f"lines at Loki ({method})")
    assert sorted(r[F.MESSAGE] for r in records if r[F.MESSAGE] != "line") == [
        "parent after the workers",
        "parent before the workers",
    ]
    assert_each_once(numbered(read_records(log_file)), expected, "lines in the file")
    assert done.stderr == ""


@pytest.mark.slow
@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_loki_worker_ended_by_sigterm_ships_its_buffer_and_still_dies_of_sigterm(
    tmp_path: Path, receiver: LokiReceiver, start_method: str
) -> None:
    """``Process.terminate()`` sends SIGTERM to a worker that has logged (its batch is not due
    yet). With LOKI_URL set and SIGTERM at its default, the library flushes the buffer within
    LOKI_FLUSH_TIMEOUT and re-raises SIGTERM: the exit status is still -SIGTERM."""
    log_file = tmp_path / "app.log"
    config = {"log_file": str(log_file), "start": start_method, "lines": LOKI_LINES}
    done = run_mode("loki_sigterm", config, env=loki_env(receiver, LOKI_FLUSH_TIMEOUT="5"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = last_json(done.stdout)
    assert result["logged"]
    assert result["exit_code"] == -signal.SIGTERM
    receiver.wait_for_lines(LOKI_LINES, timeout=5)
    worker = [r for r in received(receiver) if r[F.PID] == result["pid"]]
    assert_each_once(numbered(worker), [(0, s) for s in range(LOKI_LINES)], "lines at Loki")


# -- 5. fork from a thread while other threads write to stdout ------------------------------------


@pytest.mark.slow
def test_a_child_forked_from_a_thread_while_threads_write_stdout_can_log(tmp_path: Path) -> None:
    """Two threads log to stdout (a pipe read slowly, so that writes block: a supervisor or a
    container runtime behind) while a third thread forks 40 times. The child's first log line
    must not wait for a lock that a thread of the parent held at the fork (the stream's own
    buffer lock included), and no line may be lost, torn or written twice. stdout is buffered,
    as it is for a service whose stdout is a pipe (PYTHONUNBUFFERED would hide the buffer)."""
    result_file = tmp_path / "result.json"
    config = {"forks": 40, "threads": 2, "child_timeout": EXIT_TIMEOUT, "result": str(result_file)}
    env = child_env()
    env.pop("PYTHONUNBUFFERED", None)
    chunks: list[bytes] = []
    errors: list[bytes] = []
    with start("fork_while_stdout_busy", config, env=env) as proc:
        stdout, stderr = proc.stdout, proc.stderr
        assert stdout is not None
        assert stderr is not None

        def read_slowly() -> None:
            while chunk := os.read(stdout.fileno(), 4096):
                chunks.append(chunk)
                time.sleep(0.005)

        readers = [
            threading.Thread(target=read_slowly),
            threading.Thread(target=lambda: errors.append(stderr.read())),
        ]
        for reader in readers:
            reader.start()
        try:
            proc.wait(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            for reader in readers:
                reader.join()
    assert proc.returncode is not None
    assert proc.returncode != -signal.SIGKILL, f"no end within {CHILD_TIMEOUT} s (deadlock?)"
    assert proc.returncode == 0, errors[0].decode()[-3000:]
    result = json.loads(result_file.read_text())
    assert result["hung"] == [], (
        f"child {result['hung'][0]} (of {len(result['exit_codes'])} forked) did not end within "
        f"{EXIT_TIMEOUT} s of its first log line: deadlock"
    )
    assert result["exit_codes"] == [0] * config["forks"]
    out = b"".join(chunks)
    assert out.endswith(b"\n")
    records = [json.loads(line) for line in out.split(b"\n")[:-1]]  # a torn line fails here
    busy = [(t, s) for t, n in result["counts"].items() for s in range(n)]
    assert_each_once(numbered(records, "busy"), busy, "the parent's lines")
    children = {int(pid): k for pid, k in result["children"].items()}
    child_lines = [(r[F.PID], r["k"]) for r in records if r[F.MESSAGE] == "child"]
    assert_each_once(child_lines, children.items(), "the children's lines")


# -- 6. external rotation with the wall clock stepped back ----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("create", [True, False], ids=["create", "no_create"])
def test_external_rotation_is_followed_when_the_wall_clock_steps_back(
    tmp_path: Path, create: bool
) -> None:
    """logrotate renames app.log; a second later (real time) a line comes whose wall-clock
    time is an hour earlier (NTP stepped the clock back). The sink checks the path at least
    once a second of real time: the line goes to the new app.log, not to the renamed file."""
    log_file = tmp_path / "app.log"
    sink = FileSink(log_file, rotation="external", check_interval=1.0)
    try:
        now = time.time_ns()
        sink.write(b"first\n", {}, now)
        os.rename(log_file, tmp_path / "app.log.1")
        if create:  # logrotate's "create"
            log_file.touch()
        time.sleep(1.2)
        sink.write(b"second\n", {}, now - 3600 * 1_000_000_000)
    finally:
        sink.close()
    assert (tmp_path / "app.log.1").read_bytes() == b"first\n"
    assert log_file.exists()
    assert log_file.read_bytes() == b"second\n"


# -- 7. a lagging writer while another process rotates past backup_count --------------------------


@pytest.mark.slow
def test_a_lagging_writer_loses_nothing_when_another_process_rotates_past_backup_count(
    tmp_path: Path,
) -> None:
    """Process B has checked app.log (it wrote a line); process A then fills it and rotates
    five times with backup_count=3, so B's file is rotated out and removed. B then writes a
    line every 5 ms (too soon and too few bytes for its own next check), then one more after a
    second. B's lines after A's rotations must all be found, and no one may be told that the
    file "was deleted while open": nobody deleted it, the library rotated it."""
    log_file = tmp_path / "logs" / "app.log"
    slow_lines = 20
    config = {
        "log_file": str(log_file),
        "max_bytes": 20_000,
        "backup_count": 3,
        "rotations": 5,
        "slow_lines": slow_lines,
    }
    a = start("fast_writer", config, stdin=True)
    b = start("lagging_writer", config, stdin=True)
    try:
        a_lines, b_lines = Lines(a), Lines(b)
        assert a_lines.next(CHILD_TIMEOUT) == "ready"
        assert b_lines.next(CHILD_TIMEOUT) == "ready"
        assert a.stdin is not None
        assert b.stdin is not None
        b.stdin.write(b"warmup\n")
        b.stdin.flush()
        assert b_lines.next(CHILD_TIMEOUT) == "warm"
        a.stdin.write(b"go\n")
        a.stdin.flush()
        a_done = finish(a, CHILD_TIMEOUT, "process A")
        b.stdin.write(b"go\n")
        b.stdin.flush()
        b_done = finish(b, CHILD_TIMEOUT, "process B")
    finally:
        for proc in (a, b):
            kill(proc)
    assert a_done.returncode == 0, a_done.stderr[-2000:]
    assert b_done.returncode == 0, b_done.stderr[-2000:]
    assert json.loads(a_done.stdout.splitlines()[-1])["health"]["rotations"] >= 4
    records = read_records(log_file)
    b_records = [r for r in records if r.get("worker") == "B" and r[F.MESSAGE] == "line"]
    assert_each_once(numbered(b_records), [("B", s) for s in range(slow_lines + 1)], "B's lines")
    for name, done in (("A", a_done), ("B", b_done)):
        assert "was deleted while open" not in done.stderr, f"{name}: {done.stderr}"


# -- 8. sys.exit() in a child forked from a thread, with LOKI_URL ---------------------------------


@pytest.mark.slow
def test_sys_exit_in_a_child_forked_from_a_thread_with_loki_ends_the_child(
    tmp_path: Path, receiver: LokiReceiver
) -> None:
    """A thread forks; in the child that thread is the only one until the child logs and the
    Loki sender starts. ``sys.exit(0)`` there raises SystemExit in a thread's ``run()``, which
    ends only that thread: the process must still end (with status 0), not live on with its
    sender thread."""
    log_file = tmp_path / "app.log"
    config = {"log_file": str(log_file), "forks": 3, "child_timeout": 15}
    done = run_mode("fork_thread_sys_exit", config, env=child_env(LOKI_URL=receiver.url))
    assert done.returncode == 0, done.stderr[-3000:]
    children = last_json(done.stdout)["children"]
    hung = [child for child in children if child["code"] == HUNG]
    assert hung == [], f"{hung[0]} did not end within 15 s after sys.exit(0)"
    assert [child["code"] for child in children] == [0, 0, 0]
    in_file = [(r[F.PID], r["worker"]) for r in read_records(log_file) if r[F.MESSAGE] == "child"]
    assert_each_once(in_file, [(child["pid"], child["k"]) for child in children], "child lines")


@pytest.mark.slow
def test_a_child_forked_from_a_thread_ends_within_the_flush_timeout_while_loki_is_down(
    tmp_path: Path,
) -> None:
    """The same child, with nothing listening where LOKI_URL points, ending once its sender is
    retrying with backoff: it would retry for LOKI_MAX_RETRY_TIME (5 minutes) unless it notices
    the main thread has ended; then the close deadline (LOKI_FLUSH_TIMEOUT, 2 s) applies."""
    log_file = tmp_path / "app.log"
    config = {"log_file": str(log_file), "forks": 1, "child_timeout": 15, "linger": 1.5}
    env = child_env(
        LOKI_URL="http://127.0.0.1:9", LOKI_FLUSH_TIMEOUT="2", LOKI_MAX_RETRY_TIME="300"
    )
    done = run_mode("fork_thread_sys_exit", config, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    children = last_json(done.stdout)["children"]
    assert [child["code"] for child in children] == [0], (children, done.stderr[-3000:])
    assert children[0]["seconds"] < 15


def test_sigterm_while_setup_holds_loguru_lock_still_ships_and_ends(
    tmp_path: Path, receiver: LokiReceiver
) -> None:
    """SIGTERM's close runs wherever the signal lands: here inside loguru's own (not
    re-entrant) lock, as in a setup() interrupted while it replaces loguru's sink
    (Pool.terminate() of a worker still in its initializer). The close must not take that
    lock again: the buffer is shipped and the process ends by SIGTERM."""
    log_file = tmp_path / "app.log"
    done = run_mode(
        "sigterm_in_loguru_lock",
        {"log_file": str(log_file), "lines": 500},
        env=loki_env(receiver),
        timeout=EXIT_TIMEOUT + 10,
    )
    assert done.returncode == -signal.SIGTERM, done.stderr[-3000:]
    shipped = [r["seq"] for r in received(receiver) if r.get(F.MESSAGE) == "line"]
    assert sorted(shipped) == list(range(500))


# -- Pool.terminate() right after the pool started, with LOKI_URL ---------------------------------

#: How many pools: the hang this guards against struck about one pool in 15.
POOLS = 60
#: How many pool scenarios run at once (each has a parent and 4 workers).
POOLS_AT_ONCE = 4
#: A pool scenario ends in well under a second; this long means it hangs.
POOL_TIMEOUT = 15.0
#: Nothing listens there.
LOKI_DOWN = "http://127.0.0.1:9"


@pytest.mark.slow
def test_pool_terminate_right_after_start_with_loki_never_hangs() -> None:
    """``setup()`` with LOKI_URL in the parent and in the workers' initializer, then out of
    ``with Pool(4)`` (``Pool.terminate()``), POOLS times. A worker that takes the SIGTERM just
    before it blocks on the task queue's lock (which terminate() holds for good) only has the
    signal flagged: its wait goes on, it never runs the handler, and terminate() waits for it
    for ever. Every pool must end, and its workers by SIGTERM or by their exit."""
    env = child_env(LOKI_URL=LOKI_DOWN, LOKI_FLUSH_TIMEOUT="2")
    config = {"workers": 4}
    hung: list[str] = []
    failed: list[str] = []
    for first in range(0, POOLS, POOLS_AT_ONCE):
        batch = [start("pool_terminate", config, env=env) for _ in range(POOLS_AT_ONCE)]
        deadline = time.monotonic() + POOL_TIMEOUT
        for number, proc in enumerate(batch, first):
            try:
                out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                tree = subprocess.run(
                    ["ps", "-o", "pid,ppid,stat,wchan:24,cmd", "-g", str(proc.pid)],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout
                kill(proc)
                hung.append(f"pool {number}:\n{tree}")
                continue
            if proc.returncode != 0 or last_json(out.decode()) != {"results": [0, 1, 2, 3]}:
                failed.append(f"pool {number}: status {proc.returncode}\n{err.decode()[-2000:]}")
    assert hung == [], f"{len(hung)} of {POOLS} pools hung in Pool.terminate():\n" + "".join(
        hung[:3]
    )
    assert failed == [], failed[:3]


@pytest.mark.slow
def test_a_sigterm_the_main_threads_wait_did_not_see_still_ships_and_ends(
    tmp_path: Path, receiver: LokiReceiver
) -> None:
    """The mechanism of the hang above, made certain: the SIGTERM is taken by another thread,
    so CPython only flags it, and the main thread stays blocked on a lock no one releases. The
    library must have the main thread run its handler all the same: the buffered lines are
    shipped and the process ends by SIGTERM."""
    done = run_mode(
        "sigterm_missed_by_main",
        {"log_file": str(tmp_path / "app.log"), "lines": 200, "delay": 0.5},
        env=loki_env(receiver),
        timeout=EXIT_TIMEOUT + 10,
    )
    assert done.returncode == -signal.SIGTERM, done.stderr[-3000:]
    shipped = [r["seq"] for r in received(receiver) if r.get(F.MESSAGE) == "line"]
    assert sorted(shipped) == list(range(200))


@pytest.mark.slow
def test_a_forked_childs_sigterm_is_the_childs_alone(tmp_path: Path) -> None:
    """The signal watcher's pipe is the process's own: a child forked after ``setup()`` (and
    not calling it again) that is sent SIGTERM ends by it, and the parent, whose pipe the child
    inherited, is not told of the child's signal and lives on."""
    done = run_mode(
        "fork_child_sigterm",
        {"log_file": str(tmp_path / "app.log"), "linger": 1.0},
        env=child_env(LOKI_URL=LOKI_DOWN, LOKI_FLUSH_TIMEOUT="1"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert last_json(done.stdout) == {"child": -signal.SIGTERM}


def _wakeup_fd() -> int:
    """The signal wakeup fd in force (set_wakeup_fd() only says it by replacing it)."""
    current = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(current)
    return current


def _watchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "alkana-logging-signals"]


@pytest.fixture
def sigterm_default() -> Iterator[None]:
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        alkana_logging.shutdown()
        signal.signal(signal.SIGTERM, before)


@pytest.mark.usefixtures("sigterm_default")
def test_the_signal_watcher_runs_while_sigterms_close_is_in_force(tmp_path: Path) -> None:
    """setup() with LOKI_URL arms a wakeup fd and one watcher thread (a second setup() keeps
    them); shutdown() puts the wakeup fd back to none and the watcher ends."""
    assert _wakeup_fd() == -1
    for _ in range(2):
        alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False, loki_url=LOKI_DOWN)
        assert _wakeup_fd() != -1
        assert len(_watchers()) == 1
    watcher = _watchers()[0]
    alkana_logging.shutdown()
    assert _wakeup_fd() == -1
    watcher.join(EXIT_TIMEOUT)
    assert not watcher.is_alive()


@pytest.mark.usefixtures("sigterm_default")
def test_an_applications_own_wakeup_fd_is_kept(tmp_path: Path) -> None:
    """An event loop's wakeup fd (asyncio, trio) already wakes its main thread on every signal:
    setup() and shutdown() leave it in place and start no watcher."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        signal.set_wakeup_fd(w)
        alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False, loki_url=LOKI_DOWN)
        assert _wakeup_fd() == w
        assert _watchers() == []
        alkana_logging.shutdown()
        assert _wakeup_fd() == w
    finally:
        signal.set_wakeup_fd(-1)
        os.close(r)
        os.close(w)


@pytest.mark.usefixtures("sigterm_default")
def test_setup_again_after_an_event_loop_closed_takes_the_wakeup_fd_back(tmp_path: Path) -> None:
    """An asyncio loop that used add_signal_handler() puts the wakeup fd back to none when it
    closes: the watcher would be deaf for the rest of the process. setup() again re-arms it."""
    import asyncio

    alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False, loki_url=LOKI_DOWN)
    ours = _wakeup_fd()
    assert ours != -1

    async def serve() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, lambda: None)

    asyncio.run(serve())
    assert _wakeup_fd() == -1  # the loop's close left none
    alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False, loki_url=LOKI_DOWN)
    assert _wakeup_fd() == ours
    assert len(_watchers()) == 1


@pytest.mark.usefixtures("sigterm_default")
def test_setup_outside_the_main_thread_says_that_sigterm_will_not_flush(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    worker = threading.Thread(
        target=alkana_logging.setup,
        kwargs={"log_file": str(tmp_path / "app.log"), "stdout": False, "loki_url": LOKI_DOWN},
    )
    worker.start()
    worker.join(EXIT_TIMEOUT)
    assert "outside the main thread" in capfd.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
