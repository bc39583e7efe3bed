"""Child processes of the tests: the environment they get, and a runner with a timeout.

A child imports the package under test from this checkout (``PYTHONPATH``) and never inherits
the ``LOG_*``, ``LOKI_*`` or ``APP_*`` settings of the shell that runs the tests. Every child
runs under a timeout: a deadlock fails the test instead of hanging the suite.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import alkana_logging

#: The directory that holds the package under test, for child processes.
PACKAGE_ROOT = str(Path(alkana_logging.__file__).resolve().parents[1])
CHILD_TIMEOUT = 120
#: A gunicorn server (under ``timeout``) ends by itself after this many seconds.
MAX_SECONDS = 240


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOG_", "LOKI_", "APP_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@dataclasses.dataclass(frozen=True)
class Child:
    pid: int
    returncode: int
    stdout: str
    stderr: str


def run_child(code: str, *args: str, prefix: tuple[str, ...] = (), **env: str) -> Child:
    """Run ``code`` in a fresh interpreter (its own session, killed whole on timeout)."""
    command = [*prefix, sys.executable, "-c", textwrap.dedent(code), *args]
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(**env),
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"child did not finish within {CHILD_TIMEOUT} s (deadlock?)\n{err[-3000:]}")
    return Child(proc.pid, proc.returncode, out, err)


def server_env(log_file: Path, run: int) -> dict[str, str]:
    """The environment of a gunicorn server of tests/guarantees/test_gunicorn*.py."""
    return child_env(TEST_GUNICORN_LOG_FILE=str(log_file), TEST_GUNICORN_RUN=str(run))


def wait_for_pid_file(pid_file: Path, process: subprocess.Popen[bytes], output: Path) -> int:
    """The pid of gunicorn's master, once it has written its ``--pid`` file (atomically)."""
    deadline = time.monotonic() + 60
    while not pid_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(
                f"gunicorn did not start (exit {process.poll()}):\n"
                + output.read_text(errors="replace")
            )
        time.sleep(0.05)
    return int(pid_file.read_text())
