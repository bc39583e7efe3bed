"""The loguru front-end, whole: the sink that routes loguru's records into the pipeline, what
``setup()`` adds to loguru and ``shutdown()`` removes, and how a stdlib handler that feeds loguru
(loguru's ``InterceptHandler`` recipe) is recognised, so that no line goes round twice."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any

from alkana_logging._line import level_name
from alkana_logging.pipeline import FORWARDING, Pipeline

_root = logging.root
#: The pipeline ``setup()`` installed (None: none, or closed by SIGTERM) and loguru's id of the
#: sink that writes to it.
_pipeline: Pipeline | None = None
_sink_id: int | None = None


def install(pipeline: Pipeline, level: int) -> None:
    """Replace loguru's default stderr sink by one that writes through ``pipeline`` (nothing
    without loguru installed)."""
    global _pipeline, _sink_id  # noqa: PLW0603
    try:
        from loguru import logger as loguru_logger
    except ImportError:
        return
    uninstall()
    with contextlib.suppress(ValueError):  # loguru's default stderr sink: replaced by ours
        loguru_logger.remove(0)
    _pipeline = pipeline
    _sink_id = loguru_logger.add(_make_sink(), level=level, format="{message}", catch=True)


def detach() -> None:
    """loguru's lines reach no pipeline any more; its sink is left in place (SIGTERM's close)."""
    global _pipeline  # noqa: PLW0603
    _pipeline = None


def uninstall() -> None:
    """Remove the sink :func:`install` added."""
    global _sink_id  # noqa: PLW0603
    detach()
    if _sink_id is None:
        return
    from loguru import logger as loguru_logger

    with contextlib.suppress(ValueError):
        loguru_logger.remove(_sink_id)
    _sink_id = None


def _make_sink() -> Any:
    def sink(message: Any) -> None:
        pipeline = _pipeline
        if pipeline is None or FORWARDING.active:  # a line the pipeline wrote, fed back
            return
        if len(_root.handlers) > 1 and inside_a_feeder():  # a stdlib line, written by ours
            return
        record = message.record
        exception = record["exception"]
        file = record["file"]
        path = file.path if file is not None else "(unknown file)"
        extra = record["extra"]
        # loguru formatted the call's {} arguments into the text: formatted again, redacted.
        text = pipeline.redactor.loguru_message(record)
        pipeline.emit_offered(
            int(record["time"].timestamp() * 1_000_000_000),
            level_name(record["level"].no),
            record["name"] or "root",
            text,
            extra,
            exception.value if exception is not None else None,
            (path, record["line"], record["function"]),
            _stdlib_hooks,
            feeds_loguru,
        )

    return sink


_feeds_loguru_by_type: dict[type, bool] = {}


def feeds_loguru(handler: logging.Handler) -> bool:
    """Whether a stdlib handler hands its records to loguru: loguru's ``InterceptHandler``
    recipe, whatever its class is called: an ``emit`` that refers to a loguru logger (the
    global one, or one made from it with ``bind()``) and passes each record on with
    ``opt(...)`` and the record's message. A handler of yours that only logs its own failure
    through loguru (``logger.exception(...)``) is none: it is kept, and nothing it does is
    skipped."""
    kind = type(handler)
    known = _feeds_loguru_by_type.get(kind)
    if known is not None:
        return known
    loguru = sys.modules.get("loguru")
    found = False
    if loguru is not None:
        emit = getattr(kind, "emit", None)
        code = getattr(emit, "__code__", None)
        names = getattr(emit, "__globals__", {})
        logger_type = type(getattr(loguru, "logger", None))
        found = (
            code is not None
            and "opt" in code.co_names
            and ("getMessage" in code.co_names or "msg" in code.co_names)
            and any(
                isinstance(names.get(name), logger_type) or names.get(name) is loguru
                for name in code.co_names
            )
        )
        _feeds_loguru_by_type[kind] = found
    return found


_HANDLE_CODE = logging.Handler.handle.__code__


def inside_a_feeder() -> bool:
    """Whether loguru is called by a stdlib handler that feeds it (an ``InterceptHandler`` on
    the root logger, added after ``setup()``), with a stdlib record the pipeline's own handler
    writes: asked by the pipeline's loguru sink only when the root logger has other handlers."""
    if not any(feeds_loguru(handler) for handler in _root.handlers):
        return False
    frame: Any = sys._getframe(1)
    for _ in range(32):
        if frame is None:
            return False
        if frame.f_code is _HANDLE_CODE:
            return True
        frame = frame.f_back
    return False


def _stdlib_hooks() -> bool:
    """Whether a loguru line offered to the stdlib goes to the hooks on ``callHandlers`` too:
    not when sentry-sdk listens to loguru itself (its loguru integration, on by default when
    loguru is installed), or each error would be two Sentry events. Asked only when the line is
    offered."""
    sentry = sys.modules.get("sentry_sdk")
    if sentry is None:
        return True
    try:
        from sentry_sdk.integrations.loguru import LoguruIntegration

        return sentry.get_client().get_integration(LoguruIntegration) is None
    except Exception:  # noqa: BLE001 - another sentry-sdk: offer the line as to anyone
        return True
