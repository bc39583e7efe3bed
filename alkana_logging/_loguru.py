"""The loguru front-end: a sink that routes loguru's records into the pipeline."""

from __future__ import annotations

import logging
import sys
from typing import Any

from alkana_logging import _state
from alkana_logging._line import level_name
from alkana_logging.pipeline import FORWARDING, inside_a_feeder

_root = logging.root


def make_sink() -> Any:
    def sink(message: Any) -> None:
        pipeline = _state.current()
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
        )

    return sink


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
