"""Health endpoints ready to mount: ``/health`` (alive) and ``/health/detailed`` (components).

``/health`` is always cheap: the status and the time, 200 while the process serves. The
detailed route reports three kinds of component and an overall status:

- ``logging``: the pipeline's own health (:func:`alkana_logging.pipeline_health`): writes that
  fail, lines dropped since the last look, Loki that cannot be reached make it ``degraded``;
- ``etl``: per table that ran in the last week, its last success, age in hours and ``healthy`` /
  ``stale`` (no success for 25 h) / ``failed`` (its latest run failed), read from the log
  directory (the report's engine over the recent part of the files) or from Loki (the
  ``etl_last_success``, ``etl_stale`` and ``etl_failing`` presets) when ``LOKI_URL`` is set; a
  stale or failed table makes it ``degraded``;
- ``checks``: the application's own callables (sync or async, e.g. a database ping), each with a
  timeout; one that fails, raises or times out makes the whole ``unhealthy`` (``degraded`` for
  a check marked not critical).

The overall status is the worst of them; its HTTP code is 200 for ``healthy`` and ``degraded``
and 503 for ``unhealthy`` (what a load balancer expects: a stale table is no reason to take an
instance out), configurable. Results are cached for a few seconds, and a check still running
(a hung database) is waited for rather than started again, so probes cannot pile up work.

Usage (FastAPI; ``routes()`` gives Starlette routes)::

    health = HealthCheck(checks={"database": ping_database})
    app.include_router(health.router())
    instrument(app)  # alkana_logging.middleware: logs both routes at debug level by default
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from alkana_logging import _state
from alkana_logging import fields as F
from alkana_logging.api import pipeline_health
from alkana_logging.freshness import (
    DEFAULT_LOOKBACK_S,
    DEFAULT_STALE_AFTER_S,
    implausible_note,
    iso,
    plausible_time,
    read_etl_freshness,
)
from alkana_logging.settings import DEFAULT_JOB, Settings, load_settings

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from alkana_logging._query import LokiClient
    from alkana_logging.settings import Settings

Status = Literal["healthy", "degraded", "unhealthy"]
HEALTHY: Final = "healthy"
DEGRADED: Final = "degraded"
UNHEALTHY: Final = "unhealthy"
_ORDER: Final = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}

#: A table's freshness.
TABLE_HEALTHY: Final = "healthy"
TABLE_STALE: Final = "stale"
TABLE_FAILED: Final = "failed"

DEFAULT_PATH: Final = "/health"
DEFAULT_DETAILED_PATH: Final = "/health/detailed"
DEFAULT_STATUS_CODES: Final[Mapping[str, int]] = {HEALTHY: 200, DEGRADED: 200, UNHEALTHY: 503}
DEFAULT_CHECK_TIMEOUT: Final = 2.0
DEFAULT_ETL_TIMEOUT: Final = 5.0
DEFAULT_CACHE_SECONDS: Final = 5.0
#: A pipeline error this recent (seconds) still makes ``logging`` degraded.
DEFAULT_ERROR_WINDOW: Final = 300.0

CheckFunction = Callable[[], Any]


def _worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=_ORDER.__getitem__, default=HEALTHY)


def _seconds(name: str, value: float, *, zero_ok: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name}: expected a number of seconds > 0, got {value!r}")
    return float(value)


# -- the application's checks ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Check:
    """One check of the application's own.

    Attributes:
        name: the key under ``checks`` in the detailed answer.
        func: a callable without arguments, sync (run in a thread) or async (which must not
            block the event loop). ``None`` or ``True`` passes; ``False`` fails; a status word
            (``"healthy"``, ``"degraded"``, ``"unhealthy"``) is that status; a dict is details
            to show (as plain JSON), with an optional ``status`` word; anything else fails it,
            and so does any exception (``SystemExit`` and ``KeyboardInterrupt`` included).
        timeout: seconds; a check still running then has failed (its thread cannot be stopped:
            it is waited for by the next probes instead of being started again); one that came
            back later than this (an async check blocking the loop) has failed too.
        critical: a failure makes the whole ``unhealthy`` (True) or ``degraded`` (False: the
            check's effect is capped at ``degraded``, whatever it returns).
    """

    name: str
    func: CheckFunction
    timeout: float = DEFAULT_CHECK_TIMEOUT
    critical: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Check name: expected a non-empty string, got {self.name!r}")
        if not callable(self.func):
            raise TypeError(f"Check {self.name!r}: expected a callable, got {self.func!r}")
        _seconds(f"Check {self.name!r} timeout", self.timeout)


class _Running:
    """At most one run of a blocking or async job at a time, waited for with a timeout."""

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] | None = None
        self.started = 0.0

    async def run(self, start: Callable[[], Awaitable[Any]], timeout: float) -> Any:
        loop = asyncio.get_running_loop()
        future = self.future
        if future is None or future.done() or future.get_loop() is not loop:
            future = asyncio.ensure_future(start())
            self.future, self.started = future, time.monotonic()
        # shield: a timeout here leaves the run going, for the next probe to wait on.
        return await asyncio.wait_for(asyncio.shield(future), timeout)


class _Raised(Exception):
    """A check (or a freshness read) raised a ``BaseException`` that is not an ``Exception``
    (``SystemExit`` from a library's ``sys.exit()``, ``KeyboardInterrupt``, its own
    ``CancelledError``): carried as an ordinary failure, so that it cannot reach the event loop
    and stop the server."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


def _guarded(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` in a worker thread, its ``BaseException`` made an ordinary failure."""
    try:
        return func(*args)
    except Exception:
        raise
    except BaseException as err:  # noqa: BLE001 - see _Raised
        raise _Raised(err) from None


def _describe(err: BaseException) -> str:
    if isinstance(err, _Raised):
        err = err.error
    try:
        text = str(err)
    except Exception:  # noqa: BLE001 - an exception whose str() raises
        text = "<unprintable>"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


async def _call(func: CheckFunction) -> tuple[Any, float]:
    """Run a check; its result and how long it took, seconds."""
    started = time.monotonic()
    try:
        if inspect.iscoroutinefunction(func):
            result = await func()
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(None, _guarded, func)
            if inspect.isawaitable(result):  # a sync callable that returned a coroutine
                result = await result
    except asyncio.CancelledError as err:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # a real cancellation (the loop is closing)
        raise _Raised(err) from None  # the check raised it: a failure like any other
    except Exception:
        raise
    except BaseException as err:  # noqa: BLE001 - see _Raised
        raise _Raised(err) from None
    return result, time.monotonic() - started


#: How deep the details of a check are shown; deeper values are written as text.
_MAX_DEPTH: Final = 16


#: Text in a check's details longer than this is cut (an exception with a 5 MB message).
_MAX_TEXT: Final = 2000


def _plain(value: Any, depth: int = 0) -> Any:  # noqa: PLR0911 - one return a kind
    """``value`` as plain JSON: mappings with text keys, lists, text (cut at ``_MAX_TEXT``),
    finite numbers, booleans and null; a non-finite float is null, an integer too large for
    JSON's readers its text, anything else its ``str()``. Runs on the event loop: whatever the
    value's own methods raise (``SystemExit`` too) becomes a placeholder, never the answer's
    or the server's end."""
    try:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value if -(2**63) <= value < 2**64 else _cut(str(value))
        if isinstance(value, str):
            return _cut(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if depth < _MAX_DEPTH:
            if isinstance(value, Mapping):
                return {_cut(str(k)): _plain(v, depth + 1) for k, v in value.items()}
            if isinstance(value, (list, tuple, set, frozenset)):
                return [_plain(v, depth + 1) for v in value]
        return _cut(str(value))
    except BaseException:  # noqa: BLE001 - an object whose str() or items() raises
        return f"<unprintable {type(value).__name__}>"


def _cut(text: str) -> str:
    if len(text) <= _MAX_TEXT:
        return text
    return f"{text[:_MAX_TEXT]}... [{len(text) - _MAX_TEXT} more characters]"


# -- ETL freshness --------------------------------------------------------------------------------


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    try:
        return iso(ts)
    except (ValueError, OverflowError, OSError, TypeError):
        return None


@dataclasses.dataclass(frozen=True)
class TableFreshness:
    """One ETL table: times are epoch seconds.

    ``implausible_times`` counts runs whose time could not be (milliseconds for seconds, a
    clock far ahead): they were skipped (see :data:`alkana_logging.freshness.MAX_CLOCK_SKEW_S`).
    """

    table: str
    status: str
    last_success_at: float | None
    last_run_at: float | None
    last_status: str | None
    implausible_times: int = 0

    def to_dict(self, now: float) -> dict[str, Any]:
        success = _iso(self.last_success_at)
        age = None
        if success is not None and self.last_success_at is not None:
            age = (now - self.last_success_at) / 3600
        out = {
            "status": self.status,
            "last_success": success,
            "age_hours": None if age is None else round(age, 2),
            "last_run": _iso(self.last_run_at),
            "last_status": self.last_status,
        }
        if self.implausible_times:
            out["implausible_times"] = self.implausible_times
        return out


@dataclasses.dataclass(frozen=True)
class Freshness:
    """What a :class:`FreshnessSource` read: the tables, and what it could not read (each a
    reason: a file permission denied, a truncated ``.gz``), which makes the ETL component
    ``degraded``: a table whose failure is in an unreadable file would read healthy."""

    tables: list[TableFreshness]
    unreadable: list[str] = dataclasses.field(default_factory=list)


class FreshnessSource(Protocol):
    """Where ETL freshness comes from (a log directory, Loki, or your own)."""

    name: str

    def tables(self, now: float, stale_after_s: float) -> list[TableFreshness] | Freshness:
        """Every table that ran recently, with its freshness (blocking: run in a thread); a
        :class:`Freshness` also says what could not be read."""
        ...


def _table_status(failed: bool, last_success: float | None, now: float, stale_after: float) -> str:
    if failed:
        return TABLE_FAILED
    if last_success is None or now - last_success > stale_after:
        return TABLE_STALE
    return TABLE_HEALTHY


class LogDirFreshness:
    """ETL freshness from log files and directories: the report's engine over the last week.

    Args:
        paths: log directories or files (current, rotated and ``.gz`` files are read).
        lookback_s: how far back to read (7 days, as the ``etl_stale`` preset).
    """

    name = "logs"

    def __init__(
        self, paths: str | Path | Iterable[str | Path], *, lookback_s: float = DEFAULT_LOOKBACK_S
    ) -> None:
        self.paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        self.lookback_s = _seconds("lookback_s", lookback_s)

    def tables(self, now: float, stale_after_s: float) -> Freshness:
        found = read_etl_freshness(
            self.paths, now=now, stale_after_s=stale_after_s, lookback_s=self.lookback_s
        )
        tables = [
            TableFreshness(
                t.table,
                _table_status(
                    t.last_status == F.STATUS_FAILED, t.last_success_at, now, stale_after_s
                ),
                t.last_success_at,
                t.last_run_at,
                t.last_status,
                t.implausible_times,
            )
            for t in found.tables
        ]
        return Freshness(tables, list(found.unreadable))


class LokiFreshness:
    """ETL freshness from Loki, through the ``etl_last_success``, ``etl_stale`` and
    ``etl_failing`` presets (the same queries as the ETLStale and ETLFailed alerts).

    The query client is the runtime's (:mod:`alkana_logging._query`); the presets, the one
    definition of every query, are the ops toolkit's (:mod:`alkana_logging.ops.presets`, pure
    text over the contract), imported when this source is built: a health check reading the log
    directory never loads them.

    Args:
        client: the query client (:class:`alkana_logging.ops.query.LokiClient`).
        labels: the stream selector labels (``job`` by default, from ``LOKI_JOB``).
        lookback: the presets' window (a LogQL duration; ``None``: the presets' default,
            :data:`alkana_logging.ops.presets.DEFAULT_ETL_LOOKBACK`).
    """

    name = "loki"

    def __init__(
        self,
        client: LokiClient,
        *,
        labels: Mapping[str, str] | None = None,
        lookback: str | None = None,
    ) -> None:
        from alkana_logging.ops import presets

        self.client = client
        self.labels = dict(labels or {F.LABEL_JOB: DEFAULT_JOB})
        self.lookback = presets.DEFAULT_ETL_LOOKBACK if lookback is None else lookback

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = 4.0) -> LokiFreshness:
        """For the Loki of ``settings`` (``LOKI_URL``, credentials, ``LOKI_JOB``)."""
        from alkana_logging._query import LokiClient

        client = LokiClient.from_settings(settings, timeout=timeout)
        return cls(client, labels={F.LABEL_JOB: settings.loki_job})

    def _vector(self, preset: str, **params: str) -> dict[str, float]:
        from alkana_logging.ops import presets

        logql = presets.get(preset).render(self.labels, range=self.lookback, **params)
        result = self.client.query(logql)
        return {s.labels.get(F.TABLE, ""): s.value for s in result.vector}

    def tables(self, now: float, stale_after_s: float) -> list[TableFreshness]:
        stale_after = f"{max(1, round(stale_after_s))}s"
        last_success = self._vector("etl_last_success")
        stale = self._vector("etl_stale", stale_after=stale_after)
        failing = self._vector("etl_failing")
        out = []
        for table in sorted(set(last_success) | set(stale) | set(failing)):
            success = last_success.get(table) or None  # etl_stale's 0: no success in the window
            implausible = 0
            if success is not None and not plausible_time(success, max(now, time.time())):
                success, implausible = None, 1  # finished_at in ms, a clock far ahead
            failed = table in failing
            status = TABLE_STALE if table in stale and not failed else None
            out.append(
                TableFreshness(
                    table,
                    status or _table_status(failed, success, now, stale_after_s),
                    success,
                    failing.get(table),
                    F.STATUS_FAILED if failed else None,
                    implausible,
                )
            )
        return out


# -- the health check -----------------------------------------------------------------------------


class HealthCheck:
    """The two health routes and what they compute.

    Args:
        checks: the application's checks: :class:`Check` objects, or a mapping of name to
            callable (each gets ``check_timeout``).
        check_timeout: the timeout of checks given as plain callables, seconds.
        etl: where ETL freshness comes from: a :class:`FreshnessSource` (e.g.
            :class:`LogDirFreshness`, :class:`LokiFreshness`), a log directory, ``"auto"``
            (Loki when ``LOKI_URL`` is set, else the directory of ``LOG_FILE``) or ``None``
            (no ETL component).
        stale_after_s: a table without a successful run for longer is stale (25 h).
        etl_timeout: seconds the freshness read may take.
        cache_seconds: how long a detailed answer is reused (0: computed for every request).
        status_codes: the HTTP status of each overall status.
        error_window_s: a pipeline error this recent still makes ``logging`` degraded.
        path: the route of the cheap check.
        detailed_path: the route of the detailed check.
        clock: the wall clock (epoch seconds).

    Raises:
        TypeError: an option has the wrong type.
        ValueError: an option has a value that is not accepted.
    """

    def __init__(
        self,
        *,
        checks: Mapping[str, CheckFunction] | Iterable[Check] = (),
        check_timeout: float = DEFAULT_CHECK_TIMEOUT,
        etl: FreshnessSource | str | Path | None = "auto",
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        etl_timeout: float = DEFAULT_ETL_TIMEOUT,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        status_codes: Mapping[str, int] | None = None,
        error_window_s: float = DEFAULT_ERROR_WINDOW,
        path: str = DEFAULT_PATH,
        detailed_path: str = DEFAULT_DETAILED_PATH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        timeout = _seconds("check_timeout", check_timeout)
        if isinstance(checks, Mapping):
            self.checks = [Check(name, func, timeout) for name, func in checks.items()]
        else:
            self.checks = list(checks)
            for check in self.checks:
                if not isinstance(check, Check):
                    raise TypeError(f"checks: expected Check objects or a mapping, got {check!r}")
        names = [check.name for check in self.checks]
        if len(set(names)) != len(names):
            raise ValueError(f"checks: names must be unique, got {names!r}")
        self._etl_option = etl
        self._etl: FreshnessSource | None = None
        self._etl_resolved = False
        self.stale_after_s = _seconds("stale_after_s", stale_after_s)
        self.etl_timeout = _seconds("etl_timeout", etl_timeout)
        self.cache_seconds = _seconds("cache_seconds", cache_seconds, zero_ok=True)
        codes = {**DEFAULT_STATUS_CODES, **(status_codes or {})}
        if set(codes) != set(DEFAULT_STATUS_CODES) or not all(
            isinstance(code, int) and 200 <= code <= 599 for code in codes.values()
        ):
            raise ValueError(
                "status_codes: expected HTTP codes (200..599) for healthy, degraded, unhealthy, "
                f"got {status_codes!r}"
            )
        self.status_codes = codes
        self.error_window_s = _seconds("error_window_s", error_window_s)
        for name, value in (("path", path), ("detailed_path", detailed_path)):
            if not isinstance(value, str) or not value.startswith("/"):
                raise ValueError(f"{name}: expected a path starting with '/', got {value!r}")
        self.path = path
        self.detailed_path = detailed_path
        self._clock = clock
        self._running = {check.name: _Running() for check in self.checks}
        self._etl_running = _Running()
        self._cached: tuple[float, int, dict[str, Any]] | None = None
        self._computing: asyncio.Future[tuple[int, dict[str, Any]]] | None = None
        self._seen_dropped: int | None = None
        self._seen_write_errors: int | None = None

    @property
    def paths(self) -> tuple[str, str]:
        """The two routes (for the middleware's ``debug_paths``)."""
        return (self.path, self.detailed_path)

    # -- the answers --------------------------------------------------------------------------

    def live(self) -> dict[str, Any]:
        """The cheap answer: always healthy while the process serves."""
        return {"status": HEALTHY, "timestamp": iso(self._clock())}

    async def detailed(self) -> tuple[int, dict[str, Any]]:
        """The detailed answer and its HTTP status (cached for ``cache_seconds``)."""
        cached = self._cached
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1], {**cached[2], "cached": True}
        computing = self._computing
        if (
            computing is None
            or computing.done()
            or computing.get_loop() is not (asyncio.get_running_loop())
        ):
            computing = asyncio.ensure_future(self._compute())
            self._computing = computing
        code, body = await asyncio.shield(computing)
        return code, body

    async def _compute(self) -> tuple[int, dict[str, Any]]:
        started = time.monotonic()
        now = self._clock()
        logging_part = self._logging(now)
        etl_part, *check_parts = await asyncio.gather(
            self._etl_component(now), *(self._check(check) for check in self.checks)
        )
        components: dict[str, Any] = {"logging": logging_part}
        if etl_part is not None:
            components["etl"] = etl_part
        checks = dict(zip((c.name for c in self.checks), check_parts, strict=True))
        if checks:
            components["checks"] = checks
        statuses = [logging_part["status"], *(c["status"] for c in checks.values())]
        if etl_part is not None:
            statuses.append(etl_part["status"])
        status = _worst(statuses)
        body = {
            "status": status,
            "timestamp": iso(now),
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
            "cached": False,
            "components": components,
        }
        code = self.status_codes[status]
        if self.cache_seconds:
            self._cached = (time.monotonic() + self.cache_seconds, code, body)
        return code, body

    def _logging(self, now: float) -> dict[str, Any]:
        health = pipeline_health()
        if not health.get("configured"):
            return {"status": DEGRADED, "problems": ["logging is not set up"]}
        problems = []
        last_error_at = health.get("last_error_at")
        write_errors = int(health.get("write_errors", 0))
        if write_errors and (
            write_errors != (self._seen_write_errors or 0)
            or (last_error_at is not None and now - last_error_at <= self.error_window_s)
        ):
            problems.append(f"writes failing: {health.get('last_error')}")
        dropped = int(health.get("dropped_total", 0))
        if dropped > (self._seen_dropped or 0):
            problems.append(
                f"{dropped - (self._seen_dropped or 0)} line(s) dropped since the last check"
            )
        loki_error_at = health.get("loki_last_error_at")
        if (
            loki_error_at is not None
            and now - loki_error_at <= self.error_window_s
            and health.get("loki_buffer_lines", 0)
        ):
            problems.append(f"Loki unreachable: {health.get('loki_last_error')}")
        self._seen_write_errors, self._seen_dropped = write_errors, dropped
        shown = ("lines_written", "write_errors", "dropped", "dropped_total", "last_error")
        details = {key: health[key] for key in shown if key in health}
        details.update({k: v for k, v in health.items() if k.startswith("loki_")})
        for key in ("last_error_at", "loki_last_error_at"):
            if details.get(key) is not None:
                details[key] = iso(details[key])
        return {"status": DEGRADED if problems else HEALTHY, "problems": problems, **details}

    def _source(self) -> FreshnessSource | None:
        if not self._etl_resolved:
            self._etl = _resolve_source(self._etl_option)
            self._etl_resolved = True
        return self._etl

    async def _etl_component(self, now: float) -> dict[str, Any] | None:
        try:
            source = self._source()
        except Exception as err:  # noqa: BLE001 - a health answer names the problem instead
            return {"status": DEGRADED, "error": f"{type(err).__name__}: {err}"}
        if source is None:
            return None
        part: dict[str, Any] = {
            "source": source.name,
            "stale_after_hours": round(self.stale_after_s / 3600, 2),
        }
        loop = asyncio.get_running_loop()

        def read() -> Awaitable[list[TableFreshness] | Freshness]:
            return loop.run_in_executor(None, _guarded, source.tables, now, self.stale_after_s)

        try:
            found = await self._etl_running.run(read, self.etl_timeout)
            if not isinstance(found, Freshness):
                found = Freshness(list(found))
            states = {str(t.table): t.to_dict(now) for t in found.tables}
        except TimeoutError:
            return {
                **part,
                "status": DEGRADED,
                "error": f"the freshness read timed out after {self.etl_timeout:g} s",
            }
        except Exception as err:  # noqa: BLE001 - Loki down, a directory gone: say so
            return {**part, "status": DEGRADED, "error": _describe(err)}
        problems = []
        status = HEALTHY
        if any(t.status != TABLE_HEALTHY for t in found.tables):
            status = DEGRADED
        if found.unreadable:
            status = DEGRADED
            problems.append(
                f"{len(found.unreadable)} log file(s) could not be read: the tables may be "
                "out of date"
            )
        implausible = implausible_note(sum(t.implausible_times for t in found.tables))
        if implausible:
            problems.append(implausible)
        out = {"status": status, **part, "tables": states}
        if problems:
            out["problems"] = problems
        if found.unreadable:
            out["unreadable"] = [str(u) for u in found.unreadable]
        return out

    async def _check(self, check: Check) -> dict[str, Any]:
        started = time.monotonic()
        failed = UNHEALTHY if check.critical else DEGRADED
        try:
            result, took = await self._running[check.name].run(
                lambda: _call(check.func), check.timeout
            )
            duration = round((time.monotonic() - started) * 1000, 3)
            if took > check.timeout:
                # An async check that blocked the event loop: wait_for could not fire.
                return {
                    "status": failed,
                    "error": f"took {took:.3g} s, over its timeout {check.timeout:g} s",
                    "duration_ms": duration,
                }
            status, details = _outcome(result, failed)
        except TimeoutError:
            return {
                "status": failed,
                "error": f"timed out after {check.timeout:g} s",
                "duration_ms": round((time.monotonic() - started) * 1000, 3),
            }
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return {
                "status": failed,
                "error": "CancelledError",
                "duration_ms": round((time.monotonic() - started) * 1000, 3),
            }
        except Exception as err:  # noqa: BLE001 - the check failed: that is the answer
            return {
                "status": failed,
                "error": _describe(err),
                "duration_ms": round((time.monotonic() - started) * 1000, 3),
            }
        if not check.critical and status == UNHEALTHY:
            status = DEGRADED  # a check that is not critical degrades at most
        return {**details, "status": status, "duration_ms": duration}

    # -- Starlette and FastAPI ------------------------------------------------------------------

    def _live_response(self) -> Response:
        from starlette.responses import JSONResponse

        return JSONResponse(self.live(), headers={"Cache-Control": "no-store"})

    async def _detailed_response(self) -> Response:
        from starlette.responses import JSONResponse

        code, body = await self.detailed()
        try:
            return JSONResponse(body, status_code=code, headers={"Cache-Control": "no-store"})
        except (TypeError, ValueError):  # a value JSON cannot hold (a custom freshness source)
            return JSONResponse(
                _plain(body), status_code=code, headers={"Cache-Control": "no-store"}
            )

    async def live_endpoint(self, request: Request) -> Response:
        """The Starlette endpoint of :attr:`path`."""
        return self._live_response()

    async def detailed_endpoint(self, request: Request) -> Response:
        """The Starlette endpoint of :attr:`detailed_path`."""
        return await self._detailed_response()

    def routes(self) -> list[Route]:
        """Starlette routes: ``Starlette(routes=[*health.routes(), ...])``."""
        from starlette.routing import Route

        return [
            Route(self.path, self.live_endpoint, methods=["GET", "HEAD"], name="health"),
            Route(
                self.detailed_path,
                self.detailed_endpoint,
                methods=["GET", "HEAD"],
                name="health_detailed",
            ),
        ]

    def router(self, *, include_in_schema: bool = False) -> Any:
        """A FastAPI ``APIRouter`` with both routes: ``app.include_router(health.router())``."""
        from fastapi import APIRouter

        # FastAPI's own routes (APIRoute), so that the request's route is known to FastAPI and
        # to the middleware like any other endpoint's.
        async def health() -> Any:
            return self._live_response()

        async def health_detailed() -> Any:
            return await self._detailed_response()

        router = APIRouter()
        for path, endpoint in ((self.path, health), (self.detailed_path, health_detailed)):
            router.add_api_route(
                path,
                endpoint,
                methods=["GET", "HEAD"],
                name=endpoint.__name__,
                include_in_schema=include_in_schema,
                response_model=None,
            )
        return router


def _outcome(result: Any, failed: str) -> tuple[str, dict[str, Any]]:
    """What a check's return value means: its status and the details to show.

    ``None`` and ``True`` pass; ``False`` fails; one of the status words (``"healthy"``,
    ``"degraded"``, ``"unhealthy"``) is that status; a mapping is details shown as plain JSON,
    whose ``status`` (if any) must be one of the words. Anything else (``0``, ``"DOWN"``,
    ``[]``) fails the check, saying what it returned: a health check says what it means.
    """
    if result is None or result is True:
        return HEALTHY, {}
    if result is False:
        return failed, {"error": "the check returned False"}
    if isinstance(result, str) and result in _ORDER:
        return result, {}
    if isinstance(result, Mapping):
        details = _plain(result)
        status = details.pop("status", HEALTHY)
        if not isinstance(status, str) or status not in _ORDER:
            details["error"] = (
                f"the check returned status {_short(status)}; expected one of "
                "healthy, degraded, unhealthy"
            )
            return failed, details
        return status, details
    return failed, {
        "error": f"the check returned {_short(result)}; expected None, True, False, a status "
        "(healthy, degraded, unhealthy) or a mapping of details"
    }


def _short(value: Any, limit: int = 100) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a repr() that raises
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "…"


def _resolve_source(option: FreshnessSource | str | Path | None) -> FreshnessSource | None:
    if option is None:
        return None
    if isinstance(option, Path) or (isinstance(option, str) and option != "auto"):
        return LogDirFreshness(option)
    if not isinstance(option, str):
        return option
    settings = _state.settings() or load_settings()
    if settings.loki_url:
        return LokiFreshness.from_settings(settings)
    if settings.log_file is not None:
        return LogDirFreshness(settings.log_file.parent)
    return None


__all__ = [
    "DEGRADED",
    "HEALTHY",
    "TABLE_FAILED",
    "TABLE_HEALTHY",
    "TABLE_STALE",
    "UNHEALTHY",
    "Check",
    "FreshnessSource",
    "HealthCheck",
    "LogDirFreshness",
    "LokiFreshness",
    "TableFreshness",
]
