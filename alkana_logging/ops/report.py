"""The local report: the presets' numbers computed straight from JSON log files, without Loki.

The definitions are the presets' own (:mod:`alkana_logging.ops.presets`): an error is an
``http_request`` event with ``status_code >= 500``; a slow request has ``duration_ms`` above the
threshold; percentiles follow Loki's ``quantile_over_time`` (:func:`loki_quantile`); a line that
is not a JSON object is counted and skipped, as ``| json | __error__=""`` skips it; a value that
is not a number is left out of the numbers that need one, as ``| __error__=""`` after a numeric
filter or ``| unwrap`` leaves it out.

One difference is on purpose: Loki sees only what its window holds, so ``etl_stale`` forgets a
table that has not run for longer than its look-back (7 days); the report sees every table that
appears in the files, and calls it stale when its last success (if any) is older than
``stale_after`` before ``now``.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

import orjson

from alkana_logging import fields as F
from alkana_logging.exceptions import AlkanaLoggingError
from alkana_logging.ops.presets import (
    DB_CONNECTIONS_METRIC,
    DEFAULT_DB_CONNECTIONS_MAX,
    DEFAULT_SLOW_MS,
    LATENCY_QUANTILES,
    SERVER_ERROR_MIN,
)

#: 25 hours: a table without a successful run for longer is stale.
DEFAULT_STALE_AFTER_S: Final = 25 * 3600.0
DEFAULT_TOP: Final = 10
#: As the DatabaseConnectionsHigh rule's range: a writer (host, pid) whose latest sample is
#: older than this before the metric's newest one has gone (a restarted worker).
METRIC_WINDOW_S: Final = 300.0
#: Metric thresholds the report flags, as the alert rules do (DatabaseConnectionsHigh).
DEFAULT_METRIC_THRESHOLDS: Final[Mapping[str, float]] = {
    DB_CONNECTIONS_METRIC: float(DEFAULT_DB_CONNECTIONS_MAX)
}

#: Current and rotated log files in a directory: ``app.log``, ``app.log.1`` (size rotation),
#: ``app.log-20261126-1764170000`` (logrotate's dateext), each optionally ``.gz``. Not
#: ``app.log.lock``.
LOG_FILE_NAME: Final = re.compile(r"\.log(?:[.-][0-9][0-9-]*)?(?:\.gz)?$")
_GZIP_MAGIC: Final = b"\x1f\x8b"
#: An ETL run's time (``finished_at``, or the line's ``timestamp``) more than this far ahead of
#: ``now`` is implausible (milliseconds instead of seconds, a clock far ahead): it is skipped
#: and counted, so that it can neither crash a reader nor hide the failures after it.
MAX_CLOCK_SKEW_S: Final = 300.0
#: Nor is a time before 2000-01-01 plausible for a run (a duration mistaken for a time).
_EARLIEST: Final = 946684800.0


class ReportError(AlkanaLoggingError):
    """A path given to the report does not exist or holds no log files."""


def loki_quantile(q: float, values: Sequence[float]) -> float | None:
    """The ``q`` quantile of ``values`` as Loki's ``quantile_over_time`` computes it.

    Sort the values, take the rank ``q * (n - 1)`` and interpolate linearly between the two
    values around it (Prometheus's ``quantile``, which Loki uses).

    Args:
        q: the quantile, 0 to 1.
        values: the samples, in any order.

    Returns:
        The quantile, or ``None`` when there are no values.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    lower = max(0, math.floor(rank))
    upper = min(len(ordered) - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


# -- finding and reading files --------------------------------------------------------------------


def log_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files to read: each file given, and in each directory the current and rotated logs.

    Raises:
        ReportError: a path does not exist.
    """
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.is_file() and LOG_FILE_NAME.search(child.name):
                    found.setdefault(child.resolve(), None)
        elif path.is_file():
            found.setdefault(path.resolve(), None)
        else:
            raise ReportError(f"{raw}: no such file or directory")
    return list(found)


def read_lines(path: Path) -> Iterator[bytes]:
    """The lines of a log file, decompressed when it is gzip (by content, not by name)."""
    with path.open("rb") as probe:
        compressed = probe.read(2) == _GZIP_MAGIC
    opener = gzip.open if compressed else open
    with opener(path, "rb") as stream:
        yield from stream


# -- accumulating ---------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _epoch(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value).timestamp()
        except (ValueError, OverflowError, OSError):
            return None
        return ts if _representable(ts) else None
    return None


def _representable(ts: float) -> bool:
    """Whether ``ts`` (epoch seconds) is a time :func:`iso` can write."""
    try:
        datetime.fromtimestamp(ts, UTC)
    except (ValueError, OverflowError, OSError):
        return False
    return True


def plausible_time(ts: float, now: float | None, skew_s: float = MAX_CLOCK_SKEW_S) -> bool:
    """Whether ``ts`` (epoch seconds) can be an ETL run's time: finite, from 2000 on, and not
    more than ``skew_s`` ahead of ``now`` (no upper bound but the calendar's when ``now`` is
    ``None``)."""
    if not math.isfinite(ts) or ts < _EARLIEST or not _representable(ts):
        return False
    return now is None or ts <= now + skew_s


def iso(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC with microseconds and ``Z`` (the contract's form)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclasses.dataclass
class _Route:
    requests: int = 0
    errors: int = 0
    slow: int = 0
    durations: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Table:
    runs: int = 0
    failures: int = 0
    started: int = 0
    last_run_at: float | None = None
    last_status: str | None = None
    last_success_at: float | None = None
    implausible: int = 0


@dataclasses.dataclass
class _Metric:
    # The contract's timestamps have one fixed form, so they order as strings.
    latest_timestamp: str
    latest: float
    maximum: float
    samples: int = 0
    #: Each writer's (host, pid) latest sample: (timestamp, value).
    writers: dict[tuple[str, str], tuple[str, float]] = dataclasses.field(default_factory=dict)

    def current(self) -> tuple[float, int]:
        """As the ``metric_gauge`` preset: the largest of the writers' latest values, among the
        writers seen within :data:`METRIC_WINDOW_S` of the newest sample; and how many."""
        newest = _epoch(self.latest_timestamp)
        values = [
            value
            for stamp, value in self.writers.values()
            if newest is None or (_epoch(stamp) or newest) >= newest - METRIC_WINDOW_S
        ]
        return (max(values) if values else self.latest), len(values)


@dataclasses.dataclass
class _Accumulator:
    slow_ms: float
    #: ETL run times more than MAX_CLOCK_SKEW_S after this are implausible.
    now: float | None = None
    lines: int = 0
    non_json: int = 0
    routes: dict[str, _Route] = dataclasses.field(default_factory=dict)
    tables: dict[str, _Table] = dataclasses.field(default_factory=dict)
    metrics: dict[str, _Metric] = dataclasses.field(default_factory=dict)
    levels: Counter[str] = dataclasses.field(default_factory=Counter)
    exceptions: Counter[str] = dataclasses.field(default_factory=Counter)

    def add(self, raw: bytes) -> None:
        if not raw.strip():
            return
        self.lines += 1
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.non_json += 1
            return
        if not isinstance(record, dict):
            self.non_json += 1
            return
        level = record.get(F.LEVEL)
        if isinstance(level, str) and level:
            self.levels[level] += 1
        exception = record.get(F.EXCEPTION_TYPE)
        if isinstance(exception, str) and exception:
            self.exceptions[exception] += 1
        event = record.get(F.EVENT)
        if event == F.EVENT_HTTP_REQUEST:
            self._request(record)
        elif event in (F.EVENT_ETL_RUN_STARTED, F.EVENT_ETL_RUN_FINISHED):
            self._etl(event, record)
        elif event == F.EVENT_METRIC:
            self._metric(record)

    def _metric(self, record: Mapping[str, Any]) -> None:
        # As metric_gauge: the latest value of each metric name; not a number: left out.
        name = record.get(F.METRIC)
        value = _number(record.get(F.VALUE))
        if not isinstance(name, str) or not name or value is None:
            return
        timestamp = record.get(F.TIMESTAMP)
        timestamp = timestamp if isinstance(timestamp, str) else ""
        stats = self.metrics.setdefault(name, _Metric(timestamp, value, value))
        stats.samples += 1
        if timestamp >= stats.latest_timestamp:
            stats.latest, stats.latest_timestamp = value, timestamp
        stats.maximum = max(stats.maximum, value)
        writer = (str(record.get(F.HOST, "")), str(record.get(F.PID, "")))
        seen = stats.writers.get(writer)
        if seen is None or timestamp >= seen[0]:
            stats.writers[writer] = (timestamp, value)

    def _request(self, record: Mapping[str, Any]) -> None:
        route = record.get(F.ROUTE)
        stats = self.routes.setdefault(route if isinstance(route, str) else "", _Route())
        stats.requests += 1
        status = _number(record.get(F.STATUS_CODE))
        if status is not None and status >= SERVER_ERROR_MIN:
            stats.errors += 1
        duration = _number(record.get(F.DURATION_MS))
        if duration is not None:
            stats.durations.append(duration)
            if duration > self.slow_ms:
                stats.slow += 1

    def _etl(self, event: str, record: Mapping[str, Any]) -> None:
        table = record.get(F.TABLE)
        if not isinstance(table, str) or not table:
            return
        stats = self.tables.setdefault(table, _Table())
        if event == F.EVENT_ETL_RUN_STARTED:
            stats.started += 1
            return
        stats.runs += 1
        status = record.get(F.STATUS)
        if status == F.STATUS_FAILED:
            stats.failures += 1
        # finished_at, else the line's own time; one that cannot be (milliseconds, a clock
        # far ahead) is skipped and counted: it would crash the readers or, in the future,
        # stay the "latest" run and hide every failure after it.
        finished = None
        implausible = False
        for candidate in (_number(record.get(F.FINISHED_AT)), _epoch(record.get(F.TIMESTAMP))):
            if candidate is None:
                continue
            if plausible_time(candidate, self.now):
                finished = candidate
                break
            implausible = True
        if implausible:
            stats.implausible += 1
        if finished is None:
            return
        if stats.last_run_at is None or finished >= stats.last_run_at:
            stats.last_run_at = finished
            stats.last_status = status if isinstance(status, str) else None
        if status == F.STATUS_SUCCESS and (
            stats.last_success_at is None or finished > stats.last_success_at
        ):
            stats.last_success_at = finished


# -- the report -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RouteReport:
    """The HTTP numbers of one route."""

    route: str
    requests: int
    errors: int
    error_ratio: float
    slow: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclasses.dataclass(frozen=True)
class TableReport:
    """The ETL numbers of one table; times are epoch seconds."""

    table: str
    runs: int
    failures: int
    started: int
    last_run_at: float | None
    last_status: str | None
    last_success_at: float | None
    last_success_age_s: float | None
    stale: bool
    #: Runs whose time was implausible (see :data:`MAX_CLOCK_SKEW_S`): skipped.
    implausible_times: int = 0


@dataclasses.dataclass(frozen=True)
class MetricReport:
    """One metric name of the ``metric`` events: its latest value, as ``metric_gauge``."""

    metric: str
    samples: int
    latest: float
    latest_at: float | None
    max: float
    threshold: float | None
    above_threshold: bool
    #: The writers (host, pid) whose latest values ``latest`` is the largest of.
    writers: int = 1


@dataclasses.dataclass(frozen=True)
class Report:
    """Everything the report computed; :meth:`to_dict` is the ``--json`` form."""

    files: tuple[str, ...]
    unreadable: tuple[str, ...]
    now: float
    lines: int
    non_json_lines: int
    requests: int
    errors: int
    error_ratio: float | None
    latency_ms: dict[str, float | None]
    slow_threshold_ms: float
    slow_requests: int
    routes: tuple[RouteReport, ...]
    top_exceptions: tuple[tuple[str, int], ...]
    levels: dict[str, int]
    stale_after_s: float
    etl: tuple[TableReport, ...]
    metrics: tuple[MetricReport, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``report --json`` (times as RFC 3339 strings)."""
        return {
            "files": list(self.files),
            "unreadable": list(self.unreadable),
            "now": iso(self.now),
            "lines": self.lines,
            "non_json_lines": self.non_json_lines,
            "requests": self.requests,
            "errors": self.errors,
            "error_ratio": self.error_ratio,
            "latency_ms": dict(self.latency_ms),
            "slow_threshold_ms": self.slow_threshold_ms,
            "slow_requests": self.slow_requests,
            "routes": [
                {
                    "route": r.route,
                    "requests": r.requests,
                    "errors": r.errors,
                    "error_ratio": r.error_ratio,
                    "slow": r.slow,
                    "p50_ms": r.p50_ms,
                    "p95_ms": r.p95_ms,
                    "p99_ms": r.p99_ms,
                }
                for r in self.routes
            ],
            "top_exceptions": [{"exception_type": t, "count": n} for t, n in self.top_exceptions],
            "levels": dict(self.levels),
            "stale_after_s": self.stale_after_s,
            "etl": [
                {
                    "table": t.table,
                    "runs": t.runs,
                    "failures": t.failures,
                    "started": t.started,
                    "last_run_at": None if t.last_run_at is None else iso(t.last_run_at),
                    "last_status": t.last_status,
                    "last_success_at": None
                    if t.last_success_at is None
                    else iso(t.last_success_at),
                    "last_success_age_s": t.last_success_age_s,
                    "stale": t.stale,
                    "implausible_times": t.implausible_times,
                }
                for t in self.etl
            ],
            "metrics": [
                {
                    "metric": m.metric,
                    "samples": m.samples,
                    "latest": m.latest,
                    "latest_at": None if m.latest_at is None else iso(m.latest_at),
                    "max": m.max,
                    "threshold": m.threshold,
                    "above_threshold": m.above_threshold,
                    "writers": m.writers,
                }
                for m in self.metrics
            ],
        }

    def format(self) -> str:
        """The report as text for a terminal."""
        return _format(self)


def _quantiles(values: Sequence[float]) -> dict[str, float | None]:
    return {
        name.removeprefix("latency_"): loki_quantile(q, values)
        for name, q in LATENCY_QUANTILES.items()
    }


def build_report(
    paths: Iterable[str | Path],
    *,
    now: float | None = None,
    slow_ms: float = DEFAULT_SLOW_MS,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    top: int = DEFAULT_TOP,
    metric_thresholds: Mapping[str, float] = DEFAULT_METRIC_THRESHOLDS,
) -> Report:
    """Read the log files under ``paths`` and compute the presets' numbers.

    Args:
        paths: files and directories (a directory contributes its current and rotated logs,
            ``.gz`` included).
        now: the time "stale" is measured from, epoch seconds (the clock when omitted).
        slow_ms: a request slower than this is slow (``duration_ms > slow_ms``).
        stale_after_s: a table without a successful run for longer than this is stale.
        top: how many exception types to list.
        metric_thresholds: metric names whose latest value is flagged when above the number
            (``db_connections_active`` above 80 by default, as DatabaseConnectionsHigh).

    Returns:
        The report.

    Raises:
        ReportError: a path does not exist.
        ValueError: an option is out of range.
    """
    if slow_ms < 0 or not math.isfinite(slow_ms):
        raise ValueError(f"slow_ms: got {slow_ms!r}; expected a number >= 0")
    if stale_after_s <= 0 or not math.isfinite(stale_after_s):
        raise ValueError(f"stale_after_s: got {stale_after_s!r}; expected a number > 0")
    if top < 1:
        raise ValueError(f"top: got {top!r}; expected an integer >= 1")
    now = time.time() if now is None else now
    files = log_files(paths)
    # Runs are judged plausible against the real clock too: `--now` in the past keeps later runs.
    acc = _Accumulator(slow_ms=slow_ms, now=max(now, time.time()))
    unreadable: list[str] = []
    for path in files:
        try:
            for raw in read_lines(path):
                acc.add(raw)
        except (OSError, EOFError, zlib.error) as err:
            # A file being compressed by logrotate right now, or unreadable: say so, go on.
            unreadable.append(f"{path}: {err}")

    routes = []
    durations: list[float] = []
    for route, stats in acc.routes.items():
        durations.extend(stats.durations)
        q = _quantiles(stats.durations)
        routes.append(
            RouteReport(
                route=route,
                requests=stats.requests,
                errors=stats.errors,
                error_ratio=stats.errors / stats.requests,
                slow=stats.slow,
                p50_ms=q["p50"],
                p95_ms=q["p95"],
                p99_ms=q["p99"],
            )
        )
    routes.sort(key=lambda r: (-r.requests, r.route))
    requests = sum(r.requests for r in routes)
    errors = sum(r.errors for r in routes)

    tables = _tables(acc, now, stale_after_s)

    metrics = []
    for name, gauge in sorted(acc.metrics.items()):
        threshold = metric_thresholds.get(name)
        current, writers = gauge.current()
        metrics.append(
            MetricReport(
                metric=name,
                samples=gauge.samples,
                latest=current,
                latest_at=_epoch(gauge.latest_timestamp),
                max=gauge.maximum,
                threshold=threshold,
                above_threshold=threshold is not None and current > threshold,
                writers=writers,
            )
        )

    order = {level: i for i, level in enumerate(F.LEVELS)}
    levels = dict(sorted(acc.levels.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    exceptions = sorted(acc.exceptions.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return Report(
        files=tuple(str(p) for p in files),
        unreadable=tuple(unreadable),
        now=now,
        lines=acc.lines,
        non_json_lines=acc.non_json,
        requests=requests,
        errors=errors,
        error_ratio=errors / requests if requests else None,
        latency_ms=_quantiles(durations),
        slow_threshold_ms=slow_ms,
        slow_requests=sum(r.slow for r in routes),
        routes=tuple(routes),
        top_exceptions=tuple(exceptions),
        levels=levels,
        stale_after_s=stale_after_s,
        etl=tables,
        metrics=tuple(metrics),
    )


def _tables(acc: _Accumulator, now: float, stale_after_s: float) -> tuple[TableReport, ...]:
    tables = []
    for name, run in sorted(acc.tables.items()):
        age = None if run.last_success_at is None else now - run.last_success_at
        tables.append(
            TableReport(
                table=name,
                runs=run.runs,
                failures=run.failures,
                started=run.started,
                last_run_at=run.last_run_at,
                last_status=run.last_status,
                last_success_at=run.last_success_at,
                last_success_age_s=age,
                stale=age is None or age > stale_after_s,
                implausible_times=run.implausible,
            )
        )
    return tuple(tables)


# -- ETL freshness from the recent part of the files ----------------------------------------------

#: How far back the freshness read looks, as the ``etl_stale`` preset: 7 days.
DEFAULT_LOOKBACK_S: Final = 7 * 86400.0
#: Block size of the backward read of a plain log file.
_BLOCK: Final = 1 << 20
#: The freshness read drops a longer stretch without a newline as not being a line (the
#: pipeline's lines are at most ``LOG_MAX_LINE_BYTES``, 64 KiB by default; Loki takes 256 KB).
MAX_LINE_BYTES: Final = 1 << 20
#: The ETL run events' common prefix: lines without it are not parsed (Loki's line filter).
_ETL_RUN_MARK: Final = b'"etl_run_'
#: The timestamp of a line: the schema's first key, so near the start of the line.
_TIMESTAMP: Final = re.compile(rb'"timestamp"\s*:\s*"([^"]{1,64})"')


@dataclasses.dataclass(frozen=True)
class EtlFreshness:
    """What :func:`read_etl_freshness` found.

    Attributes:
        tables: one :class:`TableReport` per table, by name.
        unreadable: the files that could not be read (or only in part: a truncated ``.gz``),
            each with the reason; the tables may be out of date when there are any.
        long_lines_dropped: stretches longer than :data:`MAX_LINE_BYTES` without a newline,
            dropped as not being lines.
    """

    tables: tuple[TableReport, ...]
    unreadable: tuple[str, ...] = ()
    long_lines_dropped: int = 0


def etl_freshness(
    paths: Iterable[str | Path],
    *,
    now: float | None = None,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    lookback_s: float = DEFAULT_LOOKBACK_S,
) -> tuple[TableReport, ...]:
    """The tables of :func:`read_etl_freshness` (which also says what could not be read)."""
    return read_etl_freshness(
        paths, now=now, stale_after_s=stale_after_s, lookback_s=lookback_s
    ).tables


def read_etl_freshness(
    paths: Iterable[str | Path],
    *,
    now: float | None = None,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    lookback_s: float = DEFAULT_LOOKBACK_S,
) -> EtlFreshness:
    """Per ETL table that ran in the last ``lookback_s``: its runs, last status, last success.

    The report's engine over the recent part of the log files only, so that it stays fast on a
    directory holding a year of logs: a file last modified before the window is skipped, and a
    plain file is read backwards from its end until its lines are older than the window (a
    compressed file is read whole: logrotate compresses files that were closed long ago).
    Only lines holding an ETL run event are parsed. As the ``etl_stale`` preset, a table that
    has not run within the window is not listed, and one whose last success is older than the
    window has none (``last_success_at`` is ``None``, and it is stale). A stretch of more than
    :data:`MAX_LINE_BYTES` without a newline is dropped as not being a line (memory and time
    stay linear in what is read). A run whose time is implausible is skipped and counted
    (``implausible_times``, see :data:`MAX_CLOCK_SKEW_S`).

    Args:
        paths: log files and directories, as :func:`build_report` takes them.
        now: the time ages are measured from, epoch seconds (the clock when omitted).
        stale_after_s: a table without a successful run for longer than this is stale.
        lookback_s: how far back to read.

    Returns:
        The tables, and the files that could not be read (permission denied, a truncated
        ``.gz``: what was read of them still counts).

    Raises:
        ReportError: a path does not exist.
        ValueError: an option is out of range.
    """
    for name, value in (("stale_after_s", stale_after_s), ("lookback_s", lookback_s)):
        if value <= 0 or not math.isfinite(value):
            raise ValueError(f"{name}: got {value!r}; expected a number > 0")
    now = time.time() if now is None else now
    since = now - lookback_s
    since_text = iso(since).encode()
    acc = _Accumulator(slow_ms=0.0, now=max(now, time.time()))
    unreadable: list[str] = []
    dropped = [0]
    for path in log_files(paths):
        try:
            if path.stat().st_mtime < since:
                continue
            for block in _recent_blocks(path, since_text, dropped):
                for raw in _etl_lines(block):
                    # The window is the lines' own time (a block read whole holds older ones).
                    stamp = _TIMESTAMP.search(raw, 0, 200)
                    if stamp is None or stamp.group(1) >= since_text:
                        acc.add(raw)
        except FileNotFoundError:
            continue  # removed by logrotate right now: the rest still counts
        except EOFError as err:
            # Truncated: what was read counts. (A .gz being written by logrotate right now is
            # one too, and says so until it is complete.)
            unreadable.append(f"{path}: truncated gzip file, read in part ({err})")
        except (OSError, zlib.error) as err:
            unreadable.append(f"{path}: {err}")
    return EtlFreshness(_tables(acc, now, stale_after_s), tuple(unreadable), dropped[0])


def _recent_blocks(path: Path, since: bytes, dropped: list[int] | None = None) -> Iterator[bytes]:
    """Blocks of whole lines of ``path``, newest first for a plain file, until the lines are
    older than ``since`` (RFC 3339 bytes); a compressed file's blocks in order, all of them.

    A stretch longer than :data:`MAX_LINE_BYTES` without a newline is not a line: it is
    dropped (``dropped[0]`` counts them), so that what is kept between blocks stays bounded and
    each byte is looked at a bounded number of times."""
    if dropped is None:
        dropped = [0]
    with path.open("rb") as stream:
        if stream.read(2) == _GZIP_MAGIC:
            stream.seek(0)
            with gzip.open(stream, "rb") as unpacked:
                yield from _forward_blocks(unpacked.read, dropped)
            return
        yield from _backward_blocks(stream, since, dropped)


def _forward_blocks(read: Callable[[int], bytes], dropped: list[int]) -> Iterator[bytes]:
    carry = b""
    skipping = False  # inside a dropped over-long line: up to its newline
    while chunk := read(_BLOCK):
        if skipping:
            cut = chunk.find(b"\n") + 1
            if cut == 0:
                continue
            chunk, skipping = chunk[cut:], False
        chunk = carry + chunk
        cut = chunk.rfind(b"\n") + 1
        carry = chunk[cut:]
        if len(carry) > MAX_LINE_BYTES:
            carry, skipping = b"", True
            dropped[0] += 1
        if cut:
            yield chunk[:cut]
    if carry:
        yield carry


def _backward_blocks(stream: BinaryIO, since: bytes, dropped: list[int]) -> Iterator[bytes]:
    end = stream.seek(0, 2)
    carry = b""
    skipping = False  # inside a dropped over-long line: back to the newline before it
    while end > 0:
        start = max(0, end - _BLOCK)
        stream.seek(start)
        block = stream.read(end - start)
        end = start
        if skipping:
            last = block.rfind(b"\n")
            if last < 0:
                continue
            block, skipping = block[: last + 1], False
        block += carry
        carry = b""
        if start > 0:
            # The first line of the block may begin in the block before: keep it for then.
            cut = block.find(b"\n") + 1
            carry, block = (block, b"") if cut == 0 else (block[:cut], block[cut:])
            if len(carry) > MAX_LINE_BYTES:
                carry, skipping = b"", True
                dropped[0] += 1
        if not block:
            continue
        yield block
        first = _TIMESTAMP.search(block, 0, 200)
        if first is not None and first.group(1) < since:
            return


def _etl_lines(block: bytes) -> Iterator[bytes]:
    """The lines of ``block`` that hold an ETL run event's mark, found without splitting the
    block into lines (most lines of a log are not ETL events)."""
    find, rfind = block.find, block.rfind
    at = find(_ETL_RUN_MARK)
    while at >= 0:
        begin = rfind(b"\n", 0, at) + 1
        stop = find(b"\n", at)
        if stop < 0:
            stop = len(block)
        yield block[begin:stop]
        at = find(_ETL_RUN_MARK, stop)


# -- text -----------------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Rows of text as aligned columns; columns whose cells all look numeric align right."""
    body = [list(row) for row in rows]
    widths = [len(h) for h in headers]
    numeric = [True] * len(headers)
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
            if cell not in ("", "-") and not _NUMERIC.match(cell):
                numeric[i] = False

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    return "\n".join([line(headers), *(line(row) for row in body)])


_NUMERIC: Final = re.compile(r"^[-+]?[0-9][0-9,]*(?:\.[0-9]+)?(?: ?%)?$")


def number(value: float | None, digits: int = 1) -> str:
    """A number for people: thousands separated, ``-`` for none."""
    if value is None:
        return "-"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def percent(value: float | None) -> str:
    """A ratio as a percentage with two decimals, ``-`` for none."""
    return "-" if value is None else f"{value * 100:.2f} %"


def age(seconds: float | None) -> str:
    """A duration for people: ``45s``, ``3h 02m``, ``2d 04h``."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return "in the future"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _format(r: Report) -> str:
    out = [
        f"alkana-logging report: {len(r.files)} file(s), {r.lines:,} lines "
        f"({r.non_json_lines:,} not JSON), now {_when(r.now)}"
    ]
    out += [f"  unreadable: {problem}" for problem in r.unreadable]
    out.append("")
    lat = r.latency_ms
    out.append(
        f"HTTP: {r.requests:,} requests, 5xx {percent(r.error_ratio)} ({r.errors:,}), "
        f"slow (> {number(r.slow_threshold_ms)} ms): {r.slow_requests:,}"
    )
    out.append(
        f"latency ms: p50 {number(lat['p50'])}  p95 {number(lat['p95'])}  p99 {number(lat['p99'])}"
    )
    if r.routes:
        out += [
            "",
            format_table(
                ("route", "requests", "5xx", "p50 ms", "p95 ms", "p99 ms", "slow"),
                (
                    (
                        route.route or "(none)",
                        f"{route.requests:,}",
                        percent(route.error_ratio),
                        number(route.p50_ms),
                        number(route.p95_ms),
                        number(route.p99_ms),
                        f"{route.slow:,}",
                    )
                    for route in r.routes
                ),
            ),
        ]
    out += ["", "levels: " + ("  ".join(f"{k} {v:,}" for k, v in r.levels.items()) or "-")]
    if r.top_exceptions:
        out += ["", "top exceptions:"]
        out += [f"  {count:>8,}  {name}" for name, count in r.top_exceptions]
    out += ["", f"ETL tables (stale: no success for {age(r.stale_after_s)}):"]
    if r.unreadable:
        out.append(
            f"  warning: {len(r.unreadable)} file(s) could not be read (above): a table's "
            "latest run may be missing"
        )
    implausible = sum(t.implausible_times for t in r.etl)
    if implausible:
        out.append(
            f"  {implausible} run(s) with an implausible time (milliseconds, a clock ahead) skipped"
        )
    if r.etl:
        out.append(
            format_table(
                (
                    "table",
                    "runs",
                    "failed",
                    "last status",
                    "last run",
                    "last success",
                    "age",
                    "stale",
                ),
                (
                    (
                        t.table,
                        f"{t.runs:,}",
                        f"{t.failures:,}",
                        t.last_status or "-",
                        _when(t.last_run_at),
                        _when(t.last_success_at),
                        age(t.last_success_age_s),
                        "STALE" if t.stale else "ok",
                    )
                    for t in r.etl
                ),
            )
        )
    else:
        out.append("  (no ETL runs)")
    if r.metrics:
        out += [
            "",
            "metrics (latest value of each metric event name; with several writers (host, "
            "pid), the largest of their latest values):",
        ]
        out.append(
            format_table(
                ("metric", "samples", "latest", "max", "at", "threshold", "alert"),
                (
                    (
                        m.metric,
                        f"{m.samples:,}",
                        number(m.latest),
                        number(m.max),
                        _when(m.latest_at),
                        number(m.threshold),
                        "HIGH" if m.above_threshold else "-" if m.threshold is None else "ok",
                    )
                    for m in r.metrics
                ),
            )
        )
    return "\n".join(out) + "\n"
