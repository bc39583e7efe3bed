"""The exit hooks in one process: when the SIGTERM handler is installed and when it is not.

That it flushes the Loki buffer of a real worker killed by SIGTERM, and that multiprocessing
workers flush on their ``os._exit()`` path, is shown with real processes in
``tests/guarantees/test_process_safety.py``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import alkana_logging
from alkana_logging import _lifecycle

# Nothing listens there: the sink's sender never gets far (and nothing is logged here anyway).
LOKI = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _sigterm_restored() -> Iterator[None]:
    before = signal.getsignal(signal.SIGTERM)
    yield
    alkana_logging.shutdown()
    signal.signal(signal.SIGTERM, before)


def setup(tmp_path: Path, **kw: Any) -> None:
    alkana_logging.setup(log_file=str(tmp_path / "app.log"), stdout=False, **kw)


def test_with_loki_push_sigterm_gets_a_handler_and_shutdown_gives_the_default_back(
    tmp_path: Path,
) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    setup(tmp_path, loki_url=LOKI)
    assert signal.getsignal(signal.SIGTERM) is _lifecycle._on_sigterm
    alkana_logging.shutdown()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_without_loki_push_sigterm_is_left_alone(tmp_path: Path) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    setup(tmp_path)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_loki_flush_on_sigterm_false_leaves_sigterm_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    monkeypatch.setenv("LOKI_FLUSH_ON_SIGTERM", "false")
    setup(tmp_path, loki_url=LOKI)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_the_applications_own_sigterm_handler_is_never_replaced(tmp_path: Path) -> None:
    def mine(signum: int, frame: Any) -> None:
        pass

    signal.signal(signal.SIGTERM, mine)
    setup(tmp_path, loki_url=LOKI)
    assert signal.getsignal(signal.SIGTERM) is mine
    alkana_logging.shutdown()
    assert signal.getsignal(signal.SIGTERM) is mine


def test_a_handler_the_application_installs_after_setup_survives_shutdown(tmp_path: Path) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    setup(tmp_path, loki_url=LOKI)

    def mine(signum: int, frame: Any) -> None:
        pass

    signal.signal(signal.SIGTERM, mine)
    alkana_logging.shutdown()
    assert signal.getsignal(signal.SIGTERM) is mine


def test_setup_from_another_thread_installs_nothing(tmp_path: Path) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            setup(tmp_path, loki_url=LOKI)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert errors == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_multiprocessing_exit_hook_is_registered_once_multiprocessing_is_imported(
    tmp_path: Path,
) -> None:
    import multiprocessing.util

    setup(tmp_path)
    assert _lifecycle._after_fork_key in multiprocessing.util._afterfork_registry.values()
    finalizers = [
        f
        for f in multiprocessing.util._finalizer_registry.values()
        if f._callback is _lifecycle._run_close
    ]
    assert finalizers
