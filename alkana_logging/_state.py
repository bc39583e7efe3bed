"""The one place that holds the global configuration (the pipeline and the settings in force),
and ``configure()``/``shutdown()``/the SIGTERM close and the fork hooks that change it.

Each front-end installs itself (``stdlib.install``, ``_structlog.install``, ``_loguru.install``)
and keeps the handle of what it installed (the root logger's handler, the processor chain,
loguru's sink id) to undo it in its ``uninstall()``."""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from alkana_logging import _lifecycle, _loguru, _structlog, sinks, stdlib
from alkana_logging import fields as F
from alkana_logging._line import Renderer
from alkana_logging.health import PipelineHealth
from alkana_logging.pipeline import Pipeline, to_stdlib
from alkana_logging.settings import Settings, load_settings

_lock = threading.RLock()
_pipeline: Pipeline | None = None
_settings: Settings | None = None
_hooks_installed = False


def current() -> Pipeline | None:
    return _pipeline


def settings() -> Settings | None:
    return _settings


def is_configured() -> bool:
    return _pipeline is not None


def configure(
    overrides: Mapping[str, Any] | None = None,
    *,
    extra_sinks: Iterable[sinks.Sink] = (),
    processors: Iterable[Any] = (),
    settings_obj: Settings | None = None,
) -> Settings:
    """Build a pipeline from settings and install it in place of the previous one."""
    global _pipeline, _settings
    effective = settings_obj if settings_obj is not None else load_settings(overrides)
    health = PipelineHealth()
    outputs = [*sinks.from_settings(effective, health), *extra_sinks]
    renderer = Renderer.from_settings(effective)
    pipeline = Pipeline(renderer, outputs, level=effective.level_number, health=health)
    with _lock:
        previous = _pipeline
        _pipeline, _settings = pipeline, effective
        stdlib.install(pipeline, effective)
        _structlog.install(pipeline, effective.level_number, processors)
        _loguru.install(pipeline, effective.level_number)
        if previous is not None:
            previous.close()
        _install_hooks()
        _lifecycle.watch_multiprocessing(shutdown)
        if effective.loki_url and effective.loki_flush_on_sigterm:
            _lifecycle.install_sigterm(close_at_signal)
        else:
            _lifecycle.uninstall_sigterm()
    return effective


def shutdown() -> None:
    """Flush and close the outputs and undo what ``setup()`` installed."""
    global _pipeline, _settings  # noqa: PLW0603
    # closing(): a SIGTERM from here on lets the close finish, then ends the process.
    with _lock, _lifecycle.closing():
        pipeline = _pipeline
        if pipeline is None:
            return
        _pipeline = _settings = None
        stdlib.uninstall()
        _structlog.detach()  # loggers kept by callers take the processor's fallback
        try:
            _loguru.uninstall()
            _structlog.uninstall()
        except Exception as err:  # noqa: BLE001 - the outputs are closed whatever happens
            PipelineHealth.report(f"undoing setup() failed: {err!r}")
        pipeline.close()
        _lifecycle.uninstall_sigterm()  # only now: a SIGTERM during the close waits for it


def close_at_signal() -> None:
    """SIGTERM's close (the process ends right after): flush and close the outputs, nothing
    else. The signal may land anywhere, inside ``setup()`` holding loguru's own lock, or inside
    a log call: what ``shutdown()`` also undoes (loguru's sink, structlog's configuration)
    takes other libraries' locks, which this thread may hold, so it is left as it is."""
    global _pipeline  # noqa: PLW0603
    with _lock, _lifecycle.closing():  # an RLock: a setup() this interrupted holds it
        pipeline = _pipeline
        if pipeline is None:
            return
        _pipeline = None
        _structlog.detach()
        _loguru.detach()
        pipeline.close()


def _install_hooks() -> None:
    global _hooks_installed  # noqa: PLW0603
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(shutdown)
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def _before_fork() -> None:
    _lifecycle.before_fork_block()
    # multiprocessing may have been imported since setup(): its workers must flush at exit.
    try:
        _lifecycle.watch_multiprocessing(shutdown)
    except Exception as err:  # noqa: BLE001 - never fail the caller's fork()
        PipelineHealth.report(f"preparing for fork() failed: {err!r}")


def _after_fork_in_parent() -> None:
    try:
        _adopt_gunicorn_again()
    finally:
        _lifecycle.after_fork_unblock()


def _after_fork_in_child() -> None:
    global _lock  # noqa: PLW0603
    _lock = threading.RLock()
    pipeline = _pipeline
    try:
        if pipeline is not None:
            pipeline.after_fork()
        _adopt_gunicorn_again()
    finally:
        try:
            _lifecycle.after_fork_in_child()  # a watcher of its own before SIGTERM can come
        finally:
            _lifecycle.after_fork_unblock()  # a SIGTERM held since fork() is handled from here


def _adopt_gunicorn_again() -> None:
    if _pipeline is not None:
        stdlib.adopt_gunicorn_again()


def emit(
    level: str,
    logger: str,
    message: str,
    fields: Mapping[str, Any] | None = None,
    exc: BaseException | None = None,
) -> None:
    """Emit one line from the package's own helpers (events of the middleware, ETL, metrics).

    With ``setup()`` done, the line goes straight to the pipeline. Without it, it goes through
    the stdlib logger ``logger`` (its fields as ``extra=``), so users who wire logging themselves
    with :class:`~alkana_logging.JsonFormatter` get the same lines.
    """
    pipeline = _pipeline
    if pipeline is None:
        to_stdlib(level, logger, message, fields, exc)
    elif F.LEVEL_NUMBERS[level] >= pipeline.level:
        pipeline.emit_offered(time.time_ns(), level, logger, message, fields, exc)
