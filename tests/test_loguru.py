"""The loguru front-end (alkana_logging._loguru): loguru's records routed into the same file."""

from __future__ import annotations

from pathlib import Path

from loguru import logger as loguru_logger

from alkana_logging import fields as F
from tests._logfiles import assert_schema, shutdown_and_read


def test_loguru_is_routed_into_the_same_file(log_file: Path) -> None:
    loguru_logger.bind(job="sync", attempt=2).warning("retrying {}", "now")
    loguru_logger.success("done")
    records = shutdown_and_read(log_file)
    assert [r[F.MESSAGE] for r in records] == ["retrying now", "done"]
    assert_schema(records[0], level="warning", logger=__name__, message="retrying now")
    assert (records[0]["job"], records[0]["attempt"]) == ("sync", 2)
    assert records[1][F.LEVEL] == "info"  # SUCCESS (25) rounds down to info
    assert [p.name for p in log_file.parent.iterdir()] == ["app.log"]
