from __future__ import annotations

import gzip
import io
import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from alkana_logging import fields as F
from alkana_logging.ops import cli
from alkana_logging.ops import configs as R
from alkana_logging.ops import presets as P
from alkana_logging.settings import DEFAULT_MAX_LINE_BYTES
from tests import _loki_api as api

LOKI_VARIABLES = ("LOKI_URL", "LOKI_TENANT", "LOKI_USERNAME", "LOKI_PASSWORD", "LOKI_TOKEN")


@pytest.fixture(autouse=True)
def _no_loki_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*LOKI_VARIABLES, "LOKI_JOB", "LOG_LEVEL", "LOG_FILE", "LOG_ROTATION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def loki() -> Iterator[api.LokiApi]:
    with api.running() as server:
        yield server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _line(**fields: object) -> str:
    record = {
        F.TIMESTAMP: "2027-01-15T08:00:00.000000Z",
        F.LEVEL: F.INFO,
        F.LOGGER: "app",
        F.MESSAGE: "hello",
        F.APP: "a",
        F.ENV: "e",
        F.HOST: "h",
        F.PID: 1,
    }
    record.update(fields)
    return json.dumps(record)


# -- presets --------------------------------------------------------------------------------------


def test_presets_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "presets")
    assert status == 0
    for name in P.names():
        assert f"\n{name} " in out


def test_presets_json_has_name_description_and_logql(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "presets", "--json")
    assert status == 0
    data = json.loads(out)
    assert [item["name"] for item in data] == list(P.names())
    for item in data:
        assert item["description"]
        assert item["logql"] == P.get(item["name"]).render()


def test_presets_name_shows_the_logql_with_params(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "presets", "latency_p95", "--param", "app=shop", "--param", "by=")
    assert status == 0
    assert out.rstrip().endswith(P.get("latency_p95").render(app="shop", by=""))
    assert "app    shop" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["presets", "nope"], "no preset named 'nope'"),
        (["presets", "error_ratio", "--param", "range=soon"], "expected a LogQL duration"),
        (
            ["presets", "error_ratio", "--param", "range"],
            "--param: got 'range'; expected NAME=VALUE",
        ),
        (["query", "error_ratio", "--since", "an hour"], "--since: got 'an hour'"),
        (["presets", "--param", "range=5m"], "--param needs a preset"),
    ],
)
def test_usage_errors_exit_2_with_the_reason(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert message in err


# -- query ----------------------------------------------------------------------------------------


def test_query_instant_preset_prints_a_table(
    capsys: pytest.CaptureFixture[str], loki: api.LokiApi
) -> None:
    loki.answers["/loki/api/v1/query"] = api.vector(
        ({"route": "/slow"}, "2500.5"), ({"route": "/fast"}, "12")
    )
    status, out, _ = run(capsys, "query", "latency_p95", "--loki-url", loki.url, "--since", "1h")
    assert status == 0
    lines = out.splitlines()
    assert lines[1].split() == ["route", "value", "(ms)"]
    assert lines[2].split() == ["/slow", "2,500.500"]
    assert lines[3].split() == ["/fast", "12"]
    sent = loki.last("/loki/api/v1/query").params["query"]
    assert sent == P.get("latency_p95").render(range="1h")


def test_query_ratio_and_epoch_values_are_readable(
    capsys: pytest.CaptureFixture[str], loki: api.LokiApi
) -> None:
    loki.answers["/loki/api/v1/query"] = api.vector(({}, "0.0625"))
    assert "6.25 %" in run(capsys, "query", "error_ratio", "--loki-url", loki.url)[1]
    loki.answers["/loki/api/v1/query"] = api.vector(({"table": "raw_mb51"}, "1800000000"))
    out = run(capsys, "query", "etl_last_success", "--loki-url", loki.url)[1]
    assert "raw_mb51  2027-01-15 08:00:00Z (" in out


def test_query_range_preset_summarises_each_series(
    capsys: pytest.CaptureFixture[str], loki: api.LokiApi
) -> None:
    loki.answers["/loki/api/v1/query_range"] = api.matrix(
        ({"level": "error"}, [(100.0, "1"), (160.0, "4"), (220.0, "2")])
    )
    status, out, _ = run(
        capsys,
        "query",
        "log_volume_by_level",
        "--loki-url",
        loki.url,
        "--since",
        "2h",
        "--step",
        "1m",
    )
    assert status == 0
    assert out.splitlines()[-1].split() == ["error", "3", "2", "1", "4"]
    params = loki.last("/loki/api/v1/query_range").params
    assert int(params["end"]) - int(params["start"]) == 2 * 3600 * 10**9
    assert params["step"] == "60"


def test_query_log_preset_prints_the_lines_oldest_first(
    capsys: pytest.CaptureFixture[str], loki: api.LokiApi
) -> None:
    loki.answers["/loki/api/v1/query_range"] = api.streams(
        ({"job": "alkana"}, [(2, _line(message="second")), (1, _line(message="first"))])
    )
    status, out, _ = run(capsys, "query", "error_logs", "--loki-url", loki.url, "--color", "never")
    assert status == 0
    assert out.index("first") < out.index("second")
    assert loki.last("/loki/api/v1/query_range").params["limit"] == "100"


def test_presets_name_json_has_the_values_used(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys, "presets", "slow_requests", "--json", "--param", "threshold_ms=500"
    )
    assert status == 0
    data = json.loads(out)
    assert data["values"]["threshold_ms"] == "500"
    assert data["logql"] == P.get("slow_requests").render(threshold_ms=500)


def test_query_json_output(capsys: pytest.CaptureFixture[str], loki: api.LokiApi) -> None:
    loki.answers["/loki/api/v1/query"] = api.vector(({"table": "t"}, "3"))
    status, out, _ = run(capsys, "query", "etl_failures", "--loki-url", loki.url, "--json")
    assert status == 0
    data = json.loads(out)
    assert data["preset"] == "etl_failures"
    assert data["logql"] == P.get("etl_failures").render()
    assert data["result_type"] == "vector"
    assert data["result"][0]["labels"] == {"table": "t"}
    assert data["result"][0]["value"] == 3.0


def test_query_takes_url_tenant_and_job_from_the_environment(
    capsys: pytest.CaptureFixture[str], loki: api.LokiApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOKI_URL", loki.url)
    monkeypatch.setenv("LOKI_TENANT", "team-a")
    monkeypatch.setenv("LOKI_JOB", "etl")
    loki.answers["/loki/api/v1/query"] = api.vector()
    status, out, _ = run(capsys, "query", "etl_runs")
    assert status == 0
    assert "(no data)" in out
    seen = loki.last("/loki/api/v1/query")
    assert seen.headers["X-Scope-OrgID"] == "team-a"
    assert seen.params["query"] == P.get("etl_runs").render(job="etl")


def test_query_shows_lokis_message_when_it_rejects_the_query(
    capsys: pytest.CaptureFixture[str], loki: api.LokiApi
) -> None:
    loki.answers["/loki/api/v1/query"] = api.text_error(
        400, "max_query_length: the query time range exceeds the limit"
    )
    status, _, err = run(capsys, "query", "etl_stale", "--loki-url", loki.url)
    assert status == 1
    assert "rejected the request (HTTP 400): max_query_length: the query time range" in err


def test_query_of_an_unreachable_loki_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "query", "error_ratio", "--loki-url", "http://127.0.0.1:9")
    assert status == 1
    assert "cannot reach Loki at http://127.0.0.1:9" in err


def test_query_without_a_loki_url_says_how_to_give_one(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "query", "error_ratio")
    assert status == 1
    assert "set LOKI_URL or pass --loki-url" in err


# -- tail -----------------------------------------------------------------------------------------


def test_tail_prints_the_last_lines_readably(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    lines = [_line(message=f"line {i}", user="alice") for i in range(20)]
    log.write_text("\n".join([*lines, "not json at all"]) + "\n", encoding="utf-8")
    status, out, _ = run(capsys, "tail", str(log), "-n", "3", "--color", "never")
    assert status == 0
    shown = out.splitlines()
    assert len(shown) == 3
    assert "line 18" in shown[0]
    assert "line 19" in shown[1]
    assert "user=alice" in shown[1]
    assert "\x1b[" not in out
    assert shown[2] == "not json at all"
    assert '"timestamp"' not in out  # rendered, not raw JSON


def test_tail_escapes_control_characters_of_every_value(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    hostile = "/\x1b]0;pwned\x07\x1b[2J\x9b31m"
    log.write_text(_line(message="GET", path=hostile, **{hostile: 1}) + "\n", encoding="utf-8")
    status, out, _ = run(capsys, "tail", str(log), "--color", "never")
    assert status == 0
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\x9b" not in out
    assert "pwned" in out  # escaped, not dropped


def test_tail_reads_compressed_files_and_colours_on_request(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "app.log.1.gz"
    log.write_bytes(gzip.compress((_line(level=F.ERROR, message="boom") + "\n").encode()))
    status, out, _ = run(capsys, "tail", str(log), "--color", "always")
    assert status == 0
    assert "boom" in out
    assert "\x1b[" in out


def test_follow_prints_appended_lines_and_survives_rotation_and_truncation(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    log.write_text(_line(message="old") + "\n", encoding="utf-8")
    out = io.StringIO()
    stream = log.open("rb")
    assert [line.decode() for line in cli._last_lines(stream, 5)] == [_line(message="old") + "\n"]
    follow = cli._follow(stream, log, cli._line_renderer(colors=False), out, interval=0)
    next(follow)
    assert out.getvalue() == ""  # starts at the end
    with log.open("a", encoding="utf-8") as stream:
        stream.write(_line(message="appended") + "\n" + '{"partial": ')
    next(follow)
    assert "appended" in out.getvalue()
    assert "partial" not in out.getvalue()  # an incomplete line waits for its newline
    with log.open("a", encoding="utf-8") as stream:
        stream.write('"done"}\n')
    next(follow)
    assert '{"partial": "done"}' not in out.getvalue()  # rendered, not raw
    assert "partial" in out.getvalue()
    log.rename(tmp_path / "app.log.1")  # rotation: a new file under the name
    log.write_text(_line(message="after rotation") + "\n", encoding="utf-8")
    next(follow)
    assert "after rotation" in out.getvalue()
    log.write_text("", encoding="utf-8")  # truncation
    next(follow)
    with log.open("a", encoding="utf-8") as stream:
        stream.write(_line(message="after truncation") + "\n")
    next(follow)
    assert "after truncation" in out.getvalue()
    follow.close()


#: JSON lines another program wrote: a pino level, no level, values of every JSON type under the
#: keys the console form shows in columns, and JSON that is no object.
ODD_LINES = (
    '{"timestamp":"t","level":30,"msg":"pino"}',
    '{"level":null}',
    '{"timestamp":5,"level":"info","message":{"a":1},"logger":["x"],"logger_name":false}',
    '{"level":"info","message":null,"stack":3,"exception":[1],"exc_info":true}',
    "[1,2]",
    "3",
    '"text"',
    "null",
)


def test_tail_prints_a_line_for_any_json_value_of_any_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "other.log"
    log.write_text("\n".join(ODD_LINES) + "\n", encoding="utf-8")
    for argv in ([], ["--color", "always"]):
        status, out, err = run(capsys, "tail", str(log), "-n", "100", *argv)
        assert (status, err) == (0, "")
        assert len(out.splitlines()) >= len(ODD_LINES)
        assert "[30" in out
        assert "pino" in out
    follow = cli._tail_follow(log, 100, cli._line_renderer(colors=False), out := io.StringIO(), 0)
    next(follow)
    assert "[30" in out.getvalue()
    with log.open("a", encoding="utf-8") as stream:
        stream.write("\n".join(ODD_LINES) + "\n")
    next(follow)
    follow.close()
    assert out.getvalue().count("pino") == 2


def test_tail_escapes_the_lines_it_does_not_render(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "mixed.log"
    log.write_text(
        "plain \x1b]0;pwned\x07 \x1b[31mred\n" + '["\x9b31m", "\u202e"]\n', encoding="utf-8"
    )
    status, out, _ = run(capsys, "tail", str(log), "--color", "never")
    assert status == 0
    assert out.splitlines() == [
        "plain \\u001b]0;pwned\\u0007 \\u001b[31mred",
        '["\\u009b31m", "\\u202e"]',
    ]


def test_follow_holds_an_unfinished_last_line_until_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(_line(message="first") + "\n" + '{"torn": tr', encoding="utf-8")
    out = io.StringIO()
    follow = cli._tail_follow(log, 10, cli._line_renderer(colors=False), out, interval=0)
    next(follow)
    assert "first" in out.getvalue()
    assert "torn" not in out.getvalue()  # not printed in pieces
    with log.open("a", encoding="utf-8") as stream:
        stream.write("ue}\n")
    next(follow)
    assert out.getvalue().splitlines()[-1] == "torn=True"  # one line, rendered
    # Bounded: a line that grows past the limit without a newline is printed as it is.
    with log.open("a", encoding="utf-8") as stream:
        stream.write('{"long": "' + "x" * DEFAULT_MAX_LINE_BYTES)
    next(follow)
    assert out.getvalue().splitlines()[-1].startswith('{"long": "xxx')
    # An unfinished last line of a rotated file is printed before the new file's lines.
    with log.open("a", encoding="utf-8") as stream:
        stream.write("\n" + '{"cut": ')
    next(follow)
    log.rename(tmp_path / "app.log.1")
    log.write_text(_line(message="after rotation") + "\n", encoding="utf-8")
    next(follow)
    shown = out.getvalue().splitlines()
    assert shown[-2:][0] == '{"cut": '
    assert "after rotation" in shown[-1]
    follow.close()


def test_tail_follow_runs_as_a_process(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(_line(message="first") + "\n", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "alkana_logging", "tail", "-f", str(log), "--color", "never"],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: [lines.put(x) for x in stdout], daemon=True)
    reader.start()
    try:
        assert "first" in lines.get(timeout=60)
        with log.open("a", encoding="utf-8") as stream:
            stream.write(_line(message="second") + "\n")
        assert "second" in lines.get(timeout=60)
    finally:
        process.terminate()
        process.wait(timeout=60)
        reader.join(timeout=60)
        stdout.close()


@pytest.mark.parametrize(
    ("name", "argv", "message"),
    [
        ("app.log", ["-n", "-1"], "--lines: got -1; expected a number >= 0"),
        ("app.log.1.gz", ["-f"], "a compressed file cannot be followed"),
    ],
)
def test_tail_rejects_bad_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, argv: list[str], message: str
) -> None:
    (tmp_path / name).write_bytes(b"")
    status, _, err = run(capsys, "tail", str(tmp_path / name), *argv)
    assert status == 2
    assert message in err


def test_tail_of_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run(capsys, "tail", str(tmp_path / "none.log"))
    assert status == 2
    assert "no such file" in err


# -- check ----------------------------------------------------------------------------------------


def test_check_passes_with_good_settings_and_no_loki(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_FILE", str(tmp_path / "logs" / "app.log"))
    status, out, _ = run(capsys, "check")
    assert status == 0
    assert out.splitlines()[0].startswith("ok    settings: level INFO")
    assert "will be created" in out
    assert "skip  loki: not configured" in out


def test_check_fails_on_a_bad_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "loud")
    status, out, _ = run(capsys, "check")
    assert status == 1
    assert "FAIL  settings: LOG_LEVEL (environment): got 'loud'" in out


def test_check_fails_when_the_log_directory_is_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "logs").write_text("", encoding="utf-8")
    monkeypatch.setenv("LOG_FILE", str(tmp_path / "logs" / "app.log"))
    status, out, _ = run(capsys, "check")
    assert status == 1
    assert "exists and is not a directory" in out


def test_check_says_what_setup_would_meet_when_the_directory_cannot_be_made(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alkana_logging
    from alkana_logging.exceptions import ConfigurationError

    (tmp_path / "afile").write_text("", encoding="utf-8")
    # /proc refuses a new directory even to root, whom os.access() lets write anywhere.
    for log_file, said in (
        ("/proc/nope/app.log", "/proc/nope cannot be created"),
        (str(tmp_path / "afile" / "sub" / "app.log"), "afile exists and is not a directory"),
    ):
        monkeypatch.setenv("LOG_FILE", log_file)
        status, out, _ = run(capsys, "check")
        assert status == 1
        assert f"FAIL  log directory: log file {log_file}: " in out
        assert said in out
        assert "setup() will raise ConfigurationError" in out
        with pytest.raises(ConfigurationError):
            alkana_logging.setup(log_file=log_file, stdout=False)


def test_check_tries_the_log_file_and_removes_what_it_made(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_file = tmp_path / "new" / "logs" / "app.log"
    monkeypatch.setenv("LOG_FILE", str(log_file))
    status, out, _ = run(capsys, "check")
    assert status == 0
    assert f"{log_file.parent} will be created (tried, and removed)" in out
    assert list(tmp_path.iterdir()) == []
    log_file.parent.mkdir(parents=True)
    status, out, _ = run(capsys, "check")
    assert status == 0
    assert "the file will be created" in out
    assert list(log_file.parent.iterdir()) == []
    log_file.write_text("kept\n", encoding="utf-8")
    status, out, _ = run(capsys, "check")
    assert status == 0
    assert f"log file {log_file}: can be written\n" in out
    assert log_file.read_text(encoding="utf-8") == "kept\n"
    log_file.unlink()
    log_file.mkdir()  # setup() cannot open a directory for appending
    status, out, _ = run(capsys, "check")
    assert status == 1
    assert "Is a directory" in out


def test_check_asks_loki_when_it_is_configured(
    capsys: pytest.CaptureFixture[str],
    loki: api.LokiApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_FILE", str(tmp_path / "app.log"))
    monkeypatch.setenv("LOKI_URL", loki.url)
    status, out, _ = run(capsys, "check")
    assert status == 0
    assert f"ok    loki: {loki.url}: ready; 3 label name(s)" in out
    loki.answers["/ready"] = api.text_error(503, "Ingester not ready")
    status, out, _ = run(capsys, "check")
    assert status == 1
    assert "FAIL  loki: Loki at" in out
    assert "Ingester not ready" in out


# -- render ---------------------------------------------------------------------------------------


def test_render_one_target_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "render", "promtail", "--app", "shop", "--env", "staging")
    assert status == 0
    assert out == R.render("promtail", R.RenderOptions(app="shop", env="staging"))[0].text


def test_render_all_to_stdout_separates_the_files(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "render", "all")
    assert status == 0
    assert out.count("==> ") == len(R.render("all"))
    assert "==> integrations/grafana/dashboards/alkana.json <==" in out


def test_render_out_writes_and_check_compares(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, _ = run(capsys, "render", "all", "--out", str(tmp_path), "--job", "j")
    assert status == 0
    assert out.count("wrote ") == len(R.render("all"))
    status, out, _ = run(capsys, "render", "all", "--out", str(tmp_path), "--job", "j", "--check")
    assert status == 0
    assert "up to date" in out
    status, out, _ = run(capsys, "render", "all", "--out", str(tmp_path), "--check")
    assert status == 1
    assert "differs from the renderer's output" in out


def test_render_check_says_which_files_are_missing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, _ = run(capsys, "render", "promtail", "--out", str(tmp_path), "--check")
    assert status == 1
    assert out == f"missing: {tmp_path / R.render('promtail')[0].path}\n"


def test_render_out_that_cannot_be_written_says_which_file_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("", encoding="utf-8")
    for root in ("/proc/x", str(tmp_path / "afile")):
        status, _, err = run(capsys, "render", "promtail", "--out", root)
        assert status == 1
        path = Path(root) / R.render("promtail")[0].path
        assert err.startswith(f"alkana-logging render: cannot write {path}: ")
        assert err.count("\n") == 1
        assert "Errno" not in err


def test_render_checks_the_committed_files(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    status, out, _ = run(capsys, "render", "all", "--out", str(root), "--check")
    assert (status, out.strip()) == (0, f"{len(R.render('all'))} file(s) up to date under {root}")


def test_render_bad_option_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "render", "promtail", "--log-dir", "relative/dir")
    assert status == 2
    assert "--log-dir: got 'relative/dir'" in err


# -- entry points ---------------------------------------------------------------------------------


def test_python_m_and_the_console_script_run_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "alkana_logging", "presets", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(done.stdout)[0]["name"] == P.PRESETS[0].name
    script = Path(sys.executable).parent / "alkana-logging"
    assert script.exists(), "pip install -e . creates the alkana-logging console script"
    done = subprocess.run(
        [str(script), "render", "logrotate"], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout == R.render("logrotate")[0].text
