"""timed() and metric(): the events are read back from a real log file."""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import Any

import pytest

import alkana_logging
from alkana_logging import fields as F
from alkana_logging.metrics import metric, timed
from tests._logfiles import read_records


def events(path: Path, event: str) -> list[dict[str, Any]]:
    return [r for r in read_records(path) if r.get(F.EVENT) == event]


def test_timed_block_writes_one_success_event(log_file: Path) -> None:
    with alkana_logging.bound_context(request_id="r-1"), timed("refresh_views", table="mv_stock"):
        pass

    [event] = events(log_file, F.EVENT_TIMING)
    assert event[F.OPERATION] == "refresh_views"
    assert event[F.STATUS] == F.STATUS_SUCCESS
    assert isinstance(event[F.DURATION_MS], float)
    assert event[F.DURATION_MS] >= 0.0
    assert event[F.TABLE] == "mv_stock"
    assert event[F.REQUEST_ID] == "r-1"
    assert event[F.LEVEL] == F.INFO
    assert event[F.LOGGER] == "alkana_logging.metrics"
    assert F.ERROR_FIELD not in event


def test_timed_block_that_raises_is_failed_and_reraises(log_file: Path) -> None:
    with pytest.raises(ValueError, match="bad row"), timed("load"):
        raise ValueError("bad row")

    [event] = events(log_file, F.EVENT_TIMING)
    assert event[F.STATUS] == F.STATUS_FAILED
    assert event[F.LEVEL] == F.ERROR
    assert event[F.ERROR_FIELD] == "ValueError: bad row"
    assert isinstance(event[F.DURATION_MS], float)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
def test_timed_counts_base_exceptions_as_failed(
    log_file: Path, exc_type: type[BaseException]
) -> None:
    with pytest.raises(exc_type), timed("interrupted"):
        raise exc_type

    [event] = events(log_file, F.EVENT_TIMING)
    assert event[F.STATUS] == F.STATUS_FAILED
    assert event[F.ERROR_FIELD].startswith(exc_type.__qualname__)


def test_timed_decorates_a_sync_function(log_file: Path) -> None:
    @timed("add", kind="sync")
    def add(a: int, b: int) -> int:
        """Adds."""
        return a + b

    assert add(2, 3) == 5
    assert add(4, b=5) == 9
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds."

    found = events(log_file, F.EVENT_TIMING)
    assert len(found) == 2
    assert all(e[F.OPERATION] == "add" and e["kind"] == "sync" for e in found)
    assert all(e[F.STATUS] == F.STATUS_SUCCESS for e in found)


def test_timed_decorates_an_async_function(log_file: Path) -> None:
    @timed("fetch")
    async def fetch(n: int) -> int:
        await asyncio.sleep(0.001 * n)
        if n == 3:
            raise LookupError("no such row")
        return n

    async def main() -> list[Any]:
        return await asyncio.gather(*(fetch(n) for n in range(5)), return_exceptions=True)

    results = asyncio.run(main())

    assert [r for r in results if not isinstance(r, BaseException)] == [0, 1, 2, 4]
    assert isinstance(results[3], LookupError)
    assert asyncio.iscoroutinefunction(fetch)
    found = events(log_file, F.EVENT_TIMING)
    assert len(found) == 5
    assert sum(e[F.STATUS] == F.STATUS_FAILED for e in found) == 1
    assert [e[F.ERROR_FIELD] for e in found if F.ERROR_FIELD in e] == ["LookupError: no such row"]


def test_timed_async_with(log_file: Path) -> None:
    async def main() -> None:
        async with timed("async_block"):
            await asyncio.sleep(0)

    asyncio.run(main())

    [event] = events(log_file, F.EVENT_TIMING)
    assert event[F.OPERATION] == "async_block"


def test_one_timed_instance_nests(log_file: Path) -> None:
    timer = timed("nested")
    with timer, timer:
        pass

    assert len(events(log_file, F.EVENT_TIMING)) == 2


def test_timed_success_is_filtered_by_level_but_failure_is_not(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False, level="WARNING")
    with timed("quiet"):
        pass
    with pytest.raises(RuntimeError), timed("loud"):
        raise RuntimeError("x")

    assert [e[F.OPERATION] for e in events(path, F.EVENT_TIMING)] == ["loud"]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("",), {}, "operation"),
        ((3,), {}, "operation"),
        (("op",), {"status": "x"}, "status"),
        (("op",), {"duration_ms": 1}, "duration_ms"),
        (("op",), {"event": "x"}, "event"),
    ],
)
def test_timed_refuses_bad_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        timed(*args, **kwargs)


def test_metric_writes_a_float_value_and_labels(log_file: Path) -> None:
    metric("db_connections_active", 12, pool="primary")
    metric("queue_depth", 3.5)

    first, second = events(log_file, F.EVENT_METRIC)
    assert first[F.METRIC] == "db_connections_active"
    assert first[F.VALUE] == 12.0
    assert isinstance(first[F.VALUE], float)
    assert first["pool"] == "primary"
    assert first[F.MESSAGE] == "db_connections_active"
    assert second[F.VALUE] == 3.5


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400])
def test_metric_writes_non_finite_values_as_null(log_file: Path, value: float) -> None:
    metric("odd", value)

    [event] = events(log_file, F.EVENT_METRIC)
    assert event[F.VALUE] is None


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("", 1), {}, ValueError, "name"),
        (("m", "12"), {}, TypeError, "value"),
        (("m", True), {}, TypeError, "value"),
        (("m", None), {}, TypeError, "value"),
        (("m", 1), {"value": 2}, TypeError, "value"),
        (("m", 1), {"metric": "x"}, ValueError, "metric"),
    ],
)
def test_metric_refuses_bad_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        metric(*args, **kwargs)


def test_without_setup_events_go_through_stdlib_logging(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="alkana_logging.metrics"):
        metric("gauge", 7)
        with timed("op"):
            pass

    [gauge, timing] = caplog.records
    assert gauge.__dict__[F.EVENT] == F.EVENT_METRIC
    assert gauge.__dict__[F.VALUE] == 7.0
    assert timing.__dict__[F.EVENT] == F.EVENT_TIMING
    assert timing.__dict__[F.STATUS] == F.STATUS_SUCCESS
