"""Reading back every line of a log file and its rotated siblings (plain or gzip)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any


def log_files(path: Path) -> list[Path]:
    """The live file and each sibling starting with its name (``app.log.3``, ``app.log-….gz``)."""
    return sorted(
        p
        for p in path.parent.iterdir()
        if p.name.startswith(path.name) and not p.name.endswith(".lock")
    )


def read_lines(path: Path) -> list[bytes]:
    lines: list[bytes] = []
    for file in log_files(path):
        data = gzip.decompress(file.read_bytes()) if file.suffix == ".gz" else file.read_bytes()
        # A blank line is a part a full disk cut, blanked where it was (see FileSink._cut).
        lines.extend(line for line in data.splitlines() if line.strip(b" "))
        assert not data or data.endswith(b"\n"), f"{file} ends with a torn line"
    return lines


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read_lines(path)]
