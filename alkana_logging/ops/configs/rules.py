"""``integrations/loki/rules/alkana.yaml``: the Loki ruler's alert rules, from the presets.

HighErrorRate, SlowAPIResponses, ErrorLogSpike, ETLStale, ETLFailed and
DatabaseConnectionsHigh, each with a ``severity`` label (which Alertmanager routes on), their
expressions the presets' LogQL.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from alkana_logging import fields as F
from alkana_logging.ops import presets as P
from alkana_logging.ops.configs.options import Artifact, RenderOptions, _header, _q

#: Alert thresholds (the design's numbers).
ERROR_RATIO_THRESHOLD: Final = 0.05
SLOW_P95_MS: Final = 2000
SPIKE_MIN_LINES: Final = 10
SPIKE_FACTOR: Final = 3
DB_CONNECTIONS_MAX: Final = P.DEFAULT_DB_CONNECTIONS_MAX


@dataclasses.dataclass(frozen=True)
class Rule:
    """One alert rule; ``expr`` comes from a preset."""

    alert: str
    expr: str
    duration: str
    severity: str
    summary: str
    description: str


def _rule_groups(options: RenderOptions) -> list[tuple[str, str, list[Rule]]]:
    o = options
    ratio = o.preset("error_ratio", range="5m")
    p95 = o.preset("latency_p95", range="5m", by=F.ROUTE)
    recent_errors = o.preset("error_log_lines", range="5m")
    # The hour before the last five minutes, scaled to five minutes: the usual level.
    usual_errors = o.preset("error_log_lines", range="1h", offset="5m")
    where = f"{o.app} ({o.env})"
    http = [
        Rule(
            "HighErrorRate",
            f"({ratio}) > {ERROR_RATIO_THRESHOLD}",
            "5m",
            "critical",
            f"More than {ERROR_RATIO_THRESHOLD:.0%} of the HTTP requests of {where} fail",
            f"{{{{ $value | humanizePercentage }}}} of the HTTP requests of {where} ended with a "
            f"5xx status over the last 5 minutes (threshold {ERROR_RATIO_THRESHOLD:.0%}).",
        ),
        Rule(
            "SlowAPIResponses",
            f"({p95}) > {SLOW_P95_MS}",
            "10m",
            "warning",
            f"p95 latency of {{{{ $labels.{F.ROUTE} }}}} on {where} is over {SLOW_P95_MS} ms",
            f"The 95th percentile of duration_ms of {{{{ $labels.{F.ROUTE} }}}} is "
            f"{{{{ $value | humanize }}}} ms over the last 5 minutes (threshold {SLOW_P95_MS} ms).",
        ),
        Rule(
            "ErrorLogSpike",
            f"(({recent_errors}) > {SPIKE_MIN_LINES}) unless "
            f"(({recent_errors}) <= {SPIKE_FACTOR} * ({usual_errors}) / 12)",
            "2m",
            "warning",
            f"Error lines spike on {where}",
            f"{{{{ $value }}}} lines at level error or critical in the last 5 minutes: more "
            f"than {SPIKE_MIN_LINES}, and more than {SPIKE_FACTOR} times the 5-minute average "
            "of the hour before.",
        ),
    ]
    stale_after = P.DEFAULT_STALE_AFTER
    lookback = P.DEFAULT_ETL_LOOKBACK
    etl = [
        Rule(
            "ETLStale",
            o.preset("etl_stale", range=lookback, stale_after=stale_after),
            "15m",
            "critical",
            f"ETL table {{{{ $labels.{F.TABLE} }}}} of {where} has not loaded for {stale_after}",
            f"Table {{{{ $labels.{F.TABLE} }}}} ran in the last {lookback} but has had no "
            f"successful run for {stale_after}. Last success: {{{{ if eq $value 0.0 }}}}none in "
            f"{lookback}{{{{ else }}}}{{{{ $value | humanizeTimestamp }}}}{{{{ end }}}}.",
        ),
        Rule(
            "ETLFailed",
            o.preset("etl_failing", range="24h"),
            "0m",
            "warning",
            f"The last ETL run of {{{{ $labels.{F.TABLE} }}}} on {where} failed",
            f"The latest run of table {{{{ $labels.{F.TABLE} }}}} failed at "
            "{{ $value | humanizeTimestamp }} and no successful run followed it (last 24 h).",
        ),
    ]
    db = [
        Rule(
            "DatabaseConnectionsHigh",
            f"({o.preset('metric_gauge', metric=P.DB_CONNECTIONS_METRIC, range='5m')}) "
            f"> {DB_CONNECTIONS_MAX}",
            "5m",
            "warning",
            f"{{{{ $value }}}} active database connections on {where}",
            f"The latest {P.DB_CONNECTIONS_METRIC} value of a writer (host, pid: each worker "
            f"has its own pool) has stayed above {DB_CONNECTIONS_MAX} for 5 minutes (now "
            "{{ $value }}): its pool is close to exhausted.",
        ),
    ]
    return [("alkana-http", "1m", http), ("alkana-etl", "5m", etl), ("alkana-db", "1m", db)]


def rule_expressions(options: RenderOptions | None = None) -> dict[str, str]:
    """Every alert rule's expression by alert name (for checks such as the LogQL grammar)."""
    options = options or RenderOptions()
    return {rule.alert: rule.expr for _, _, rules in _rule_groups(options) for rule in rules}


def _rule_text(rule: Rule, options: RenderOptions) -> str:
    return (
        f"      - alert: {rule.alert}\n"
        f"        expr: |\n"
        f"          {rule.expr}\n"
        f"        for: {rule.duration}\n"
        f"        labels:\n"
        f"          severity: {rule.severity}\n"
        f"          {F.LABEL_APP}: {_q(options.app)}\n"
        f"          {F.LABEL_ENV}: {_q(options.env)}\n"
        f"        annotations:\n"
        f"          summary: {_q(rule.summary)}\n"
        f"          description: {_q(rule.description)}\n"
    )


def rules(options: RenderOptions) -> list[Artifact]:
    """``integrations/loki/rules/alkana.yaml``: Loki ruler alerts in Prometheus rule-file form."""
    out = [
        _header("rules"),
        "#\n# Loki ruler rules (Prometheus rule-file form, LogQL expressions). With the local\n"
        "# stack (integrations/docker-compose.yml) this directory is the rules of tenant 'fake'.\n",
        "groups:\n",
    ]
    for name, interval, group in _rule_groups(options):
        out.append(f"  - name: {name}\n    interval: {interval}\n    rules:\n")
        out.extend(_rule_text(rule, options) for rule in group)
    return [Artifact("integrations/loki/rules/alkana.yaml", "".join(out))]
