"""Exactly the structlog internals that ``alkana_logging._structlog_compat`` lists, each as the
front-end relies on it: a structlog release that changes one fails here first. ``make test``
runs this file with the oldest structlog ``pyproject.toml`` admits and the newest."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import structlog

from alkana_logging import _structlog_compat as compat
from alkana_logging import fields as F

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
ALIASES = {"warn": "warning", "msg": "info", "fatal": "critical"}


class _Wrapped:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda value: self.calls.append((name, value))


class _Bound(compat.BoundLoggerBase):
    pass


def _chain(seen: list[tuple[Any, str, dict[str, Any]]]) -> list[Any]:
    def processor(logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
        seen.append((logger, method_name, dict(event_dict)))
        return "written"

    return [processor]


# -- 1. BoundLoggerBase: __init__, bind/unbind/new, _proxy_to_logger ------------------------------


def test_bound_logger_base_keeps_the_logger_the_chain_and_the_context_under_its_attributes() -> (
    None
):
    wrapped, chain, context = _Wrapped(), _chain([]), {"a": 1}
    bound = _Bound(wrapped, chain, context)
    assert compat.BOUND_ATTRIBUTES == ("_logger", "_processors", "_context")
    assert [wrapped, chain, context] == [getattr(bound, a) for a in compat.BOUND_ATTRIBUTES]
    assert bound._logger is wrapped
    assert bound._processors is chain


def test_bind_keeps_the_class_and_the_chain_object_and_merges_the_context() -> None:
    chain = _chain([])
    bound = _Bound(_Wrapped(), chain, {"a": 1}).bind(b=2)
    assert type(bound) is _Bound
    assert bound._processors is chain  # the direct path compares the chain by identity
    assert bound._context == {"a": 1, "b": 2}
    assert bound.unbind("a")._context == {"b": 2}
    assert bound.new(c=3)._context == {"c": 3}


def test_proxy_to_logger_runs_the_chain_and_calls_the_wrapped_logger_with_its_result() -> None:
    seen: list[tuple[Any, str, dict[str, Any]]] = []
    wrapped = _Wrapped()
    _Bound(wrapped, _chain(seen), {"a": 1})._proxy_to_logger("error", "boom", b=2)
    assert [(wrapped, "error", {"a": 1, "b": 2, "event": "boom"})] == seen
    assert wrapped.calls == [("error", "written")]


# -- 3. the filtering logger's layout -------------------------------------------------------------


def test_the_filtering_logger_has_every_method_the_front_end_sets() -> None:
    names = dict(compat.filtering_methods(logging.DEBUG))
    expected = {*LEVELS, *ALIASES, "exception", "log", *compat.INTROSPECTION}
    assert expected <= set(names)
    assert {f"a{name}" for name in (*LEVELS, *ALIASES, "exception", "log")} <= set(names)
    assert not [name for name in names if name.startswith("__")]
    # Every method of the contract's table is structlog's, but err (aliased by the front-end).
    assert {"err"} == set(F.METHOD_LEVELS) - set(names)


@pytest.mark.parametrize("threshold", sorted(LEVELS.values()))
def test_a_method_below_the_level_is_recognised_as_structlogs_no_op(threshold: int) -> None:
    names = dict(compat.filtering_methods(threshold))
    for name, number in LEVELS.items():
        for method in (name, f"a{name}"):
            assert (number < threshold) == compat.is_filtered(names[method]), method
    for alias, name in ALIASES.items():
        assert compat.is_filtered(names[alias]) == compat.is_filtered(names[name])
    for name in (*compat.INTROSPECTION, "log", "alog", "exception", "aexception"):
        assert not compat.is_filtered(names[name])


def test_an_enabled_method_proxies_its_level_and_log_takes_the_level_first() -> None:
    seen: list[tuple[Any, str, dict[str, Any]]] = []
    cls = structlog.make_filtering_bound_logger(logging.INFO)
    bound = cls(_Wrapped(), _chain(seen), {})
    bound.warn("w")
    bound.msg("m")
    bound.log(logging.ERROR, "l")  # the event at EVENT_INDEX["log"]
    assert [(method, event_dict["event"]) for _, method, event_dict in seen] == [
        ("warning", "w"),
        ("info", "m"),
        ("error", "l"),
    ]
    assert compat.EVENT_INDEX == {"log": 1, "alog": 1}


def test_exception_is_error_with_exc_info_and_the_async_methods_run() -> None:
    seen: list[tuple[Any, str, dict[str, Any]]] = []
    cls = structlog.make_filtering_bound_logger(logging.INFO)
    bound = cls(_Wrapped(), _chain(seen), {})
    try:
        raise ValueError("inside")
    except ValueError as err:
        bound.exception("x")
        asyncio.run(bound.aexception("y"))
        error = err
    asyncio.run(bound.ainfo("z"))
    assert [(method, d["event"]) for _, method, d in seen] == [
        ("error", "x"),
        ("error", "y"),
        ("info", "z"),
    ]
    # exc_info as resolve_exc_info takes it: True (sys.exc_info() then), or the exc_info tuple
    # (the async method runs in a thread: it takes the exception along).
    assert seen[0][2]["exc_info"] is True
    assert seen[1][2]["exc_info"] is True or seen[1][2]["exc_info"][1] is error
    assert "exc_info" not in seen[2][2]


def test_introspection_answers_the_level() -> None:
    names = dict(compat.filtering_methods(logging.WARNING))
    assert names["get_effective_level"](None) == logging.WARNING
    assert names["is_enabled_for"](None, logging.ERROR)
    assert not names["is_enabled_for"](None, logging.INFO)


def test_the_makefiles_oldest_structlog_is_the_floor_of_pyproject() -> None:
    root = Path(__file__).resolve().parent.parent
    floor = re.search(r'"structlog>=([0-9.]+)"', (root / "pyproject.toml").read_text())
    pin = re.search(r"^STRUCTLOG_OLDEST = ([0-9.]+)$", (root / "Makefile").read_text(), re.M)
    assert floor is not None
    assert pin is not None
    assert pin[1].split(".")[:2] == floor[1].split(".")[:2]
