"""Helpers for users' own tests: capture the events their code emits.

```python
from alkana_logging.testing import capture_logs

def test_refresh():
    with capture_logs() as events:
        refresh()
    assert events[-1]["event"] == "timing"
```
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from alkana_logging import _state, _structlog
from alkana_logging.settings import load_settings
from alkana_logging.sinks import ListSink


@contextlib.contextmanager
def capture_logs(level: str = "DEBUG", **overrides: Any) -> Iterator[list[dict[str, Any]]]:
    """Capture every line logged inside the block as a list of dicts (nothing is written).

    The configuration in force before the block is restored after it, its structlog
    processors (``setup(processors=...)``) included; they also apply inside the block.

    Args:
        level: the lowest level captured.
        **overrides: other settings (``app_name``, ``redact_keys``, ...).
    """
    previous = _state.settings()
    processors = _structlog.user_processors()
    sink = ListSink()
    settings = load_settings({"level": level, "stdout": True, **overrides})
    # A capture writes nowhere but to the list.
    quiet = dataclasses.replace(settings, stdout=False, log_file=None, loki_url=None)
    # The application's structlog processors stay in force: the events are what it would write.
    _state.configure(settings_obj=quiet, extra_sinks=[sink], processors=processors)
    try:
        yield sink.records
    finally:
        if previous is not None:
            _state.configure(settings_obj=previous, processors=processors)
        else:
            _state.shutdown()
