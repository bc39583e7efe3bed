"""How a process that logs ends: every way out flushes what is still in memory.

A normal exit runs ``atexit`` (registered by ``_state``). Two ways out skip it:

- a ``multiprocessing`` worker leaves through ``os._exit()`` (the ``fork`` and ``forkserver``
  start methods, and every ``Pool`` or ``ProcessPoolExecutor`` worker of theirs); its own exit
  path runs ``multiprocessing.util``'s finalizers first, so the pipeline is closed from one;
- ``SIGTERM`` with its default action ends the process at once (``Process.terminate()``,
  ``Pool.terminate()``, ``kill``). With direct push to Loki on, a handler is installed when
  SIGTERM still has its default action: it closes the pipeline (at most ``LOKI_FLUSH_TIMEOUT``),
  puts the default action back and sends the signal again, so the process still ends by SIGTERM.
  A handler the application installed is never replaced.

CPython runs a Python signal handler only when the main thread is back in the interpreter: the
C-level handler sets a flag, and a wait that the signal did not interrupt goes on. A SIGTERM
that lands just before the main thread blocks, or between a wake-up and the next wait inside
the C library (a ``Pool`` worker in ``SemLock.acquire()`` on the task queue's lock, which
``Pool.terminate()`` has taken for good), is never acted on: the worker lives on and its parent
waits for it for ever. So while our handler is in force a watcher thread learns of every signal
from the C level (``signal.set_wakeup_fd``), and when the handler has not started soon after a
SIGTERM it sends the signal to the main thread again, which interrupts its wait, until it has.
An application that set a wakeup fd of its own (asyncio, trio) keeps it: its loop wakes on
every signal already.

The file and stdout need none of this (each line is written before the call returns); the Loki
buffer does.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from alkana_logging.health import PipelineHealth

#: multiprocessing's finalizers run highest priority first; the user's (>= 0) come before ours.
_FINALIZER_PRIORITY = -100

_close: Callable[[], None] | None = None
#: What SIGTERM's handler runs: the outputs' close only (see _state.close_at_signal).
_signal_close: Callable[[], None] | None = None
_after_fork_key: Any = None  # the object multiprocessing keys our after-fork hook on
_finalizer: Any = None  # our multiprocessing.util.Finalize, while registered
_sigterm_installed = False
_closing = False  # the pipeline is being closed: a SIGTERM now waits for the close
_pending_signal: int | None = None
#: _on_sigterm has started in this process (the watcher stops sending the signal again).
_handler_entered = False

#: Signals the library's threads never take: the application's (faults and SIGKILL/SIGSTOP are
#: not here). A thread started with them blocked cannot be given one meant for the main thread.
APPLICATION_SIGNALS = frozenset(
    getattr(signal, name)
    for name in (
        "SIGTERM",
        "SIGINT",
        "SIGHUP",
        "SIGQUIT",
        "SIGUSR1",
        "SIGUSR2",
        "SIGALRM",
        "SIGCHLD",
        "SIGWINCH",
    )
    if hasattr(signal, name)
)
#: How long the main thread gets to start SIGTERM's handler before the watcher sends the signal
#: to it again (and again, this often, until it has).
_RESEND_AFTER = 0.05
#: How often an idle watcher looks whether the main thread has ended (a child forked from a
#: thread ends with its last thread: the watcher must not be it).
_WATCH_POLL = 0.5


class _Key:
    """A weak-referenceable object that lives as long as the process."""


def watch_multiprocessing(close: Callable[[], None]) -> None:
    """Have ``multiprocessing``'s exit path call ``close`` in this process and in the worker
    processes it starts; does nothing until ``multiprocessing`` is imported (called again from
    ``setup()`` and before every ``fork()``)."""
    global _close, _after_fork_key  # noqa: PLW0603
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    _close = close
    if _after_fork_key is None:
        # A worker's bootstrap clears the finalizers it inherited, then runs these hooks.
        _after_fork_key = _Key()
        util.register_after_fork(_after_fork_key, _in_worker)
    _register_finalizer(util)


def _in_worker(_key: object) -> None:
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        _register_finalizer(util)


def _register_finalizer(util: Any) -> None:
    """One finalizer at a time: a worker's bootstrap may have cleared the one registered."""
    global _finalizer  # noqa: PLW0603
    if _finalizer is None or not _finalizer.still_active():
        _finalizer = util.Finalize(None, _run_close, exitpriority=_FINALIZER_PRIORITY)


def _run_close() -> None:
    if _close is not None:
        _close()


def start_thread(thread: threading.Thread) -> None:
    """Start one of the library's threads with the application's signals blocked in it from its
    first instruction: a new thread inherits its starter's mask, so it is blocked here around
    ``start()`` and put back at once."""
    previous: Any = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, ())  # the mask, unchanged
    try:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_BLOCK, APPLICATION_SIGNALS)
        thread.start()
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def install_sigterm(close: Callable[[], None]) -> None:
    """Have SIGTERM run ``close`` (which must be safe wherever the signal lands) when SIGTERM
    would otherwise end the process unflushed.

    Only from the main thread (where Python runs signal handlers), and only when SIGTERM has
    its default action.
    """
    global _signal_close, _sigterm_installed  # noqa: PLW0603
    _signal_close = close
    if threading.current_thread() is not threading.main_thread():
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            # Said, not silent: a SIGTERM would end this process with the Loki buffer unsent.
            PipelineHealth.report(
                "setup() ran outside the main thread: SIGTERM cannot be made to flush the Loki "
                "buffer (signal handlers are set from the main thread only); call setup() from "
                "the main thread, or set LOKI_FLUSH_ON_SIGTERM=false to silence this"
            )
        return
    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm and _sigterm_installed:
            _arm_watch()  # setup() again: the watcher runs already, or runs again
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        return
    _sigterm_installed = True
    _arm_watch()


def uninstall_sigterm() -> None:
    """Put SIGTERM's default action back, if the handler in force is still ours."""
    global _sigterm_installed  # noqa: PLW0603
    if not _sigterm_installed:
        return
    _sigterm_installed = False
    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):
        pass
    _disarm_watch()


class _Watch:
    """One process's wakeup pipe: the C-level handler writes each signal's number to ``w``;
    the watcher thread reads ``r``."""

    def __init__(self, r: int, w: int) -> None:
        self.r, self.w = r, w
        self.pid = os.getpid()
        self.main = threading.main_thread()


_watch: _Watch | None = None


def _arm_watch() -> None:
    """Have a watcher thread see this process's signals (main thread only; see the module's
    docstring). Does nothing when one runs already or the application has a wakeup fd."""
    global _watch  # noqa: PLW0603
    watch = _watch
    if watch is not None and watch.pid == os.getpid():
        # Still ours? An event loop that used add_signal_handler() sets the wakeup fd back to
        # none when it closes: take it again then (an application's own stays). Not while a
        # loop runs here: the swap would send a signal meant for it to our pipe.
        if _loop_running():
            return
        with contextlib.suppress(ValueError, OSError):
            current = signal.set_wakeup_fd(watch.w, warn_on_full_buffer=False)
            if current not in (-1, watch.w):
                signal.set_wakeup_fd(current)
        return
    r, w = os.pipe()
    os.set_blocking(w, False)  # the C-level handler must never block on it
    try:
        previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except (ValueError, OSError):
        os.close(r)
        os.close(w)
        return
    inherited = watch is not None and previous == watch.w
    if previous != -1 and not inherited:  # the application's own: it stays
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(previous)
        os.close(r)
        os.close(w)
        return
    if watch is not None:  # the parent's pipe, as inherited by fork(): this process's copies
        _close_fds(watch.r, watch.w)
    new = _Watch(r, w)
    thread = threading.Thread(
        target=_watch_signals, args=(new,), name="alkana-logging-signals", daemon=True
    )
    try:
        start_thread(thread)
    except RuntimeError:  # no thread can be started (interpreter shutting down)
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        _close_fds(r, w)
        _watch = None
        return
    _watch = new


def _loop_running() -> bool:
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # none runs in this thread
        return False
    return True


def _disarm_watch() -> None:
    """Stop the watcher: the wakeup fd goes back to none (when it is still ours) and the pipe's
    write end is closed, which ends the watcher, which closes the read end."""
    global _watch  # noqa: PLW0603
    watch = _watch
    if watch is None or watch.pid != os.getpid():
        return
    try:
        current = signal.set_wakeup_fd(-1)
        if current != watch.w:  # someone else's since: theirs stays
            signal.set_wakeup_fd(current)
    except (ValueError, OSError):  # not the main thread: the watcher stays, and harmless
        return
    _watch = None
    _close_fds(watch.w)


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def after_fork_in_child() -> None:
    """In a forked child, before SIGTERM is unblocked: the wakeup fd inherited from the parent
    is the parent's pipe, whose watcher would take this child's SIGTERM for its own. A child
    still under our handler gets a pipe and a watcher of its own; any other drops it."""
    global _handler_entered, _watch  # noqa: PLW0603
    _handler_entered = False
    watch = _watch
    if watch is None:
        return
    if _sigterm_installed:
        _arm_watch()
        return
    with contextlib.suppress(ValueError, OSError):
        current = signal.set_wakeup_fd(-1)
        if current != watch.w:
            signal.set_wakeup_fd(current)
    _close_fds(watch.r, watch.w)
    _watch = None


def _watch_signals(watch: _Watch) -> None:
    """The watcher thread: on a SIGTERM, wait briefly for the main thread's handler to start;
    until it has, send the signal to the main thread again, which interrupts its wait.

    The read end stays open until the write end is closed (disarmed): the C-level handler
    writes to the pipe on every signal, and a pipe with no reader would make that an error.
    """
    main = watch.main
    sigterm = int(signal.SIGTERM)
    resend_at: float | None = None  # when to send SIGTERM to the main thread (again)
    with contextlib.suppress(OSError, ValueError):  # the pipe is gone: nothing left to watch
        while main.is_alive():
            timeout = _WATCH_POLL
            if resend_at is not None:
                timeout = max(0.0, resend_at - time.monotonic())
            if select.select([watch.r], [], [], timeout)[0]:
                received = os.read(watch.r, 512)
                if not received:  # the write end closed: disarmed
                    _close_fds(watch.r)
                    return
                if sigterm in received and resend_at is None and not _handler_entered:
                    resend_at = time.monotonic() + _RESEND_AFTER
                continue  # our own resends write here too: they wait for resend_at
            if resend_at is None or time.monotonic() < resend_at:
                continue
            if _handler_entered or signal.getsignal(signal.SIGTERM) is not _on_sigterm:
                resend_at = None
                continue
            signal.pthread_kill(main.ident or 0, signal.SIGTERM)
            resend_at = time.monotonic() + _RESEND_AFTER


_fork_mask = threading.local()


def before_fork_block() -> None:
    """Hold SIGTERM in the forking thread across ``fork()`` while our handler is in force.

    CPython clears the signals a child received before its after-fork code ran: a SIGTERM
    sent to a worker just forked (``Pool.terminate()`` right after the pool started) would be
    lost, and the worker, waiting for a task that never comes, would live on, with its parent
    waiting for it. Held, the signal stays pending in the kernel until the child is ready.
    """
    _fork_mask.previous = None
    if not _sigterm_installed:
        return
    with contextlib.suppress(ValueError, OSError, AttributeError):
        _fork_mask.previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def after_fork_unblock() -> None:
    """Undo :func:`before_fork_block` (in the parent, and in the child once it is ready)."""
    previous = getattr(_fork_mask, "previous", None)
    _fork_mask.previous = None
    if previous is not None:
        with contextlib.suppress(ValueError, OSError):
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def closing() -> Iterator[None]:
    """Around the pipeline's close: a SIGTERM that arrives meanwhile (``Pool.terminate()`` of a
    worker that is flushing at its exit) lets the close finish, then ends the process."""
    global _closing, _pending_signal  # noqa: PLW0603
    _closing = True
    try:
        yield
    finally:
        _closing = False
        signum, _pending_signal = _pending_signal, None
        if signum is not None:
            _end_by(signum)


def _on_sigterm(signum: int, _frame: Any) -> None:
    global _pending_signal, _handler_entered  # noqa: PLW0603
    _handler_entered = True
    if _closing:
        _pending_signal = signum
        return
    try:
        if _signal_close is not None:
            _signal_close()
    finally:
        _end_by(signum)


def _end_by(signum: int) -> None:
    """End the process by ``signum``'s default action, so its exit status says so."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
