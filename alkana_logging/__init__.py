"""alkana-logging: one flat JSON schema for every log line of a Python backend and its ETL.

``alkana_logging.setup()`` configures stdlib ``logging``, structlog, loguru and uvicorn to write
the same JSON lines to a rotating file and/or stdout. Importing the package does nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alkana_logging.api import (
        get_logger,
        is_configured,
        pipeline_health,
        setup,
        shutdown,
    )
    from alkana_logging.context import (
        bind_context,
        bound_context,
        clear_context,
        get_context,
        reset_context,
        unbind_context,
    )
    from alkana_logging.etl import etl_run
    from alkana_logging.exceptions import AlkanaLoggingError, ConfigurationError
    from alkana_logging.loki import LokiHandler, LokiSink
    from alkana_logging.metrics import metric, timed
    from alkana_logging.settings import Settings
    from alkana_logging.stdlib import JsonFormatter, PipelineHandler

#: Each name of the public API -> the module that defines it. The package imports a module the
#: first time one of its names is read, not when it is imported itself: ``import alkana_logging``
#: costs a millisecond instead of a fifth of a second (structlog, loguru, the pipeline), which
#: the ``alkana-logging`` command and the ops toolkit, importing only what they use, do not pay.
#: ``alkana_logging.setup`` and ``from alkana_logging import setup`` work as before.
_EXPORTS: dict[str, str] = {
    "get_logger": "alkana_logging.api",
    "is_configured": "alkana_logging.api",
    "pipeline_health": "alkana_logging.api",
    "setup": "alkana_logging.api",
    "shutdown": "alkana_logging.api",
    "bind_context": "alkana_logging.context",
    "bound_context": "alkana_logging.context",
    "clear_context": "alkana_logging.context",
    "get_context": "alkana_logging.context",
    "reset_context": "alkana_logging.context",
    "unbind_context": "alkana_logging.context",
    "etl_run": "alkana_logging.etl",
    "AlkanaLoggingError": "alkana_logging.exceptions",
    "ConfigurationError": "alkana_logging.exceptions",
    "LokiHandler": "alkana_logging.loki",
    "LokiSink": "alkana_logging.loki",
    "metric": "alkana_logging.metrics",
    "timed": "alkana_logging.metrics",
    "Settings": "alkana_logging.settings",
    "JsonFormatter": "alkana_logging.stdlib",
    "PipelineHandler": "alkana_logging.stdlib",
}

if not TYPE_CHECKING:  # for type checkers the imports above are the module's names

    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # read once: later reads are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_EXPORTS})


__all__ = [
    "AlkanaLoggingError",
    "ConfigurationError",
    "JsonFormatter",
    "LokiHandler",
    "LokiSink",
    "PipelineHandler",
    "Settings",
    "bind_context",
    "bound_context",
    "clear_context",
    "etl_run",
    "get_context",
    "get_logger",
    "is_configured",
    "metric",
    "pipeline_health",
    "reset_context",
    "setup",
    "shutdown",
    "timed",
    "unbind_context",
]
