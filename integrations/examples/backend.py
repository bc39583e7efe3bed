"""An inventory backend on FastAPI, logging through alkana-logging.

Run it under uvicorn (the log goes where ``LOG_FILE`` says, ``logs/app.log`` by default)::

    .venv/bin/python -m uvicorn --app-dir integrations/examples backend:app --host 127.0.0.1

Routes: ``GET /items`` (the list; a ``timing`` and a ``metric`` event), ``GET /items/{item_id}``
(a sync endpoint, run in the threadpool; 404 for an unknown id), ``GET /fail`` (an unhandled
exception: a 500 and an ``http_request`` event with the stack trace), ``GET /slow`` (a timed,
slow route for the latency panels), ``GET /health`` (alive: cheap, for a load balancer or a
container healthcheck) and ``GET /health/detailed`` (the logging pipeline, ETL freshness per table
read from the log directory, or from Loki when ``LOKI_URL`` is set, and a database ping with a
timeout; 503 when the ping fails). The health routes' requests are logged at debug level.

The middleware is installed with ``instrument(app)`` rather than ``app.add_middleware(...)``: it
then sits outside Starlette's error handler, so the 500 of an unhandled exception carries the
``X-Request-ID`` header too, and ``app`` stays the FastAPI application.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException

import alkana_logging
from alkana_logging.healthcheck import Check, HealthCheck
from alkana_logging.metrics import metric, timed
from alkana_logging.middleware import instrument

alkana_logging.setup()  # LOG_FILE, LOG_LEVEL, APP_NAME, ... from the environment

log = alkana_logging.get_logger("inventory")
legacy = logging.getLogger("inventory.legacy")  # stdlib logging: same JSON schema

INVENTORY: dict[int, dict[str, Any]] = {
    n: {"item_id": n, "material": f"MAT-{1000 + n}", "plant": "1000", "stock": 10 * n}
    for n in range(7)
}

api = FastAPI(title="inventory")
items = APIRouter(prefix="/items")


async def ping_database() -> dict[str, Any]:
    await asyncio.sleep(0.001)  # stands for `SELECT 1` on the pool
    return {"items": len(INVENTORY)}


# ETL freshness: the log directory of LOG_FILE (the ETL script writes there too), or Loki.
health = HealthCheck(checks=[Check("database", ping_database, timeout=1.0)])


@items.get("")
async def list_items() -> list[dict[str, Any]]:
    with timed("inventory_query", table="inventory"):
        await asyncio.sleep(0.002)  # stands for the database query
        rows = list(INVENTORY.values())
    metric("inventory_items", len(rows), plant="1000")
    # The pool's active connections, as a pool's event hook would report them.
    metric("db_connections_active", random.randint(3, 12), pool="main")
    log.info("listed items", count=len(rows))
    return rows


@items.get("/{item_id}")
def get_item(item_id: int) -> dict[str, Any]:
    # A sync endpoint: FastAPI runs it in the threadpool, and the request's context goes along.
    item = INVENTORY.get(item_id)
    if item is None:
        log.warning("item not found", item_id=item_id)
        raise HTTPException(status_code=404, detail=f"no item {item_id}")
    legacy.info("item read", extra={"item_id": item_id, "material": item["material"]})
    return item


@api.get("/fail")
async def fail() -> None:
    raise RuntimeError("the inventory database is unreachable")


@api.get("/slow")
@timed("slow_report")
async def slow() -> dict[str, str]:
    await asyncio.sleep(0.3)
    return {"report": "done"}


api.include_router(items)
api.include_router(health.router())

# The health routes' requests are logged at debug level by default (debug_paths).
app = instrument(api)
