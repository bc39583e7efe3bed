"""Levels are one table (``fields.LEVEL_NUMBERS``, ``fields.METHOD_LEVELS``): every front-end and
every setting writes and filters by it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import structlog

import alkana_logging
from alkana_logging import fields as F
from alkana_logging import settings as S
from alkana_logging._line import level_name
from tests._logfiles import read_records

METHODS = sorted(F.METHOD_LEVELS)


@pytest.mark.parametrize("processors", [(), (structlog.processors.add_log_level,)])
@pytest.mark.parametrize("method", METHODS)
def test_every_structlog_method_writes_the_level_of_the_table(
    tmp_path: Path, method: str, processors: tuple[object, ...]
) -> None:
    # Without processors the call takes the direct path; with them, structlog's chain and the
    # package's last processor. `err` was in one table and not in the other: an AttributeError.
    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False, level="DEBUG", processors=processors)
    getattr(alkana_logging.get_logger("levels"), method)("via %s", method)
    alkana_logging.shutdown()
    (record,) = read_records(log_file)
    assert (F.METHOD_LEVELS[method], f"via {method}") == (record[F.LEVEL], record[F.MESSAGE])


@pytest.mark.parametrize("threshold", F.LEVELS)
@pytest.mark.parametrize("method", METHODS)
def test_every_structlog_method_is_filtered_by_its_level(
    tmp_path: Path, method: str, threshold: str
) -> None:
    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False, level=threshold.upper())
    getattr(alkana_logging.get_logger("levels"), method)("x")
    alkana_logging.shutdown()
    expected = F.LEVEL_NUMBERS[F.METHOD_LEVELS[method]] >= F.LEVEL_NUMBERS[threshold]
    assert expected == bool(read_records(log_file))


@pytest.mark.parametrize(("level", "number"), F.LEVEL_NUMBERS.items())
def test_a_stdlib_level_number_writes_its_level(tmp_path: Path, level: str, number: int) -> None:
    assert number == getattr(logging, level.upper())  # the table is the stdlib's
    log_file = tmp_path / "app.log"
    alkana_logging.setup(log_file=str(log_file), stdout=False, level="DEBUG")
    logging.getLogger("levels").log(number, "x")
    alkana_logging.shutdown()
    assert [level] == [r[F.LEVEL] for r in read_records(log_file)]


@pytest.mark.parametrize(
    ("number", "level"),
    [(1, F.DEBUG), (15, F.DEBUG), (25, F.INFO), (45, F.ERROR), (55, F.CRITICAL), (99, F.CRITICAL)],
)
def test_a_custom_level_number_rounds_down(number: int, level: str) -> None:
    assert level == level_name(number)


def test_log_level_accepts_every_level_of_the_table() -> None:
    for level, number in F.LEVEL_NUMBERS.items():
        settings = S.load_settings({"level": level}, environ={})
        assert (level.upper(), number) == (settings.level, settings.level_number)
    assert tuple(level.upper() for level in F.LEVELS) == S.LEVEL_NAMES
