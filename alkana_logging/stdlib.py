"""The stdlib front-end, whole: a ``Handler`` for the root logger, a ``Formatter`` for
``dictConfig``, the split of a ``LogRecord`` into a line's parts, and what ``setup()`` does to
the stdlib's loggers (the root's handler, the frameworks' loggers handed to the root, warnings)
and ``shutdown()`` undoes. Offering other front-ends' lines to the stdlib is the pipeline's
(:meth:`~alkana_logging.pipeline.Pipeline.forward`)."""

from __future__ import annotations

import io
import logging
import os
import sys
import time
import traceback
import types
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from alkana_logging import fields as F
from alkana_logging._line import RECORD_ATTRS, Renderer, level_name, resolve_exc_info
from alkana_logging._loguru import feeds_loguru
from alkana_logging.context import current as current_context
from alkana_logging.health import PipelineHealth
from alkana_logging.pipeline import (
    _STDLIB_CALL_HANDLERS,
    ForwardedRecord,
    Pipeline,
    _otel_span_reader,
    has_foreign_handlers,
    others_listen,
    record_details_off,
    record_details_on,
)
from alkana_logging.redaction import Redactor, safe_repr
from alkana_logging.settings import Settings, load_settings

_root = logging.root
_Logger = logging.Logger
_LogRecord = logging.LogRecord
_LEVEL_BY_NUMBER = F.LEVEL_BY_NUMBER
#: How many attributes ``LogRecord.__init__`` sets (``extra=`` values come after them).
_RECORD_SIZE = len(vars(logging.LogRecord("", 0, "", 0, "", (), None)))

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
#: The handler install() put on the root logger.
_handler: PipelineHandler | None = None


class PipelineHandler(logging.Handler):
    """Hands every record to the pipeline (which renders, redacts and writes it).

    The pipeline's sinks lock for themselves, so ``handle`` skips the handler lock. A
    :class:`~alkana_logging.pipeline.ForwardedRecord` (a line of another front-end offered to
    the other handlers) was written already: it passes.
    """

    def __init__(self, pipeline: Pipeline, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.pipeline = pipeline

    def handle(self, record: logging.LogRecord) -> Any:
        if record.__class__ is ForwardedRecord:
            return True
        if not self.filters:
            pipeline = self.pipeline
            pipeline.emit(*stdlib_parts(record, pipeline.redactor))
            # has_foreign_handlers(), inline: the other handlers get the bound context too.
            if len(_root.handlers) > 1 or _Logger.callHandlers is not _STDLIB_CALL_HANDLERS:
                others_listen()
                _with_context(record, pipeline)
            return True
        rv = self.filter(record)
        if rv:
            if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may replace it
                record = rv
            self.pipeline.emit(*stdlib_parts(record, self.pipeline.redactor))
            if has_foreign_handlers():
                others_listen()
                _with_context(record, self.pipeline)
        return rv

    def close(self) -> None:
        # Taken off the root by someone else (dictConfig and basicConfig(force=True) close the
        # handlers they replace): the records' next consumer may print their details. With the
        # direct path, its first call meets that consumer (dictConfig also closes the handlers
        # it leaves in place, uvicorn's config among them: no reason to turn them on).
        if not _direct:
            others_listen()
        super().close()

    def emit(self, record: logging.LogRecord) -> None:
        if record.__class__ is not ForwardedRecord:
            self.pipeline.emit(*stdlib_parts(record, self.pipeline.redactor))


def _with_context(record: logging.LogRecord, pipeline: Pipeline) -> None:
    """The bound context as attributes of a stdlib record, for the handlers and hooks after the
    pipeline's (pytest's ``caplog``, sentry-sdk, OpenTelemetry's ``LoggingHandler``), redacted
    as in the line, as :meth:`Pipeline.forward` gives them; the record's own attributes and
    ``extra=`` values win, a name the stdlib uses for itself is prefixed ``extra_``."""
    context = current_context()
    if not context:
        return
    try:
        attrs = record.__dict__
        # Converted, redacted and URL-scrubbed as a forwarded record's attributes are.
        _, values = pipeline.redactor.forwarded("", context, RECORD_ATTRS, pipeline.renderer.plain)
        for name, value in values.items():
            if name not in attrs:
                attrs[name] = value
    except Exception as err:  # noqa: BLE001 - another handler's view must not break the caller
        pipeline.health.internal_error(f"adding the context to a stdlib record failed: {err!r}")


class JsonFormatter(_BaseJsonFormatter):
    """The same schema for users who wire logging themselves (``dictConfig``, uvicorn's
    ``--log-config``): ``"()": "alkana_logging.JsonFormatter"``.

    Settings come from the environment as for ``setup()`` (``APP_NAME``, ``APP_ENV``,
    ``LOG_REDACT_KEYS``, ``LOG_MAX_LINE_BYTES``), overridden by the keyword arguments.
    python-json-logger's ``static_fields`` are added to every line; its ``fmt`` is accepted and
    ignored: the schema is fixed by the contract.

    Args:
        app_name: the ``app`` value.
        app_env: the ``env`` value.
        redact_keys: extra keys to redact.
    """

    def __init__(
        self,
        *args: Any,
        app_name: str | None = None,
        app_env: str | None = None,
        redact_keys: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        settings = load_settings(
            {"app_name": app_name, "app_env": app_env, "redact_keys": redact_keys, "stdout": True},
            caller="JsonFormatter",
        )
        self.renderer = Renderer.from_settings(settings)
        self._otel_context, self._otel_span_key = _otel_span_reader()

    def format(self, record: logging.LogRecord) -> str:
        ns, level, name, message, fields, exc, extra = stdlib_parts(record, self.renderer.redactor)
        if self._otel_context is not None:
            fields = self._with_span_ids(fields)
        if self.static_fields:  # first: the record's own values win
            own = {k: v for k, v in (extra or ()) if k not in RECORD_ATTRS}
            fields, extra = {**self.static_fields, **own, **(fields or {})}, None
        _, line = self.renderer.render(ns, level, name, message, fields, exc, extra)
        return line[:-1].decode("utf-8")

    def _with_span_ids(self, fields: dict[str, Any] | None) -> dict[str, Any] | None:
        """``fields`` with the ids of the recording OpenTelemetry span, if there is one."""
        try:
            span = self._otel_context().get(self._otel_span_key)
            if span is None or not span.is_recording():
                return fields
            span_context = span.get_span_context()
            ids = format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")
        except Exception as err:  # noqa: BLE001 - a tracing failure must not lose the line
            return {
                **(fields or {}),
                F.LOG_ERROR: f"reading the OpenTelemetry span failed: {err!r}",
            }
        return {**(fields or {}), F.TRACE_ID: ids[0], F.SPAN_ID: ids[1]}


def install(pipeline: Pipeline, settings: Settings) -> None:
    """Put a :class:`PipelineHandler` of ``pipeline`` first on the root logger, in place of the
    previous one and of ``basicConfig``'s plain handlers; hand the frameworks' loggers to the
    root; route ``warnings`` as ``settings`` say."""
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
    details = settings.record_details
    # The consumers that see every record: another handler on the root (the frameworks'
    # loggers were just handed to it) or a hook on Logger.callHandlers. A handler on another
    # logger sees that logger's records only (sentry-sdk keeps one for its own debug output):
    # it is not counted (LOG_RECORD_DETAILS=on for one that prints the caller).
    if details == "off" or (details == "auto" and not has_foreign_handlers()):
        record_details_off(auto=details == "auto")
    else:
        record_details_on()
    global _direct  # noqa: PLW0603
    _direct = details != "on" and (_Logger._log is _direct_log or _stdlib_is_own())
    if _direct and _Logger._log is _STDLIB_LOG:
        _Logger._log = _direct_log  # type: ignore[method-assign]
    elif not _direct and _Logger._log is _direct_log:
        _Logger._log = _STDLIB_LOG  # type: ignore[method-assign]


def uninstall() -> None:
    """Undo :func:`install` (the frameworks' loggers keep propagating to the root)."""
    global _handler, _direct  # noqa: PLW0603
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler = None
    _direct = False
    if _Logger._log is _direct_log:  # left alone if someone wrapped it since
        _Logger._log = _STDLIB_LOG  # type: ignore[method-assign]
    record_details_on()
    gunicorn_error = logging.getLogger("gunicorn.error")
    if _TO_ROOT in gunicorn_error.handlers:
        gunicorn_error.removeHandler(_TO_ROOT)
        gunicorn_error.propagate = True
    logging.captureWarnings(False)


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


def adopt_gunicorn_again() -> None:
    """gunicorn's master reloads its configuration on SIGHUP and gives its loggers their own
    handlers again (text on stderr): each line of the master and of the new workers would be
    written twice, as text and as JSON. Its workers are forked right after: the loggers are
    handed back to the root on both sides of that fork (before a worker copies gunicorn.error's
    handlers to uvicorn.error)."""
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


StdlibParts = tuple[
    int,
    str,
    str,
    str,
    dict[str, Any] | None,
    BaseException | None,
    Iterable[tuple[Any, Any]] | None,
]


def stdlib_parts(record: logging.LogRecord, redactor: Redactor | None = None) -> StdlibParts:
    """Split a ``LogRecord`` into the arguments of ``Pipeline.emit`` / ``Renderer.render``;
    never raises on bad ``%`` args. The ``extra=`` values come as key-value pairs, read once.

    With a ``redactor``, secrets in dicts and lists given as ``%`` arguments are replaced before
    the message is formatted (the message is text: nothing can be redacted after that).
    """
    fields: dict[str, Any] | None = None
    extra: Iterable[tuple[Any, Any]] | None = None
    try:
        msg, args = record.msg, record.args
        # What LogRecord.getMessage() returns, without the call (unless a subclass overrides it).
        if not args and type(record) is _LogRecord:
            # Text, or an object the renderer writes with its secrets replaced (a dict given as
            # the message itself).
            message = msg
        else:
            redacted = redactor.args(args) if redactor is not None and args else args
            message = record.getMessage() if redacted is args else str(msg) % redacted
    except Exception as err:  # noqa: BLE001 - mismatched % arguments must not lose the line
        message, fields = _mismatched(record.msg, record.args, redactor, err)
    attrs = record.__dict__
    if len(attrs) > _RECORD_SIZE:
        # extra= values come after LogRecord's own attributes, in the caller's order: the tail,
        # read in C as the renderer merges it (which leaves out record attributes there, such
        # as a formatter's ``message``). A subclass may set attributes before LogRecord's own:
        # all of its attributes are handed over.
        items = attrs.items()
        extra = islice(items, _RECORD_SIZE, None) if type(record) is _LogRecord else items
    try:
        if record.stack_info:
            fields = {**(fields or {}), "stack_info": record.stack_info}
        exc = resolve_exc_info(record.exc_info) if record.exc_info else None
        levelno = record.levelno
        created = record.created
        if created.__class__ is not float:  # text times a billion would be gigabytes
            created = float(created)
        if not 0.0 <= created < 253402300800.0:  # a time the contract can write: 1970 to 9999
            raise ValueError(f"created is {created!r}, not a time in seconds")  # noqa: TRY301
        return (
            int(created * 1_000_000_000),
            _LEVEL_BY_NUMBER.get(levelno) or level_name(levelno),
            record.name,
            message,
            fields,
            exc,
            extra,
        )
    except Exception as err:  # noqa: BLE001 - a filter broke the record: the line says so
        return _broken(record, message, extra, err)


def _mismatched(
    msg: Any, args: Any, redactor: Redactor | None, err: Exception
) -> tuple[str, dict[str, Any]]:
    """The message and fields of a line whose ``%`` arguments do not fit its format: the
    arguments redacted as in a formatted message, and a ``log_error`` that says so."""
    message = (
        redactor.args_text(msg, args)
        if redactor is not None
        else f"{safe_repr(msg)} % {safe_repr(args)}"
    )
    return message, {F.LOG_ERROR: f"message arguments did not match the format: {err!r}"}


def _broken(
    record: logging.LogRecord, message: Any, extra: Iterable[tuple[Any, Any]] | None, err: Exception
) -> StdlibParts:
    """The parts of a record whose time, level or exception cannot be read (a filter or a
    subclass set them to something else): now, ``warning``, and a ``log_error`` saying so."""
    name = record.__dict__.get("name")
    problem = f"the log record could not be read: {safe_repr(err)}"
    return (
        time.time_ns(),
        F.WARNING,
        name if isinstance(name, str) else safe_repr(name),
        message,
        {F.LOG_ERROR: problem},
        None,
        extra,
    )


# -- the direct path: no LogRecord while the pipeline is the only consumer ------------------------

_LOGGING_FILE = logging.addLevelName.__code__.co_filename


def _is_logging_own(method: Any) -> bool:
    """Whether ``method`` is the stdlib's own function, not a wrapper (wrapt's, a mock, a
    tracer's patch) put there before this module was imported."""
    return type(method) is types.FunctionType and method.__code__.co_filename == _LOGGING_FILE


#: The stdlib's own methods a record goes through; anything else there when a call is made (a
#: subclass's, a mock's, a library's patch) takes the stdlib's path.
_STDLIB_LOG = getattr(_Logger._log, "_stdlib_log", _Logger._log)  # reloaded: the original
_STDLIB_MAKE_RECORD = _Logger.makeRecord
_STDLIB_HANDLE = _Logger.handle
_STDLIB_FILTER = _Logger.filter
_STDLIB_FIND_CALLER = _Logger.findCaller
_STDLIB_RECORD_INIT = _LogRecord.__init__
_PIPELINE_HANDLE = PipelineHandler.handle
_NullHandler = logging.NullHandler
#: Loggers of these classes have the stdlib's methods (RootLogger adds none of its own).
_PLAIN_LOGGERS = frozenset({logging.Logger, logging.RootLogger})
#: How many attributes a logger made by ``getLogger()``, the root logger and the pipeline's
#: handler hold; one more (``mock.patch.object(logger, "handle")``, a method set on the
#: instance) takes the stdlib's path. Counted, not compared: ``len()`` is a few instructions,
#: a set comparison with a dict builds a set on every call.
_LOGGER_SIZE = len(vars(logging.getLogger("alkana_logging")))
_ROOT_SIZE = len(vars(logging.root))
_HANDLER_SIZE = len(vars(logging.Handler())) + 1  # and its pipeline
#: ``extra=`` keys ``makeRecord`` refuses (it raises ``KeyError``): the stdlib's path raises it.
_REFUSED_EXTRA = frozenset(vars(_LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
#: Whether install() put the direct path in (not with LOG_RECORD_DETAILS=on).
_direct = False
_time_ns = time.time_ns


def _stdlib_is_own() -> bool:
    """Whether the methods a record goes through are the stdlib's own at ``setup()``: a tracer
    that wrapped one before this module was imported (ddtrace wraps ``makeRecord``) adds to
    every record, and the direct path would leave it out."""
    return _Logger._log is _STDLIB_LOG and all(
        _is_logging_own(method)
        for method in (
            _STDLIB_LOG,
            _STDLIB_MAKE_RECORD,
            _STDLIB_HANDLE,
            _STDLIB_FILTER,
            _STDLIB_FIND_CALLER,
            _STDLIB_RECORD_INIT,
            _Logger.callHandlers,
        )
    )


def _only_the_pipeline(self: logging.Logger) -> PipelineHandler | None:
    """setup()'s handler, when it is the only one a record of ``self`` would reach and nothing
    else of logging's is replaced; else None. Whoever else would see the record (another handler
    on the way to the root, a filter, a hook on ``callHandlers``, a record factory, a subclass's,
    a patch's or a mock's method) makes it a consumer: in "auto" the record details come on,
    before the record is made."""
    if self.disabled:
        return None
    handler = _handler
    handlers = _root.handlers
    if (
        len(handlers) == 1
        and handler in handlers  # not handlers[0]: the list may change under another thread
        and not handler.filters
        and not self.filters
        and self.__class__ in _PLAIN_LOGGERS
        and len(self.__dict__) == (_LOGGER_SIZE if self is not _root else _ROOT_SIZE)
        and len(handler.__dict__) == _HANDLER_SIZE
        and _Logger.callHandlers is _STDLIB_CALL_HANDLERS
        and _Logger.handle is _STDLIB_HANDLE
        and _Logger.makeRecord is _STDLIB_MAKE_RECORD
        and _Logger.filter is _STDLIB_FILTER
        and PipelineHandler.handle is _PIPELINE_HANDLE
        and _LogRecord.__init__ is _STDLIB_RECORD_INIT
        and logging._logRecordFactory is _LogRecord  # type: ignore[attr-defined]
    ):
        current: logging.Logger | None = self
        while current is not _root:
            if current is None:  # a Logger() outside the hierarchy: lastResort is the stdlib's
                return None
            for other in current.handlers:
                if other.__class__ is not _NullHandler:  # a library's NullHandler sees nothing
                    others_listen()
                    return None
            if not current.propagate:  # the record never reaches the root
                return None
            current = current.parent
        return handler
    others_listen()
    return None


def _write_directly(
    self: logging.Logger,
    level: int,
    msg: Any,
    args: Any,
    exc_info: Any,
    extra: Any,
    stack_info: bool,
) -> bool:
    """Write the line of a call straight to the pipeline, without its ``LogRecord``, when
    setup()'s handler is the only one the record would reach (:func:`_only_the_pipeline`):
    False when it is not, or when the call has what the stdlib's path writes (an exception, a
    stack, an ``extra=`` key it refuses)."""
    if not _direct:
        return False
    handler = _only_the_pipeline(self)
    if (
        handler is None
        or exc_info
        or stack_info
        or (extra is not None and (type(extra) is not dict or not _REFUSED_EXTRA.isdisjoint(extra)))
        or level < handler.level
    ):
        return False
    pipeline = handler.pipeline
    ns = _time_ns()
    fields = None
    if args:
        try:
            # What LogRecord does with one mapping as the arguments, then getMessage().
            if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
                args = args[0]
            msg = str(msg) % pipeline.redactor.args(args)
        except Exception as err:  # noqa: BLE001 - mismatched % arguments
            msg, fields = _mismatched(msg, args, pipeline.redactor, err)
    pipeline.emit(
        ns,
        _LEVEL_BY_NUMBER.get(level) or level_name(level),
        self.name,
        msg,
        fields,
        None,
        extra.items() if extra else None,
    )
    return True


_NORMCASE_LOGGING_FILE = os.path.normcase(_LOGGING_FILE)

#: ``Logger._log`` while setup() is in force. Compiled as logging's own file, in a namespace
#: named ``logging``: every tool that walks the stack for the caller skips it as it skips the
#: stdlib's own ``_log`` (``findCaller``, loguru's ``InterceptHandler`` recipe, structlog's
#: frame finder), whichever path the call takes. Its lines are numbered from the stdlib's
#: ``_log``, so a traceback through it points there. Finding the caller of a stack asked for
#: while ``_srcfile`` is off (``caller``) and making its record happen here too, so that no
#: frame of this module is on the stack while a subclass's ``findCaller`` or the handlers run.
_LOG_SOURCE = """
def _log(self, level, msg, args, exc_info=None, extra=None, stack_info=False, stacklevel=1):
    if stack_info and not logging._srcfile:
        fn, lno, func, sinfo = caller(self, stacklevel)
        if exc_info:
            if isinstance(exc_info, BaseException):
                exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
            elif not isinstance(exc_info, tuple):
                exc_info = sys.exc_info()
        record = self.makeRecord(
            self.name, level, fn, lno, msg, args, exc_info, func, extra, sinfo
        )
        self.handle(record)
    elif not write_directly(self, level, msg, args, exc_info, extra, stack_info):
        stdlib_log(self, level, msg, args, exc_info, extra, stack_info, stacklevel)

def caller(logger, stacklevel):
    # findCaller(True, stacklevel) while _srcfile is off (the stdlib's knows no frame of its
    # own then); a subclass's own (structlog's) is asked. Never raises.
    try:
        if type(logger).findCaller is not stdlib_find_caller:
            return logger.findCaller(True, stacklevel)
        frame = sys._getframe(1)
        while stacklevel > 0:
            back = frame.f_back
            if back is None:
                break
            frame = back
            filename = os.path.normcase(frame.f_code.co_filename)
            if not (
                filename == logging_file
                or ("importlib" in filename and "_bootstrap" in filename)
            ):
                stacklevel -= 1
        with io.StringIO() as text:
            text.write("Stack (most recent call last):\\n")
            traceback.print_stack(frame, file=text)
            sinfo = text.getvalue().removesuffix("\\n")
        code = frame.f_code
        return code.co_filename, frame.f_lineno, code.co_name, sinfo
    except Exception:  # as the stdlib's _log when findCaller fails
        return "(unknown file)", 0, "(unknown function)", None
"""
_log_namespace: dict[str, Any] = {
    "__name__": "logging",
    "logging": logging,
    "sys": sys,
    "io": io,
    "os": os,
    "traceback": traceback,
    "write_directly": _write_directly,
    "stdlib_log": _STDLIB_LOG,
    "stdlib_find_caller": _STDLIB_FIND_CALLER,
    "logging_file": _NORMCASE_LOGGING_FILE,
}
exec(  # noqa: S102 - a fixed text of this module
    compile("\n" * (_STDLIB_LOG.__code__.co_firstlineno - 2) + _LOG_SOURCE, _LOGGING_FILE, "exec"),
    _log_namespace,
)
_direct_log = _log_namespace["_log"]
_direct_log.__qualname__ = "Logger._log"  # as the stdlib's: pickle finds it on the class
_direct_log._stdlib_log = _STDLIB_LOG  # the original, for a reload of this module
