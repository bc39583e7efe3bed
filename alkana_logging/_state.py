"""The one place that holds the global configuration: the pipeline in force, and what
``setup()`` installed into logging, structlog and loguru, so that ``shutdown()`` can undo it."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from alkana_logging import _lifecycle, _structlog
from alkana_logging import fields as F
from alkana_logging._line import RECORD_ATTRS, Renderer, resolve_exc_info
from alkana_logging.exceptions import ConfigurationError
from alkana_logging.health import PipelineHealth
from alkana_logging.pipeline import Pipeline, feeds_loguru
from alkana_logging.settings import Settings, load_settings
from alkana_logging.sinks import FileSink, Sink, StreamSink
from alkana_logging.stdlib import PipelineHandler

#: Loggers that frameworks give handlers of their own; setup() hands them to the root logger.
FRAMEWORK_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn.error",
    "gunicorn.access",
)

#: What logging.basicConfig() puts on the root logger: setup() replaces these.
_PLAIN_HANDLERS = (logging.StreamHandler, logging.FileHandler)

_lock = threading.RLock()
_pipeline: Pipeline | None = None
_settings: Settings | None = None
_handler: PipelineHandler | None = None
_loguru_sink_id: int | None = None
_processors: list[Any] = []  # filled below; updated in place by setup()
_user_processors: tuple[Any, ...] = ()  # what setup(processors=...) gave, for capture_logs()
_hooks_installed = False


def current() -> Pipeline | None:
    return _pipeline


def settings() -> Settings | None:
    return _settings


def is_configured() -> bool:
    return _pipeline is not None


def user_processors() -> tuple[Any, ...]:
    """The structlog processors of the configuration in force (``setup(processors=...)``)."""
    return _user_processors


def build_sinks(settings: Settings, health: PipelineHealth) -> list[Sink]:
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
            from alkana_logging.console import ConsoleFormat

            plain = Renderer.from_settings(settings).plain  # values as the line has them
            console = ConsoleFormat(colors=_isatty(sys.stdout), plain=plain)
        sinks.append(StreamSink(sys.stdout, format=console, health=health))
    if settings.loki_url:
        from alkana_logging.loki import LokiSink

        sinks.append(LokiSink.from_settings(settings, health))
    return sinks


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:  # noqa: BLE001
        return False


def configure(
    overrides: Mapping[str, Any] | None = None,
    *,
    extra_sinks: Iterable[Sink] = (),
    processors: Iterable[Any] = (),
    settings_obj: Settings | None = None,
) -> Settings:
    """Build a pipeline from settings and install it in place of the previous one."""
    global _pipeline, _settings, _user_processors  # noqa: PLW0603
    effective = settings_obj if settings_obj is not None else load_settings(overrides)
    health = PipelineHealth()
    sinks = build_sinks(effective, health) + list(extra_sinks)
    renderer = Renderer.from_settings(effective)
    pipeline = Pipeline(renderer, sinks, level=effective.level_number, health=health)
    with _lock:
        previous = _pipeline
        _pipeline, _settings = pipeline, effective
        _user_processors = tuple(processors)
        _install(pipeline, effective, list(_user_processors))
        if previous is not None:
            previous.close()
        _install_hooks()
        _lifecycle.watch_multiprocessing(shutdown)
        if effective.loki_url and effective.loki_flush_on_sigterm:
            _lifecycle.install_sigterm(close_at_signal)
        else:
            _lifecycle.uninstall_sigterm()
    return effective


def _install(pipeline: Pipeline, settings: Settings, processors: list[Any]) -> None:
    global _handler  # noqa: PLW0603
    root = logging.getLogger()
    new_handler = PipelineHandler(pipeline)
    for handler in list(root.handlers):
        # Replace our previous handler and the plain stream and file handlers of basicConfig
        # (exactly those classes); keep every other one, subclasses included: pytest's capture
        # handlers are StreamHandlers, and so are many integrations'.
        if handler is _handler or type(handler) in _PLAIN_HANDLERS or feeds_loguru(handler):
            root.removeHandler(handler)
    # First: the handlers after it see the bound context on stdlib records (see PipelineHandler).
    root.handlers.insert(0, new_handler)
    root.setLevel(settings.level_number)
    _handler = new_handler
    adopt_framework_loggers()
    logging.captureWarnings(settings.capture_warnings)

    _structlog.set_level(settings.level_number)
    _processors[:] = [*processors, _structlog_processor]
    _structlog.set_direct(None if processors else pipeline.emit_call, _processors)
    structlog.configure(
        processors=_processors,
        wrapper_class=_structlog.BoundLogger,
        logger_factory=_structlog.LoggerFactory(),
        context_class=dict,
        cache_logger_on_first_use=True,
    )
    _install_loguru(pipeline, settings)


def adopt_framework_loggers() -> None:
    """Hand uvicorn's and gunicorn's loggers to the root logger: their own handlers removed,
    propagation on. The middleware calls it again when the server starts (the lifespan), since
    gunicorn's UvicornWorker gives ``uvicorn.error`` gunicorn's handlers and no propagation in
    each worker, after a ``--preload`` master ran ``setup()``; so does a ``--log-config``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if feeds_loguru(handler):  # an InterceptHandler added after setup()
            root.removeHandler(handler)
    for name in FRAMEWORK_LOGGERS:
        framework_logger = logging.getLogger(name)
        # A new list: UvicornWorker makes uvicorn.error share gunicorn.error's list object.
        framework_logger.handlers = []
        framework_logger.propagate = True
    # gunicorn's UvicornWorker gives uvicorn.error the handlers of gunicorn.error and no
    # propagation, in each worker before the application (and the lifespan) runs: with a
    # --preload master's setup() that is nothing, and uvicorn's first lines ("Started server
    # process", "Waiting for application startup.") would be lost. gunicorn.error hands its
    # records to the root logger's handlers itself, so whoever copies its handlers does too.
    gunicorn_error = logging.getLogger("gunicorn.error")
    gunicorn_error.propagate = False
    gunicorn_error.addHandler(_TO_ROOT)


class _ToRoot(logging.Handler):
    """On ``gunicorn.error`` (which does not propagate): its records go to the root logger's
    handlers, as propagation would take them; so do those of a logger given its handlers."""

    def handle(self, record: logging.LogRecord) -> bool:
        root = logging.getLogger()
        levelno = record.levelno
        for handler in root.handlers:
            if levelno >= handler.level:
                handler.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # handle() does it all
        self.handle(record)


_TO_ROOT = _ToRoot()


def _structlog_processor(logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
    """The last structlog processor: the event goes to the pipeline (structlog's own copy of the
    event dict, so popping from it is fine); the wrapped logger gets an empty string."""
    message = event_dict.pop("event", "")
    exc_info = event_dict.pop("exc_info", None)
    exc = resolve_exc_info(exc_info) if exc_info else None
    level = F.METHOD_LEVELS.get(method_name, F.INFO)
    name = getattr(logger, "name", "root")
    pipeline = _pipeline
    if pipeline is not None:
        pipeline.emit_offered(time.time_ns(), level, name, message, event_dict, exc)
    else:  # a logger kept after shutdown(): hand the event to the stdlib instead
        emit(level, name, message, event_dict, exc)
    return ""


def structlog_logger(name: str, initial_values: dict[str, Any]) -> Any:
    """A concrete bound logger (no lazy proxy to resolve on every call) that stays valid across
    ``setup()`` calls: its class takes the level in force and its processor list is updated in
    place."""
    return _structlog.BoundLogger(_structlog.Named(name), _processors, initial_values)


def _install_loguru(pipeline: Pipeline, settings: Settings) -> None:
    global _loguru_sink_id  # noqa: PLW0603
    try:
        from loguru import logger as loguru_logger
    except ImportError:
        return
    from alkana_logging._loguru import make_sink

    _remove_loguru()
    with contextlib.suppress(ValueError):  # loguru's default stderr sink: replaced by ours
        loguru_logger.remove(0)
    _loguru_sink_id = loguru_logger.add(
        make_sink(), level=settings.level_number, format="{message}", catch=True
    )


def _remove_loguru() -> None:
    global _loguru_sink_id  # noqa: PLW0603
    if _loguru_sink_id is None:
        return
    from loguru import logger as loguru_logger

    with contextlib.suppress(ValueError):
        loguru_logger.remove(_loguru_sink_id)
    _loguru_sink_id = None


def shutdown() -> None:
    """Flush and close the outputs and undo what ``setup()`` installed."""
    global _pipeline, _settings, _handler, _user_processors  # noqa: PLW0603
    # closing(): a SIGTERM from here on lets the close finish, then ends the process.
    with _lock, _lifecycle.closing():
        pipeline = _pipeline
        if pipeline is None:
            return
        _pipeline = _settings = None
        _user_processors = ()
        if _handler is not None:
            logging.getLogger().removeHandler(_handler)
            _handler = None
        gunicorn_error = logging.getLogger("gunicorn.error")
        if _TO_ROOT in gunicorn_error.handlers:
            gunicorn_error.removeHandler(_TO_ROOT)
            gunicorn_error.propagate = True
        logging.captureWarnings(False)
        _structlog.set_direct(None)  # loggers kept by callers take the processor's fallback
        try:
            _remove_loguru()
            structlog.reset_defaults()
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
        _structlog.set_direct(None)
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
    """gunicorn's master reloads its configuration on SIGHUP and gives its loggers their own
    handlers again (text on stderr): each line of the master and of the new workers would be
    written twice, as text and as JSON. Its workers are forked right after: the loggers are
    handed back to the root on both sides of that fork (before a worker copies gunicorn.error's
    handlers to uvicorn.error)."""
    if _pipeline is None:
        return
    try:
        loggers = logging.Logger.manager.loggerDict
        for name in ("gunicorn.error", "gunicorn.access"):
            framework_logger = loggers.get(name)
            if isinstance(framework_logger, logging.Logger) and any(
                getattr(h, "_gunicorn", False) for h in framework_logger.handlers
            ):
                adopt_framework_loggers()
                return
    except Exception as err:  # noqa: BLE001 - never fail the caller's fork()
        PipelineHealth.report(f"handing gunicorn's loggers back after fork() failed: {err!r}")


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
    number = F.LEVEL_NUMBERS[level]
    if pipeline is not None:
        if number >= pipeline.level:
            pipeline.emit_offered(time.time_ns(), level, logger, message, fields, exc)
        return
    stdlib_logger = logging.getLogger(logger)
    if stdlib_logger.isEnabledFor(number):
        extra = {
            (F.COLLISION_PREFIX + k if k in RECORD_ATTRS else k): v
            for k, v in (fields or {}).items()
        }
        exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
        stdlib_logger.log(number, message, extra=extra, exc_info=exc_info)


_processors.append(_structlog_processor)
