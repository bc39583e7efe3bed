from __future__ import annotations

import fnmatch
import grp
import gzip
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from alkana_logging import fields as F
from alkana_logging.ops import configs as R
from alkana_logging.ops import presets as P
from alkana_logging.ops import report as Rep
from alkana_logging.ops.configs import grafana
from alkana_logging.ops.configs import rules as ruler

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = R.RenderOptions()
ARTIFACTS = R.render("all")


def _artifact(path: str, options: R.RenderOptions = DEFAULTS) -> str:
    return next(a.text for a in R.render("all", options) if a.path == path)


def _yaml(path: str, options: R.RenderOptions = DEFAULTS) -> Any:
    return yaml.safe_load(_artifact(path, options))


# -- the committed files are the renderer's output ------------------------------------------------


@pytest.mark.parametrize("artifact", ARTIFACTS, ids=[a.path for a in ARTIFACTS])
def test_committed_file_equals_the_renderers_output(artifact: R.Artifact) -> None:
    committed = ROOT / artifact.path
    assert committed.is_file(), (
        f"{artifact.path} is missing: run `alkana-logging render all --out .`"
    )
    assert committed.read_text(encoding="utf-8") == artifact.text, (
        f"{artifact.path} differs from the renderer: "
        "re-render with `alkana-logging render all --out .`"
    )


def test_render_all_covers_every_target() -> None:
    paths = [a.path for a in ARTIFACTS]
    assert paths == [a.path for target in R.TARGETS for a in R.render(target)]
    assert {
        "promtail/config.yml",
        "integrations/alloy/config.alloy",
        "logrotate/alkana-dashboard",
        "integrations/loki/rules/alkana.yaml",
        "integrations/alertmanager/alertmanager.yml",
        "integrations/loki/loki-local.yaml",
        "integrations/grafana/dashboards/alkana.json",
        "integrations/grafana/provisioning/datasources/loki.yaml",
        "integrations/grafana/provisioning/dashboards/alkana.yaml",
        "integrations/docker-compose.yml",
    } == set(paths)


def test_write_creates_directories_and_files(tmp_path: Path) -> None:
    written = R.write(R.render("rules"), tmp_path)
    assert written == [tmp_path / "integrations/loki/rules/alkana.yaml"]
    assert written[0].read_text(encoding="utf-8") == R.render("rules")[0].text


def test_unknown_target_is_rejected() -> None:
    with pytest.raises(R.RenderError, match=r"target: got 'fluentd'; expected one of promtail"):
        R.render("fluentd")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"log_dir": "logs"}, r"--log-dir: got 'logs'; expected an absolute directory path"),
        ({"log_dir": "/var/log/*"}, r"--log-dir"),
        ({"log_dir": "/var/log/my app"}, r"--log-dir: .*white space"),
        ({"app": ""}, r"--app: got ''; expected a non-empty label value"),
        ({"env": "a\nb"}, r"--env"),
        ({"user": "root root"}, r"--user: got 'root root'; expected a user or group name"),
        ({"loki_url": "loki:3100"}, r"--loki-url: got 'loki:3100'; expected an http"),
        ({"pager_url": "events"}, r"--pager-url: got 'events'; expected an http"),
        ({"email_to": "team"}, r"--email-to: got 'team'; expected an e-mail address"),
        ({"smarthost": "smtp"}, r"--smarthost: got 'smtp'; expected host:port"),
        ({"secrets_dir": "secrets"}, r"--secrets-dir: got 'secrets'; expected an absolute"),
        ({"group_wait": "soon"}, r"--group-wait: got 'soon'; expected a duration"),
    ],
)
def test_bad_options_are_rejected(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(R.RenderError, match=message):
        R.RenderOptions(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://alice:S3CRET@loki:3100", "'http://[REDACTED]@loki:3100'; expected no user-info"),
        ("alice:S3CRET@loki:3100", "'[REDACTED]@loki:3100'; expected an http"),
        ("http:/alice:S3CRET@loki/", "'http:/[REDACTED]@loki/'; expected an http"),
        ("http://alice:S3CRET@loki:3100 ", "'http://[REDACTED]@loki:3100'; expected an http"),
    ],
)
def test_a_loki_url_with_credentials_is_refused_without_printing_them(url: str, shown: str) -> None:
    with pytest.raises(R.RenderError) as caught:
        R.RenderOptions(loki_url=url)
    assert "S3CRET" not in str(caught.value)
    assert str(caught.value).startswith(f"--loki-url: got {shown}")


# -- Promtail -------------------------------------------------------------------------------------


def test_promtail_config_loads_and_uses_static_labels_from_the_contract() -> None:
    config = _yaml("promtail/config.yml")
    assert config["positions"]["filename"]
    assert config["clients"] == [{"url": "http://loki:3100/loki/api/v1/push"}]
    (scrape,) = config["scrape_configs"]
    (static,) = scrape["static_configs"]
    labels = dict(static["labels"])
    assert labels.pop("__path__") == "/var/log/alkana-dashboard/*.log"
    assert labels == {"job": "alkana", "app": "alkana-dashboard", "env": "production"}
    assert set(labels) <= set(F.STREAM_LABELS)
    assert not set(labels) & set(F.NEVER_LABELS)


def test_promtail_pipeline_drops_long_lines_then_parses_json_and_the_timestamp() -> None:
    stages = _yaml("promtail/config.yml")["scrape_configs"][0]["pipeline_stages"]
    assert stages == [
        {"drop": {"longer_than": "256KB", "drop_counter_reason": "line_too_long"}},
        {"drop": {"expression": "^ *$", "drop_counter_reason": "blank_line"}},
        {"json": {"expressions": {F.TIMESTAMP: F.TIMESTAMP}}},
        {"timestamp": {"source": F.TIMESTAMP, "format": "RFC3339Nano"}},
        {"labeldrop": ["filename"]},
    ]


def test_promtail_host_label_is_optional_and_static() -> None:
    options = R.RenderOptions(host="web-1", app="shop", env="staging", job="j")
    labels = _yaml("promtail/config.yml", options)["scrape_configs"][0]["static_configs"][0]
    assert labels["labels"] == {
        "job": "j",
        "app": "shop",
        "env": "staging",
        "host": "web-1",
        "__path__": "/var/log/alkana-dashboard/*.log",
    }


def test_hostile_label_values_stay_yaml_strings() -> None:
    options = R.RenderOptions(app='x": {y}', env="true")
    labels = _yaml("promtail/config.yml", options)["scrape_configs"][0]["static_configs"][0]
    assert labels["labels"]["app"] == 'x": {y}'
    assert labels["labels"]["env"] == "true"  # a string, not a boolean


def test_rotated_names_fall_outside_the_shippers_glob() -> None:
    glob = "*.log"
    assert fnmatch.fnmatch("app.log", glob)
    for rotated in ("app.log.1", "app.log.2.gz", "app.log-20261126-1795711536", "app.log.lock"):
        assert not fnmatch.fnmatch(rotated, glob)
        assert not fnmatch.fnmatch(rotated + ".gz", glob)


# -- Alloy: its documented components and arguments -----------------------------------------------

# From Grafana Alloy's reference documentation of each component (arguments and blocks).
ALLOY_COMPONENTS: dict[str, set[str]] = {
    "local.file_match": {"path_targets", "sync_period", "ignore_older_than"},
    "loki.source.file": {
        "targets",
        "forward_to",
        "encoding",
        "legacy_positions_file",
        "tail_from_end",
        "decompression",
        "file_watch",
    },
    "loki.process": {
        "forward_to",
        "stage.drop",
        "stage.json",
        "stage.timestamp",
        "stage.label_drop",
    },
    "loki.write": {"external_labels", "max_streams", "endpoint", "wal"},
}
ALLOY_BLOCKS: dict[str, set[str]] = {
    "stage.drop": {
        "drop_counter_reason",
        "expression",
        "longer_than",
        "older_than",
        "separator",
        "source",
        "value",
    },
    "stage.json": {"expressions", "drop_malformed", "source"},
    "stage.timestamp": {"format", "source", "action_on_failure", "fallback_formats", "location"},
    "stage.label_drop": {"values"},
    "endpoint": {"url", "tenant_id", "bearer_token", "basic_auth", "headers", "batch_wait"},
}
ALLOY_EXPORTS = {
    "local.file_match": "targets",
    "loki.process": "receiver",
    "loki.write": "receiver",
}

_ALLOY_TOKEN = re.compile(
    r'\s+|//[^\n]*|(?P<string>"(?:[^"\\]|\\.)*")|(?P<number>[0-9]+(?:\.[0-9]+)?)'
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)|(?P<punct>[{}\[\]=,])"
)


def _alloy_tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _ALLOY_TOKEN.match(text, pos)
        assert match, f"unexpected character {text[pos]!r} at {pos}"
        pos = match.end()
        if match.lastgroup:
            tokens.append((match.lastgroup, match.group(match.lastgroup)))
    return tokens


class _AlloyParser:
    """Alloy's syntax as far as the rendered file uses it: blocks, attributes, expressions."""

    def __init__(self, text: str) -> None:
        self.tokens = _alloy_tokens(text)
        self.pos = 0
        self.references: list[str] = []

    def peek(self, offset: int = 0) -> tuple[str, str]:
        return self.tokens[self.pos + offset] if self.pos + offset < len(self.tokens) else ("", "")

    def take(self, kind: str, value: str | None = None) -> str:
        got = self.peek()
        assert got[0] == kind, f"expected {value or kind}, got {got}"
        assert value is None or got[1] == value, f"expected {value}, got {got}"
        self.pos += 1
        return got[1]

    def body(self, end: str | None) -> list[tuple[str, str | None, Any]]:
        items: list[tuple[str, str | None, Any]] = []
        while self.peek() != ("punct", end) if end else self.pos < len(self.tokens):
            name = self.take("name")
            if self.peek() == ("punct", "="):
                self.take("punct", "=")
                items.append(("attr", name, self.expression()))
                continue
            label = self.take("string") if self.peek()[0] == "string" else None
            self.take("punct", "{")
            items.append((name, label, self.body("}")))
            self.take("punct", "}")
        return items

    def expression(self) -> Any:
        kind, value = self.peek()
        if kind in ("string", "number"):
            self.pos += 1
            return json.loads(value)
        if kind == "name":
            self.pos += 1
            if value not in ("true", "false", "null"):
                self.references.append(value)
            return value
        if value == "[":
            self.take("punct", "[")
            items = []
            while self.peek() != ("punct", "]"):
                items.append(self.expression())
                if self.peek() == ("punct", ","):
                    self.take("punct", ",")
            self.take("punct", "]")
            return items
        self.take("punct", "{")
        obj = {}
        while self.peek() != ("punct", "}"):
            key = self.take(self.peek()[0])
            self.take("punct", "=")
            obj[json.loads(key) if key.startswith('"') else key] = self.expression()
            if self.peek() == ("punct", ","):
                self.take("punct", ",")
        self.take("punct", "}")
        return obj


def _alloy(options: R.RenderOptions = DEFAULTS) -> tuple[dict[str, Any], list[str]]:
    parser = _AlloyParser(_artifact("integrations/alloy/config.alloy", options))
    components = {}
    for kind, label, body in parser.body(None):
        components[f"{kind}.{label}"] = body
    return components, parser.references


def _attrs(body: list[tuple[str, str | None, Any]]) -> dict[str, Any]:
    return {name: value for kind, name, value in body if kind == "attr"}


def test_alloy_config_uses_only_documented_components_and_arguments() -> None:
    components, _ = _alloy()
    assert set(components) == {
        'local.file_match."alkana"',
        'loki.source.file."alkana"',
        'loki.process."alkana"',
        'loki.write."default"',
    }
    for key, body in components.items():
        component = key.rsplit(".", 1)[0]
        used = {name if kind == "attr" else kind for kind, name, _ in body}
        assert used <= ALLOY_COMPONENTS[component], (key, used - ALLOY_COMPONENTS[component])
        for kind, _, inner in body:
            if kind != "attr":
                assert {name for _, name, _ in inner} <= ALLOY_BLOCKS[kind], kind


def test_alloy_references_name_components_that_exist_and_their_exports() -> None:
    components, references = _alloy()
    defined = {key.replace('"', "") for key in components}
    assert sorted(references) == [
        "local.file_match.alkana.targets",
        "loki.process.alkana.receiver",
        "loki.write.default.receiver",
    ]
    for reference in references:
        component, export = reference.rsplit(".", 1)
        assert component in defined
        assert ALLOY_EXPORTS[component.rsplit(".", 1)[0]] == export


def test_alloy_pipeline_matches_promtails() -> None:
    components, _ = _alloy(R.RenderOptions(host="web-1"))
    (targets,) = _attrs(components['local.file_match."alkana"'])["path_targets"]
    assert targets == {
        "__path__": "/var/log/alkana-dashboard/*.log",
        "job": "alkana",
        "app": "alkana-dashboard",
        "env": "production",
        "host": "web-1",
    }
    stages = [
        (kind, _attrs(body))
        for kind, _, body in components['loki.process."alkana"']
        if kind != "attr"
    ]
    assert stages == [
        ("stage.drop", {"longer_than": "256KB", "drop_counter_reason": "line_too_long"}),
        ("stage.drop", {"expression": "^ *$", "drop_counter_reason": "blank_line"}),
        ("stage.json", {"expressions": {F.TIMESTAMP: F.TIMESTAMP}}),
        ("stage.timestamp", {"source": F.TIMESTAMP, "format": "RFC3339Nano"}),
        ("stage.label_drop", {"values": ["filename"]}),
    ]
    (endpoint,) = [
        body for kind, _, body in components['loki.write."default"'] if kind == "endpoint"
    ]
    assert _attrs(endpoint) == {"url": "http://loki:3100/loki/api/v1/push"}


def test_alloy_parser_rejects_broken_syntax() -> None:
    with pytest.raises(AssertionError):
        _AlloyParser('loki.write "x" {\n  endpoint {\n    url = \n  }\n}\n').body(None)


# -- logrotate: the real binary -------------------------------------------------------------------


def _logrotate() -> str:
    binary = shutil.which("logrotate") or next(
        (p for p in ("/usr/sbin/logrotate", "/sbin/logrotate") if os.path.exists(p)), None
    )
    if binary is None:
        pytest.fail("logrotate is not installed: the config is checked with the real binary")
    return binary


def _logrotate_config(tmp_path: Path) -> tuple[Path, Path]:
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o750)
    options = R.RenderOptions(
        log_dir=str(logs),
        user=pwd.getpwuid(os.getuid()).pw_name,
        group=grp.getgrgid(os.getgid()).gr_name,
    )
    config = tmp_path / "alkana"
    config.write_text(R.render("logrotate", options)[0].text, encoding="utf-8")
    return config, logs


def _run_logrotate(config: Path, state: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_logrotate(), *flags, "-s", str(state), str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_logrotate_config_has_the_directives_and_none_that_lose_lines() -> None:
    text = _artifact("logrotate/alkana-dashboard")
    directives = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert directives == [
        "/var/log/alkana-dashboard/*.log {",
        "su alkana alkana",
        "daily",
        "maxsize 10M",
        "rotate 14",
        "missingok",
        "notifempty",
        "create 0640 alkana alkana",
        "dateext",
        "dateformat -%Y%m%d-%s",
        "compress",
        "delaycompress",
        "}",
    ]
    assert "copytruncate" not in directives
    assert not any(d.startswith(("postrotate", "prerotate")) for d in directives)


def test_logrotate_debug_run_accepts_the_config(tmp_path: Path) -> None:
    config, logs = _logrotate_config(tmp_path)
    (logs / "app.log").write_text('{"level": "info"}\n', encoding="utf-8")
    done = _run_logrotate(config, tmp_path / "state", "-d", "-f")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "error" not in output.lower()
    assert f"rotating pattern: {logs}/*.log" in output
    assert "(14 rotations)" in output
    assert "log files >= 10485760 are rotated earlier" in output
    assert "empty log files are not rotated" in output
    assert re.search(rf"renaming {logs}/app.log to {logs}/app.log-[0-9]{{8}}-[0-9]{{10}}\n", output)
    assert f"creating new {logs}/app.log mode = 0640" in output
    assert "copying" not in output
    assert "truncating" not in output


@pytest.mark.slow
def test_logrotate_rotates_twice_a_day_without_collisions_and_the_report_reads_all(
    tmp_path: Path,
) -> None:
    config, logs = _logrotate_config(tmp_path)
    state = tmp_path / "state"
    line = {F.LEVEL: F.INFO, F.EVENT: F.EVENT_HTTP_REQUEST, F.ROUTE: "/r", F.STATUS_CODE: 200}
    for _ in range(3):
        with (logs / "app.log").open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(line) + "\n")
        done = _run_logrotate(config, state, "-f")
        assert done.returncode == 0, done.stdout + done.stderr
        # The date extension ends in epoch seconds: the next rotation needs another second.
        time.sleep(1.1)
    names = sorted(p.name for p in logs.iterdir())
    current = logs / "app.log"
    assert current.exists()
    assert current.stat().st_size == 0
    assert stat.S_IMODE(current.stat().st_mode) == 0o640
    rotated = [n for n in names if n != "app.log"]
    assert len(rotated) == 3
    assert all(re.fullmatch(r"app\.log-[0-9]{8}-[0-9]{10}(\.gz)?", n) for n in rotated)
    # delaycompress: the newest stays plain, the older ones are compressed.
    assert [n.endswith(".gz") for n in rotated] == [True, True, False]
    gzip.decompress((logs / rotated[0]).read_bytes())
    assert not any(fnmatch.fnmatch(n, "*.log") for n in rotated)
    assert Rep.build_report([logs]).requests == 3


# -- Loki rules -----------------------------------------------------------------------------------


def _rules(options: R.RenderOptions = DEFAULTS) -> dict[str, dict[str, Any]]:
    groups = _yaml("integrations/loki/rules/alkana.yaml", options)["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_rules_are_the_six_alerts_with_severity_summary_and_description() -> None:
    rules = _rules()
    assert set(rules) == {
        "HighErrorRate",
        "SlowAPIResponses",
        "ETLStale",
        "ETLFailed",
        "ErrorLogSpike",
        "DatabaseConnectionsHigh",
    }
    for rule in rules.values():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        assert re.fullmatch(r"[0-9]+m", rule["for"])


def test_rule_expressions_come_from_the_presets() -> None:
    rules = _rules()
    labels = DEFAULTS.labels
    assert rules["HighErrorRate"]["expr"].strip() == (
        f"({P.get('error_ratio').render(labels, range='5m')}) > 0.05"
    )
    assert rules["HighErrorRate"]["for"] == "5m"
    assert rules["SlowAPIResponses"]["expr"].strip() == (
        f"({P.get('latency_p95').render(labels, range='5m', by='route')}) > 2000"
    )
    assert rules["SlowAPIResponses"]["for"] == "10m"
    assert rules["ETLStale"]["expr"].strip() == P.get("etl_stale").render(
        labels, range="7d", stale_after="25h"
    )
    assert rules["ETLFailed"]["expr"].strip() == P.get("etl_failing").render(labels, range="24h")
    assert rules["DatabaseConnectionsHigh"]["expr"].strip() == (
        f"({P.get('metric_gauge').render(labels, metric='db_connections_active', range='5m')}) > 80"
    )
    db = rules["DatabaseConnectionsHigh"]
    assert (db["for"], db["labels"]) == (
        "5m",
        {"severity": "warning", "app": "alkana-dashboard", "env": "production"},
    )
    spike = rules["ErrorLogSpike"]["expr"]
    assert P.get("error_log_lines").render(labels, range="5m") in spike
    assert P.get("error_log_lines").render(labels, range="1h", offset="5m") in spike
    assert ruler.rule_expressions() == {name: rule["expr"].strip() for name, rule in rules.items()}


def test_rule_templates_use_the_series_labels() -> None:
    rules = _rules()
    assert "{{ $labels.route }}" in rules["SlowAPIResponses"]["annotations"]["description"]
    assert "{{ $labels.table }}" in rules["ETLStale"]["annotations"]["summary"]
    assert "humanizePercentage" in rules["HighErrorRate"]["annotations"]["description"]


# -- Grafana --------------------------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(_artifact("integrations/grafana/dashboards/alkana.json"))
    return board


def test_dashboard_panels_use_the_provisioned_loki_datasource() -> None:
    (datasource,) = _yaml("integrations/grafana/provisioning/datasources/loki.yaml")["datasources"]
    assert (datasource["uid"], datasource["type"], datasource["url"]) == (
        grafana.DATASOURCE_UID,
        "loki",
        "http://loki:3100",
    )
    for panel in _dashboard()["panels"]:
        assert panel["datasource"] == {"type": "loki", "uid": grafana.DATASOURCE_UID}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == grafana.DATASOURCE_UID


def test_dashboard_has_the_panels_the_issue_lists() -> None:
    titles = [panel["title"] for panel in _dashboard()["panels"]]
    for wanted in (
        "Request rate by route",
        "5xx ratio by route",
        "Latency p50 / p95 / p99",
        "5xx errors by route",
        "Slow requests by route (> 2000 ms)",
        "Error logs",
        "ETL status and freshness by table",
        "ETL duration p95 by table",
        "Log volume by level",
        "Database connections (db_connections_active)",
    ):
        assert wanted in titles


def test_dashboard_panels_fit_the_grid_without_overlapping() -> None:
    panels = _dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, panel["title"]
        cells |= area


def test_dashboard_queries_come_from_the_presets() -> None:
    labels = DEFAULTS.labels
    by_title = {panel["title"]: panel for panel in _dashboard()["panels"]}

    def exprs(title: str) -> list[str]:
        return [t["expr"] for t in by_title[title]["targets"]]

    assert exprs("5xx ratio by route") == [
        P.get("error_ratio_by_route").render(labels, range="$__auto")
    ]
    assert exprs("Latency p50 / p95 / p99") == [
        P.get(name).render(labels, range="$__auto", by="") for name in P.LATENCY_QUANTILES
    ]
    assert exprs("Error logs") == [P.get("error_logs").render(labels)]
    assert exprs("Log volume by level") == [
        P.get("log_volume_by_level").render(labels, range="$__auto")
    ]
    assert exprs("Database connections (db_connections_active)") == [
        P.get("metric_gauge").render(labels, metric="db_connections_active", range="$__auto")
    ]
    db = by_title["Database connections (db_connections_active)"]["fieldConfig"]["defaults"]
    assert db["thresholds"]["steps"][-1] == {"value": 80, "color": "red"}
    freshness = exprs("ETL status and freshness by table")
    assert f"({P.get('etl_last_success').render(labels)}) * 1000" in freshness
    assert f"({P.get('etl_stale').render(labels)}) * 0 + 1" in freshness
    logs_target = by_title["Error logs"]["targets"][0]
    assert logs_target["queryType"] == "range"


def test_dashboard_is_built_by_grafanas_sdk_to_its_schema_version() -> None:
    from grafana_foundation_sdk.builders.dashboard import Dashboard
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    board = _dashboard()
    empty = json.loads(JSONEncoder().encode(Dashboard("x").build()))
    assert board["schemaVersion"] == empty["schemaVersion"] >= 39
    # The SDK's defaults of each panel kind are written (a stat panel's colour and text modes).
    stat_panel = next(p for p in board["panels"] if p["type"] == "stat")
    assert {"colorMode", "textMode", "reduceOptions"} <= stat_panel["options"].keys()
    # The SDK writes every option of a panel kind, false when not set: the logs panel's log
    # details stay on, as Grafana has them by default.
    logs_panel = next(p for p in board["panels"] if p["type"] == "logs")
    assert logs_panel["options"]["enableLogDetails"] is True


def test_rendering_the_dashboard_without_the_sdk_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from alkana_logging.ops.configs import grafana

    monkeypatch.setattr(grafana, "_SDK_MISSING", "No module named 'grafana_foundation_sdk'")
    with pytest.raises(R.RenderError, match=r"alkana-logging\[ops\].*grafana-foundation-sdk=="):
        R.render("dashboard", DEFAULTS)
    # The other artefacts do not need it.
    assert [a.path for a in R.render("promtail", DEFAULTS)] == ["promtail/config.yml"]


def test_dashboard_provisioning_points_at_the_mounted_dashboards() -> None:
    (provider,) = _yaml("integrations/grafana/provisioning/dashboards/alkana.yaml")["providers"]
    compose = _yaml("integrations/docker-compose.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts


# -- the local stack ------------------------------------------------------------------------------


def test_compose_mounts_files_that_exist_in_the_repository() -> None:
    compose = _yaml("integrations/docker-compose.yml")
    assert set(compose["services"]) == {"loki", "alloy", "alertmanager", "app", "grafana"}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
        for volume in service["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith(("./", "../")) or source == "..":
                assert (ROOT / "integrations" / source).exists(), (name, source)


def test_compose_wires_loki_config_rules_and_the_log_directory() -> None:
    compose = _yaml("integrations/docker-compose.yml")
    loki = compose["services"]["loki"]
    assert loki["command"] == ["-config.file=/etc/loki/loki-local.yaml"]
    assert "./loki/loki-local.yaml:/etc/loki/loki-local.yaml:ro" in loki["volumes"]
    local = _yaml("integrations/loki/loki-local.yaml")
    rules_dir = local["ruler"]["storage"]["local"]["directory"]
    # auth_enabled false: Loki's single tenant is called "fake".
    assert local["auth_enabled"] is False
    assert f"./loki/rules:{rules_dir}/fake:ro" in loki["volumes"]
    alloy = compose["services"]["alloy"]
    assert "${ALKANA_LOG_DIR:-../logs}:/var/log/alkana-dashboard:ro" in alloy["volumes"]
    assert "./alloy/config.alloy:/etc/alloy/config.alloy:ro" in alloy["volumes"]
    assert local["limits_config"]["max_line_size"] == "256KB"


def test_compose_runs_the_example_backend_with_a_healthcheck_on_health() -> None:
    compose = _yaml("integrations/docker-compose.yml")
    app = compose["services"]["app"]
    assert "backend:app" in app["command"][-1]
    assert app["environment"]["LOG_FILE"] == "/var/log/alkana-dashboard/app.log"
    assert "${ALKANA_LOG_DIR:-../logs}:/var/log/alkana-dashboard" in app["volumes"]
    test = app["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "http://127.0.0.1:8000/health'" in test[3]
