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

The file and stdout need none of this (each line is written before the call returns); the Loki
buffer does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

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


def install_sigterm(close: Callable[[], None]) -> None:
    """Have SIGTERM run ``close`` (which must be safe wherever the signal lands) when SIGTERM
    would otherwise end the process unflushed.

    Only from the main thread (where Python runs signal handlers), and only when SIGTERM has
    its default action.
    """
    global _signal_close, _sigterm_installed  # noqa: PLW0603
    _signal_close = close
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        return
    _sigterm_installed = True


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
    global _pending_signal  # noqa: PLW0603
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
