from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alkana_logging import fields as F
from alkana_logging.ops import configs as R
from alkana_logging.ops import presets as P
from alkana_logging.ops.configs import grafana
from alkana_logging.ops.configs import rules as ruler

LOGQL_DIR = Path(__file__).resolve().parents[1] / "logql"

#: Range aggregations that take no grouping (Loki: "grouping not allowed for ...").
NO_GROUPING = ("count_over_time", "rate", "bytes_over_time", "bytes_rate", "sum_over_time")
#: Unwrapped range aggregations that keep every label unless grouped.
UNWRAPPED_GROUPING = (
    "quantile_over_time",
    "max_over_time",
    "min_over_time",
    "avg_over_time",
    "last_over_time",
    "first_over_time",
    "stddev_over_time",
    "stdvar_over_time",
)

ISSUE_PRESETS = {
    "request_rate",
    "error_ratio",
    "error_ratio_by_route",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "slow_requests",
    "errors_by_route",
    "top_exceptions",
    "log_volume_by_level",
    "etl_runs",
    "etl_failures",
    "etl_duration_p95",
    "etl_last_success",
    "metric_gauge",
}


# -- a small LogQL scanner: enough to check structure around parentheses and strings ----------


def _code_positions(query: str) -> Iterator[tuple[int, str]]:
    """Index and character of every character outside double-quoted strings."""
    in_string = False
    escaped = False
    for i, ch in enumerate(query):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
            continue
        yield i, ch


def _closing(query: str, open_index: int) -> int:
    depth = 0
    for i, ch in _code_positions(query):
        if i < open_index:
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
    raise AssertionError(f"unbalanced parentheses in {query}")


def _calls(query: str, function: str) -> list[tuple[int, int]]:
    """(open paren, close paren) of each call of ``function`` outside strings."""
    code = {i for i, _ in _code_positions(query)}
    calls = []
    for match in re.finditer(rf"\b{function}\(", query):
        if match.start() in code:
            open_index = match.end() - 1
            calls.append((open_index, _closing(query, open_index)))
    return calls


def _mask_strings(query: str) -> str:
    """The query with the inside of every string replaced by ``_`` (the quotes stay)."""
    code = dict(_code_positions(query))
    return "".join(code.get(i, '"' if ch == '"' else "_") for i, ch in enumerate(query))


def _variants() -> list[tuple[str, str]]:
    """Every preset with its defaults, with every selector label, and with no grouping."""
    out = []
    for preset in P.PRESETS:
        out.append((f"{preset.name}[defaults]", preset.render()))
        out.append(
            (
                f"{preset.name}[labels]",
                preset.render(app="alkana-dashboard", env="production", host="web-1"),
            )
        )
        if any(p.name == "by" for p in preset.params):
            out.append((f"{preset.name}[by=]", preset.render(by="")))
    return out


VARIANTS = _variants()


def _dashboard_queries() -> list[tuple[str, str]]:
    board = grafana.dashboard_json(R.RenderOptions())
    out = []
    for panel in board["panels"]:
        for target in panel["targets"]:
            # Grafana replaces its interval variables before the query reaches Loki.
            expr = target["expr"].replace("$__auto", "1m").replace("$__range", "6h")
            out.append((f"dashboard:{panel['title']}:{target['refId']}", expr))
    return out


def _all_queries() -> list[tuple[str, str]]:
    rules = [(f"rule:{name}", expr) for name, expr in ruler.rule_expressions().items()]
    return VARIANTS + rules + _dashboard_queries()


ALL_QUERIES = _all_queries()


# -- the set of presets ---------------------------------------------------------------------------


def test_presets_include_every_preset_the_issue_lists() -> None:
    assert set(P.names()) >= ISSUE_PRESETS


def test_preset_names_are_unique_and_get_finds_each() -> None:
    assert len(set(P.names())) == len(P.PRESETS)
    for preset in P.PRESETS:
        assert P.get(preset.name) is preset


def test_get_names_the_presets_there_are_for_an_unknown_name() -> None:
    with pytest.raises(P.PresetError, match=r"no preset named 'nope'; presets: request_rate"):
        P.get("nope")


@pytest.mark.parametrize("preset", P.PRESETS, ids=lambda p: p.name)
def test_every_preset_has_selector_params_and_a_known_kind(preset: P.Preset) -> None:
    assert preset.kind in P.KINDS
    assert [p.name for p in preset.params[: len(F.STREAM_LABELS)]] == list(F.STREAM_LABELS)
    assert preset.defaults()[F.LABEL_JOB] == "alkana"
    assert preset.description


def test_as_dict_has_name_description_and_default_logql() -> None:
    data = P.get("error_ratio").as_dict()
    assert data["name"] == "error_ratio"
    assert data["description"]
    assert data["logql"] == P.get("error_ratio").render()
    app = {k: v for k, v in data["params"][1].items() if k != "description"}
    assert app == {"name": "app", "default": None}


# -- rendering ------------------------------------------------------------------------------------


def test_selector_leaves_out_labels_without_a_value() -> None:
    assert P.get("request_rate").render().startswith('sum by (route) (rate({job="alkana"} |=')


def test_selector_uses_the_static_labels_in_the_contract_order() -> None:
    logql = P.get("request_rate").render(host="h", env="e", app="a", job="j")
    assert '{job="j", app="a", env="e", host="h"}' in logql


def test_label_values_are_quoted_so_that_hostile_values_stay_strings() -> None:
    logql = P.get("error_logs").render(app='x"} |= "y', env="a\\b\nc")
    assert '{job="alkana", app="x\\"} |= \\"y", env="a\\\\b\\nc"}' in logql


def test_error_ratio_is_server_errors_over_all_http_requests() -> None:
    expected = (
        '(sum(count_over_time({job="alkana"} |= "http_request" | json | __error__="" '
        '| event="http_request" | status_code >= 500 | __error__="" [5m])) or '
        'sum(count_over_time({job="alkana"} |= "http_request" | json | __error__="" '
        '| event="http_request" [5m])) * 0) / '
        'sum(count_over_time({job="alkana"} |= "http_request" | json | __error__="" '
        '| event="http_request" [5m]))'
    )
    assert expected == P.get("error_ratio").render()


def test_latency_is_quantile_over_time_of_duration_by_route() -> None:
    expected = (
        'quantile_over_time(0.95, {job="alkana"} |= "http_request" | json | __error__="" '
        '| event="http_request" | unwrap duration_ms | __error__="" [5m]) by (route)'
    )
    assert expected == P.get("latency_p95").render()


def test_latency_with_empty_by_is_one_series() -> None:
    assert P.get("latency_p99").render(by="").endswith("[5m]) by ()")


def test_etl_last_success_is_max_finished_at_of_successful_runs_by_table() -> None:
    expected = (
        'max_over_time({job="alkana"} |= "etl_run_finished" | json | __error__="" '
        '| event="etl_run_finished" | status="success" | unwrap finished_at | __error__="" '
        "[7d]) by (table)"
    )
    assert expected == P.get("etl_last_success").render()


def test_etl_stale_is_ran_in_the_window_unless_succeeded_within_stale_after() -> None:
    logql = P.get("etl_stale").render(range="3d", stale_after="26h")
    left, _, right = logql.partition(" unless ")
    assert P.get("etl_last_success").render(range="3d") in left
    assert 'event=~"etl_run_started|etl_run_finished" [3d])) * 0' in left
    assert right == (
        'sum by (table) (count_over_time({job="alkana"} |= "etl_run_finished" | json '
        '| __error__="" | event="etl_run_finished" | status="success" [26h]))'
    )


def test_etl_failing_compares_last_failure_with_last_success() -> None:
    failed = (
        'max_over_time({job="alkana"} |= "etl_run_finished" | json | __error__="" '
        '| event="etl_run_finished" | status="failed" | unwrap finished_at | __error__="" '
        "[24h]) by (table)"
    )
    succeeded = failed.replace('status="failed"', 'status="success"')
    assert f"{failed} > ({succeeded} or {failed} * 0)" == P.get("etl_failing").render()


def test_metric_gauge_filters_the_line_by_the_metric_name_first() -> None:
    logql = P.get("metric_gauge").render(metric="queue_depth")
    assert logql.startswith(
        'max by (metric) (last_over_time({job="alkana"} |= "queue_depth" | json'
    )
    assert '| event="metric" | metric="queue_depth" | unwrap value | __error__=""' in logql
    # Each writer's latest (a worker's own pool), then the largest of them.
    assert logql.endswith("[15m]) by (metric, host, pid))")
    assert P.get("metric_gauge").render(metric="q", by="").startswith("max(last_over_time(")
    assert P.get("metric_gauge").render(metric="q", by="").endswith("[15m]) by (host, pid))")


def test_error_log_lines_takes_an_offset() -> None:
    assert P.get("error_log_lines").render(range="1h", offset="5m").endswith("[1h] offset 5m))")


def test_error_logs_is_a_log_query() -> None:
    logql = P.get("error_logs").render()
    assert logql == (
        '{job="alkana"} |~ "error|critical" | json | __error__="" | level=~"error|critical"'
    )


def test_numbers_are_written_plainly() -> None:
    logql = P.get("slow_requests").render(threshold_ms=0.00001)
    assert "duration_ms > 0.00001 |" in logql
    assert "duration_ms > 1500 |" in P.get("slow_requests").render(threshold_ms="1500.0")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("error_ratio", {"range": "5"}, r"parameter 'range': got '5'; expected a LogQL duration"),
        ("error_ratio", {"range": "5m; drop"}, r"expected a LogQL duration"),
        ("request_rate", {"by": "route, user-agent"}, r"not 'user-agent'"),
        ("slow_requests", {"threshold_ms": "fast"}, r"got 'fast'; expected a number"),
        ("slow_requests", {"threshold_ms": -1}, r"expected a number >= 0"),
        ("slow_requests", {"threshold_ms": float("inf")}, r"expected a finite number"),
        ("top_exceptions", {"limit": 0}, r"expected a whole number >= 1"),
        ("top_exceptions", {"limit": 2.5}, r"expected a whole number >= 1"),
        ("error_ratio", {"app": ""}, r"parameter 'app': got ''; expected a non-empty string"),
        ("error_ratio", {"by": "route"}, r"preset 'error_ratio' has no parameter 'by'"),
        ("error_ratio", {"user": "alice"}, r"has no parameter 'user'"),
    ],
)
def test_bad_parameters_are_rejected_with_the_reason(
    name: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(P.PresetError, match=message):
        P.get(name).render(params)


def test_none_means_the_default() -> None:
    assert P.get("error_ratio").render(range=None) == P.get("error_ratio").render()


def test_grafana_interval_variables_are_accepted_as_ranges() -> None:
    assert "[$__auto]" in P.get("request_rate").render(range="$__auto")


# -- LogQL structure: the rules of the issue, checked on every query we ship ------------------


def _problems(logql: str) -> list[str]:
    """What breaks the issue's LogQL rules in ``logql`` (empty when nothing does)."""
    problems = []
    code = _mask_strings(logql)
    for function in NO_GROUPING:
        for _, close in _calls(logql, function):
            if logql[close + 1 :].lstrip().startswith(("by", "without")):
                problems.append(f"{function}(...) grouped directly")
    for function in UNWRAPPED_GROUPING:
        for open_index, close in _calls(logql, function):
            if "| unwrap " not in logql[open_index:close]:
                problems.append(f"{function} without unwrap")
            if not re.match(r"\s*by \(", logql[close + 1 :]):
                problems.append(f"{function}(...) without by (...)")
    stages = (r"\| json", r"\| unwrap \w+", r"\| \w+ (?:>=|<=|>|<|==|!=) [0-9.]+")
    problems.extend(
        f'{match.group(0)!r} not followed by | __error__=""'
        for stage in stages
        for match in re.finditer(stage, code)
        if not code[match.end() :].startswith(' | __error__=""')
    )
    for match in re.finditer(r"\{([^{}]*)\}", code):
        for matcher in filter(None, (m.strip() for m in match.group(1).split(","))):
            label = re.split(r"[=!~]", matcher, maxsplit=1)[0]
            if label not in F.STREAM_LABELS or label in F.NEVER_LABELS:
                problems.append(f"label {label!r} in a stream selector")
    for match in re.finditer(r'\| event(=|=~)"([^"]+)"', logql):
        before = logql[: match.start()]
        pipeline = before[before.rindex("}") :]
        line_filter = re.search(r'\|[=~] "([^"]+)" \| json \| __error__="" $', pipeline)
        if not line_filter:
            problems.append(f"no line filter before | json for event {match.group(2)!r}")
        elif match.group(2) != F.EVENT_METRIC and not re.search(
            line_filter.group(1), match.group(2)
        ):
            # A metric's lines are filtered by the metric's name instead.
            problems.append(f"line filter {line_filter.group(1)!r} misses {match.group(2)!r}")
    return problems


@pytest.mark.parametrize(("name", "logql"), ALL_QUERIES, ids=[n for n, _ in ALL_QUERIES])
def test_every_query_we_ship_follows_the_logql_rules(name: str, logql: str) -> None:
    assert _problems(logql) == []


@pytest.mark.parametrize(
    ("logql", "problem"),
    [
        ('count_over_time({job="a"} |= "x" | json | __error__="" [5m]) by (route)', "grouped"),
        ('sum(rate({job="a"} |= "x" | json [5m]))', "'| json' not followed"),
        (
            'quantile_over_time(0.9, {job="a"} |= "x" | json | __error__="" | unwrap d [5m]) '
            "by (route)",
            "'| unwrap d' not followed",
        ),
        (
            'max_over_time({job="a"} |= "x" | json | __error__="" | unwrap d | __error__="" [5m])',
            "without by",
        ),
        ('sum(count_over_time({job="a"} | json | __error__="" | d > 5 [5m]))', "'| d > 5' not"),
        ('sum(count_over_time({request_id="a"} |= "x" | json | __error__="" [5m]))', "label"),
        (
            'sum(count_over_time({job="a"} | json | __error__="" | event="http_request" [5m]))',
            "no line filter",
        ),
    ],
)
def test_the_logql_rules_catch_known_mistakes(logql: str, problem: str) -> None:
    assert any(problem in found for found in _problems(logql)), _problems(logql)


# -- Grafana's own LogQL grammar ------------------------------------------------------------------


def _parse_with_lezer(queries: list[tuple[str, str]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not installed: the LogQL grammar check needs Node.js (apt install nodejs)"
        )
    if not (LOGQL_DIR / "node_modules" / "@grafana" / "lezer-logql").is_dir():
        pytest.fail(
            "tests/logql/node_modules is missing: run `npm ci --prefix tests/logql` "
            "(installs @grafana/lezer-logql, Grafana's LogQL grammar)"
        )
    payload = json.dumps([{"name": n, "logql": q} for n, q in queries])
    done = subprocess.run(
        [node, str(LOGQL_DIR / "parse.mjs")],
        input=payload,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def test_every_preset_rule_and_panel_query_parses_with_grafanas_logql_grammar() -> None:
    results = _parse_with_lezer(ALL_QUERIES)
    assert len(results) == len(ALL_QUERIES)
    failures = {r["name"]: r["errors"] for r in results if not r["ok"]}
    assert failures == {}


def test_the_grammar_check_catches_a_broken_query() -> None:
    broken = P.get("error_ratio").render()[:-3]  # drop the last "]))"
    results = _parse_with_lezer([("ok", P.get("error_ratio").render()), ("broken", broken)])
    assert [r["ok"] for r in results] == [True, False]
    assert results[1]["errors"][0]["from"] >= len(broken) - 5


def test_the_presets_stale_and_look_back_durations_are_the_health_checks_numbers() -> None:
    from alkana_logging import freshness
    from alkana_logging.ops.cli import parse_duration

    assert parse_duration(P.DEFAULT_STALE_AFTER, option="x") == freshness.DEFAULT_STALE_AFTER_S
    assert parse_duration(P.DEFAULT_ETL_LOOKBACK, option="x") == freshness.DEFAULT_LOOKBACK_S
    for seconds, text in ((90, "90s"), (0.25, "250ms"), (25 * 3600, "25h"), (14 * 86400, "14d")):
        assert P.duration_text(seconds) == text
        assert parse_duration(text, option="x") == seconds
    for bad in (0, -1, 0.0004):
        with pytest.raises(ValueError, match="whole number of milliseconds"):
            P.duration_text(bad)
