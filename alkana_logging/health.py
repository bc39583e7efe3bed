"""Counters of the whole pipeline: what was written, dropped, failed; the last error and when."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from typing import Any

from alkana_logging.redaction import scrub_text


@dataclasses.dataclass(slots=True)
class PipelineHealth:
    """Live counters, shared by every sink of one pipeline.

    Attributes are plain integers updated under each sink's lock; :meth:`snapshot` returns a
    consistent copy as a dict. The lock is re-entrant: a signal handler that logs may count a
    drop while its thread is inside one of these methods.

    Slots, not an instance dict: a dataclass's defaults are class attributes, and CPython 3.12
    and 3.13 do not specialise reading and writing an instance attribute that shadows one, so
    ``lines_written += 1`` on every line took the generic path (about 600 instructions).
    """

    lines_written: int = 0
    write_errors: int = 0
    rotations: int = 0
    internal_errors: int = 0
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    last_error: str | None = None
    last_error_at: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    _lock: Any = dataclasses.field(default_factory=threading.RLock, repr=False)

    def drop(self, reason: str, count: int = 1) -> None:
        with self._lock:
            # No call between reading and storing: a signal handler that drops a line of its
            # own runs only at a call or a backward jump, never in between, so no count is lost.
            dropped = self.dropped
            if reason in dropped:
                dropped[reason] += count
            else:
                dropped[reason] = count

    def undrop(self, reason: str) -> None:
        """Take back one count of :meth:`drop`: the line was written after all."""
        with self._lock:
            dropped = self.dropped
            if dropped.get(reason, 0) > 1:
                dropped[reason] -= 1
            else:
                dropped.pop(reason, None)

    def write_error(self, message: str, *, report: bool) -> None:
        message = scrub_text(message)
        with self._lock:
            self.write_errors += 1
            self.last_error = message
            self.last_error_at = time.time()
        if report:
            self.report(message)

    def internal_error(self, message: str) -> None:
        message = scrub_text(message)
        with self._lock:
            first = self.internal_errors == 0
            self.internal_errors += 1
            self.last_error = message
            self.last_error_at = time.time()
        if first:
            self.report(message)

    @staticmethod
    def report(message: str) -> None:
        """One line on stderr, never raising (stderr may be closed too); URL credentials in the
        message are masked."""
        try:
            sys.stderr.write(f"alkana_logging: {scrub_text(message)}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001, S110 - nowhere left to report to
            pass

    def after_fork(self) -> None:
        """In a forked child: a lock of its own, and counters from zero (they count what this
        process wrote and lost; the parent's figures stay the parent's)."""
        self._lock = threading.RLock()
        self.lines_written = self.write_errors = self.rotations = self.internal_errors = 0
        self.dropped = {}
        self.last_error = self.last_error_at = None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "lines_written": self.lines_written,
                "write_errors": self.write_errors,
                "rotations": self.rotations,
                "internal_errors": self.internal_errors,
                "dropped": dict(self.dropped),
                "dropped_total": sum(self.dropped.values()),
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
                **{k: (v() if callable(v) else v) for k, v in self.extra.items()},
            }
