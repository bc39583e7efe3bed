"""``LOG_FORMAT=console``: a hostile message cannot forge lines or drive the terminal.

A real child process logs messages carrying CR/LF, ANSI (clear screen, cursor moves), OSC (window
title, hyperlinks), C1 controls and bidirectional overrides through every front-end, to a pipe
and to a pseudo-terminal (where the renderer colours its own output). What reaches the terminal
holds no control character but the line ends and, on a terminal, the renderer's own colours.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

HOSTILE = (
    "user\r\n2026-01-01T00:00:00Z [critical ] forged line"  # a forged line
    "\x1b[2J\x1b[H"  # clear the screen, cursor home
    "\x1b]0;pwned\x07"  # set the window title
    "\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\"  # a hyperlink
    "\x9b31m"  # a C1 CSI
    "\u202egnp.exe"  # right-to-left override
    "\x00\x08\x7f"
)
CHILD = f"""
import logging, alkana_logging
from loguru import logger
alkana_logging.setup(log_file="", rotation="none", format="console", level="DEBUG")
hostile = {HOSTILE!r}
logging.getLogger("stdlib").warning(hostile)
logging.getLogger("stdlib").warning("%s", hostile)
alkana_logging.get_logger("structlog").warning(hostile, field=hostile)
logger.warning(hostile)
logging.getLogger(hostile).warning("a hostile logger name")
logging.getLogger("stdlib").warning("a hostile key", extra={{hostile: 1}})
alkana_logging.get_logger("structlog").warning("a hostile key", **{{hostile: 2}})
# a value without whitespace (a request path) is written by structlog as it is, not as a repr
no_space = "/\x1b]0;pwned\x07\x1b[2J\x1b[1;1H\x9b31m"
alkana_logging.get_logger("structlog").warning("a hostile path", path=no_space)
alkana_logging.get_logger("structlog").warning("hostile bytes", raw=no_space.encode())
logging.getLogger("stdlib").warning("a hostile path", extra={{"path": no_space}})
try:
    raise ValueError(hostile)
except ValueError:
    logging.getLogger("exc").exception(hostile)
alkana_logging.shutdown()
"""
CALLS = 11
#: The controls a terminal acts on (C0 but the newline, DEL, C1) and bidi overrides.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: The renderer's own colours on a terminal: SGR sequences, nothing else.
SGR = re.compile("\x1b\\[[0-9;]*m")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOG_", "LOKI_"))}
    env.pop("NO_COLOR", None)
    env["HOME"] = str(tmp_path)
    return env


def test_a_hostile_message_reaches_a_pipe_without_control_characters(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        timeout=60,
        env=_env(tmp_path),
        cwd=tmp_path,
        check=True,
    )
    out = result.stdout.decode("utf-8")
    assert CONTROL.findall(out) == []
    assert "\x1b" not in out
    assert "pwned" in out  # escaped, not dropped: the reader sees what was sent
    # No forged line: every line starts as the renderer starts one (a timestamp), but the
    # traceback's, which follow the one call that has an exception.
    starts = [line for line in out.splitlines() if re.match(r"\d{4}-\d\d-\d\dT", line)]
    assert len(starts) == CALLS
    assert not any("forged line" in line and line.startswith("2026-01-01") for line in starts)


def _on_a_terminal(tmp_path: Path, env: dict[str, str]) -> str:
    """What the child writes to a pseudo-terminal, as the terminal shows it."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    os.close(follower)
    data = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                data += chunk
            elif child.poll() is not None:
                break
        assert child.wait(timeout=30) == 0, child.stderr.read() if child.stderr else ""
    finally:
        if child.poll() is None:
            child.kill()
        os.close(leader)
        if child.stderr:
            child.stderr.close()
    return data.decode("utf-8").replace("\r\n", "\n")  # the terminal's own line discipline


def test_a_hostile_message_reaches_a_terminal_with_only_the_renderers_colours(
    tmp_path: Path,
) -> None:
    out = _on_a_terminal(tmp_path, _env(tmp_path))
    assert SGR.search(out), "a terminal gets colours"
    without_colours = SGR.sub("", out)
    assert CONTROL.findall(without_colours) == []
    assert "pwned" in without_colours


def test_no_color_turns_the_colours_off_on_a_terminal(tmp_path: Path) -> None:
    out = _on_a_terminal(tmp_path, {**_env(tmp_path), "NO_COLOR": "1"})
    assert "forged line" in out  # the lines are there,
    assert "\x1b" not in out  # without a colour
    assert CONTROL.findall(out) == []


@pytest.mark.parametrize("choice", ["auto", "always", "never"])
@pytest.mark.parametrize("no_color", [None, "", "1"])
@pytest.mark.parametrize("tty", [True, False])
def test_colours_are_decided_in_one_place(
    monkeypatch: pytest.MonkeyPatch, choice: str, no_color: str | None, tty: bool
) -> None:
    from alkana_logging.console import use_colors

    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    stream = type("Stream", (), {"isatty": lambda self: tty})()
    # https://no-color.org: set and not empty turns colours off, unless asked for by name.
    expected = {"always": True, "never": False}.get(choice, tty and not no_color)
    assert use_colors(stream, choice) is expected


@pytest.mark.parametrize(
    "key", ["level", "timestamp", "message", "logger", "logger_name", "stack", "exception", "k"]
)
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (30, "30"),
        (None, "null"),
        (True, "true"),
        (1.5, "1.5"),
        ({"a": 1}, '{"a":1}'),
        (["x\x1b[2J"], '["x\\u001b[2J"]'),
        (2**70, str(2**70)),
    ],
)
def test_any_value_under_any_key_gives_a_line(key: str, value: object, shown: str) -> None:
    from alkana_logging.console import ConsoleFormat

    record = {"timestamp": "t", "level": "info", "message": "m", key: value}
    for colors in (False, True):
        line = ConsoleFormat(colors=colors)(record)  # a record read back: no plain()
        assert line.endswith("\n")
        assert CONTROL.findall(SGR.sub("", line)) == []
        if key in ("level", "timestamp", "message", "logger", "logger_name", "stack", "exception"):
            assert shown in line  # shown as the JSON line has it


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\r\nb", "a\\r\\nb"),
        ("\x1b[2J", "\\u001b[2J"),
        ("\x9b", "\\u009b"),
        ("\u202e", "\\u202e"),
        ("tab\there", "tab\\there"),
        ("ünïcödé ✓", "ünïcödé ✓"),
    ],
)
def test_escape_writes_controls_as_json_escapes(text: str, expected: str) -> None:
    from alkana_logging.console import escape

    assert expected == escape(text)


def test_a_column_value_without_json_or_str_is_shown_by_its_type() -> None:
    from alkana_logging.console import ConsoleFormat

    class Odd:
        def __str__(self) -> str:
            raise RuntimeError("no str")

    line = ConsoleFormat(colors=False)({"level": "info", "message": Odd()})
    assert "<unrenderable " in line
    assert "Odd value>" in line
