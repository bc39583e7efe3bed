from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from loguru import logger as loguru_logger

import alkana_logging
from alkana_logging import context
from alkana_logging import fields as F
from tests._logfiles import shutdown_and_read


def test_bind_get_and_clear() -> None:
    alkana_logging.bind_context(a=1)
    alkana_logging.bind_context(b=2)
    assert alkana_logging.get_context() == {"a": 1, "b": 2}
    alkana_logging.clear_context()
    assert alkana_logging.get_context() == {}


def test_bound_context_resets_on_exit_and_on_error() -> None:
    alkana_logging.bind_context(outer=1)
    with alkana_logging.bound_context(inner=2, outer=3):
        assert alkana_logging.get_context() == {"outer": 3, "inner": 2}
    assert alkana_logging.get_context() == {"outer": 1}
    try:
        with alkana_logging.bound_context(inner=2):
            raise RuntimeError
    except RuntimeError:
        pass
    assert alkana_logging.get_context() == {"outer": 1}


def test_reset_with_token_and_unbind() -> None:
    token = alkana_logging.bind_context(a=1, b=2)
    alkana_logging.unbind_context("a", "missing")
    assert alkana_logging.get_context() == {"b": 2}
    alkana_logging.reset_context(token)
    assert alkana_logging.get_context() == {}


def test_get_context_is_a_copy() -> None:
    alkana_logging.bind_context(a=1)
    alkana_logging.get_context()["a"] = 99
    assert context.current() == {"a": 1}


def test_tasks_do_not_see_each_others_bindings() -> None:
    async def task(n: int) -> dict[str, object]:
        with alkana_logging.bound_context(request_id=n):
            await asyncio.sleep(0)
            return alkana_logging.get_context()

    async def main() -> list[dict[str, object]]:
        return await asyncio.gather(*(task(n) for n in range(50)))

    assert asyncio.run(main()) == [{"request_id": n} for n in range(50)]


def test_threads_start_with_their_own_context() -> None:
    alkana_logging.bind_context(main=True)
    seen: list[dict[str, object]] = []
    thread = threading.Thread(target=lambda: seen.append(alkana_logging.get_context()))
    thread.start()
    thread.join()
    assert seen == [{}]
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(alkana_logging.get_context).result() == {}


@pytest.mark.parametrize("api", ["structlog", "stdlib", "loguru"])
def test_bound_context_appears_on_every_front_end(log_file: Path, api: str) -> None:
    with alkana_logging.bound_context(request_id="r-1", user="alice"):
        if api == "structlog":
            alkana_logging.get_logger("x").info("m")
        elif api == "stdlib":
            logging.getLogger("x").info("m")
        else:
            loguru_logger.info("m")
    alkana_logging.get_logger("x").info("after")
    records = shutdown_and_read(log_file)
    assert (records[0][F.REQUEST_ID], records[0][F.USER]) == ("r-1", "alice")
    assert F.REQUEST_ID not in records[1]


def test_call_fields_override_bound_context(log_file: Path) -> None:
    with alkana_logging.bound_context(user="alice"):
        alkana_logging.get_logger("x").info("m", user="bob")
    [record] = shutdown_and_read(log_file)
    assert record[F.USER] == "bob"
