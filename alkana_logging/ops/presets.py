"""LogQL presets: every query over the contract's lines, defined once.

Each :class:`Preset` has a name, a description, its parameters (the stream selector labels
``job``/``app``/``env``/``host``, the range, thresholds, ...) and a function that renders it to
LogQL. The Loki ruler rules, the Grafana dashboard and the ``query`` command take their queries
from here; the local ``report`` computes the same numbers from log files with the same
definitions (5xx over all ``http_request`` events, Loki's ``quantile_over_time``).

How the queries are written, and why:

- The stream selector uses the static labels only (:data:`fields.STREAM_LABELS`); ``app``,
  ``env`` and ``host`` are left out when not given.
- A line filter (``|= "http_request"``) comes before ``| json``: Loki checks it on the raw line
  and parses only the lines that pass, which is its advice for speed.
- ``| __error__=""`` follows ``| json`` (a line that is not JSON is dropped, not counted), each
  numeric label filter (a value that is not a number is dropped rather than failing the query)
  and ``| unwrap`` (a value that is not a number is dropped).
- ``count_over_time`` and ``rate`` take no ``by``: they are wrapped in ``sum by (...)``.
- Every unwrapped range aggregation has an explicit ``by (...)`` (``by ()`` for one series);
  without it Loki keeps every label of every line, ``request_id`` included, and a percentile
  becomes one series per request.
- Ratios are written ``(errors or total * 0) / total`` so that a route without errors reads 0
  instead of having no value at all.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Final, Literal

from alkana_logging import fields as F
from alkana_logging.exceptions import AlkanaLoggingError
from alkana_logging.settings import DEFAULT_JOB

Kind = Literal["instant", "range", "logs"]
ParamType = Literal["label", "duration", "number", "count", "labels", "text"]

#: ``instant``: one value per series (``/query``); ``range``: a series over time
#: (``/query_range``); ``logs``: log lines (``/query_range`` returning streams).
KINDS: Final[tuple[Kind, ...]] = ("instant", "range", "logs")

#: Loki's ``quantile_over_time`` ranks (see :func:`alkana_logging.ops.report.loki_quantile`).
LATENCY_QUANTILES: Final = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}

#: The status codes counted as errors: ``status_code >= 500``.
SERVER_ERROR_MIN: Final = 500
#: Default threshold of a slow request, in milliseconds.
DEFAULT_SLOW_MS: Final = 2000
#: Default look-back of the ETL freshness queries, and the default age of a stale table.
DEFAULT_ETL_LOOKBACK: Final = f"{F.ETL_LOOKBACK_DAYS}d"
DEFAULT_STALE_AFTER: Final = f"{F.ETL_STALE_AFTER_HOURS}h"
#: The ``metric`` event of the database pool's active connections, and the alert's threshold.
DB_CONNECTIONS_METRIC: Final = "db_connections_active"
DEFAULT_DB_CONNECTIONS_MAX: Final = 80
#: What tells the writers of a metric apart (each worker process has its own pool).
METRIC_WRITER: Final = (F.HOST, F.PID)

_DURATION = re.compile(r"^(?:[0-9]+(?:ms|s|m|h|d|w|y))+$")
#: Grafana's own interval variables, replaced by Grafana before the query reaches Loki.
_GRAFANA_INTERVAL = re.compile(r"^\$(?:__auto|__interval|__rate_interval|__range)$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PresetError(AlkanaLoggingError, ValueError):
    """An unknown preset, an unknown parameter, or a parameter value that is not accepted."""


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of a preset.

    Attributes:
        name: the parameter's name (``--param name=value``).
        description: what it changes.
        default: the value used when none is given; ``None`` leaves the part out of the query.
        type: how the value is checked and written into LogQL.
    """

    name: str
    description: str
    default: str | None
    type: ParamType


Values = Mapping[str, str | None]


@dataclasses.dataclass(frozen=True)
class Preset:
    """One query, defined once.

    Attributes:
        name: a stable machine name (``error_ratio``).
        description: one sentence for people.
        kind: ``instant`` (a value per series), ``range`` (series over time) or ``logs``.
        unit: what a value is (``ratio``, ``ms``, ``req/s``, ``epoch_s``, ...).
        params: the parameters, each with its default.
        build: renders checked parameter values to LogQL (use :meth:`render`).
    """

    name: str
    description: str
    kind: Kind
    unit: str
    params: tuple[Param, ...]
    build: Callable[[Values], str] = dataclasses.field(repr=False, compare=False)

    def param(self, name: str) -> Param:
        """The parameter called ``name``.

        Raises:
            PresetError: the preset has no such parameter.
        """
        for param in self.params:
            if param.name == name:
                return param
        raise PresetError(
            f"preset {self.name!r} has no parameter {name!r}; "
            f"its parameters: {', '.join(p.name for p in self.params)}"
        )

    def defaults(self) -> dict[str, str | None]:
        """Every parameter with its default value."""
        return {param.name: param.default for param in self.params}

    def resolve(
        self, values: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, str | None]:
        """Check the given values and fill in the defaults.

        Args:
            values: parameter values by name (strings from the command line, or numbers).
            **kwargs: more values by name; ``None`` means "not given" (the default applies).

        Returns:
            Every parameter with its checked value as it is written into LogQL.

        Raises:
            PresetError: a name is not a parameter of this preset, or a value is not accepted.
        """
        given = {**(values or {}), **kwargs}
        resolved = self.defaults()
        for name, value in given.items():
            param = self.param(name)
            if value is None:
                continue
            resolved[name] = _check(self.name, param, value)
        return resolved

    def render(self, values: Mapping[str, Any] | None = None, **kwargs: Any) -> str:
        """The LogQL of this preset with the given parameters (defaults for the others).

        Raises:
            PresetError: see :meth:`resolve`.
        """
        return self.build(self.resolve(values, **kwargs))

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description: name, description, kind, unit, params, default LogQL."""
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "unit": self.unit,
            "params": [
                {"name": p.name, "default": p.default, "description": p.description}
                for p in self.params
            ],
            "logql": self.render(),
        }


# -- checking and quoting -------------------------------------------------------------------------


def logql_string(text: str) -> str:
    """``text`` as a double-quoted LogQL string (Go's quoting rules, which JSON's escapes meet)."""
    return json.dumps(text, ensure_ascii=False)


def _number_text(number: float) -> str:
    if number == int(number):
        return str(int(number))
    # Decimal keeps 0.00001 from becoming 1e-05, which not every LogQL parser accepts.
    return format(Decimal(repr(number)), "f")


def _check(preset: str, param: Param, value: Any) -> str:
    where = f"preset {preset!r}, parameter {param.name!r}"
    if param.type in ("label", "text"):
        if not isinstance(value, str) or not value:
            raise PresetError(f"{where}: got {value!r}; expected a non-empty string")
        return value
    if param.type == "duration":
        text = str(value).strip()
        if _DURATION.match(text) or _GRAFANA_INTERVAL.match(text):
            return text
        raise PresetError(
            f"{where}: got {value!r}; expected a LogQL duration such as 30s, 5m, 1h30m, 7d "
            "(or a Grafana interval variable such as $__auto)"
        )
    if param.type == "labels":
        text = str(value)
        names = [part.strip() for part in text.split(",") if part.strip()]
        bad = [name for name in names if not _LABEL_NAME.match(name)]
        if bad:
            raise PresetError(
                f"{where}: got {value!r}; expected comma-separated label names "
                f"(letters, digits, _), not {', '.join(map(repr, bad))}"
            )
        return ", ".join(names)
    number = _as_number(where, value)
    if param.type == "count":
        if number != int(number) or number < 1:
            raise PresetError(f"{where}: got {value!r}; expected a whole number >= 1")
        return str(int(number))
    if number < 0:
        raise PresetError(f"{where}: got {value!r}; expected a number >= 0")
    return _number_text(number)


def _as_number(where: str, value: Any) -> float:
    if isinstance(value, bool):
        raise PresetError(f"{where}: got {value!r}; expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PresetError(f"{where}: got {value!r}; expected a number") from None
    if not math.isfinite(number):
        raise PresetError(f"{where}: got {value!r}; expected a finite number")
    return number


# -- building blocks ------------------------------------------------------------------------------

#: Loki's own label for a line that a parser or a label filter could not handle.
_NO_ERROR: Final = '__error__=""'


def selector(values: Values) -> str:
    """The stream selector: the static labels that have a value, in the contract's order."""
    matchers = [
        f"{label}={logql_string(value)}"
        for label in F.STREAM_LABELS
        if (value := values.get(label)) is not None
    ]
    return "{" + ", ".join(matchers) + "}"


def _pipeline(values: Values, line_filter: str | None, stages: Iterable[str]) -> str:
    parts = [selector(values)]
    if line_filter is not None:
        parts.append(line_filter)
    parts += ["| json", f"| {_NO_ERROR}"]
    parts += [f"| {stage}" for stage in stages]
    return " ".join(parts)


def _contains(text: str) -> str:
    return f"|= {logql_string(text)}"


def _event(values: Values, event: str, *stages: str) -> str:
    """Lines of one metrics-as-logs event: a line filter on its name, then the exact match."""
    return _pipeline(values, _contains(event), (f"{F.EVENT}={logql_string(event)}", *stages))


def _http(values: Values, *stages: str) -> str:
    return _event(values, F.EVENT_HTTP_REQUEST, *stages)


def _finished(values: Values, *stages: str) -> str:
    return _event(values, F.EVENT_ETL_RUN_FINISHED, *stages)


def _range(values: Values, key: str = "range") -> str:
    window = f"[{values[key]}]"
    offset = values.get("offset")
    return f"{window} offset {offset}" if offset else window


def _sum(labels: str | None, inner: str) -> str:
    return f"sum by ({labels}) ({inner})" if labels else f"sum({inner})"


def _unwrap(field: str) -> tuple[str, str]:
    return (f"unwrap {field}", _NO_ERROR)


def _server_errors() -> tuple[str, str]:
    return (f"{F.STATUS_CODE} >= {SERVER_ERROR_MIN}", _NO_ERROR)


def _status(status: str) -> str:
    return f"{F.STATUS}={logql_string(status)}"


def _error_levels() -> str:
    return "|".join(map(re.escape, (F.ERROR, F.CRITICAL)))


# -- parameters -----------------------------------------------------------------------------------

_SELECTOR_DEFAULTS: Final[Mapping[str, str | None]] = {F.LABEL_JOB: DEFAULT_JOB}

SELECTOR_PARAMS: Final = tuple(
    Param(
        label,
        f"stream selector label {label!r}"
        + ("" if label in _SELECTOR_DEFAULTS else " (left out when not given)"),
        _SELECTOR_DEFAULTS.get(label),
        "label",
    )
    for label in F.STREAM_LABELS
)


def _window(default: str) -> Param:
    return Param("range", "the window each value is computed over", default, "duration")


def _by(default: str) -> Param:
    return Param("by", "labels to group by, comma-separated (empty: one series)", default, "labels")


def _params(*extra: Param) -> tuple[Param, ...]:
    return (*SELECTOR_PARAMS, *extra)


# -- the presets ----------------------------------------------------------------------------------


def _request_rate(v: Values) -> str:
    return _sum(v["by"], f"rate({_http(v)} {_range(v)})")


def _error_ratio(v: Values) -> str:
    by = v.get("by")
    errors = _sum(by, f"count_over_time({_http(v, *_server_errors())} {_range(v)})")
    total = _sum(by, f"count_over_time({_http(v)} {_range(v)})")
    return f"({errors} or {total} * 0) / {total}"


def _latency(quantile: float) -> Callable[[Values], str]:
    def build(v: Values) -> str:
        return (
            f"quantile_over_time({_number_text(quantile)}, "
            f"{_http(v, *_unwrap(F.DURATION_MS))} {_range(v)}) by ({v['by'] or ''})"
        )

    return build


def _slow_requests(v: Values) -> str:
    slow = (f"{F.DURATION_MS} > {v['threshold_ms']}", _NO_ERROR)
    return _sum(v["by"], f"count_over_time({_http(v, *slow)} {_range(v)})")


def _errors_by_route(v: Values) -> str:
    return _sum(v["by"], f"count_over_time({_http(v, *_server_errors())} {_range(v)})")


def _top_exceptions(v: Values) -> str:
    lines = _pipeline(v, _contains(F.EXCEPTION_TYPE), (f'{F.EXCEPTION_TYPE}!=""',))
    counted = _sum(F.EXCEPTION_TYPE, f"count_over_time({lines} {_range(v)})")
    return f"topk({v['limit']}, {counted})"


def _error_log_pipeline(v: Values) -> str:
    # The regular expression on the raw line is a cheap pre-filter; the label filter decides.
    levels = _error_levels()
    return _pipeline(v, f"|~ {logql_string(levels)}", (f"{F.LEVEL}=~{logql_string(levels)}",))


def _error_logs(v: Values) -> str:
    return _error_log_pipeline(v)


def _error_log_lines(v: Values) -> str:
    return f"sum(count_over_time({_error_log_pipeline(v)} {_range(v)}))"


def _log_volume(v: Values) -> str:
    # No line filter can narrow this one: every line counts.
    return _sum(F.LEVEL, f"count_over_time({_pipeline(v, None, ())} {_range(v)})")


def _etl_runs(v: Values) -> str:
    return _sum(f"{F.TABLE}, {F.STATUS}", f"count_over_time({_finished(v)} {_range(v)})")


def _etl_failures(v: Values) -> str:
    failed = _finished(v, _status(F.STATUS_FAILED))
    return _sum(F.TABLE, f"count_over_time({failed} {_range(v)})")


def _etl_duration(v: Values) -> str:
    return (
        f"quantile_over_time(0.95, {_finished(v, *_unwrap(F.DURATION_MS))} {_range(v)}) "
        f"by ({F.TABLE})"
    )


def _last_finish(v: Values, status: str, window: str = "range") -> str:
    """Per table, ``finished_at`` (epoch seconds) of the latest run with ``status``."""
    runs = _finished(v, _status(status), *_unwrap(F.FINISHED_AT))
    return f"max_over_time({runs} {_range(v, window)}) by ({F.TABLE})"


def _etl_last_success(v: Values) -> str:
    """Per table, when its last successful run finished, as epoch seconds.

    The window is long (7 days by default) so that a table whose last success was days ago
    still shows it; a table with no successful run in the window has no value here (see
    ``etl_stale``, which still lists it).
    """
    return _last_finish(v, F.STATUS_SUCCESS)


def _etl_stale(v: Values) -> str:
    """Tables that ran in the window (7 days) but had no successful run within ``stale_after``.

    LogQL has no ``time()``, so "the last success is older than 25 h" cannot be written as
    ``time() - last_success > 25h``. The query instead lets the evaluation time do that work:
    every range ends at the instant the query (or the ruler) evaluates, so a count over
    ``[25h]`` is "within the last 25 h" and a count over ``[7d]`` is "within the last week".

    ``ran unless succeeded_within_25h`` keeps exactly the tables that have run events in the
    last week and no successful ``etl_run_finished`` in the last 25 h, whatever their names:
    no list of tables to maintain. The left side is ``last_success or ran * 0``, so the value
    of a stale table says when it last succeeded (epoch seconds, within the window), or 0 when
    it did not succeed at all in the window (it still fails, or only starts and hangs).

    Both operands are grouped ``by (table)`` (``sum by``, ``max_over_time ... by``), so the
    vectors match on ``table`` alone. A table that has not run at all for longer than the
    window drops out: raise ``range`` to remember tables for longer.
    """
    # "ran in the window": any run event, started or finished, counts (a run that hangs too).
    run_events = "|".join(map(re.escape, (F.EVENT_ETL_RUN_STARTED, F.EVENT_ETL_RUN_FINISHED)))
    started_or_finished = _pipeline(
        v,
        f"|~ {logql_string(run_events)}",
        (f"{F.EVENT}=~{logql_string(run_events)}",),
    )
    ran = _sum(F.TABLE, f"count_over_time({started_or_finished} {_range(v)})")
    succeeded = _sum(
        F.TABLE,
        f"count_over_time({_finished(v, _status(F.STATUS_SUCCESS))} [{v['stale_after']}])",
    )
    return f"({_last_finish(v, F.STATUS_SUCCESS)} or {ran} * 0) unless {succeeded}"


def _etl_failing(v: Values) -> str:
    """Tables whose latest finished run in the window failed (the last failure is later than
    the last success, or there is no success at all: ``or failed * 0`` stands in for it)."""
    failed = _last_finish(v, F.STATUS_FAILED)
    succeeded = _last_finish(v, F.STATUS_SUCCESS)
    return f"{failed} > ({succeeded} or {failed} * 0)"


def _metric_gauge(v: Values) -> str:
    name = v["metric"] or ""
    points = _pipeline(
        v,
        _contains(name),
        (
            f"{F.EVENT}={logql_string(F.EVENT_METRIC)}",
            f"{F.METRIC}={logql_string(name)}",
            *_unwrap(F.VALUE),
        ),
    )
    # Each writer's (host, pid) latest value, then the largest: with several workers or replicas
    # each with its own pool, the latest line of any one of them is not the pool's state.
    by = v["by"] or ""
    writers = ", ".join(label for label in (by, *METRIC_WRITER) if label)
    latest = f"last_over_time({points} {_range(v)}) by ({writers})"
    return f"max by ({by}) ({latest})" if by else f"max({latest})"


_ROUTE_BY = _by(F.ROUTE)
_SLOW = Param(
    "threshold_ms", "a request slower than this (ms) is slow", str(DEFAULT_SLOW_MS), "number"
)


def _latency_preset(name: str, quantile: float) -> Preset:
    percent = _number_text(quantile * 100)
    return Preset(
        name,
        f"p{percent} of http_request duration_ms by route (Loki's quantile_over_time; "
        "by= for one series over all routes)",
        "instant",
        "ms",
        _params(_window("5m"), _ROUTE_BY),
        _latency(quantile),
    )


PRESETS: Final[tuple[Preset, ...]] = (
    Preset(
        "request_rate",
        "http_request events per second, by route",
        "range",
        "req/s",
        _params(_window("5m"), _ROUTE_BY),
        _request_rate,
    ),
    Preset(
        "error_ratio",
        "share of http_request events with status_code >= 500 (0..1)",
        "instant",
        "ratio",
        _params(_window("5m")),
        _error_ratio,
    ),
    Preset(
        "error_ratio_by_route",
        "share of http_request events with status_code >= 500, by route (0..1)",
        "instant",
        "ratio",
        _params(_window("5m"), _ROUTE_BY),
        _error_ratio,
    ),
    *(_latency_preset(name, q) for name, q in LATENCY_QUANTILES.items()),
    Preset(
        "slow_requests",
        "http_request events slower than threshold_ms, by route",
        "instant",
        "requests",
        _params(_window("1h"), _ROUTE_BY, _SLOW),
        _slow_requests,
    ),
    Preset(
        "errors_by_route",
        "http_request events with status_code >= 500, by route",
        "instant",
        "requests",
        _params(_window("1h"), _ROUTE_BY),
        _errors_by_route,
    ),
    Preset(
        "top_exceptions",
        "the most frequent exception_type values",
        "instant",
        "lines",
        _params(
            _window("1h"),
            Param("limit", "how many exception types to list", "10", "count"),
        ),
        _top_exceptions,
    ),
    Preset(
        "error_logs",
        "the lines at level error or critical",
        "logs",
        "lines",
        SELECTOR_PARAMS,
        _error_logs,
    ),
    Preset(
        "error_log_lines",
        "how many lines at level error or critical",
        "instant",
        "lines",
        _params(
            _window("5m"),
            Param("offset", "shift the window this far into the past", None, "duration"),
        ),
        _error_log_lines,
    ),
    Preset(
        "log_volume_by_level",
        "lines by level",
        "range",
        "lines",
        _params(_window("5m")),
        _log_volume,
    ),
    Preset(
        "etl_runs",
        "finished ETL runs by table and status",
        "instant",
        "runs",
        _params(_window("24h")),
        _etl_runs,
    ),
    Preset(
        "etl_failures",
        "failed ETL runs by table",
        "instant",
        "runs",
        _params(_window("24h")),
        _etl_failures,
    ),
    Preset(
        "etl_duration_p95",
        "p95 of the duration_ms of finished ETL runs, by table",
        "instant",
        "ms",
        _params(_window("24h")),
        _etl_duration,
    ),
    Preset(
        "etl_last_success",
        "finished_at (epoch seconds) of the last successful run of each table in the window",
        "instant",
        "epoch_s",
        _params(_window(DEFAULT_ETL_LOOKBACK)),
        _etl_last_success,
    ),
    Preset(
        "etl_stale",
        "tables that ran in the window but had no successful run within stale_after; "
        "value: the last success in the window, 0 if none",
        "instant",
        "epoch_s",
        _params(
            _window(DEFAULT_ETL_LOOKBACK),
            Param(
                "stale_after",
                "a table without a successful run for this long is stale",
                DEFAULT_STALE_AFTER,
                "duration",
            ),
        ),
        _etl_stale,
    ),
    Preset(
        "etl_failing",
        "tables whose latest finished run in the window failed; value: when it failed",
        "instant",
        "epoch_s",
        _params(_window("24h")),
        _etl_failing,
    ),
    Preset(
        "metric_gauge",
        "latest value of a metric event, by metric name: the largest of each writer's "
        "(host, pid) latest",
        "instant",
        "value",
        _params(
            _window("15m"),
            Param("metric", "the metric's name", DB_CONNECTIONS_METRIC, "text"),
            _by(F.METRIC),
        ),
        _metric_gauge,
    ),
)

_BY_NAME: Final = {preset.name: preset for preset in PRESETS}


def get(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        PresetError: there is none; the message lists the names there are.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise PresetError(f"no preset named {name!r}; presets: {', '.join(_BY_NAME)}") from None


def names() -> tuple[str, ...]:
    """The names of all presets, in their listing order."""
    return tuple(_BY_NAME)
