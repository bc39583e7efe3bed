"""Lines kept whole where the kernel cuts a write: a signal during a long write to a full
stdout pipe, a non-blocking stdout, and a full disk shared by several processes.

Real processes throughout: a child whose stdout is a pipe nobody reads yet, and processes that
share one file on a real, tiny tmpfs mounted in a private mount namespace (``unshare``, which
needs no root where user namespaces are allowed; the test says why it skips where neither works).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from alkana_logging.health import PipelineHealth
from alkana_logging.sinks import StreamSink
from tests._children import CHILD_TIMEOUT, child_env, run_child

#: Lines longer than a pipe takes in one write (PIPE_BUF, 4 KiB): the kernel splits them.
BIG = 30_000


def json_lines(data: bytes) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The JSON objects of ``data`` and the lines that are not JSON (torn ones)."""
    good, bad = [], []
    for text in data.split(b"\n")[:-1]:
        try:
            good.append(json.loads(text))
        except ValueError:
            bad.append(text[:80] + b" ... " + text[-80:])
    return good, bad


# -- 1. stdout: a signal handler that logs while a long line waits for a slow reader --------------

_SIGTERM_CHILD = """
    import os, signal
    import alkana_logging
    alkana_logging.setup(log_file="", stdout=True)
    log = alkana_logging.get_logger("etl")
    stop = False
    def on_term(signum, frame):
        global stop
        log.info("finishing", signal=signum)
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    big = "x" * %d
    os.write(2, b"ready\\n")
    i = 0
    while not stop:
        log.info("row", i=i, payload=big)
        i += 1
    log.info("done", rows=i)
"""


def signalled_while_stdout_is_full(
    run: int, source: str, argv: list[str], signum: int
) -> tuple[int, bytes, bytes]:
    """Run ``source``, which writes ``ready`` to stderr and then logs long rows to a stdout pipe
    nobody reads, send it ``signum`` while a row is half written, then read everything: its exit
    status, stdout and stderr. Fails the test if it does not exit within the timeout."""
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        start_new_session=True,
    ) as proc:
        try:
            assert proc.stderr is not None
            ready, _, _ = select.select([proc.stderr], [], [], CHILD_TIMEOUT)
            assert ready, f"run {run}: the child did not start"
            assert proc.stderr.readline() == b"ready\n", f"run {run}"
            time.sleep(0.3)  # nobody reads: the pipe is full, a row is half written
            os.kill(proc.pid, signum)
            time.sleep(0.1)  # the handler runs while the pipe is still full
            out, err = proc.communicate(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"run {run}: the child did not exit after the signal\n{err[-2000:]!r}")
    return proc.returncode, out, err


def sigterm_while_stdout_is_full(run: int) -> None:
    returncode, out, err = signalled_while_stdout_is_full(
        run, _SIGTERM_CHILD % BIG, [], signal.SIGTERM
    )
    assert returncode == 0, err[-2000:]
    records, torn = json_lines(out)
    assert torn == [], f"run {run}: torn lines"
    messages = [r["message"] for r in records]
    assert messages.count("finishing") == 1, f"run {run}: {messages}"
    rows = [r["i"] for r in records if r["message"] == "row"]
    assert rows == list(range(len(rows))), f"run {run}: a row is missing"
    assert records[-1]["message"] == "done"
    assert records[-1]["rows"] == len(rows), f"run {run}"
    assert all(len(r["payload"]) == BIG for r in records if r["message"] == "row")


@pytest.mark.slow
def test_a_handler_logging_during_a_long_write_to_a_full_pipe_tears_no_line() -> None:
    """SIGTERM while the main thread is blocked writing a 30 KB line to a pipe nobody reads (a
    lagging log collector): the handler's line goes right after the interrupted one, which is
    written to its end. 20 processes: a 1-in-20 tear shows."""
    for run in range(20):
        sigterm_while_stdout_is_full(run)


_RAISING_CHILD = """
    import os, signal, sys
    import alkana_logging
    alkana_logging.setup(log_file="", stdout=True)
    log = alkana_logging.get_logger("etl")
    if sys.argv[1] in ("exit", "shutdown-exit"):
        def on_term(signum, frame):
            log.info("finishing", signal=signum)
            if sys.argv[1] == "shutdown-exit":
                alkana_logging.shutdown()
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
    big = "x" * %d
    os.write(2, b"ready\\n")
    i = 0
    try:
        while True:
            log.info("row", i=i, payload=big)
            i += 1
    except KeyboardInterrupt:
        log.info("interrupted", rows=i)
    finally:
        if sys.argv[1] != "shutdown-exit":
            os.write(2, repr(alkana_logging.pipeline_health()["dropped"]).encode() + b"\\n")
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ctrl-c", "exit", "shutdown-exit"])
def test_an_exception_a_handler_raises_mid_line_ends_that_line_before_the_next(mode: str) -> None:
    """Ctrl-C, or a SIGTERM handler that calls sys.exit(), while a 30 KB line waits for a pipe
    nobody reads: the exception leaves the line cut at an unknown point. The cut part is ended by
    a newline before the next line (the handler's, the except block's), which is whole; the cut
    line is counted. 10 processes each."""
    signum = signal.SIGINT if mode == "ctrl-c" else signal.SIGTERM
    for run in range(10):
        returncode, out, err = signalled_while_stdout_is_full(
            run, _RAISING_CHILD % BIG, [mode], signum
        )
        assert returncode == 0, err[-2000:]
        records, torn = json_lines(out)
        last = "interrupted" if mode == "ctrl-c" else "finishing"
        assert [r["message"] for r in records].count(last) == 1, f"run {run}"
        # At most the one cut line, and only x's of a payload: nothing glued to it.
        assert len(torn) <= 1, f"run {run}: {torn}"
        assert all(last.encode() not in t and b"row" not in t[-80:] for t in torn), torn
        if mode != "shutdown-exit":  # (its pipeline is gone when the count would be printed)
            assert b"stream_interrupted" in err, err[-500:]


def _pipe_stream(*, blocking: bool = True) -> tuple[int, Any]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, blocking)
    return read_fd, open(write_fd, "w", encoding="utf-8")


def _read_all(read_fd: int, into: list[bytes], *, wait: float = 0.0) -> None:
    time.sleep(wait)
    with open(read_fd, "rb") as pipe:
        into.append(pipe.read())


def test_stream_sink_re_entered_in_the_middle_of_a_line_writes_right_after_it() -> None:
    """The interrupted call has written part of its line: the handler's line waits for the
    rest of it instead of landing inside it."""
    read_fd, stream = _pipe_stream()
    sink = StreamSink(stream)
    os.set_blocking(read_fd, False)
    try:
        sink._lock.acquire()  # the interrupted write()
        try:
            sink._out, sink._done = memoryview(b"x" * BIG + b"\n"), 4096
            sink.write(b'{"n":1}\n', {}, 0)
            assert sink._deferred == [b'{"n":1}\n']
            with pytest.raises(BlockingIOError):
                os.read(read_fd, 100)  # nothing written yet
        finally:
            sink._out = None
            sink._lock.release()
        sink.write(b'{"n":2}\n', {}, 0)
        assert os.read(read_fd, 100) == b'{"n":2}\n{"n":1}\n'
    finally:
        stream.close()
        os.close(read_fd)


def test_stream_sink_re_entered_before_a_long_line_is_known_to_be_started_waits_too() -> None:
    """No byte of a 30 KB line is known to be out, but a write that has just returned may
    have taken part of it: the handler's line cannot tell, so it waits."""
    read_fd, stream = _pipe_stream()
    sink = StreamSink(stream)
    try:
        sink._lock.acquire()
        try:
            sink._out, sink._done = memoryview(b"x" * BIG + b"\n"), 0
            sink.write(b'{"n":1}\n', {}, 0)
            assert sink._deferred == [b'{"n":1}\n']
            sink._out, sink._done = memoryview(b"x" * 100 + b"\n"), 0  # one atomic write
            sink.write(b'{"n":2}\n', {}, 0)
            assert sink._deferred == [b'{"n":1}\n']  # written at once
        finally:
            sink._out = None
            sink._lock.release()
        sink.close()
        stream.close()
        out: list[bytes] = []
        _read_all(read_fd, out)
        assert out == [b'{"n":2}\n{"n":1}\n']
    finally:
        if not stream.closed:
            stream.close()


def test_stream_sink_keeps_the_order_with_print() -> None:
    """Text the stream holds in its own buffer (print() without a flush) goes out before the
    line the sink writes to the descriptor."""
    read_fd, stream = _pipe_stream()
    sink = StreamSink(stream)
    stream.write("printed\n")
    sink.write(b'{"n":1}\n', {}, 0)
    stream.write("printed again\n")
    sink.write(b'{"n":2}\n', {}, 0)
    stream.close()
    out: list[bytes] = []
    _read_all(read_fd, out)
    assert out == [b'printed\n{"n":1}\nprinted again\n{"n":2}\n']


def test_stream_sink_waits_on_a_non_blocking_stdout_instead_of_losing_lines() -> None:
    """A stdout left non-blocking (O_NONBLOCK set by another program on the shared pipe) and a
    reader that only starts reading after a second: every line arrives whole and in order, none
    is counted lost, and the wait is spent blocked, not spinning."""
    read_fd, stream = _pipe_stream(blocking=False)
    health = PipelineHealth()
    sink = StreamSink(stream, health=health)
    out: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(read_fd, out), kwargs={"wait": 1.0})
    reader.start()
    lines = [json.dumps({"n": n, "pad": "p" * BIG}).encode() + b"\n" for n in range(20)]
    cpu = time.process_time()
    for line in lines:
        sink.write(line, {}, 0)
    cpu = time.process_time() - cpu
    stream.close()
    reader.join(CHILD_TIMEOUT)
    assert out == [b"".join(lines)]
    assert health.snapshot()["dropped_total"] == 0
    assert cpu < 0.2, f"{cpu:.2f} s of CPU while the reader slept 1 s: spinning on EAGAIN"


def test_stream_sink_on_a_stream_of_another_encoding_replaces_what_it_cannot_encode() -> None:
    """A stdout in ASCII (PYTHONIOENCODING=ascii): the line is written, with ``?`` for what the
    encoding lacks, instead of being dropped."""
    read_fd, write_fd = os.pipe()
    stream = open(write_fd, "w", encoding="ascii")  # noqa: SIM115 - closed below
    health = PipelineHealth()
    sink = StreamSink(stream, health=health)
    sink.write('{"message":"caf\u00e9"}\n'.encode(), {}, 0)
    stream.close()
    out: list[bytes] = []
    _read_all(read_fd, out)
    assert out == [b'{"message":"caf?"}\n']
    assert health.snapshot()["dropped_total"] == 0


# -- 2. a full disk shared by several processes --------------------------------------------------

#: Run in a private mount namespace: a small tmpfs at argv[1] that disappears with the child.
_FULLDISK_CHILD = """
    import json, os, subprocess, sys, time
    mnt, mode = sys.argv[1], sys.argv[2]
    size = "64k" if mode == "two" else "2m"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", mnt], check=True)
    import alkana_logging
    from alkana_logging import _state
    path = os.path.join(mnt, "app.log")
    alkana_logging.setup(log_file=path, stdout=False, max_bytes=0)
    log = alkana_logging.get_logger("disk")

    def fill():
        fd = os.open(os.path.join(mnt, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\\0" * chunk)
            except OSError:
                pass
        os.close(fd)

    def health():
        for sink in _state.current().sinks:
            sink.flush()
        h = alkana_logging.pipeline_health()
        return {"written": h["lines_written"], "dropped": h["dropped"], "errors": h["write_errors"]}

    LINES = 600  # 3 x 600 lines of about 550 bytes: 1 MB, room for all once the filler goes

    def wait(fd):
        assert os.read(fd, 1) == b"x"

    report = {}
    if mode == "two":  # the disk cuts A's line; B writes first when space is back
        to_b, from_a = os.pipe()
        to_a, from_b = os.pipe()
        pid = os.fork()
        if pid == 0:
            wait(to_b)
            log.info("B while full", who="B", n=0)  # no room: kept
            os.write(from_b, b"x")
            wait(to_b)
            for n in range(1, 4):
                log.info("B after", who="B", n=n)
            os.write(1, json.dumps({"B": health()}).encode() + b"\\n")
            os._exit(0)
        for n in range(3):
            log.info("A before", who="A", n=n)
        fill()
        sent = 3
        while not alkana_logging.pipeline_health()["write_errors"]:
            log.info("A while full", who="A", n=sent, pad="y" * 700)
            sent += 1
        os.write(from_a, b"x")
        wait(to_a)
        os.unlink(os.path.join(mnt, "filler"))  # space is back
        os.write(from_a, b"x")
        os.waitpid(pid, 0)  # B has written its lines
        log.info("A after", who="A", n=sent)
        report["A"] = health()
        report["sent"] = {"A": sent + 1, "B": 4}
    else:  # three writers, the disk full and free again many times while they write
        go_r, go_w = os.pipe()
        done_r, done_w = os.pipe()
        pids = []
        for who in range(3):
            pid = os.fork()
            if pid == 0:
                for n in range(LINES):
                    log.info("line", who=who, n=n, pad="z" * (50 + (n * 37 + who * 101) % 900))
                    time.sleep(0.0005)
                os.write(done_w, b"x")
                wait(go_r)
                os.write(1, json.dumps({str(who): health()}).encode() + b"\\n")
                os._exit(0)
            pids.append(pid)
        finished = 0
        os.set_blocking(done_r, False)
        while finished < 3:
            fill()
            time.sleep(0.002)
            os.unlink(os.path.join(mnt, "filler"))
            time.sleep(0.001)
            try:
                finished += len(os.read(done_r, 3))
            except BlockingIOError:
                pass
        os.write(go_w, b"xxx")  # room for the kept lines
        for pid in pids:
            os.waitpid(pid, 0)
        report["sent"] = {str(who): LINES for who in range(3)}
    with open(path, "rb") as file:
        report["file"] = file.read().decode("latin-1")
    os.write(1, json.dumps(report).encode() + b"\\n")
"""


def fulldisk(tmp_path: Path, mode: str) -> dict[str, Any]:
    """Run the scenario in a private mount namespace; its report, merged from its lines."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        pytest.skip("needs Linux and unshare(1) to mount a private tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    prefix = ("unshare", "--mount", "--propagation", "private")
    if os.geteuid() != 0:
        prefix = (*prefix, "--map-root-user")  # an unprivileged user namespace may mount tmpfs
    probe = subprocess.run(
        [*prefix, "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here: {probe.stderr.strip()}")
    child = run_child(_FULLDISK_CHILD, str(mnt), mode, prefix=prefix)
    assert child.returncode == 0, child.stderr[-3000:]
    report: dict[str, Any] = {}
    for text in child.stdout.splitlines():
        report.update(json.loads(text))
    return report


def check_nothing_torn(report: dict[str, Any]) -> int:
    """Every line of the file is whole JSON or blank (a part blanked where the disk cut it);
    every writer's count of lines written is what the file holds, nothing twice, nothing
    dropped (there was room at the end)."""
    data = report["file"].encode("latin-1")
    lines = data.split(b"\n")
    assert lines[-1] == b"", "the file ends inside a line"
    records, torn, blanks = [], [], 0
    for text in lines[:-1]:
        if not text.strip():
            blanks += 1
            continue
        try:
            records.append(json.loads(text))
        except ValueError:
            torn.append(text[:80] + b" ... " + text[-80:])
    assert torn == []
    for who, sent in report["sent"].items():
        numbers = sorted(r["n"] for r in records if str(r["who"]) == who)
        assert numbers == list(range(sent)), f"{who}: lines missing or twice"
        assert report[who]["written"] == sent, who
        assert report[who]["dropped"] == {}, who
    return blanks


def test_a_line_the_full_disk_cut_never_gets_another_process_line_inside_it(
    tmp_path: Path,
) -> None:
    """A's line fits only partly; B logs while the disk is full (kept) and again as soon as
    space is back, before A's next call: B's lines and A's cut line are all whole."""
    report = fulldisk(tmp_path, "two")
    assert check_nothing_torn(report) == 1  # A's part, blanked where the disk cut it


@pytest.mark.slow
def test_three_processes_on_a_disk_that_fills_and_frees_again_tear_no_line(
    tmp_path: Path,
) -> None:
    """Three forked writers share the file (and the descriptor's offset) while the disk fills
    to the last byte and frees again, over and over: each line whole or kept for later, none
    torn, none twice, every one written in the end."""
    cut = []
    for _ in range(3):
        report = fulldisk(tmp_path, "three")
        assert all(report[who]["errors"] for who in report["sent"])  # each met the full disk
        cut.append(check_nothing_torn(report))
        shutil.rmtree(tmp_path / "mnt")
    assert sum(cut) > 0, "no write was ever cut short: the scenario missed its point"
