"""alkana-logging: one flat JSON schema for every log line of a Python backend and its ETL.

``alkana_logging.setup()`` configures stdlib ``logging``, structlog, loguru and uvicorn to write
the same JSON lines to a rotating file and/or stdout. Importing the package does nothing else.
"""

from __future__ import annotations

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
