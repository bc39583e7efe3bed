"""An inventory backend on FastAPI, logging through alkana-logging.

Run it under uvicorn (the log goes where ``LOG_FILE`` says, ``logs/app.log`` by default)::

    .venv/bin/python -m uvicorn --app-dir integrations/examples backend:app --host 127.0.0.1

Routes: ``GET /items`` (the list; a ``timing`` and a ``metric`` event), ``GET /items/{item_id}``
(a sync endpoint, run in the threadpool; 404 for an unknown id), ``GET /fail`` (an unhandled
exception: a 500 and an ``http_request`` event with the stack trace), ``GET /slow`` (a timed,
slow route for the latency panels) and ``GET /health`` (the logging pipeline's counters; its
requests are logged at debug level).

The middleware wraps the whole application (``app = RequestContextMiddleware(api)``) rather than
``api.add_middleware(...)``: outside Starlette's error handler, the 500 of an unhandled exception
carries the ``X-Request-ID`` header too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException

import alkana_logging
from alkana_logging.metrics import metric, timed
from alkana_logging.middleware import RequestContextMiddleware

alkana_logging.setup()  # LOG_FILE, LOG_LEVEL, APP_NAME, ... from the environment

log = alkana_logging.get_logger("inventory")
legacy = logging.getLogger("inventory.legacy")  # stdlib logging: same JSON schema

INVENTORY: dict[int, dict[str, Any]] = {
    n: {"item_id": n, "material": f"MAT-{1000 + n}", "plant": "1000", "stock": 10 * n}
    for n in range(7)
}

api = FastAPI(title="inventory")
items = APIRouter(prefix="/items")


@items.get("")
async def list_items() -> list[dict[str, Any]]:
    with timed("inventory_query", table="inventory"):
        await asyncio.sleep(0.002)  # stands for the database query
        rows = list(INVENTORY.values())
    metric("inventory_items", len(rows), plant="1000")
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


@api.get("/health")
def health() -> dict[str, Any]:
    return {"status": "ok", "logging": alkana_logging.pipeline_health()}


api.include_router(items)

app = RequestContextMiddleware(api, debug_paths=["/health"])
