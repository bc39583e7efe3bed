from __future__ import annotations

import logging
from pathlib import Path

from loguru import logger as loguru_logger

import alkana_logging
from alkana_logging import fields as F
from alkana_logging.testing import capture_logs
from tests._logfiles import read_records


def test_capture_logs_collects_every_front_end() -> None:
    with capture_logs() as events:
        alkana_logging.get_logger("a").debug("one", k=1)
        logging.getLogger("b").info("two")
        loguru_logger.warning("three")
    assert [(e[F.LOGGER], e[F.LEVEL], e[F.MESSAGE]) for e in events] == [
        ("a", "debug", "one"),
        ("b", "info", "two"),
        (__name__, "warning", "three"),
    ]
    assert events[0]["k"] == 1


def test_capture_logs_redacts_like_the_real_pipeline() -> None:
    with capture_logs() as events:
        alkana_logging.get_logger("a").info("x", password="p")
    assert events[0]["password"] == "[REDACTED]"


def test_capture_logs_writes_nothing_and_restores_the_previous_setup(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(path), stdout=False)
    with capture_logs() as events:
        alkana_logging.get_logger("a").info("captured")
    alkana_logging.get_logger("a").info("written")
    alkana_logging.shutdown()
    assert [e[F.MESSAGE] for e in events] == ["captured"]
    assert [r[F.MESSAGE] for r in read_records(path)] == ["written"]


def test_capture_logs_without_setup_leaves_logging_unconfigured() -> None:
    with capture_logs():
        pass
    assert not alkana_logging.is_configured()
