"""A pytest fixture for users' own tests: ``alkana_logs`` captures the emitted events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from alkana_logging.testing import capture_logs


@pytest.fixture
def alkana_logs() -> Iterator[list[dict[str, Any]]]:
    """The events logged during the test, as dicts (nothing is written to files or stdout)."""
    with capture_logs() as events:
        yield events
