from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

import alkana_logging
from alkana_logging import _state
from tests._frontends import setup_file

pytest_plugins = ["pytester"]  # users' own test modules, run as pytest runs them

# A suite started in the background by a shell without job control inherits SIGINT ignored,
# and so would every child it starts (an ignored signal stays ignored across exec): the Ctrl-C
# tests' children would then log on and on. Handled here, it is the default again in them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    """``setup()`` writing to ``<tmp_path>/logs/app.log`` only, level DEBUG, with the static
    fields of :mod:`tests._logfiles` (what its ``assert_schema`` expects by default)."""
    return setup_file(tmp_path)


@contextlib.contextmanager
def _without_pytest_log_capture(item: pytest.Item) -> Iterator[None]:
    """pytest's log capture handlers fail a test on a stdlib record that cannot be formatted,
    and the hostile-input tests log those on purpose; setup() no longer removes them (a user's
    caplog must keep working: tests/test_pipeline.py runs one). Here they are detached
    around each phase of a test, unless the test asks for ``caplog``."""
    if "caplog" in getattr(item, "fixturenames", ()):
        yield
        return
    # pytest puts them on the root and on every logger that does not propagate (such as
    # gunicorn.error once setup() has handed it to the root).
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    detached = [
        (logger, handler)
        for logger in loggers
        if isinstance(logger, logging.Logger)
        for handler in list(logger.handlers)
        if type(handler).__module__ == "_pytest.logging"
    ]
    for logger, handler in detached:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        for logger, handler in detached:
            logger.addHandler(handler)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    with _without_pytest_log_capture(item):
        return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    with _without_pytest_log_capture(item):
        return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    with _without_pytest_log_capture(item):
        return (yield)
