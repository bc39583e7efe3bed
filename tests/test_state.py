"""setup() and shutdown() (alkana_logging._state): reconfiguring, levels, the outputs it builds
(file, stdout JSON or console), the handlers it removes and keeps, nothing at import, push-only
processes, the render URL forms, capture_logs() with the application's processors."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger as loguru_logger

import alkana_logging
from alkana_logging import _structlog, stdlib
from alkana_logging import fields as F
from alkana_logging.ops import configs as R
from alkana_logging.ops.cli import main as cli_main
from alkana_logging.testing import capture_logs
from tests._logfiles import read_records, shutdown_and_read
from tests._loki_receiver import LokiReceiver, running


@pytest.fixture
def receiver() -> Iterator[LokiReceiver]:
    with running() as loki:
        yield loki
    assert loki.violations == []


def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- push-only ------------------------------------------------------------------------------------


def test_push_only_process_is_allowed_and_ships_every_line(
    receiver: LokiReceiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # the default logs/app.log would land here
    monkeypatch.setenv("LOKI_URL", receiver.url)
    monkeypatch.setenv("LOG_FILE", "")
    monkeypatch.setenv("LOG_STDOUT", "false")
    monkeypatch.setenv("LOKI_BATCH_WAIT", "0.05")

    settings = alkana_logging.setup()
    alkana_logging.get_logger("job").info("pushed only", rows=3)
    logging.getLogger("job.stdlib").warning("also pushed")
    alkana_logging.shutdown()

    assert settings.log_file is None
    assert not settings.stdout
    lines = [json.loads(line) for line in receiver.lines()]
    assert [r[F.MESSAGE] for r in lines] == ["pushed only", "also pushed"]
    assert lines[0]["rows"] == 3
    assert not (tmp_path / "logs").exists()
    assert capfd.readouterr().out == ""


def test_no_file_no_stdout_and_no_loki_is_still_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOKI_URL", raising=False)
    with pytest.raises(alkana_logging.ConfigurationError, match="nothing would be written"):
        alkana_logging.setup(log_file="", stdout=False)


# -- render --loki-url ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://loki:3100",
        "http://loki:3100/",
        "http://loki:3100/loki/api/v1/push",
        "http://loki:3100/loki/api/v1/push/",
    ],
)
def test_render_accepts_the_base_or_the_push_url(url: str, tmp_path: Path) -> None:
    status = cli_main(["render", "all", "--loki-url", url, "--out", str(tmp_path)])

    assert status == 0
    promtail = (tmp_path / "promtail" / "config.yml").read_text()
    alloy = (tmp_path / "integrations" / "alloy" / "config.alloy").read_text()
    for text in (promtail, alloy):
        assert "http://loki:3100/loki/api/v1/push" in text
        assert "/loki/api/v1/push/loki" not in text
    assert R.RenderOptions(loki_url=url).loki_url == "http://loki:3100"


# -- capture_logs() and setup(processors=...) ---------------------------------------------------


def _add_service(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    event["service"] = "billing"
    return event


def test_capture_logs_keeps_the_applications_processors(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False, processors=[_add_service])
    log = alkana_logging.get_logger("a")
    with capture_logs() as events:
        log.info("captured")
    log.info("after")
    alkana_logging.shutdown()

    assert [e.get("service") for e in events] == ["billing"]
    [after] = [json.loads(line) for line in path.read_text().splitlines()]
    assert after[F.MESSAGE] == "after"
    assert after["service"] == "billing"
    assert _structlog.user_processors() == ()


# -- what setup() removes from the root logger, and what it keeps ---------------------------------


class _Collecting(logging.StreamHandler):  # type: ignore[type-arg]
    """A third-party handler that happens to be a StreamHandler (as pytest's are)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_setup_removes_basicconfig_handlers_and_keeps_foreign_stream_handlers(
    tmp_path: Path,
) -> None:
    root = logging.getLogger()
    plain = logging.StreamHandler(sys.stderr)
    plain_file = logging.FileHandler(tmp_path / "basic.log")
    foreign = _Collecting()
    for handler in (plain, plain_file, foreign):
        root.addHandler(handler)
    try:
        alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False)
        assert plain not in root.handlers
        assert plain_file not in root.handlers
        assert foreign in root.handlers
        alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False)
        assert foreign in root.handlers
        assert [h for h in root.handlers if isinstance(h, alkana_logging.PipelineHandler)] == [
            stdlib._handler
        ]
    finally:
        root.removeHandler(foreign)
        plain_file.close()


def test_uvicorn_loggers_lose_their_handlers_and_propagate(tmp_path: Path) -> None:
    from uvicorn.config import LOGGING_CONFIG

    logging.config.dictConfig(LOGGING_CONFIG)  # what uvicorn does before importing the app
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False, app_name="svc", app_env="test")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/x", "1.1", 200
    )
    records = shutdown_and_read(path)
    assert [r[F.LOGGER] for r in records] == ["uvicorn.error", "uvicorn.access"]
    assert records[0][F.MESSAGE] == "Started server process [42]"
    assert records[1][F.MESSAGE] == '127.0.0.1:5000 - "GET /x HTTP/1.1" 200'
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert logging.getLogger(name).handlers == []


def test_filtered_levels_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False, level="WARNING")
    alkana_logging.get_logger("x").info("hidden")
    logging.getLogger("x").info("hidden")
    loguru_logger.info("hidden")
    alkana_logging.get_logger("x").warning("shown")
    assert [r[F.MESSAGE] for r in shutdown_and_read(path)] == ["shown"]


def test_setup_twice_reconfigures_without_duplicates(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    log = alkana_logging.get_logger("x")
    alkana_logging.setup(log_file=str(first), stdout=False, level="INFO")
    log.debug("hidden")
    log.info("one")
    alkana_logging.setup(log_file=str(second), stdout=False, level="DEBUG")
    log.debug("two")  # the cached logger follows the new level
    logging.getLogger("y").debug("three")
    loguru_logger.debug("four")
    assert [r[F.MESSAGE] for r in read_records(first)] == ["one"]
    assert [r[F.MESSAGE] for r in shutdown_and_read(second)] == ["two", "three", "four"]
    root_handlers = [
        h for h in logging.getLogger().handlers if isinstance(h, alkana_logging.PipelineHandler)
    ]
    assert root_handlers == []  # shutdown() removed the one handler


def test_setup_replaces_basic_config_stream_handlers(tmp_path: Path) -> None:
    stream = io.StringIO()
    logging.basicConfig(stream=stream, force=True)
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False)
    logging.getLogger("x").warning("once")
    assert stream.getvalue() == ""
    assert len(shutdown_and_read(path)) == 1


def test_stdout_gets_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    alkana_logging.setup(log_file="", app_name="svc")
    alkana_logging.get_logger("x").info("to stdout", n=1)
    out = capsys.readouterr().out
    [record] = [json.loads(line) for line in out.splitlines()]
    assert (record[F.MESSAGE], record["n"], record[F.APP]) == ("to stdout", 1, "svc")


def test_console_format_is_human_text_and_the_file_stays_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), format="console")
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        alkana_logging.get_logger("x").exception("readable", table="t1")
    out = capsys.readouterr().out
    assert "readable" in out
    assert "table=t1" in out
    assert "RuntimeError: kaput" in out
    assert not out.lstrip().startswith("{")
    [record] = shutdown_and_read(path)
    assert record["table"] == "t1"


def test_nothing_happens_at_import() -> None:
    import subprocess
    import sys

    code = (
        "import logging, alkana_logging, structlog;"
        "assert logging.getLogger().handlers == [];"
        "assert not alkana_logging.is_configured();"
        "assert not structlog.is_configured();"
        "print('clean')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "clean", result.stderr
