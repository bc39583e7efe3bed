"""The application of the health endpoint tests, for a real uvicorn child (see _uvicorn_server).

``TEST_HEALTH_MODE`` picks the application's checks: ``ok`` (a database ping that answers),
``broken`` (a ping that raises, and a sync check that hangs past its timeout), ``counted`` (a
sync check that counts its calls in ``TEST_HEALTH_COUNTER``), ``fatal`` (checks raising
``SystemExit``, ``KeyboardInterrupt`` and ``CancelledError``). ``TEST_ETL_DIR`` is the log
directory the ETL freshness is read from; ``TEST_HEALTH_CACHE`` the cache seconds;
``TEST_DEGRADED_CODE`` the HTTP code of ``degraded``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any


def health_app() -> Any:
    from fastapi import FastAPI

    import alkana_logging
    from alkana_logging.healthcheck import Check, HealthCheck
    from alkana_logging.middleware import RequestContextMiddleware
    from tests._uvicorn_server import _watchdog

    alkana_logging.setup()
    _watchdog()
    log = alkana_logging.get_logger("tests.health")
    mode = os.environ.get("TEST_HEALTH_MODE", "ok")
    counter = Path(os.environ.get("TEST_HEALTH_COUNTER", os.devnull))

    async def database() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"pool_size": 5}

    async def broken_database() -> None:
        await asyncio.sleep(0.01)
        raise ConnectionError("connection refused by db:5432")

    def hanging_cache() -> None:
        with counter.open("a") as out:
            out.write("started\n")
        time.sleep(3.0)

    def counted() -> dict[str, Any]:
        with counter.open("a") as out:
            out.write("called\n")
        return {"calls": len(counter.read_text().splitlines())}

    def exits() -> None:
        sys.exit(3)  # a client library that calls sys.exit() on a fatal connection error

    def interrupted() -> None:
        raise KeyboardInterrupt

    async def cancelled() -> None:
        raise asyncio.CancelledError

    checks = {
        "fatal": [
            Check("exits", exits, timeout=1.0),
            Check("interrupted", interrupted, timeout=1.0),
            Check("cancelled", cancelled, timeout=1.0),
        ],
        "ok": [Check("database", database, timeout=1.0)],
        "broken": [
            Check("database", broken_database, timeout=1.0),
            Check("cache", hanging_cache, timeout=0.5),
        ],
        "counted": [Check("counted", counted, timeout=1.0)],
    }[mode]
    degraded_code = int(os.environ.get("TEST_DEGRADED_CODE", "200"))
    health = HealthCheck(
        checks=checks,
        etl=os.environ.get("TEST_ETL_DIR") or None,
        cache_seconds=float(os.environ.get("TEST_HEALTH_CACHE", "0")),
        status_codes={"degraded": degraded_code},
    )
    app = FastAPI()
    app.include_router(health.router())

    @app.get("/work")
    def work() -> dict[str, str]:
        log.info("work done")
        return {"ok": "yes"}

    # No debug_paths: the health routes are logged at debug level by default.
    return RequestContextMiddleware(app)
