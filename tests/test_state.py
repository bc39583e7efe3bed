"""setup() in real applications: push-only processes, the handlers it removes and keeps, the
render URL forms, capture_logs() with the application's processors."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import alkana_logging
from alkana_logging import _state
from alkana_logging import fields as F
from alkana_logging.ops import configs as R
from alkana_logging.ops.cli import main as cli_main
from alkana_logging.testing import capture_logs
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
    assert _state.user_processors() == ()


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
            _state._handler
        ]
    finally:
        root.removeHandler(foreign)
        plain_file.close()
