"""The stdlib front-end: a ``Handler`` for the root logger, a ``Formatter`` for ``dictConfig``."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from alkana_logging import fields as F
from alkana_logging._render import RECORD_ATTRS, Renderer
from alkana_logging.pipeline import ForwardedRecord, Pipeline, _otel_span_reader, stdlib_parts
from alkana_logging.settings import load_settings


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
            return True
        rv = self.filter(record)
        if rv:
            if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may replace it
                record = rv
            self.pipeline.emit_stdlib(record)
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        if record.__class__ is not ForwardedRecord:
            self.pipeline.emit_stdlib(record)


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
