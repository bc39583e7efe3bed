from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import alkana_logging
from alkana_logging import _state


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    """Every test starts and ends unconfigured, with an empty context and a quiet root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    alkana_logging.shutdown()
    alkana_logging.clear_context()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    assert not _state.is_configured()
