"""ETL health's two numbers (stale after 25 h, look back 7 days) are the contract's, once: the
local freshness read and the LogQL presets (alerts, dashboard, health from Loki) say the same."""

from __future__ import annotations

from alkana_logging import fields as F
from alkana_logging import freshness
from alkana_logging.ops import presets as P


def test_the_stale_threshold_is_the_contracts_in_seconds_and_in_logql() -> None:
    assert freshness.DEFAULT_STALE_AFTER_S == F.ETL_STALE_AFTER_HOURS * 3600
    assert f"{F.ETL_STALE_AFTER_HOURS}h" == P.DEFAULT_STALE_AFTER


def test_the_look_back_is_the_contracts_in_seconds_and_in_logql() -> None:
    assert freshness.DEFAULT_LOOKBACK_S == F.ETL_LOOKBACK_DAYS * 86400
    assert f"{F.ETL_LOOKBACK_DAYS}d" == P.DEFAULT_ETL_LOOKBACK
