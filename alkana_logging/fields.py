"""The JSON contract: every key, event name, level and label of a log line.

This module is the one place where the names live. The formatter, the middleware, the ETL
helpers, the rendered shipper configs, the LogQL presets and the local report all import them
from here; a change to the contract is a change to this module and to the table in the design.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# -- keys present on every line -------------------------------------------------------------
TIMESTAMP: Final = "timestamp"
LEVEL: Final = "level"
LOGGER: Final = "logger"
MESSAGE: Final = "message"
APP: Final = "app"
ENV: Final = "env"
HOST: Final = "host"
PID: Final = "pid"

#: Keys that every line carries, in the order they are written.
SCHEMA_KEYS: Final = (TIMESTAMP, LEVEL, LOGGER, MESSAGE, APP, ENV, HOST, PID)

#: A caller's key that collides with a schema key is kept under this prefix.
COLLISION_PREFIX: Final = "extra_"

# -- present when known ---------------------------------------------------------------------
REQUEST_ID: Final = "request_id"
TRACE_ID: Final = "trace_id"
SPAN_ID: Final = "span_id"
USER: Final = "user"

# -- exceptions -------------------------------------------------------------------------------
EXCEPTION_TYPE: Final = "exception_type"
EXCEPTION_MESSAGE: Final = "exception_message"
EXCEPTION_STACKTRACE: Final = "exception_stacktrace"

#: Written when the pipeline had to change a line to keep it valid (unserialisable values,
#: truncation); says what was wrong.
LOG_ERROR: Final = "log_error"

# -- levels ---------------------------------------------------------------------------------
DEBUG: Final = "debug"
INFO: Final = "info"
WARNING: Final = "warning"
ERROR: Final = "error"
CRITICAL: Final = "critical"
#: The one table of levels: each level of a line and its stdlib (and loguru) number, lowest
#: first. Every other level table of the package is derived from this one.
#: (Plain dicts, typed read-only: the hot paths look them up, and a dict lookup is the fastest.)
LEVEL_NUMBERS: Final[Mapping[str, int]] = {
    DEBUG: 10,
    INFO: 20,
    WARNING: 30,
    ERROR: 40,
    CRITICAL: 50,
}
LEVELS: Final = tuple(LEVEL_NUMBERS)
#: A level number back to its level (a custom number rounds down: see ``_line.level_name``).
LEVEL_BY_NUMBER: Final[Mapping[int, str]] = {number: name for name, number in LEVEL_NUMBERS.items()}
#: The log methods of a logger (structlog's bound loggers, loguru's, the stdlib's) and the level
#: each one writes: ``exception`` is ``error`` with the exception, ``err`` (Twisted's name),
#: ``msg``, ``warn`` and ``fatal`` are aliases.
METHOD_LEVELS: Final[Mapping[str, str]] = {
    "debug": DEBUG,
    "info": INFO,
    "msg": INFO,
    "warning": WARNING,
    "warn": WARNING,
    "error": ERROR,
    "err": ERROR,
    "exception": ERROR,
    "critical": CRITICAL,
    "fatal": CRITICAL,
}

# -- metrics-as-logs events -----------------------------------------------------------------
EVENT: Final = "event"

EVENT_HTTP_REQUEST: Final = "http_request"
METHOD: Final = "method"
ROUTE: Final = "route"
PATH: Final = "path"
STATUS_CODE: Final = "status_code"
DURATION_MS: Final = "duration_ms"
CLIENT_IP: Final = "client_ip"

EVENT_ETL_RUN_STARTED: Final = "etl_run_started"
EVENT_ETL_RUN_FINISHED: Final = "etl_run_finished"
EVENT_ETL_STEP_FINISHED: Final = "etl_step_finished"
ETL_JOB: Final = "etl_job"
TABLE: Final = "table"
ETL_RUN_ID: Final = "etl_run_id"
STATUS: Final = "status"
ROWS: Final = "rows"
FINISHED_AT: Final = "finished_at"
ERROR_FIELD: Final = "error"
STEP: Final = "step"

EVENT_TIMING: Final = "timing"
OPERATION: Final = "operation"

EVENT_METRIC: Final = "metric"
METRIC: Final = "metric"
VALUE: Final = "value"

#: Emitted by the Loki push handler once Loki is reachable again after it had to drop lines.
EVENT_LOG_SHIPPING_DROPPED: Final = "log_shipping_dropped"
DROPPED: Final = "dropped"
REASON: Final = "reason"

#: ETL health: a table with no successful run for this many hours is stale, and how many days
#: back the freshness read (the log files, the LogQL presets) looks for its runs.
ETL_STALE_AFTER_HOURS: Final = 25
ETL_LOOKBACK_DAYS: Final = 7

STATUS_SUCCESS: Final = "success"
STATUS_FAILED: Final = "failed"

#: The route written when no route template matched (keeps the label set small).
ROUTE_UNMATCHED: Final = "<unmatched>"

# -- Loki stream labels: static and few -----------------------------------------------------
LABEL_JOB: Final = "job"
LABEL_APP: Final = APP
LABEL_ENV: Final = ENV
LABEL_HOST: Final = HOST
#: The only labels a shipped config or the push handler may set.
STREAM_LABELS: Final = (LABEL_JOB, LABEL_APP, LABEL_ENV, LABEL_HOST)
#: High-cardinality keys that must never become labels (structured metadata at most).
NEVER_LABELS: Final = (REQUEST_ID, TRACE_ID, SPAN_ID, USER)
