"""The pytest plugin (alkana_logging.pytest_plugin): the ``alkana_logs`` fixture that the package's
pytest11 entry point gives every user's test suite."""

from __future__ import annotations

from typing import Any

import pytest

import alkana_logging
from alkana_logging import fields as F

USER_TESTS = """
import logging

import alkana_logging


def test_sees_its_own_events(alkana_logs):
    alkana_logging.get_logger("orders").info("loaded", rows=3)
    logging.getLogger("legacy").warning("old api")
    assert [(e["logger"], e["message"]) for e in alkana_logs] == [
        ("orders", "loaded"),
        ("legacy", "old api"),
    ]
    assert alkana_logs[0]["rows"] == 3


def test_starts_empty_and_leaves_nothing_configured(alkana_logs):
    assert alkana_logs == []
    alkana_logging.get_logger("x").info("one")
    assert len(alkana_logs) == 1


def test_after_the_fixture_logging_is_unconfigured():
    assert not alkana_logging.is_configured()
"""


def test_pytest_fixture_is_shipped(alkana_logs: list[dict[str, Any]]) -> None:
    alkana_logging.get_logger("fixture").info("seen")
    assert alkana_logs[-1][F.MESSAGE] == "seen"


@pytest.mark.slow
def test_a_users_suite_gets_the_fixture_from_the_entry_point(pytester: pytest.Pytester) -> None:
    # No conftest and no -p: the fixture comes from the installed package's pytest11 entry point.
    pytester.makepyfile(test_user_logging=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=120)
    result.assert_outcomes(passed=3)
    assert list(pytester.path.rglob("*.log")) == []  # captured: nothing was written
