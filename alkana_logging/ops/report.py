"""The local report: the presets' numbers computed straight from JSON log files, without Loki.

The definitions are the presets' own (:mod:`alkana_logging.ops.presets`): an error is an
``http_request`` event with ``status_code >= 500``; a slow request has ``duration_ms`` above the
threshold; percentiles follow Loki's ``quantile_over_time`` (:func:`loki_quantile`); a line that
is not a JSON object is counted and skipped, as ``| json | __error__=""`` skips it; a value that
is not a number is left out of the numbers that need one, as ``| __error__=""`` after a numeric
filter or ``| unwrap`` leaves it out.

The files are found and read, and the ETL runs counted, by :mod:`alkana_logging.freshness`,
which the health check shares (the runtime's reading of its own log files back).

One difference is on purpose: Loki sees only what its window holds, so ``etl_stale`` forgets a
table that has not run for longer than its look-back (7 days); the report sees every table that
appears in the files, and calls it stale when its last success (if any) is older than
``stale_after`` before ``now``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import math
import multiprocessing
import os
import pickle
import re
import signal
import struct
import sys
import threading
import time
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any, Final, NamedTuple, NoReturn

import msgspec

from alkana_logging import fields as F
from alkana_logging.freshness import (
    DEFAULT_STALE_AFTER_S,
    GZIP_MAGIC,
    NOT_JSON,
    EtlRuns,
    TableReport,
    decode_wide,
    epoch_of,
    implausible_note,
    iso,
    log_files,
    number_of,
    table_reports,
)
from alkana_logging.ops.presets import (
    DB_CONNECTIONS_METRIC,
    DEFAULT_DB_CONNECTIONS_MAX,
    DEFAULT_SLOW_MS,
    LATENCY_QUANTILES,
    SERVER_ERROR_MIN,
    duration_text,
)

DEFAULT_TOP: Final = 10
#: As the DatabaseConnectionsHigh rule's range: a writer (host, pid) whose latest sample is
#: older than this before the metric's newest one has gone (a restarted worker).
METRIC_WINDOW_S: Final = 300.0
#: Metric thresholds the report flags, as the alert rules do (DatabaseConnectionsHigh).
DEFAULT_METRIC_THRESHOLDS: Final[Mapping[str, float]] = {
    DB_CONNECTIONS_METRIC: float(DEFAULT_DB_CONNECTIONS_MAX)
}


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
    # + 0.0: a zero is 0.0 whichever of 0.0 and -0.0 the sort put first
    return ordered[lower] * (1 - weight) + ordered[upper] * weight + 0.0


# -- finding and reading files --------------------------------------------------------------------


# -- accumulating ---------------------------------------------------------------------------------


#: The most samples sorted at once: a sorted chunk is a list of floats for a moment (32 bytes a
#: sample), kept as an array (8 bytes a sample).
_CHUNK: Final = 1 << 20


# Slots: a dataclass's defaults are class attributes, and CPython 3.12 and 3.13 do not specialise
# an instance attribute that shadows one (``stats.requests += 1`` on every request).
@dataclasses.dataclass(slots=True)
class _Route:
    requests: int = 0
    errors: int = 0
    slow: int = 0
    #: The durations, 8 bytes each (a list of floats takes 32).
    durations: array[float] = dataclasses.field(default_factory=lambda: array("d"))
    #: More durations, sorted already (by the worker process that read them), if any.
    runs: list[array[float]] | None = None


#: The most sorted runs the quantiles over all routes are selected from as they are (each step
#: of the selection bisects every run); the samples of shorter runs are sorted together first.
_RUNS: Final = 32


def _sorted_runs(values: array[float]) -> list[array[float]]:
    """``values`` as sorted arrays of at most :data:`_CHUNK` samples each."""
    return [
        array("d", sorted(values[start : start + _CHUNK]))
        for start in range(0, len(values), _CHUNK)
    ]


#: A worker sends the durations of a route with this many or more as sorted runs.
_SORTED_FROM: Final = 1 << 12


def _sort_durations(accs: Iterable[_Accumulator]) -> None:
    """Sort the durations of ``accs`` route by route (a worker does, before it sends its counts,
    so that the workers sort beside each other): each route's durations, from every one of
    ``accs``, go to the first of them that has the route, as sorted runs when there are
    :data:`_SORTED_FROM` or more (fewer: left to the parent, which sorts them with the other
    small routes' at once; a run for each of many small routes costs more to send than it
    saves)."""
    first: dict[str, _Route] = {}
    for acc in accs:
        for route, stats in acc.routes.items():
            keep = first.setdefault(route, stats)
            if keep is not stats:
                keep.durations.extend(stats.durations)
                stats.durations = array("d")
    for stats in first.values():
        if len(stats.durations) >= _SORTED_FROM:
            stats.runs = (stats.runs or []) + _sorted_runs(stats.durations)
            stats.durations = array("d")


def _kth(runs: Sequence[array[float]], k: int) -> float:
    """The ``k``-th smallest (from 0) of the samples of sorted ``runs``, without merging them:
    each step takes the middle of the widest window left as the pivot and narrows every
    window to one side of it (or finds the pivot is the answer)."""
    runs = [run for run in runs if len(run)]
    los = [0] * len(runs)
    his = [len(run) for run in runs]
    every = range(len(runs))
    while True:
        widest = max(every, key=lambda i: his[i] - los[i])
        pivot = runs[widest][(los[widest] + his[widest]) // 2]
        below = [bisect_left(runs[i], pivot, los[i], his[i]) for i in every]
        less = sum(below[i] - los[i] for i in every)
        if k < less:
            his = below
            continue
        upto = [bisect_right(runs[i], pivot, los[i], his[i]) for i in every]
        equal = sum(upto[i] - below[i] for i in every)
        if k < less + equal:
            return pivot
        k -= less + equal
        los = upto


def _run_quantiles(runs: Sequence[array[float]]) -> dict[str, float | None]:
    """:func:`loki_quantile` of the samples of sorted ``runs`` for each latency quantile."""
    n = sum(len(run) for run in runs)
    out: dict[str, float | None] = {}
    for name, q in LATENCY_QUANTILES.items():
        key = name.removeprefix("latency_")
        if not n:
            out[key] = None
            continue
        rank = q * (n - 1)
        lower = max(0, math.floor(rank))
        upper = min(n - 1, lower + 1)
        weight = rank - math.floor(rank)
        low = _kth(runs, lower)
        high = low if upper == lower else _kth(runs, upper)
        out[key] = low * (1 - weight) + high * weight + 0.0  # -0.0 is 0.0, as in loki_quantile
    return out


def _epoch_or(stamp: str, default: float) -> float:
    at = epoch_of(stamp)
    return default if at is None else at  # the epoch itself (0.0) is a time


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
        newest = epoch_of(self.latest_timestamp)
        values = [
            value
            for stamp, value in self.writers.values()
            if newest is None or _epoch_or(stamp, newest) >= newest - METRIC_WINDOW_S
        ]
        return (max(values) if values else self.latest), len(values)


class _Line(msgspec.Struct, gc=False):
    """The keys of a line that the report reads on every line; the decoder skips every other
    key without building it (most of a line: the message, the request id...). ``None``:
    absent or null, as ``dict.get`` gives. An ETL run or a metric line is decoded again whole
    (:data:`_OBJECT_DECODER`): they are a few in a hundred. The keys are the contract's
    (:mod:`alkana_logging.fields`); the attributes are named after them."""

    level: Any = msgspec.field(default=None, name=F.LEVEL)
    exception_type: Any = msgspec.field(default=None, name=F.EXCEPTION_TYPE)
    event: Any = msgspec.field(default=None, name=F.EVENT)
    route: Any = msgspec.field(default=None, name=F.ROUTE)
    status_code: Any = msgspec.field(default=None, name=F.STATUS_CODE)
    duration_ms: Any = msgspec.field(default=None, name=F.DURATION_MS)


_LINE_DECODER: Final = msgspec.json.Decoder(_Line)
#: A line the usual decoder refused is read again with a float beyond range (``1e400``) as
#: infinity, as the ETL freshness reads it (:func:`~alkana_logging.freshness.decode_wide`): in
#: a key the report reads it is then not a number, and the line is still a JSON line.
_WIDE_LINE_DECODER: Final = msgspec.json.Decoder(_Line, float_hook=float)
_OBJECT_DECODER: Final = msgspec.json.Decoder(dict[str, Any])
#: What the decoders raise for a line that is not a JSON object: not JSON, not an object, nested
#: too deep, not UTF-8 (and, for the usual decoder only, a float beyond range in a key read).
_NOT_A_LINE: Final = NOT_JSON


def _decoded_wide(raw: bytes) -> _Line | None:
    """A line the usual decoder refused, read with :data:`_WIDE_LINE_DECODER`; ``None`` when it
    is not a JSON object even so (nor UTF-8)."""
    try:
        record = _WIDE_LINE_DECODER.decode(raw)
        raw.decode()
    except _NOT_A_LINE:
        return None
    return record


def _decoded_whole(raw: bytes) -> dict[str, Any] | None:
    """An ETL run or a metric line, whole (it was read as a :class:`_Line` already). msgspec
    refuses a float beyond range (``1e400``) anywhere in the line, in the keys the first decode
    skipped too: then :func:`~alkana_logging.freshness.decode_wide` reads it, as infinity, as the
    ETL freshness does. None: not an object even so (the caller counts it as not JSON)."""
    try:
        return _OBJECT_DECODER.decode(raw)
    except _NOT_A_LINE:
        record = decode_wide(raw)
    return record if isinstance(record, dict) else None


#: Integers below this (in size) are exact enough as floats and never overflow one; a larger one
#: goes through ``number_of``.
_FLOAT_INT: Final = 1 << 64
#: The largest integer CPython compares inline (one 30-bit digit): a status above it (none is)
#: goes through ``number_of``, so the comparison on every request is the specialised one.
_SMALL_INT: Final = (1 << 30) - 1


@dataclasses.dataclass
class _Accumulator:
    slow_ms: float
    #: ETL run times more than MAX_CLOCK_SKEW_S after this are implausible.
    now: float | None = None
    lines: int = 0
    non_json: int = 0
    routes: dict[str, _Route] = dataclasses.field(default_factory=dict)
    metrics: dict[str, _Metric] = dataclasses.field(default_factory=dict)
    levels: dict[str, int] = dataclasses.field(default_factory=dict)
    exceptions: dict[str, int] = dataclasses.field(default_factory=dict)
    etl: EtlRuns = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.etl = EtlRuns(now=self.now)

    def add_lines(  # noqa: PLR0912, PLR0915 - one hot loop
        self, lines: Iterable[bytes], *, ascii: bool = False
    ) -> None:
        """Count every line. Written for speed: this loop is the report's time. A line is
        decoded into :class:`_Line`, which keeps only the keys the report reads (the others
        are skipped, not built); numbers of the common types are read inline, anything else
        goes the slow way (``number_of``). ``ascii``: the caller found every line ASCII
        (checked a piece at a time), so no line's text needs checking."""
        decode, whole, bad = _LINE_DECODER.decode, _decoded_whole, _NOT_A_LINE
        exceptions, routes = self.exceptions, self.routes
        slow_ms, etl_events = self.slow_ms, (F.EVENT_ETL_RUN_STARTED, F.EVENT_ETL_RUN_FINISHED)
        http, metric, server_error = F.EVENT_HTTP_REQUEST, F.EVENT_METRIC, SERVER_ERROR_MIN
        unparsed = non_json = 0
        # Every JSON line's level (so also how many there are), counted at the end in C
        # (Counter): a dict's get and set for each line cost more. Anything not a non-empty
        # string is left out then.
        seen_levels: list[Any] = []
        try:
            for raw in lines:
                try:
                    record = decode(raw)
                    if not ascii and not raw.isascii():
                        # A key the report skips is not checked as text: JSON is UTF-8.
                        raw.decode()
                except bad:
                    wide = _decoded_wide(raw)
                    if wide is None:
                        if raw.strip():
                            unparsed += 1
                        continue
                    record = wide
                seen_levels.append(record.level)
                exception = record.exception_type
                if exception is not None and exception.__class__ is str and exception:
                    exceptions[exception] = exceptions.get(exception, 0) + 1
                event = record.event
                if event is None:
                    continue
                if event == http:
                    route = record.route
                    if route.__class__ is not str:
                        route = ""
                    stats = routes.get(route)
                    if stats is None:
                        stats = routes[route] = _Route()
                    stats.requests += 1
                    status = record.status_code
                    if status.__class__ is not int or status > _SMALL_INT:
                        status = number_of(status)
                    if status is not None and status >= server_error:
                        stats.errors += 1
                    duration = record.duration_ms
                    if duration.__class__ is float and duration - duration == 0.0:
                        pass
                    elif duration.__class__ is int and -_FLOAT_INT < duration < _FLOAT_INT:
                        duration = float(duration)
                    else:
                        duration = number_of(duration)
                        if duration is None:
                            continue
                    stats.durations.append(duration)
                    if duration > slow_ms:
                        stats.slow += 1
                elif event in etl_events or event == metric:
                    whole_record = whole(raw)
                    if whole_record is None:  # valid for the first decode, not whole: say so
                        non_json += 1
                    elif event == metric:
                        self._metric(whole_record)
                    else:
                        self.etl.record(event, whole_record)
        finally:  # a read error midway: what was read counts
            self.lines += len(seen_levels) + unparsed
            self.non_json += non_json + unparsed
            self._count_levels(seen_levels)

    def _count_levels(self, seen: list[Any]) -> None:
        levels = self.levels
        try:
            counted = Counter(seen)
        except TypeError:  # a level that is a list or an object: not a level, and not hashable
            counted = Counter(level for level in seen if level.__class__ is str)
        for level, n in counted.items():
            if level.__class__ is str and level:
                levels[level] = levels.get(level, 0) + n

    def _metric(self, record: Mapping[str, Any]) -> None:
        # As metric_gauge: the latest value of each metric name; not a number: left out.
        name = record.get(F.METRIC)
        value = number_of(record.get(F.VALUE))
        if not isinstance(name, str) or not name or value is None:
            return
        timestamp = record.get(F.TIMESTAMP)
        timestamp = timestamp if isinstance(timestamp, str) else ""
        stats = self.metrics.get(name)
        if stats is None:
            stats = self.metrics[name] = _Metric(timestamp, value, value)
        stats.samples += 1
        if timestamp >= stats.latest_timestamp:
            stats.latest, stats.latest_timestamp = value, timestamp
        stats.maximum = max(stats.maximum, value)
        writer = (str(record.get(F.HOST, "")), str(record.get(F.PID, "")))
        seen = stats.writers.get(writer)
        if seen is None or timestamp >= seen[0]:
            stats.writers[writer] = (timestamp, value)

    def merge(self, later: _Accumulator) -> None:
        """Add what ``later`` counted, as if its lines had been read after these."""
        self.lines += later.lines
        self.non_json += later.non_json
        for counts, more in ((self.levels, later.levels), (self.exceptions, later.exceptions)):
            for key, n in more.items():
                counts[key] = counts.get(key, 0) + n
        for route, other in later.routes.items():
            stats = self.routes.get(route)
            if stats is None:
                self.routes[route] = other
                continue
            stats.requests += other.requests
            stats.errors += other.errors
            stats.slow += other.slow
            stats.durations.extend(other.durations)
            if other.runs:
                stats.runs = (stats.runs or []) + other.runs
        for name, gauge in later.metrics.items():
            mine = self.metrics.get(name)
            if mine is None:
                self.metrics[name] = gauge
                continue
            mine.samples += gauge.samples
            mine.maximum = max(mine.maximum, gauge.maximum)
            if gauge.latest_timestamp >= mine.latest_timestamp:
                mine.latest, mine.latest_timestamp = gauge.latest, gauge.latest_timestamp
            for writer, (stamp, value) in gauge.writers.items():
                seen = mine.writers.get(writer)
                if seen is None or stamp >= seen[0]:
                    mine.writers[writer] = (stamp, value)
        self.etl.merge(later.etl)


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
    workers: int | None = None,
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
        workers: at most how many processes read the files (ranges of 16 MiB of a plain
            file, a ``.gz`` file whole; each worker takes the next when it is done with the
            last). By default one a core when there are 32 MiB or more
            to read, else this process alone. Workers are forked, with every file opened
            first (a file rotated away meanwhile is read as it was), and only from a process
            with one thread, ``SIGCHLD`` at its default and not a daemonic
            ``multiprocessing`` worker; otherwise, when a fork fails or a worker dies, this
            process reads. A worker ignores Ctrl-C and dies with this process; Ctrl-C (any
            exception) here kills and reaps the workers and is raised. The numbers are the
            same whatever the count.

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
    acc, unreadable = _read_all(files, slow_ms, max(now, time.time()), workers)
    routes, latency = _route_reports(acc)
    requests = sum(r.requests for r in routes)
    errors = sum(r.errors for r in routes)
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
        latency_ms=latency,
        slow_threshold_ms=slow_ms,
        slow_requests=sum(r.slow for r in routes),
        routes=tuple(routes),
        top_exceptions=tuple(exceptions),
        levels=levels,
        stale_after_s=stale_after_s,
        etl=table_reports(acc.etl.tables, now, stale_after_s),
        metrics=_metric_reports(acc, metric_thresholds),
    )


#: A plain log file is read in ranges of this many bytes (a range is one worker's task).
_RANGE_BYTES = 16 << 20


class _Task(NamedTuple):
    """The lines of ``path`` that begin at a byte in ``[start, end)`` (``end`` ``None``: to the
    end of the file); ``stream``: the whole file, unpacked when it is gzip.
    ``fd``: the file, opened once by the process that made the tasks (-1: open ``path``): a
    worker forked from it reads the file that was there then, even if it is rotated away."""

    path: Path
    start: int = 0
    end: int | None = None
    stream: bool = True
    fd: int = -1


def _input_bytes(files: Iterable[Path]) -> tuple[int, int]:
    """How many bytes of the plain (not gzip) files would be read in ranges, and how many
    there are to read in all (a gzip file counting :data:`_GZIP_RATIO` times its size)."""
    ranged = weighted = 0
    for path in files:
        try:
            with path.open("rb") as probe:
                compressed = probe.read(2) == GZIP_MAGIC
                size = os.fstat(probe.fileno()).st_size
        except OSError:
            continue
        if compressed:
            weighted += size * _GZIP_RATIO
            continue
        weighted += size
        if size > _RANGE_BYTES:
            ranged += size
    return ranged, weighted


def _open_tasks(files: Iterable[Path], range_bytes: int, fds: list[int]) -> list[_Task]:
    """The files as tasks on descriptors opened now (appended to ``fds`` for the caller to
    close): each plain file in ranges of ``range_bytes``, each other file whole."""
    tasks: list[_Task] = []
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            tasks.append(_Task(path))  # reading it again gives the error, reported as usual
            continue
        fds.append(fd)
        size = os.fstat(fd).st_size
        if os.pread(fd, 2, 0) == GZIP_MAGIC or size <= range_bytes:
            tasks.append(_Task(path, fd=fd))
            continue
        starts = range(0, size, range_bytes)
        tasks += [_Task(path, s, s + range_bytes, stream=False, fd=fd) for s in starts[:-1]]
        tasks.append(_Task(path, starts[-1], None, stream=False, fd=fd))  # the last: to the end
    return tasks


_STEP: Final = 1 << 16


def _pread(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` (fewer at the end of the file)."""
    parts = []
    while size > 0:
        chunk = os.pread(fd, min(size, _RANGE_BYTES), offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
        size -= len(chunk)
    return b"".join(parts)


def _through_newline(fd: int, offset: int, limit: int | None = None) -> int:
    """How many bytes from ``offset`` up to and with the next newline (or to the end of the
    file, or to ``offset + limit``), read a chunk at a time and not kept."""
    length = 0
    while (limit is None or length < limit) and (chunk := os.pread(fd, _STEP, offset + length)):
        end = chunk.find(b"\n")
        if end >= 0:
            return length + end + 1
        length += len(chunk)
    return length


#: A file (a range of one) is read this many bytes at a time, and each piece's lines counted
#: before the next is read: they are still in the processor's cache (reading a whole 16 MiB
#: range first cost a fifth more).
_PIECE: Final = 1 << 20


def _pieces(
    read: Callable[[int], bytes], complete: Callable[[], bytes] | None = None
) -> Iterator[tuple[list[bytes], bool]]:
    """The lines that ``read`` gives, a piece of at most :data:`_PIECE` bytes at a time (a line
    longer than a piece: in the piece it ends in), each with whether all of them are ASCII.
    A line keeps its newline (the last one of a file may have none): JSON reads it as
    whitespace. ``complete``: called when ``read`` has no more and a line has begun, for the
    rest of it."""
    carry: list[bytes] = []  # the start of a line that the pieces read so far did not end
    while piece := read(_PIECE):
        if b"\n" not in piece:
            carry.append(piece)
            continue
        # BytesIO finds each newline with memchr; bytes.split(b"\n") tests every byte in a
        # loop of its own: a MiB of lines 0.43 ms against 0.07 ms on 3.11, 0.70 against 0.09
        # on 3.13.
        lines = BytesIO(piece).readlines()
        ascii = piece.isascii()
        if carry:
            carry.append(lines[0])
            lines[0] = b"".join(carry)
            ascii = ascii and lines[0].isascii()
            carry = []
        if not lines[-1].endswith(b"\n"):
            carry.append(lines.pop())
        yield lines, ascii
    if complete is not None and any(carry):
        carry.append(complete())
    tail = b"".join(carry)
    if tail:
        yield [tail], tail.isascii()


def _range_pieces(task: _Task) -> Iterator[tuple[list[bytes], bool]]:
    """The lines of a range of a plain file (see :class:`_Task`), as :func:`_pieces` gives
    them: the line that begins before the range is the range before's, the last line that
    begins in it is read whole."""
    fd, offset, end = task.fd, task.start, task.end
    if offset:  # the line that began before the range is the range before's
        skipped = _through_newline(fd, offset - 1, None if end is None else end - offset + 1)
        offset += skipped - 1

    def read(size: int) -> bytes:
        nonlocal offset
        if end is not None:
            size = min(size, end - offset)
            if size <= 0:
                return b""
        piece = os.pread(fd, size, offset)
        offset += len(piece)
        return piece

    def complete() -> bytes:  # the last line that begins in the range, whole
        return _pread(fd, _through_newline(fd, offset), offset)

    yield from _pieces(read, None if end is None else complete)


def _stream_pieces(task: _Task) -> Iterator[tuple[list[bytes], bool]]:
    """The lines of a whole file (from ``task.fd``, else opened now), unpacked when it is gzip,
    as :func:`_pieces` gives them."""
    with open(task.path, "rb") if task.fd < 0 else os.fdopen(os.dup(task.fd), "rb") as stream:
        stream.seek(0)
        compressed = stream.read(2) == GZIP_MAGIC
        stream.seek(0)
        if not compressed:
            yield from _pieces(stream.read)
            return
        with gzip.open(stream, "rb") as unpacked:
            # read1: what was unpacked before a truncated end is given before the error is raised
            yield from _pieces(unpacked.read1)


def _scan(task: _Task, slow_ms: float, now: float | None) -> tuple[_Accumulator, str | None]:
    """One task's counts, and the error that stopped its read (``path: error``), if any."""
    acc = _Accumulator(slow_ms=slow_ms, now=now)
    try:
        for lines, ascii in _stream_pieces(task) if task.stream else _range_pieces(task):
            acc.add_lines(lines, ascii=ascii)
    except (OSError, EOFError, zlib.error) as err:
        # A file being compressed by logrotate right now, or unreadable: say so, go on.
        return acc, f"{task.path}: {err}"
    return acc, None


def _threads() -> int:
    """How many threads this process runs: the system's count where it tells (threads that C
    libraries started too), else Python's."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _can_fork() -> bool:
    """Whether worker processes can be forked: a system that forks; one thread (forking a
    threaded process can deadlock the child); not a daemonic ``multiprocessing`` worker (it may
    not have children); and ``SIGCHLD`` at its default (ignored, or with a handler, a worker can
    be reaped by someone else and its PID reused before this process signals it)."""
    return (
        hasattr(os, "fork")
        and _threads() == 1
        and not multiprocessing.current_process().daemon
        and signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL
    )


#: With less than this to read (a gzip file counts as :data:`_GZIP_RATIO` times its size), one
#: process reads: starting workers would cost more than it saves.
_WORKERS_FROM: Final = 32 << 20
_GZIP_RATIO: Final = 8


def _cores() -> int:
    sched_getaffinity = getattr(os, "sched_getaffinity", None)
    if sched_getaffinity is not None:
        return len(sched_getaffinity(0))
    return os.cpu_count() or 1


def _workers(requested: int | None, tasks: int, input_bytes: int) -> int:
    """How many processes read: ``requested``, else one a core when there is enough to read;
    never more than there are tasks."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"workers: got {requested!r}; expected an integer >= 1")
        return min(requested, tasks)
    if input_bytes < _WORKERS_FROM:
        return 1
    return max(1, min(_cores(), tasks))


class _Worker(NamedTuple):
    pid: int
    #: The read end of the pipe the worker sends its counts on.
    fd: int


_HEADER: Final = struct.Struct("<Q")
#: One entry of the task queue: the tasks ``[start, stop)``, taken by one worker at a time.
_ENTRY: Final = struct.Struct("<II")
#: The queue's entries fit one page, which a pipe always holds (fewer tasks an entry, the
#: finer the balance): the whole queue is written before the first worker starts.
_QUEUE_ENTRIES: Final = 4096 // _ENTRY.size
_PR_SET_PDEATHSIG: Final = 1


def _on_parent_death() -> Callable[[], None]:
    """What a worker calls first to be killed when this process dies (Linux's
    ``PR_SET_PDEATHSIG``); elsewhere nothing: a worker then checks its parent between tasks."""
    if not sys.platform.startswith("linux"):
        return lambda: None
    import ctypes  # only where workers are forked

    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return die_with_parent


def _in_workers(
    tasks: list[_Task], slow_ms: float, now: float | None, count: int
) -> list[tuple[_Accumulator, str | None]] | None:
    """Each task's counts, read by ``count`` forked worker processes (each takes the next
    tasks from a queue when it is done with the last, so a worker slowed by the machine's other
    work takes fewer; the counts sent back on a pipe); ``None`` when a worker could not be
    started or did not send all its counts (the caller then reads in this process). Any
    exception here (Ctrl-C) kills the workers by PID, reaps them and is raised.

    Each worker ignores ``SIGINT`` (Ctrl-C is this process's to handle: the terminal sends it
    to the whole group) and is killed by the system when this process dies."""
    parent = os.getpid()
    die_with_parent = _on_parent_death()
    workers: list[_Worker] = []
    results: list[tuple[_Accumulator, str | None] | None] = [None] * len(tasks)
    complete = False
    queue = -1
    try:
        # Made with every signal waiting, as the workers' pipes are: an interrupt (Ctrl-C) is
        # raised only once the descriptor is kept where the finally below closes it.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            queue = _task_queue(len(tasks))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for _ in range(count):
            # Every signal waits until the worker is forked and inside its try (and counted): a
            # handler that raises (Ctrl-C, an application's SIGTERM handler) must never unwind
            # a worker into the caller's code, nor leave a worker the parent does not know.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            try:
                read_fd, write_fd = os.pipe()
                try:
                    pid = os.fork()
                except BaseException:
                    os.close(read_fd)
                    os.close(write_fd)
                    raise
                if pid == 0:  # the worker: never returns
                    _work(
                        tasks,
                        queue,
                        slow_ms,
                        now,
                        write_fd,
                        parent,
                        [w.fd for w in workers] + [read_fd],
                        blocked,
                        die_with_parent,
                    )
                workers.append(_Worker(pid, read_fd))
                os.close(write_fd)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for worker in workers:
            sent = _receive(worker.fd)
            if sent is None:
                return None
            for i, result in sent:
                results[i] = result
        complete = all(result is not None for result in results)
    except OSError:  # no process or pipe could be made (limits, a sandbox)
        return None
    finally:
        if queue >= 0:
            os.close(queue)
        _end(workers, kill=not complete)
    return [result for result in results if result is not None]


def _task_queue(tasks: int) -> int:
    """The read end of a pipe that holds the task indices ``0..tasks-1`` in order, in at most
    :data:`_QUEUE_ENTRIES` entries of consecutive tasks, and nothing more (its write end is
    closed: a worker that finds it empty is done). A read of one entry takes it whole: the
    kernel takes a read from a pipe under its lock, and every entry is there before a worker
    starts."""
    per_entry = -(-tasks // _QUEUE_ENTRIES)  # one task an entry up to 512 tasks (8 GiB)
    data = b"".join(
        _ENTRY.pack(start, min(start + per_entry, tasks)) for start in range(0, tasks, per_entry)
    )
    read_fd, write_fd = os.pipe()
    try:
        written = os.write(write_fd, data)  # one page at most: it fits in any pipe at once
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    if written != len(data):  # never seen: a pipe smaller than a page
        os.close(read_fd)
        raise OSError(f"the task queue took {written} of {len(data)} bytes")
    return read_fd


def _taken(queue: int) -> range:
    """The next tasks from the queue (:func:`_task_queue`), empty when there are none left."""
    entry = os.read(queue, _ENTRY.size)
    if len(entry) < _ENTRY.size:
        return range(0)
    return range(*_ENTRY.unpack(entry))


def _work(
    tasks: list[_Task],
    queue: int,
    slow_ms: float,
    now: float | None,
    write_fd: int,
    parent: int,
    inherited: list[int],
    mask: set[int | signal.Signals],
    die_with_parent: Callable[[], None],
) -> NoReturn:
    """A worker's life: read its tasks, send the counts, exit (never returns, never runs the
    caller's code again: ``os._exit`` whatever happens)."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        die_with_parent()
        for fd in inherited:
            os.close(fd)
        counted: list[tuple[int, tuple[_Accumulator, str | None]]] = []
        while mine := _taken(queue):
            if os.getppid() != parent:  # the parent died before the system was told, or no Linux
                break
            counted.extend((index, _scan(tasks[index], slow_ms, now)) for index in mine)
        else:
            _sort_durations(acc for _, (acc, _) in counted)
            payload = pickle.dumps(counted, protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_fd, "wb") as out:
                out.write(_HEADER.pack(len(payload)))
                out.write(payload)
            code = 0
    finally:
        os._exit(code)


def _receive(fd: int) -> list[tuple[int, tuple[_Accumulator, str | None]]] | None:
    """A worker's counts from its pipe, ``None`` when it died before sending them all."""
    with os.fdopen(fd, "rb", closefd=False) as stream:
        header = stream.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack(header)
        payload = stream.read(size)
    if len(payload) < size:
        return None
    sent: list[tuple[int, tuple[_Accumulator, str | None]]] = pickle.loads(payload)  # noqa: S301 - our own worker's
    return sent


def _end(workers: list[_Worker], *, kill: bool) -> None:
    """Close the workers' pipes and reap them; killed first (``SIGKILL``) unless they all sent
    their counts. Their PIDs cannot have been reused: they are reaped only here."""
    for worker in workers:
        os.close(worker.fd)
    if kill:
        _kill(workers)
    interrupted: BaseException | None = None
    for worker in workers:
        while True:
            try:
                os.waitpid(worker.pid, 0)
            except InterruptedError:
                continue
            except ChildProcessError:
                pass
            except BaseException as exc:  # noqa: BLE001 - raised below, once all are reaped
                # Ctrl-C while waiting: the workers are killed and still reaped (none is left
                # a zombie), then it is raised.
                if interrupted is None:
                    interrupted = exc
                    _kill(workers)
                continue
            break
    if interrupted is not None:
        raise interrupted


def _kill(workers: list[_Worker]) -> None:
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)


def _read_all(
    files: Iterable[Path],
    slow_ms: float,
    now: float | None,
    workers: int | None,
) -> tuple[_Accumulator, list[str]]:
    """Every line of ``files`` counted, by worker processes when there is enough to read; the
    files that could not be read (in full). The tasks' counts are merged in file order."""
    files = list(files)
    ranged, weighted = _input_bytes(files)
    count = _workers(workers, max(1, ranged // _RANGE_BYTES + len(files)), weighted)
    fds: list[int] = []
    try:
        results = None
        if count > 1 and _can_fork():
            tasks = _open_tasks(files, _RANGE_BYTES, fds)
            results = _in_workers(tasks, slow_ms, now, min(count, len(tasks)))
        if results is None:  # one process (or the workers could not finish): files streamed
            while fds:  # each closed once, whatever interrupts the loop
                os.close(fds.pop())
            tasks = [_Task(path) for path in files]
            results = [_scan(task, slow_ms, now) for task in tasks]
    finally:
        while fds:
            os.close(fds.pop())
    total = _Accumulator(slow_ms=slow_ms, now=now)
    unreadable: dict[Path, str] = {}
    for task, (acc, error) in zip(tasks, results, strict=True):
        total.merge(acc)
        if error is not None:
            unreadable.setdefault(task.path, error)
    return total, list(unreadable.values())


def _route_reports(acc: _Accumulator) -> tuple[list[RouteReport], dict[str, float | None]]:
    """One report per route, busiest first, and the latency quantiles over all routes.

    Each route's durations not sorted yet (by a worker) are sorted in chunks of at most
    :data:`_CHUNK` and its quantiles selected from its sorted runs; the quantiles over all
    routes are selected from every route's runs (past the :data:`_RUNS` longest, the samples of
    the others first gathered into shared chunks), so no list of all the durations is ever
    made.
    """
    routes = []
    every: list[array[float]] = []
    for route, stats in acc.routes.items():
        runs = (stats.runs or []) + _sorted_runs(stats.durations)
        stats.durations, stats.runs = array("d"), None
        q = _run_quantiles(runs)
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
        every += runs
    routes.sort(key=lambda r: (-r.requests, r.route))
    every.sort(key=len, reverse=True)
    small = array("d")
    for run in every[_RUNS:]:
        small.extend(run)
    return routes, _run_quantiles(every[:_RUNS] + _sorted_runs(small))


def _metric_reports(acc: _Accumulator, thresholds: Mapping[str, float]) -> tuple[MetricReport, ...]:
    metrics = []
    for name, gauge in sorted(acc.metrics.items()):
        threshold = thresholds.get(name)
        current, writers = gauge.current()
        metrics.append(
            MetricReport(
                metric=name,
                samples=gauge.samples,
                latest=current,
                latest_at=epoch_of(gauge.latest_timestamp),
                max=gauge.maximum,
                threshold=threshold,
                above_threshold=threshold is not None and current > threshold,
                writers=writers,
            )
        )
    return tuple(metrics)


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


def _threshold(seconds: float) -> str:
    """A threshold as ``--stale-after`` and the presets write it (``25h``, ``90m``)."""
    try:
        return duration_text(seconds)
    except ValueError:  # not a whole number of milliseconds
        return f"{seconds:g}s"


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
    out += ["", f"ETL tables (stale: no success for {_threshold(r.stale_after_s)}):"]
    if r.unreadable:
        out.append(
            f"  warning: {len(r.unreadable)} file(s) could not be read (above): a table's "
            "latest run may be missing"
        )
    implausible = implausible_note(sum(t.implausible_times for t in r.etl))
    if implausible:
        out.append(f"  {implausible}")
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
