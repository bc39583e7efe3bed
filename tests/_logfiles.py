"""Reading log files back, the one way every test does it, and checking a line's schema.

A file is read as bytes and split on ``\\n`` only (what a shipper does); each line is decoded as
strict UTF-8 and parsed as strict JSON: one object, no ``NaN``/``Infinity`` literals, no
duplicate keys. By default the file's rotated siblings (``app.log.3``, ``app.log-….gz``) are read
too.

What a file that does not end with a newline means is the caller's choice, ``torn_last_line``:

- ``"fail"`` (the default): the writers are done (``shutdown()`` ran, or the process ended), so
  an unterminated last line is a torn line: a defect, and the read fails saying so.
- ``"skip"``: a writer may be writing right now (a running server), so the bytes after the last
  newline are not a line yet and are left out; a live file not created yet has no lines. Only
  the live file can be mid-write: a rotated file must still end with a newline.
"""

from __future__ import annotations

import calendar
import gzip
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from alkana_logging import fields as F

TornLastLine = Literal["fail", "skip"]

#: The static fields of :func:`tests._frontends.setup_file` (and of the ``log_file`` fixture).
APP = "hostile-app"
ENV = "ci"
HOST = "host-1"
LOGGER = "hostile"
TIMESTAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
# Clocks of the front-ends differ in precision (stdlib and loguru go through a float).
_CLOCK_SLACK_NS = 1_000_000


def log_files(path: Path) -> list[Path]:
    """The live file and each sibling starting with its name (``app.log.3``, ``app.log-….gz``)."""
    if not path.parent.is_dir():
        return []
    return sorted(
        p
        for p in path.parent.iterdir()
        if p.name.startswith(path.name) and not p.name.endswith(".lock")
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not strict JSON: {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_line(line: bytes) -> dict[str, Any]:
    """Strict UTF-8, strict JSON, one object, no duplicate keys."""
    assert b"\n" not in line
    record = json.loads(
        line.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_duplicates
    )
    assert isinstance(record, dict), line[:200]
    return record


def _file_lines(file: Path, data: bytes, torn_last_line: TornLastLine) -> list[bytes]:
    if data and not data.endswith(b"\n"):
        if torn_last_line == "fail":
            raise AssertionError(f"{file} ends with a torn line: {data[-200:]!r}")
        data = data[: data.rfind(b"\n") + 1]
    # A line of spaces is skipped, as readers do: a part a full disk cut, blanked where it was
    # (FileSink._cut).
    return [line for line in data.split(b"\n")[:-1] if line.strip(b" ")]


def read_lines(
    path: Path, *, torn_last_line: TornLastLine = "fail", rotated: bool = True
) -> list[bytes]:
    """Every line of ``path`` and, unless ``rotated=False``, of its rotated siblings, as bytes.

    Files are read in the order of their names (the live file first, then ``app.log.1``, ...).

    Args:
        path: the live log file.
        torn_last_line: ``"fail"`` or ``"skip"``: see the module's docstring.
        rotated: also read the rotated siblings (plain or gzip).
    """
    files = log_files(path) if rotated else [path]
    if path not in files and torn_last_line == "fail":
        files.insert(0, path)  # read_bytes() says that it is missing
    lines: list[bytes] = []
    for file in files:
        if file == path and torn_last_line == "skip" and not file.exists():
            continue
        data = file.read_bytes()
        if file.suffix == ".gz":
            data = gzip.decompress(data)
        lines.extend(_file_lines(file, data, torn_last_line if file == path else "fail"))
    return lines


def read_records(
    path: Path, *, torn_last_line: TornLastLine = "fail", rotated: bool = True
) -> list[dict[str, Any]]:
    """Every line of ``path`` as a dict (:func:`read_lines`, then :func:`parse_line`)."""
    return [
        parse_line(line)
        for line in read_lines(path, torn_last_line=torn_last_line, rotated=rotated)
    ]


def shutdown_and_read(path: Path) -> list[dict[str, Any]]:
    """``shutdown()`` (every line flushed, every file closed), then :func:`read_records`."""
    import alkana_logging  # here, not at the top: the uvicorn children import this module

    alkana_logging.shutdown()
    return read_records(path)


def timestamp_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 ``...T..:..:..\\.\\d{6}Z`` timestamp."""
    assert TIMESTAMP_RE.fullmatch(text), text
    seconds = time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(seconds) * 1_000_000_000 + int(text[20:26]) * 1000


def assert_schema(
    record: Mapping[str, Any],
    *,
    level: str = F.INFO,
    logger: str = LOGGER,
    message: str | None = None,
    app: str = APP,
    env: str = ENV,
    host: str = HOST,
    pid: int | None = None,
    between: tuple[int, int] | None = None,
) -> None:
    """The contract's keys come first, in order, with the right types and values."""
    assert list(record)[: len(F.SCHEMA_KEYS)] == list(F.SCHEMA_KEYS), list(record)
    assert TIMESTAMP_RE.fullmatch(record[F.TIMESTAMP]), record[F.TIMESTAMP]
    assert record[F.LEVEL] == level
    assert record[F.LOGGER] == logger
    assert isinstance(record[F.MESSAGE], str)
    if message is not None:
        assert record[F.MESSAGE] == message
    assert (record[F.APP], record[F.ENV], record[F.HOST]) == (app, env, host)
    assert type(record[F.PID]) is int
    assert record[F.PID] == (os.getpid() if pid is None else pid)
    if between is not None:
        ns = timestamp_ns(record[F.TIMESTAMP])
        assert between[0] - _CLOCK_SLACK_NS <= ns <= between[1] + _CLOCK_SLACK_NS
