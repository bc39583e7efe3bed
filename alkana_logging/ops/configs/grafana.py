"""The Grafana dashboard (``integrations/grafana/dashboards/alkana.json``), every panel's query a
preset, and Grafana's datasource and dashboard provisioning files.

The dashboard JSON is built from plain dicts: it is a dozen panels, Grafana migrates older
dashboard JSON on load, and a generator library would add a dependency whose output changes
with its own releases.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

from alkana_logging import fields as F
from alkana_logging.ops import presets as P
from alkana_logging.ops.configs.options import Artifact, RenderOptions, _header, _q
from alkana_logging.ops.configs.rules import DB_CONNECTIONS_MAX

#: The Grafana datasource uid every panel refers to (the provisioning file creates it).
DATASOURCE_UID: Final = "alkana-loki"
DATASOURCE: Final = {"type": "loki", "uid": DATASOURCE_UID}

_UNITS: Final = {"ratio": "percentunit", "ms": "ms", "req/s": "reqps", "epoch_s": "dateTimeAsIso"}


def _target(ref: str, expr: str, *, instant: bool = False, legend: str = "") -> dict[str, Any]:
    target: dict[str, Any] = {
        "refId": ref,
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "queryType": "instant" if instant else "range",
    }
    if legend:
        target["legendFormat"] = legend
    return target


def _panel(
    kind: str,
    title: str,
    grid: tuple[int, int, int, int],
    targets: Sequence[dict[str, Any]],
    *,
    description: str = "",
    unit: str | None = None,
    options: dict[str, Any] | None = None,
    custom: dict[str, Any] | None = None,
    transformations: Sequence[dict[str, Any]] = (),
    overrides: Sequence[dict[str, Any]] = (),
    thresholds: Sequence[tuple[float | None, str]] = (),
) -> dict[str, Any]:
    x, y, w, h = grid
    defaults: dict[str, Any] = {}
    if unit:
        defaults["unit"] = unit
    if custom:
        defaults["custom"] = custom
    if thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"value": value, "color": color} for value, color in thresholds],
        }
    panel: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": list(targets),
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
        "options": options or {},
    }
    if transformations:
        panel["transformations"] = list(transformations)
    return panel


def _rename(field: str, name: str, unit: str | None = None) -> dict[str, Any]:
    properties: list[dict[str, Any]] = [{"id": "displayName", "value": name}]
    if unit:
        properties.append({"id": "unit", "value": unit})
    return {"matcher": {"id": "byName", "options": field}, "properties": properties}


def dashboard_json(options: RenderOptions) -> dict[str, Any]:
    """The Grafana dashboard as a dict; every panel query comes from a preset."""
    o = options
    auto = "$__auto"
    whole = "$__range"
    bars = {"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal"}}
    route_legend = f"{{{{{F.ROUTE}}}}}"
    table_legend = f"{{{{{F.TABLE}}}}}"
    stat_options = {"reduceOptions": {"calcs": ["lastNotNull"]}, "graphMode": "none"}
    p = P.get
    panels = [
        _panel(
            "stat",
            "Requests / s",
            (0, 0, 6, 4),
            [_target("A", o.preset("request_rate", range="1m", by=""), instant=True)],
            description="http_request events per second over the last minute, all routes",
            unit=_UNITS["req/s"],
            options=stat_options,
        ),
        _panel(
            "stat",
            "5xx ratio (time range)",
            (6, 0, 6, 4),
            [_target("A", o.preset("error_ratio", range=whole), instant=True)],
            description=p("error_ratio").description,
            unit=_UNITS["ratio"],
            options=stat_options,
        ),
        _panel(
            "stat",
            "p95 latency (time range)",
            (12, 0, 6, 4),
            [_target("A", o.preset("latency_p95", range=whole, by=""), instant=True)],
            description="p95 of duration_ms over the time range, all routes (quantile_over_time)",
            unit="ms",
            options=stat_options,
        ),
        _panel(
            "stat",
            f"Slow requests > {P.DEFAULT_SLOW_MS} ms (time range)",
            (18, 0, 6, 4),
            [_target("A", o.preset("slow_requests", range=whole, by=""), instant=True)],
            description="http_request events slower than the threshold in the time range",
            options=stat_options,
        ),
        _panel(
            "timeseries",
            "Request rate by route",
            (0, 4, 12, 8),
            [_target("A", o.preset("request_rate", range=auto), legend=route_legend)],
            description=p("request_rate").description,
            unit=_UNITS["req/s"],
        ),
        _panel(
            "timeseries",
            "5xx ratio by route",
            (12, 4, 12, 8),
            [_target("A", o.preset("error_ratio_by_route", range=auto), legend=route_legend)],
            description=p("error_ratio_by_route").description,
            unit=_UNITS["ratio"],
        ),
        _panel(
            "timeseries",
            "Latency p50 / p95 / p99",
            (0, 12, 12, 8),
            [
                _target(
                    ref, o.preset(name, range=auto, by=""), legend=name.removeprefix("latency_")
                )
                for ref, name in zip("ABC", P.LATENCY_QUANTILES, strict=True)
            ],
            description="Loki's quantile_over_time of duration_ms over all routes.",
            unit="ms",
        ),
        _panel(
            "timeseries",
            "p95 latency by route",
            (12, 12, 12, 8),
            [_target("A", o.preset("latency_p95", range=auto), legend=route_legend)],
            description=p("latency_p95").description,
            unit="ms",
        ),
        _panel(
            "timeseries",
            "5xx errors by route",
            (0, 20, 8, 8),
            [_target("A", o.preset("errors_by_route", range=auto), legend=route_legend)],
            description=p("errors_by_route").description,
            custom=bars,
        ),
        _panel(
            "timeseries",
            f"Slow requests by route (> {P.DEFAULT_SLOW_MS} ms)",
            (8, 20, 8, 8),
            [_target("A", o.preset("slow_requests", range=auto), legend=route_legend)],
            description=p("slow_requests").description,
            custom=bars,
        ),
        _panel(
            "table",
            "Top exceptions (time range)",
            (16, 20, 8, 8),
            [_target("A", o.preset("top_exceptions", range=whole), instant=True)],
            description=p("top_exceptions").description,
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {"excludeByName": {"Time": True}}},
                {"id": "sortBy", "options": {"sort": [{"field": "Value", "desc": True}]}},
            ],
            overrides=[_rename("Value", "lines")],
        ),
        _panel(
            "logs",
            "Error logs",
            (0, 28, 24, 10),
            [_target("A", o.preset("error_logs"))],
            description=p("error_logs").description,
            options={"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending"},
        ),
        _panel(
            "table",
            "ETL status and freshness by table",
            (0, 38, 14, 8),
            [
                _target(
                    "A",
                    f"sum by ({F.TABLE}) ({o.preset('etl_runs', range=whole)})",
                    instant=True,
                ),
                _target("B", o.preset("etl_failures", range=whole), instant=True),
                # Grafana's time units take milliseconds.
                _target("C", f"({o.preset('etl_last_success')}) * 1000", instant=True),
                _target("D", f"({o.preset('etl_stale')}) * 0 + 1", instant=True),
            ],
            description=(
                "Runs and failures in the time range; the last success within "
                f"{P.DEFAULT_ETL_LOOKBACK}; stale = 1 when a table that ran in the last "
                f"{P.DEFAULT_ETL_LOOKBACK} has had no successful run for "
                f"{P.DEFAULT_STALE_AFTER}."
            ),
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {"excludeByName": {"Time": True}}},
            ],
            overrides=[
                _rename("Value #A", "runs"),
                _rename("Value #B", "failures"),
                _rename("Value #C", "last success", "dateTimeFromNow"),
                _rename("Value #D", "stale"),
            ],
        ),
        _panel(
            "timeseries",
            "ETL duration p95 by table",
            (14, 38, 10, 8),
            [_target("A", o.preset("etl_duration_p95", range=auto), legend=table_legend)],
            description=p("etl_duration_p95").description,
            unit="ms",
        ),
        _panel(
            "timeseries",
            "Log volume by level",
            (0, 46, 12, 8),
            [
                _target(
                    "A",
                    o.preset("log_volume_by_level", range=auto),
                    legend=f"{{{{{F.LEVEL}}}}}",
                )
            ],
            description=p("log_volume_by_level").description,
            custom=bars,
        ),
        _panel(
            "timeseries",
            f"Database connections ({P.DB_CONNECTIONS_METRIC})",
            (12, 46, 12, 8),
            [
                _target(
                    "A",
                    o.preset("metric_gauge", metric=P.DB_CONNECTIONS_METRIC, range=auto),
                    legend=f"{{{{{F.METRIC}}}}}",
                )
            ],
            description=(
                f"The latest {P.DB_CONNECTIONS_METRIC} value of the metric events; the line is "
                f"the DatabaseConnectionsHigh threshold ({DB_CONNECTIONS_MAX})."
            ),
            custom={"thresholdsStyle": {"mode": "line"}},
            thresholds=[(None, "green"), (DB_CONNECTIONS_MAX, "red")],
        ),
    ]
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    uid = re.sub(r"[^A-Za-z0-9_-]+", "-", f"alkana-{o.app}-{o.env}")[:40].strip("-")
    return {
        "uid": uid,
        "title": f"alkana: {o.app} ({o.env})",
        "description": (
            "Generated by `alkana-logging render dashboard` from the package's LogQL presets; "
            "re-render instead of editing."
        ),
        "tags": ["alkana-logging", "loki"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


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
