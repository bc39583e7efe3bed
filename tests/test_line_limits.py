"""The line renderer's limits are one each: one nesting depth (the redaction walk's), one
truncation marker and function (which the Loki sink uses too), one circular-reference text."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from alkana_logging import fields as F
from alkana_logging import redaction
from alkana_logging._line import TRUNCATED, Renderer, truncate
from alkana_logging.settings import load_settings


def _renderer() -> Renderer:
    return Renderer.from_settings(load_settings({}, environ={}))


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def _depth(value: Any) -> tuple[int, Any]:
    depth = 0
    while isinstance(value, dict):
        value, depth = value["k"], depth + 1
    return depth, value


@pytest.mark.parametrize("depth", [40, redaction.MAX_DEPTH, redaction.MAX_DEPTH + 1, 100])
def test_a_deep_value_is_cut_at_one_depth_whatever_else_the_line_holds(depth: int) -> None:
    # A key orjson refuses (an int) sends the line down the slow path: the nested value beside
    # it must be written as deep as on the fast path (it was cut at 32 there, at 64 here).
    renderer = _renderer()
    _, fast = renderer.render(time.time_ns(), F.INFO, "x", "m", {"deep": _nested(depth)})
    _, slow = renderer.render(
        time.time_ns(), F.INFO, "x", "m", {"deep": _nested(depth), "odd": {1: "x"}}
    )
    expected = (depth, "leaf") if depth <= redaction.MAX_DEPTH else (64, redaction.TOO_DEEP)
    assert [expected, expected] == [_depth(orjson.loads(line)["deep"]) for line in (fast, slow)]
    assert "log_error" in orjson.loads(slow)


def test_a_cycle_on_the_slow_path_is_the_redaction_constant() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    _, line = _renderer().render(time.time_ns(), F.INFO, "x", "m", {"loop": loop, "odd": {1: 2}})
    assert orjson.loads(line)["loop"] == [1, redaction.CIRCULAR]


def test_truncate_ends_a_cut_text_with_the_marker_and_counts_from_the_original() -> None:
    once = truncate("x" * 100, 10)
    assert "x" * 10 + TRUNCATED.format(90) == once
    assert "x" * 5 + TRUNCATED.format(95) == truncate(once, 5)
    assert truncate("short", 10) == "short"
