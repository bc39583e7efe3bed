"""The Grafana dashboard (``integrations/grafana/dashboards/alkana.json``), every panel's query a
preset, and Grafana's datasource and dashboard provisioning files.

The dashboard is built with Grafana's own ``grafana-foundation-sdk`` (the ``ops`` extra; a
render-time dependency, never imported by the runtime): its typed builders write the panel
options and field config the way the Grafana release it targets reads them, and the schema
version with them. Only the panel layout and the queries are ours.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from alkana_logging import fields as F
from alkana_logging.ops import presets as P
from alkana_logging.ops.configs.options import (
    Artifact,
    RenderError,
    RenderOptions,
    _header,
    _q,
)
from alkana_logging.ops.configs.rules import DB_CONNECTIONS_MAX

try:
    from grafana_foundation_sdk.builders import common as cb
    from grafana_foundation_sdk.builders import dashboard as db
    from grafana_foundation_sdk.builders import logs, loki, stat, table, timeseries
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common
    from grafana_foundation_sdk.models import dashboard as model
    from grafana_foundation_sdk.models import loki as loki_model
except ImportError as err:  # the ops extra is not installed: render() says so
    _SDK_MISSING: str | None = str(err)
else:
    _SDK_MISSING = None

#: The Grafana datasource uid every panel refers to (the provisioning file creates it).
DATASOURCE_UID: Final = "alkana-loki"

_UNITS: Final = {"ratio": "percentunit", "ms": "ms", "req/s": "reqps", "epoch_s": "dateTimeAsIso"}

#: The release of ``grafana-foundation-sdk`` the ``ops`` extra pins (its versions are
#: ``<build epoch>!<Grafana version>``: a newer build may target an older Grafana).
SDK_REQUIREMENT: Final = "grafana-foundation-sdk==1769699379!11.6.0"

_AUTO: Final = "$__auto"
_WHOLE: Final = "$__range"
_BY_ROUTE: Final = f"{{{{{F.ROUTE}}}}}"
Grid = tuple[int, int, int, int]


def _query(ref: str, expr: str, *, instant: bool = False, legend: str = "") -> loki.Dataquery:
    target = (
        loki.Dataquery()
        .ref_id(ref)
        .datasource(model.DataSourceRef(type_val="loki", uid=DATASOURCE_UID))
        .editor_mode(loki_model.QueryEditorMode.CODE)
        .expr(expr)
        .query_type("instant" if instant else "range")
    )
    return target.legend_format(legend) if legend else target


def _placed(panel: Any, title: str, grid: Grid, description: str) -> Any:
    x, y, w, h = grid
    return (
        panel.title(title)
        .description(description)
        .datasource(model.DataSourceRef(type_val="loki", uid=DATASOURCE_UID))
        .grid_pos(model.GridPos(x=x, y=y, w=w, h=h))
    )


def _stat(
    title: str, grid: Grid, target: loki.Dataquery, description: str, unit: str | None = None
) -> stat.Panel:
    panel: stat.Panel = _placed(stat.Panel(), title, grid, description)
    panel.with_target(target)
    panel.reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
    panel.graph_mode(common.BigValueGraphMode.NONE)
    return panel.unit(unit) if unit else panel


def _series(
    title: str,
    grid: Grid,
    targets: list[loki.Dataquery],
    description: str,
    unit: str | None = None,
    *,
    bars: bool = False,
) -> timeseries.Panel:
    panel: timeseries.Panel = _placed(timeseries.Panel(), title, grid, description)
    for target in targets:
        panel.with_target(target)
    if bars:
        panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(60)
        panel.stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
    return panel.unit(unit) if unit else panel


def _table(
    title: str,
    grid: Grid,
    targets: list[loki.Dataquery],
    description: str,
    names: dict[str, tuple[str, str | None]],
    *,
    sort_by: str | None = None,
) -> table.Panel:
    """A table of instant queries merged into one row per series, ``Time`` hidden, each value
    column renamed (``names``: column -> shown name and unit)."""
    panel: table.Panel = _placed(table.Panel(), title, grid, description)
    for target in targets:
        panel.with_target(target)
    panel.with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
    panel.with_transformation(
        model.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}})
    )
    if sort_by:
        panel.with_transformation(
            model.DataTransformerConfig(
                id_val="sortBy", options={"sort": [{"field": sort_by, "desc": True}]}
            )
        )
    for column, (name, unit) in names.items():
        properties = [model.DynamicConfigValue(id_val="displayName", value=name)]
        if unit:
            properties.append(model.DynamicConfigValue(id_val="unit", value=unit))
        panel.override_by_name(column, properties)
    return panel


def _panels(o: RenderOptions) -> list[Any]:
    p = P.get
    error_logs = _placed(logs.Panel(), "Error logs", (0, 28, 24, 10), p("error_logs").description)
    error_logs.with_target(_query("A", o.preset("error_logs")))
    error_logs.show_time(True).wrap_log_message(True).sort_order(common.LogsSortOrder.DESCENDING)
    # The SDK writes every option it knows, false by default: log details are on in Grafana.
    error_logs.enable_log_details(True)
    connections = _series(
        f"Database connections ({P.DB_CONNECTIONS_METRIC})",
        (12, 46, 12, 8),
        [
            _query(
                "A",
                o.preset("metric_gauge", metric=P.DB_CONNECTIONS_METRIC, range=_AUTO),
                legend=f"{{{{{F.METRIC}}}}}",
            )
        ],
        f"The latest {P.DB_CONNECTIONS_METRIC} value of the metric events; the line is "
        f"the DatabaseConnectionsHigh threshold ({DB_CONNECTIONS_MAX}).",
    )
    connections.thresholds_style(
        cb.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE)
    )
    connections.thresholds(
        db.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps(
            [
                model.Threshold(value=None, color="green"),
                model.Threshold(value=DB_CONNECTIONS_MAX, color="red"),
            ]
        )
    )
    return [
        _stat(
            "Requests / s",
            (0, 0, 6, 4),
            _query("A", o.preset("request_rate", range="1m", by=""), instant=True),
            "http_request events per second over the last minute, all routes",
            _UNITS["req/s"],
        ),
        _stat(
            "5xx ratio (time range)",
            (6, 0, 6, 4),
            _query("A", o.preset("error_ratio", range=_WHOLE), instant=True),
            p("error_ratio").description,
            _UNITS["ratio"],
        ),
        _stat(
            "p95 latency (time range)",
            (12, 0, 6, 4),
            _query("A", o.preset("latency_p95", range=_WHOLE, by=""), instant=True),
            "p95 of duration_ms over the time range, all routes (quantile_over_time)",
            "ms",
        ),
        _stat(
            f"Slow requests > {P.DEFAULT_SLOW_MS} ms (time range)",
            (18, 0, 6, 4),
            _query("A", o.preset("slow_requests", range=_WHOLE, by=""), instant=True),
            "http_request events slower than the threshold in the time range",
        ),
        _series(
            "Request rate by route",
            (0, 4, 12, 8),
            [_query("A", o.preset("request_rate", range=_AUTO), legend=_BY_ROUTE)],
            p("request_rate").description,
            _UNITS["req/s"],
        ),
        _series(
            "5xx ratio by route",
            (12, 4, 12, 8),
            [_query("A", o.preset("error_ratio_by_route", range=_AUTO), legend=_BY_ROUTE)],
            p("error_ratio_by_route").description,
            _UNITS["ratio"],
        ),
        _series(
            "Latency p50 / p95 / p99",
            (0, 12, 12, 8),
            [
                _query(
                    ref, o.preset(name, range=_AUTO, by=""), legend=name.removeprefix("latency_")
                )
                for ref, name in zip("ABC", P.LATENCY_QUANTILES, strict=True)
            ],
            "Loki's quantile_over_time of duration_ms over all routes.",
            "ms",
        ),
        _series(
            "p95 latency by route",
            (12, 12, 12, 8),
            [_query("A", o.preset("latency_p95", range=_AUTO), legend=_BY_ROUTE)],
            p("latency_p95").description,
            "ms",
        ),
        _series(
            "5xx errors by route",
            (0, 20, 8, 8),
            [_query("A", o.preset("errors_by_route", range=_AUTO), legend=_BY_ROUTE)],
            p("errors_by_route").description,
            bars=True,
        ),
        _series(
            f"Slow requests by route (> {P.DEFAULT_SLOW_MS} ms)",
            (8, 20, 8, 8),
            [_query("A", o.preset("slow_requests", range=_AUTO), legend=_BY_ROUTE)],
            p("slow_requests").description,
            bars=True,
        ),
        _table(
            "Top exceptions (time range)",
            (16, 20, 8, 8),
            [_query("A", o.preset("top_exceptions", range=_WHOLE), instant=True)],
            p("top_exceptions").description,
            {"Value": ("lines", None)},
            sort_by="Value",
        ),
        error_logs,
        _table(
            "ETL status and freshness by table",
            (0, 38, 14, 8),
            [
                _query(
                    "A", f"sum by ({F.TABLE}) ({o.preset('etl_runs', range=_WHOLE)})", instant=True
                ),
                _query("B", o.preset("etl_failures", range=_WHOLE), instant=True),
                # Grafana's time units take milliseconds.
                _query("C", f"({o.preset('etl_last_success')}) * 1000", instant=True),
                _query("D", f"({o.preset('etl_stale')}) * 0 + 1", instant=True),
            ],
            "Runs and failures in the time range; the last success within "
            f"{P.DEFAULT_ETL_LOOKBACK}; stale = 1 when a table that ran in the last "
            f"{P.DEFAULT_ETL_LOOKBACK} has had no successful run for {P.DEFAULT_STALE_AFTER}.",
            {
                "Value #A": ("runs", None),
                "Value #B": ("failures", None),
                "Value #C": ("last success", "dateTimeFromNow"),
                "Value #D": ("stale", None),
            },
        ),
        _series(
            "ETL duration p95 by table",
            (14, 38, 10, 8),
            [_query("A", o.preset("etl_duration_p95", range=_AUTO), legend=f"{{{{{F.TABLE}}}}}")],
            p("etl_duration_p95").description,
            "ms",
        ),
        _series(
            "Log volume by level",
            (0, 46, 12, 8),
            [
                _query(
                    "A", o.preset("log_volume_by_level", range=_AUTO), legend=f"{{{{{F.LEVEL}}}}}"
                )
            ],
            p("log_volume_by_level").description,
            bars=True,
        ),
        connections,
    ]


def dashboard_json(options: RenderOptions) -> dict[str, Any]:
    """The Grafana dashboard as a dict; every panel query comes from a preset."""
    if _SDK_MISSING is not None:
        raise RenderError(
            "rendering the Grafana dashboard needs Grafana's SDK: "
            f"pip install 'alkana-logging[ops]' ({SDK_REQUIREMENT}); {_SDK_MISSING}"
        )
    o = options
    uid = re.sub(r"[^A-Za-z0-9_-]+", "-", f"alkana-{o.app}-{o.env}")[:40].strip("-")
    board = (
        db.Dashboard(f"alkana: {o.app} ({o.env})")
        .uid(uid)
        .description(
            "Generated by `alkana-logging render dashboard` from the package's LogQL presets; "
            "re-render instead of editing."
        )
        .tags(["alkana-logging", "loki"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("browser")
    )
    for number, panel in enumerate(_panels(o), start=1):
        board.with_panel(panel.id(number))
    built: dict[str, Any] = json.loads(JSONEncoder().encode(board.build()))
    return built


def dashboard(options: RenderOptions) -> list[Artifact]:
    """The dashboard JSON and Grafana's datasource and dashboard provisioning files."""
    board = json.dumps(dashboard_json(options), indent=2, ensure_ascii=False) + "\n"
    datasource = f"""{_header("dashboard")}
apiVersion: 1

datasources:
  - name: Loki
    type: loki
    # The dashboard's panels refer to this uid.
    uid: {DATASOURCE_UID}
    access: proxy
    url: {_q(options.loki_url)}
    isDefault: true
    editable: false
"""
    provider = f"""{_header("dashboard")}
apiVersion: 1

providers:
  - name: alkana-logging
    orgId: 1
    folder: alkana-logging
    type: file
    disableDeletion: false
    allowUiUpdates: false
    updateIntervalSeconds: 30
    options:
      # integrations/grafana/dashboards is mounted here by integrations/docker-compose.yml.
      path: /var/lib/grafana/dashboards
"""
    return [
        Artifact("integrations/grafana/dashboards/alkana.json", board),
        Artifact("integrations/grafana/provisioning/datasources/loki.yaml", datasource),
        Artifact("integrations/grafana/provisioning/dashboards/alkana.yaml", provider),
    ]
