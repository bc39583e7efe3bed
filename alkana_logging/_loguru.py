"""The loguru front-end: a sink that routes loguru's records into the pipeline."""

from __future__ import annotations

from typing import Any

from alkana_logging import _state
from alkana_logging._render import level_name


def make_sink() -> Any:
    def sink(message: Any) -> None:
        pipeline = _state.current()
        if pipeline is None:
            return
        record = message.record
        exception = record["exception"]
        extra = record["extra"]
        text = record["message"]
        if extra:  # loguru formatted {} keyword arguments into the text: redact them there
            text = pipeline.redactor.loguru_message(text, extra)
        pipeline.emit(
            int(record["time"].timestamp() * 1_000_000_000),
            level_name(record["level"].no),
            record["name"] or "root",
            text,
            extra,
            exception.value if exception is not None else None,
        )

    return sink
