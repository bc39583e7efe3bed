"""The processes of tests/guarantees/test_process_safety.py: ``python _process_child.py MODE
CONFIG_JSON``.

Each mode is one scenario run in a fresh interpreter (so that forks, signals and threads never
touch the pytest process). A mode that logs to a file prints its result as one JSON line on
stdout; the modes that log to stdout write their result to ``config["result"]`` instead.
Numbered lines carry ``worker`` and ``seq``, so the test can count every line exactly.

Python 3.12+ warns about ``fork()`` in a process with threads; that is what these scenarios do
on purpose, so the warning is silenced here (it would only add noise to stderr).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import alkana_logging

warnings.filterwarnings(
    "ignore", message=r"This process .* is multi-threaded", category=DeprecationWarning
)

PAD = "x" * 100
LOGGER = "proc"


def _say(text: str) -> None:
    """One line on stdout with a single write(2), safe from a signal handler and after fork."""
    os.write(1, text.encode() + b"\n")


def _log_numbered(worker: Any, lines: int, *, pause_every: int = 0) -> None:
    """``lines`` numbered lines, alternating the structlog and the stdlib front-ends."""
    log = alkana_logging.get_logger(LOGGER)
    std = logging.getLogger(LOGGER)
    for seq in range(lines):
        if seq % 2:
            std.info("line", extra={"worker": worker, "seq": seq, "pad": PAD})
        else:
            log.info("line", worker=worker, seq=seq, pad=PAD)
        if pause_every and seq % pause_every == pause_every - 1:
            time.sleep(0.001)


# -- 1. fork (and spawn, forkserver) after a rotation ---------------------------------------------


def _setup_and_log(settings: dict[str, Any], worker: int, lines: int) -> int:
    """A child that was not forked from a configured parent: it calls setup() itself."""
    alkana_logging.setup(**settings)
    _log_numbered(worker, lines)
    return os.getpid()


def _setup_only(settings: dict[str, Any]) -> None:
    alkana_logging.setup(**settings)


def _log_in_worker(worker: int, lines: int) -> int:
    _log_numbered(worker, lines)
    return os.getpid()


def _run_children(method: str, config: dict[str, Any], settings: dict[str, Any]) -> list[int]:
    """Start ``children`` workers with ``method`` that log ``lines`` numbered lines each and
    wait for them (each under a timeout); return their exit codes."""
    children, lines = config["children"], config["lines"]
    timeout = config.get("timeout", 60)
    if method == "os_fork":
        pids = []
        for worker in range(children):
            pid = os.fork()
            if pid == 0:  # the child
                code = 1
                try:
                    _log_numbered(worker, lines)
                    alkana_logging.shutdown()
                    code = 0
                finally:
                    os._exit(code)
            pids.append(pid)
        return [_wait_pid(pid, timeout) for pid in pids]
    kind, start = method.split("_", 1)  # "mp_fork", "pool_spawn", ...
    context = multiprocessing.get_context(start)
    forked = start == "fork"
    if kind == "mp":
        target: Callable[..., Any] = _log_in_worker if forked else _setup_and_log
        processes = [
            context.Process(
                target=target,
                args=(worker, lines) if forked else (settings, worker, lines),
            )
            for worker in range(children)
        ]
        for process in processes:
            process.start()
        codes = []
        for process in processes:
            process.join(timeout)
            if process.exitcode is None:
                process.kill()
                process.join()
                codes.append(-999)  # hung
            else:
                codes.append(process.exitcode)
        return codes
    initializer: Any = None if forked else _setup_only
    initargs: tuple[Any, ...] = () if forked else (settings,)
    if kind == "mppool":
        # The usual form: leaving the block is Pool.terminate(), which sends SIGTERM to workers
        # that may be flushing at their exit.
        with context.Pool(min(children, 3), initializer, initargs) as mp_pool:
            mp_pool.starmap(_log_in_worker, [(worker, lines) for worker in range(children)])
        return [0] * children
    assert kind == "pool", method
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(children, 3), mp_context=context, initializer=initializer, initargs=initargs
    ) as pool:
        futures = [pool.submit(_log_in_worker, worker, lines) for worker in range(children)]
        for future in futures:
            future.result(timeout)
    return [0] * children


def _wait_pid(pid: int, timeout: float) -> int:
    """The exit code of ``pid``, or -999 (after killing it) if it did not end in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -999


def mode_fork_after_rotation(config: dict[str, Any]) -> dict[str, Any]:
    settings = {
        "log_file": config["log_file"],
        "stdout": False,
        "max_bytes": config["max_bytes"],
        "backup_count": config["backup_count"],
    }
    alkana_logging.setup(**settings)
    log = alkana_logging.get_logger(LOGGER)
    parent_lines = 0
    # The parent has rotated (and so opened the rotation lock file) before it forks.
    while alkana_logging.pipeline_health()["rotations"] < 1:
        log.info("line", worker="parent", seq=parent_lines, pad=PAD)
        parent_lines += 1
    codes = _run_children(config["method"], config, settings)
    health = alkana_logging.pipeline_health()
    alkana_logging.shutdown()
    return {"parent_lines": parent_lines, "exit_codes": codes, "parent_health": health}


# -- 2. a SIGTERM handler that logs ---------------------------------------------------------------


def mode_sigterm_handler_logs(config: dict[str, Any]) -> None:
    """Log in a tight loop; each SIGTERM is handled by a handler that logs (through structlog
    and the stdlib) and acknowledges on stdout. After ``signals`` of them the loop ends."""
    alkana_logging.setup(log_file=config["log_file"], stdout=False, max_bytes=0)
    log = alkana_logging.get_logger(LOGGER)
    std = logging.getLogger(LOGGER)
    wanted = config["signals"]
    received = 0

    def on_sigterm(signum: int, frame: Any) -> None:
        nonlocal received
        received += 1
        log.info("finishing", n=received)
        std.info("finishing", extra={"n": received})
        _say(f"ack {received}")

    signal.signal(signal.SIGTERM, on_sigterm)
    sent = 0
    while received < wanted:
        if sent % 2:
            std.info("line", extra={"worker": "main", "seq": sent})
        else:
            log.info("line", worker="main", seq=sent)
        sent += 1
        if sent == 2000:
            _say("ready")
    _say(json.dumps({"sent": sent, "received": received}))


def mode_sigterm_handler_os_exit(config: dict[str, Any]) -> None:
    """stdout (a pipe) and the file; SIGTERM's handler logs "finishing" and ends the process
    with os._exit(0), which flushes nothing: the line must already be written, also on stdout."""
    alkana_logging.setup(log_file=config["log_file"], stdout=True, max_bytes=0)
    log = alkana_logging.get_logger(LOGGER)

    def on_sigterm(signum: int, frame: Any) -> None:
        log.info("finishing")
        os._exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    sent = 0
    while True:
        log.info("line", worker="main", seq=sent)
        sent += 1
        if sent == 2000:
            os.write(2, b"ready\n")  # stdout carries the log lines


# -- 3. Ctrl-C while threads log ------------------------------------------------------------------


def mode_sigint_threads(config: dict[str, Any]) -> None:
    """Threads and the main thread log in loops until a SIGINT's KeyboardInterrupt ends the main
    thread; its ``finally`` stops and joins the threads and reports the counts. An atexit
    function registered before setup() runs after the library's own (LIFO): it says whether
    the library's shutdown ran."""
    import atexit

    atexit.register(lambda: _say(json.dumps({"atexit": True, "configured": _configured()})))
    alkana_logging.setup(log_file=config["log_file"], stdout=False, max_bytes=0)
    log = alkana_logging.get_logger(LOGGER)
    std = logging.getLogger(LOGGER)
    stop = threading.Event()
    counts: dict[str, int] = {}

    def work(name: str) -> None:
        sent = 0
        while not stop.is_set():
            if sent % 2:
                std.info("line", extra={"worker": name, "seq": sent})
            else:
                log.info("line", worker=name, seq=sent)
            sent += 1
            counts[name] = sent

    threads = [
        threading.Thread(target=work, args=(f"t{k}",), name=f"t{k}")
        for k in range(config["threads"])
    ]
    for thread in threads:
        thread.start()
    how = config["how"]
    if how != "kill":  # the signal comes from inside: to the main thread, or to a worker's
        target = threading.main_thread() if how == "main_thread" else threads[0]

        def deliver() -> None:
            time.sleep(config.get("delay", 0.2))
            assert target.ident is not None
            signal.pthread_kill(target.ident, signal.SIGINT)

        threading.Thread(target=deliver, daemon=True).start()
    main_sent = 0
    try:
        while True:
            if main_sent % 2:
                std.info("line", extra={"worker": "main", "seq": main_sent})
            else:
                log.info("line", worker="main", seq=main_sent)
            main_sent += 1
            if main_sent == 2000:
                _say("ready")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        _say(json.dumps({"main_sent": main_sent, "counts": counts}))


def mode_sigint_storm(config: dict[str, Any]) -> None:
    """Threads log while SIGINTs arrive every half millisecond; the main thread catches each
    KeyboardInterrupt, wherever it lands (inside a log call too), and goes on logging. Then
    the threads are stopped: each must end (none waits on a lock that an interrupt left
    taken).

    Python raises KeyboardInterrupt at any call or backward jump, also outside a ``try``: this
    loop's own jump back is one. So SIGINT is blocked (``pthread_sigmask``, in every thread:
    the kernel gives a process's signal to any thread that does not block it) except inside
    the ``try`` around the log calls. And it raises KeyboardInterrupt only while ``armed``,
    once: a SIGINT handled just after the window closed, or inside the ``except`` (the
    kernel's delivery and Python's handler call are apart), would otherwise escape the loop."""
    sigint = {signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigint)  # the threads started here inherit it
    armed = False

    def interrupt(_signum: int, _frame: Any) -> None:
        nonlocal armed
        if armed:
            armed = False
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    alkana_logging.setup(log_file=config["log_file"], stdout=False, max_bytes=0)
    std = logging.getLogger(LOGGER)
    log = alkana_logging.get_logger(LOGGER)
    stop = threading.Event()
    over = threading.Event()  # the parent says so on stdin once the storm has passed

    def work() -> None:
        while not stop.is_set():
            std.info("thread line")
            log.info("thread line")

    def wait_for_the_end() -> None:
        sys.stdin.readline()
        over.set()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    threading.Thread(target=wait_for_the_end, daemon=True).start()
    _say("ready")
    interrupts = 0
    while not over.is_set():
        try:
            armed = True
            signal.pthread_sigmask(signal.SIG_UNBLOCK, sigint)
            std.info("main line")
            log.info("main line")
            signal.pthread_sigmask(signal.SIG_BLOCK, sigint)
            armed = False
        except KeyboardInterrupt:  # the handler disarmed itself: no second one in here
            signal.pthread_sigmask(signal.SIG_BLOCK, sigint)
            interrupts += 1
    stop.set()
    for thread in threads:
        thread.join(5)
    stuck = sum(thread.is_alive() for thread in threads)
    _say(json.dumps({"interrupts": interrupts, "stuck": stuck}))
    os._exit(0)  # a stuck thread would hang the interpreter's exit: the count says it instead


def _configured() -> bool:
    return alkana_logging.is_configured()


# -- 4. direct push to Loki from worker processes -------------------------------------------------


def mode_loki_children(config: dict[str, Any]) -> dict[str, Any]:
    """LOKI_URL comes from the environment. The parent logs (its sender thread runs), then
    workers log numbered lines and end the way their start method ends them."""
    settings = {"log_file": config["log_file"], "stdout": False}
    alkana_logging.setup(**settings)
    alkana_logging.get_logger(LOGGER).info("parent before the workers")
    codes = _run_children(config["method"], config, settings)
    alkana_logging.get_logger(LOGGER).info("parent after the workers")
    alkana_logging.shutdown()
    return {"exit_codes": codes}


def _log_then_wait(settings: dict[str, Any] | None, lines: int, logged: Any) -> None:
    if settings is not None:
        alkana_logging.setup(**settings)
    _log_numbered(0, lines)
    logged.set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until terminated
        time.sleep(0.01)


def mode_loki_sigterm(config: dict[str, Any]) -> dict[str, Any]:
    """A worker logs, then is ended by Process.terminate() (SIGTERM) before its batch is due."""
    settings = {"log_file": config["log_file"], "stdout": False}
    start = config["start"]
    context = multiprocessing.get_context(start)
    if start == "fork":
        alkana_logging.setup(**settings)
        alkana_logging.get_logger(LOGGER).info("parent before the worker")
    logged = context.Event()
    process = context.Process(
        target=_log_then_wait,
        args=(None if start == "fork" else settings, config["lines"], logged),
    )
    process.start()
    if not logged.wait(60):
        process.kill()
        process.join()
        return {"exit_code": None, "logged": False}
    process.terminate()
    process.join(config.get("timeout", 30))
    code = process.exitcode
    if code is None:
        process.kill()
        process.join()
    alkana_logging.shutdown()
    return {"exit_code": code, "logged": True, "pid": process.pid}


# -- 5. fork from a thread while other threads write to stdout ------------------------------------


def mode_fork_while_stdout_busy(config: dict[str, Any]) -> None:
    """Threads log to stdout (a pipe) through the library; another thread (not the main one)
    forks again and again; each child logs one line first thing and leaves. A child that does
    not end within ``child_timeout`` is killed and counted as hung."""
    alkana_logging.setup(log_file="", stdout=True)
    log = alkana_logging.get_logger(LOGGER)
    std = logging.getLogger(LOGGER)
    stop = threading.Event()
    counts: dict[str, int] = {}

    def busy(name: str) -> None:
        sent = 0
        while not stop.is_set():
            if sent % 2:
                std.info("busy", extra={"worker": name, "seq": sent, "pad": PAD})
            else:
                log.info("busy", worker=name, seq=sent, pad=PAD)
            sent += 1
            counts[name] = sent

    children: dict[int, int] = {}
    hung: list[int] = []
    codes: list[int] = []

    def forker() -> None:
        time.sleep(0.05)
        for k in range(config["forks"]):
            pid = os.fork()
            if pid == 0:  # the child
                code = 1
                try:
                    log.info("child", k=k)
                    code = 0
                finally:
                    os._exit(code)
            children[pid] = k
            code = _wait_pid(pid, config["child_timeout"])
            codes.append(code)
            if code == -999:
                hung.append(k)
                break  # one is enough: the next ones would wait as long
            time.sleep(0.002)

    threads = [threading.Thread(target=busy, args=(f"t{k}",)) for k in range(config["threads"])]
    for thread in threads:
        thread.start()
    fork_thread = threading.Thread(target=forker)
    fork_thread.start()
    fork_thread.join()
    stop.set()
    for thread in threads:
        thread.join()
    alkana_logging.shutdown()
    result = {
        "parent": os.getpid(),
        "children": {str(pid): k for pid, k in children.items()},
        "hung": hung,
        "exit_codes": codes,
        "counts": counts,
    }
    with open(config["result"], "w", encoding="utf-8") as out:
        json.dump(result, out)


# -- 7. a lagging writer while another process rotates past backup_count --------------------------


def mode_lagging_writer(config: dict[str, Any]) -> None:
    """Process B: opens the file, writes one line, then, told to go, writes slowly: a line every
    few milliseconds (too few bytes and too soon for its own check of the path), then one more
    line after its one-second check is due. Driven by lines on stdin."""
    alkana_logging.setup(
        log_file=config["log_file"],
        stdout=False,
        max_bytes=config["max_bytes"],
        backup_count=config["backup_count"],
    )
    log = alkana_logging.get_logger(LOGGER)
    _say("ready")
    assert sys.stdin.readline().strip() == "warmup"
    log.info("warmup", worker="B")  # the file B has open, checked now
    _say("warm")
    assert sys.stdin.readline().strip() == "go"
    for seq in range(config["slow_lines"]):
        log.info("line", worker="B", seq=seq)
        time.sleep(0.005)
    time.sleep(1.2)  # B's next check of the path is due now
    log.info("line", worker="B", seq=config["slow_lines"])
    health = alkana_logging.pipeline_health()
    alkana_logging.shutdown()
    _say(json.dumps({"health": health}))


def mode_fast_writer(config: dict[str, Any]) -> None:
    """Process A: told to go, writes until it has rotated ``rotations`` times."""
    alkana_logging.setup(
        log_file=config["log_file"],
        stdout=False,
        max_bytes=config["max_bytes"],
        backup_count=config["backup_count"],
    )
    log = alkana_logging.get_logger(LOGGER)
    _say("ready")
    assert sys.stdin.readline().strip() == "go"
    sent = 0
    while alkana_logging.pipeline_health()["rotations"] < config["rotations"]:
        log.info("line", worker="A", seq=sent, pad=PAD)
        sent += 1
    health = alkana_logging.pipeline_health()
    alkana_logging.shutdown()
    _say(json.dumps({"sent": sent, "health": health}))


# -- 8. sys.exit() in a child forked from a thread, with LOKI_URL ---------------------------------


def mode_fork_thread_sys_exit(config: dict[str, Any]) -> dict[str, Any]:
    """LOKI_URL comes from the environment. A thread forks; the child logs and calls
    sys.exit(0). Each child gets ``child_timeout`` seconds to end."""
    alkana_logging.setup(log_file=config["log_file"], stdout=False)
    log = alkana_logging.get_logger(LOGGER)
    log.info("parent", worker="parent")
    results: list[dict[str, Any]] = []

    def forker(k: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child, whose only thread is this one
            log.info("child", worker=k)
            time.sleep(config.get("linger", 0))  # e.g. until its sender is retrying
            sys.exit(0)
        started = time.monotonic()
        code = _wait_pid(pid, config["child_timeout"])
        results.append({"k": k, "pid": pid, "code": code, "seconds": time.monotonic() - started})

    for k in range(config["forks"]):
        thread = threading.Thread(target=forker, args=(k,))
        thread.start()
        thread.join()
        if results[-1]["code"] == -999:
            break  # one is enough: the next ones would wait as long
    alkana_logging.shutdown()
    return {"children": results}


def mode_sigterm_in_loguru_lock(config: dict[str, Any]) -> None:
    """LOKI_URL comes from the environment. Log ``lines`` lines, then, holding loguru's core
    lock, send this process SIGTERM (the library's handler is in force)."""
    from loguru import logger as loguru_logger

    alkana_logging.setup(log_file=config["log_file"], stdout=False)
    log = alkana_logging.get_logger(LOGGER)
    for seq in range(config["lines"]):
        log.info("line", worker="main", seq=seq)
    with loguru_logger._core.lock:  # type: ignore[attr-defined]
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler runs before this returns


def _pool_initializer(settings: dict[str, Any]) -> None:
    alkana_logging.setup(**settings)


def _pool_job(x: int) -> int:
    return x


def mode_pool_terminate(config: dict[str, Any]) -> dict[str, Any]:
    """LOKI_URL comes from the environment. ``setup()`` here and in each worker's initializer,
    a few tasks, then out of ``with Pool(...)``: ``Pool.terminate()`` sends SIGTERM to the
    workers just as they wait for their next task, and joins them."""
    settings = {"log_file": "", "stdout": False}
    alkana_logging.setup(**settings)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(config["workers"], initializer=_pool_initializer, initargs=(settings,)) as pool:
        results = pool.map(_pool_job, range(config["workers"]))
    return {"results": results}


def mode_sigterm_missed_by_main(config: dict[str, Any]) -> None:
    """LOKI_URL comes from the environment. Log ``lines`` lines; then the main thread waits on
    a lock for ever while another thread takes a SIGTERM: CPython's C-level handler runs there
    and only flags the signal, and the main thread's wait is not interrupted, as when a SIGTERM
    lands just before the main thread blocks. The library's handler must still run (in the
    main thread), ship the lines and end the process by SIGTERM."""
    alkana_logging.setup(log_file=config["log_file"], stdout=False)
    log = alkana_logging.get_logger(LOGGER)
    for seq in range(config["lines"]):
        log.info("line", worker="main", seq=seq)
    never = threading.Lock()
    never.acquire()

    def take_sigterm() -> None:
        # Once the main thread is blocked in acquire() (sooner, it would see the flag itself
        # when it next holds the GIL).
        time.sleep(config["delay"])
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=take_sigterm, name="takes-sigterm").start()
    never.acquire()  # no one releases it: only the signal's handler ends this


def mode_fork_child_sigterm(config: dict[str, Any]) -> dict[str, Any]:
    """LOKI_URL comes from the environment. ``setup()``, then ``os.fork()``: the child only
    sleeps (no ``setup()`` of its own) and is sent SIGTERM; the parent lingers a while after."""
    alkana_logging.setup(log_file=config["log_file"], stdout=False)
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    time.sleep(0.2)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    time.sleep(config["linger"])
    return {"child": os.waitstatus_to_exitcode(status)}


MODES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "fork_after_rotation": mode_fork_after_rotation,
    "sigterm_handler_logs": mode_sigterm_handler_logs,
    "sigterm_handler_os_exit": mode_sigterm_handler_os_exit,
    "sigint_threads": mode_sigint_threads,
    "sigint_storm": mode_sigint_storm,
    "loki_children": mode_loki_children,
    "loki_sigterm": mode_loki_sigterm,
    "fork_while_stdout_busy": mode_fork_while_stdout_busy,
    "lagging_writer": mode_lagging_writer,
    "fast_writer": mode_fast_writer,
    "fork_thread_sys_exit": mode_fork_thread_sys_exit,
    "sigterm_in_loguru_lock": mode_sigterm_in_loguru_lock,
    "pool_terminate": mode_pool_terminate,
    "sigterm_missed_by_main": mode_sigterm_missed_by_main,
    "fork_child_sigterm": mode_fork_child_sigterm,
}


def main() -> None:
    mode, config = sys.argv[1], json.loads(sys.argv[2])
    result = MODES[mode](config)
    if result is not None:
        _say(json.dumps(result))


if __name__ == "__main__":
    main()
