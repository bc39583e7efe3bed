"""The Loki query client, as the ops toolkit and its users import it.

The client itself is part of the runtime (:mod:`alkana_logging._query`): the health check reads
ETL freshness from Loki with it, and the runtime never loads the ops toolkit for that. This
module is its public import path (the ``query`` and ``check`` commands, scripts, the docs).
Needs ``requests`` (the ``loki`` extra) to make a client.
"""

from __future__ import annotations

from alkana_logging._query import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    Direction,
    LokiClient,
    LokiQueryError,
    LokiRejectedError,
    LokiUnreachableError,
    QueryResult,
    Sample,
    Series,
    Stream,
    parse_result,
)
from alkana_logging.settings import loki_base_url as base_url

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "Direction",
    "LokiClient",
    "LokiQueryError",
    "LokiRejectedError",
    "LokiUnreachableError",
    "QueryResult",
    "Sample",
    "Series",
    "Stream",
    "base_url",
    "parse_result",
]
