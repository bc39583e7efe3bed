"""The stdlib front-end: a ``Handler`` for the root logger, a ``Formatter`` for ``dictConfig``."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from alkana_logging import fields as F
from alkana_logging._line import RECORD_ATTRS, Renderer
from alkana_logging.context import current as current_context
from alkana_logging.pipeline import (
    _STDLIB_CALL_HANDLERS,
    ForwardedRecord,
    Pipeline,
    _otel_span_reader,
    has_foreign_handlers,
    stdlib_parts,
)
from alkana_logging.settings import load_settings

_root = logging.root
_Logger = logging.Logger


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
            # Pipeline.emit_stdlib() inlined: one call fewer on every stdlib line.
            pipeline = self.pipeline
            pipeline.emit(*stdlib_parts(record, pipeline.redactor))
            # has_foreign_handlers(), inline: the other handlers get the bound context too.
            if len(_root.handlers) > 1 or _Logger.callHandlers is not _STDLIB_CALL_HANDLERS:
                _with_context(record, pipeline)
            return True
        rv = self.filter(record)
        if rv:
            if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may replace it
                record = rv
            self.pipeline.emit_stdlib(record)
            if has_foreign_handlers():
                _with_context(record, self.pipeline)
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        if record.__class__ is not ForwardedRecord:
            self.pipeline.emit_stdlib(record)


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
            {"app_name": app_name, "app_env": app_env, "redact_keys": redact_keys, "stdout": True}
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
