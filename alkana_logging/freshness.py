"""ETL freshness read from the log files: per table, its runs, last status and last success.

The runtime's part of reading log files back, shared by the health check (the ``etl``
component of ``/health/detailed``, :mod:`alkana_logging.healthcheck`) and the local report
(:mod:`alkana_logging.ops.report`, which computes the rest of the presets' numbers): which files
a log directory holds (current, rotated, ``.gz``), reading them, the plausibility of a run's
time, and :func:`read_etl_freshness`, which reads only the recent part of the files. It imports
the contract only, so that mounting the health check does not load the ops toolkit.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

import msgspec
import orjson

from alkana_logging import fields as F
from alkana_logging.exceptions import AlkanaLoggingError

#: A table without a successful run for longer is stale (the contract's 25 hours).
DEFAULT_STALE_AFTER_S: Final = F.ETL_STALE_AFTER_HOURS * 3600.0

#: Current and rotated log files in a directory: ``app.log``, ``app.log.1`` (size rotation),
#: ``app.log-20261126-1764170000`` (logrotate's dateext), each optionally ``.gz``. Not
#: ``app.log.lock``.
LOG_FILE_NAME: Final = re.compile(r"\.log(?:[.-][0-9][0-9-]*)?(?:\.gz)?$")
GZIP_MAGIC: Final = b"\x1f\x8b"
#: An ETL run's time (``finished_at``, or the line's ``timestamp``) more than this far ahead of
#: ``now`` is implausible (milliseconds instead of seconds, a clock far ahead): it is skipped
#: and counted, so that it can neither crash a reader nor hide the failures after it.
MAX_CLOCK_SKEW_S: Final = 300.0
#: Nor is a time before 2000-01-01 plausible for a run (a duration mistaken for a time).
_EARLIEST: Final = 946684800.0
#: 9999-12-30T00:00:00Z: every time from the epoch up to this one is a datetime (year 9999 is
#: datetime's last); closer to the end, rounding to the microsecond decides, so datetime is asked.
_SURELY_REPRESENTABLE: Final = 253_402_128_000.0


class ReportError(AlkanaLoggingError):
    """A path given to the report or the ETL freshness read does not exist."""


# -- finding and reading files --------------------------------------------------------------------


def log_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files to read: each file given, and in each directory the current and rotated logs.

    Raises:
        ReportError: a path does not exist.
    """
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.is_file() and LOG_FILE_NAME.search(child.name):
                    found.setdefault(child.resolve(), None)
        elif path.is_file():
            found.setdefault(path.resolve(), None)
        else:
            raise ReportError(f"{raw}: no such file or directory")
    return list(found)


def read_lines(path: Path) -> Iterator[bytes]:
    """The lines of a log file, decompressed when it is gzip (by content, not by name)."""
    with path.open("rb") as probe:
        compressed = probe.read(2) == GZIP_MAGIC
    opener = gzip.open if compressed else open
    with opener(path, "rb") as stream:
        yield from stream


#: What msgspec raises for a line that is not JSON it reads: malformed, a value it refuses, nested
#: too deep, not UTF-8, an integer past Python's digit limit.
NOT_JSON: Final = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError)
#: JSON as msgspec reads it (as strict: no NaN, no BOM, no lone surrogate, its depth limit), but
#: a float beyond range (``1e400``) is infinity, as ``float()`` reads it, and an integer beyond
#: 64 bits is an ``int``: numbers that JSON allows and orjson refuses. Only called for a line that
#: the usual decoder refused.
_WIDE_DECODER: Final = msgspec.json.Decoder(float_hook=float)


def decode_wide(raw: bytes) -> Any:
    """``raw`` decoded by :data:`_WIDE_DECODER`; None when it is not JSON even so (the report
    and the ETL freshness read with this fallback, so they agree on what a line is)."""
    try:
        return _WIDE_DECODER.decode(raw)
    except NOT_JSON:
        return None


# -- times ----------------------------------------------------------------------------------------


def number_of(value: Any) -> float | None:
    """A JSON value as a finite number (a number, or text of one), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond a float's range
            return None
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def epoch_of(value: Any) -> float | None:
    """An RFC 3339 timestamp as epoch seconds, ``None`` when it is not one (or out of range)."""
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value).timestamp()
        except (ValueError, OverflowError, OSError):
            return None
        return ts if _representable(ts) else None
    return None


def _representable(ts: float) -> bool:
    """Whether ``ts`` (epoch seconds) is a time :func:`iso` can write."""
    # No datetime made for the usual time (a third of a µs); other number types as before.
    if type(ts) is float and 0.0 <= ts < _SURELY_REPRESENTABLE:
        return True
    try:
        datetime.fromtimestamp(ts, UTC)
    except (ValueError, OverflowError, OSError):
        return False
    return True


def plausible_time(ts: float, now: float | None, skew_s: float = MAX_CLOCK_SKEW_S) -> bool:
    """Whether ``ts`` (epoch seconds) can be an ETL run's time: finite, from 2000 on, and not
    more than ``skew_s`` ahead of ``now`` (no upper bound but the calendar's when ``now`` is
    ``None``)."""
    if not math.isfinite(ts) or ts < _EARLIEST or not _representable(ts):
        return False
    return now is None or ts <= now + skew_s


def iso(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC with microseconds and ``Z`` (the contract's form)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# -- the ETL runs of each table -------------------------------------------------------------------


@dataclasses.dataclass
class _Table:
    runs: int = 0
    failures: int = 0
    started: int = 0
    last_run_at: float | None = None
    last_status: str | None = None
    last_success_at: float | None = None
    implausible: int = 0


@dataclasses.dataclass
class EtlRuns:
    """The ETL run events seen so far, per table.

    Attributes:
        now: run times more than :data:`MAX_CLOCK_SKEW_S` after this are implausible.
        tables: per table name, its counts and latest times.
    """

    now: float | None = None
    tables: dict[str, _Table] = dataclasses.field(default_factory=dict)

    def add(self, raw: bytes) -> None:
        """Count one line when it is an ETL run event (anything else is left out)."""
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record = decode_wide(raw)
        if not isinstance(record, dict):
            return
        event = record.get(F.EVENT)
        if event in (F.EVENT_ETL_RUN_STARTED, F.EVENT_ETL_RUN_FINISHED):
            self.record(event, record)

    def record(self, event: str, record: Mapping[str, Any]) -> None:
        """Count one ETL run event (``etl_run_started`` or ``etl_run_finished``)."""
        table = record.get(F.TABLE)
        if not isinstance(table, str) or not table:
            return
        stats = self.tables.get(table)
        if stats is None:  # not setdefault(): no _Table made for every line
            stats = self.tables[table] = _Table()
        if event == F.EVENT_ETL_RUN_STARTED:
            stats.started += 1
            return
        stats.runs += 1
        status = record.get(F.STATUS)
        if status == F.STATUS_FAILED:
            stats.failures += 1
        # finished_at, else the line's own time; one that cannot be (milliseconds, a clock
        # far ahead) is skipped and counted: it would crash the readers or, in the future,
        # stay the "latest" run and hide every failure after it.
        finished = None
        implausible = False
        # The line's own time is parsed only when finished_at is not a plausible time (a
        # timestamp's parse is a third of this method's cost).
        for read, key in ((number_of, F.FINISHED_AT), (epoch_of, F.TIMESTAMP)):
            candidate = read(record.get(key))
            if candidate is None:
                continue
            if plausible_time(candidate, self.now):
                finished = candidate
                break
            implausible = True
        if implausible:
            stats.implausible += 1
        if finished is None:
            return
        if stats.last_run_at is None or finished >= stats.last_run_at:
            stats.last_run_at = finished
            stats.last_status = status if isinstance(status, str) else None
        if status == F.STATUS_SUCCESS and (
            stats.last_success_at is None or finished > stats.last_success_at
        ):
            stats.last_success_at = finished

    def merge(self, later: EtlRuns) -> None:
        """Add the runs ``later`` counted, as if its lines had been read after these (a tie of
        the latest run time goes to ``later``, as in one read)."""
        for name, other in later.tables.items():
            stats = self.tables.setdefault(name, _Table())
            stats.runs += other.runs
            stats.failures += other.failures
            stats.started += other.started
            stats.implausible += other.implausible
            if other.last_run_at is not None and (
                stats.last_run_at is None or other.last_run_at >= stats.last_run_at
            ):
                stats.last_run_at, stats.last_status = other.last_run_at, other.last_status
            if other.last_success_at is not None and (
                stats.last_success_at is None or other.last_success_at > stats.last_success_at
            ):
                stats.last_success_at = other.last_success_at


def implausible_note(skipped: int) -> str | None:
    """What the health check and the report say of the runs skipped for an implausible time,
    or ``None`` when there were none."""
    if not skipped:
        return None
    return f"{skipped} run(s) with an implausible time (milliseconds, a clock ahead) skipped"


@dataclasses.dataclass(frozen=True)
class TableReport:
    """The ETL numbers of one table; times are epoch seconds."""

    table: str
    runs: int
    failures: int
    started: int
    last_run_at: float | None
    last_status: str | None
    last_success_at: float | None
    last_success_age_s: float | None
    stale: bool
    #: Runs whose time was implausible (see :data:`MAX_CLOCK_SKEW_S`): skipped.
    implausible_times: int = 0


def table_reports(
    runs: Mapping[str, _Table], now: float, stale_after_s: float
) -> tuple[TableReport, ...]:
    """One :class:`TableReport` per table of ``runs`` (:attr:`EtlRuns.tables`), by name."""
    tables = []
    for name, run in sorted(runs.items()):
        age = None if run.last_success_at is None else now - run.last_success_at
        tables.append(
            TableReport(
                table=name,
                runs=run.runs,
                failures=run.failures,
                started=run.started,
                last_run_at=run.last_run_at,
                last_status=run.last_status,
                last_success_at=run.last_success_at,
                last_success_age_s=age,
                stale=age is None or age > stale_after_s,
                implausible_times=run.implausible,
            )
        )
    return tuple(tables)


# -- the recent part of the files ------------------------------------------------------------------

#: How far back the freshness read looks, as the ``etl_stale`` preset (the contract's 7 days).
DEFAULT_LOOKBACK_S: Final = F.ETL_LOOKBACK_DAYS * 86400.0
#: Block size of the backward read of a plain log file.
_BLOCK: Final = 1 << 20
#: The freshness read drops a longer stretch without a newline as not being a line (the
#: pipeline's lines are at most ``LOG_MAX_LINE_BYTES``, 64 KiB by default; Loki takes 256 KB).
MAX_LINE_BYTES: Final = 1 << 20
#: The ETL run events' common prefix: lines without it are not parsed (Loki's line filter).
_ETL_RUN_MARK: Final = b'"etl_run_'
#: The timestamp of a line: the schema's first key, so near the start of the line.
_TIMESTAMP: Final = re.compile(rb'"timestamp"\s*:\s*"([^"]{1,64})"')


@dataclasses.dataclass(frozen=True)
class EtlFreshness:
    """What :func:`read_etl_freshness` found.

    Attributes:
        tables: one :class:`TableReport` per table, by name.
        unreadable: the files that could not be read (or only in part: a truncated ``.gz``),
            each with the reason; the tables may be out of date when there are any.
        long_lines_dropped: stretches longer than :data:`MAX_LINE_BYTES` without a newline,
            dropped as not being lines.
    """

    tables: tuple[TableReport, ...]
    unreadable: tuple[str, ...] = ()
    long_lines_dropped: int = 0


def etl_freshness(
    paths: Iterable[str | Path],
    *,
    now: float | None = None,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    lookback_s: float = DEFAULT_LOOKBACK_S,
) -> tuple[TableReport, ...]:
    """The tables of :func:`read_etl_freshness` (which also says what could not be read)."""
    return read_etl_freshness(
        paths, now=now, stale_after_s=stale_after_s, lookback_s=lookback_s
    ).tables


def read_etl_freshness(
    paths: Iterable[str | Path],
    *,
    now: float | None = None,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    lookback_s: float = DEFAULT_LOOKBACK_S,
) -> EtlFreshness:
    """Per ETL table that ran in the last ``lookback_s``: its runs, last status, last success.

    The report's engine over the recent part of the log files only, so that it stays fast on a
    directory holding a year of logs: a file last modified before the window is skipped, and a
    plain file is read backwards from its end until its lines are older than the window (a
    compressed file is read whole: logrotate compresses files that were closed long ago).
    Only lines holding an ETL run event are parsed. As the ``etl_stale`` preset, a table that
    has not run within the window is not listed, and one whose last success is older than the
    window has none (``last_success_at`` is ``None``, and it is stale). A stretch of more than
    :data:`MAX_LINE_BYTES` without a newline is dropped as not being a line (memory and time
    stay linear in what is read). A run whose time is implausible is skipped and counted
    (``implausible_times``, see :data:`MAX_CLOCK_SKEW_S`).

    Args:
        paths: log files and directories, as :func:`build_report` takes them.
        now: the time ages are measured from, epoch seconds (the clock when omitted).
        stale_after_s: a table without a successful run for longer than this is stale.
        lookback_s: how far back to read.

    Returns:
        The tables, and the files that could not be read (permission denied, a truncated
        ``.gz``: what was read of them still counts).

    Raises:
        ReportError: a path does not exist.
        ValueError: an option is out of range.
    """
    for name, value in (("stale_after_s", stale_after_s), ("lookback_s", lookback_s)):
        if value <= 0 or not math.isfinite(value):
            raise ValueError(f"{name}: got {value!r}; expected a number > 0")
    now = time.time() if now is None else now
    since = now - lookback_s
    since_text = iso(since).encode()
    acc = EtlRuns(now=max(now, time.time()))
    unreadable: list[str] = []
    dropped = [0]
    for path in log_files(paths):
        try:
            if path.stat().st_mtime < since:
                continue
            for block in _recent_blocks(path, since_text, dropped):
                for raw in _etl_lines(block):
                    # The window is the lines' own time (a block read whole holds older ones).
                    stamp = _TIMESTAMP.search(raw, 0, 200)
                    if stamp is None or stamp.group(1) >= since_text:
                        acc.add(raw)
        except FileNotFoundError:
            continue  # removed by logrotate right now: the rest still counts
        except EOFError as err:
            # Truncated: what was read counts. (A .gz being written by logrotate right now is
            # one too, and says so until it is complete.)
            unreadable.append(f"{path}: truncated gzip file, read in part ({err})")
        except (OSError, zlib.error) as err:
            unreadable.append(f"{path}: {err}")
    tables = table_reports(acc.tables, now, stale_after_s)
    return EtlFreshness(tables, tuple(unreadable), dropped[0])


def _recent_blocks(path: Path, since: bytes, dropped: list[int] | None = None) -> Iterator[bytes]:
    """Blocks of whole lines of ``path``, newest first for a plain file, until the lines are
    older than ``since`` (RFC 3339 bytes); a compressed file's blocks in order, all of them.

    A stretch longer than :data:`MAX_LINE_BYTES` without a newline is not a line: it is
    dropped (``dropped[0]`` counts them), so that what is kept between blocks stays bounded and
    each byte is looked at a bounded number of times."""
    if dropped is None:
        dropped = [0]
    with path.open("rb") as stream:
        if stream.read(2) == GZIP_MAGIC:
            stream.seek(0)
            with gzip.open(stream, "rb") as unpacked:
                yield from _forward_blocks(unpacked.read, dropped)
            return
        yield from _backward_blocks(stream, since, dropped)


def _forward_blocks(read: Callable[[int], bytes], dropped: list[int]) -> Iterator[bytes]:
    carry = b""
    skipping = False  # inside a dropped over-long line: up to its newline
    while chunk := read(_BLOCK):
        if skipping:
            cut = chunk.find(b"\n") + 1
            if cut == 0:
                continue
            chunk, skipping = chunk[cut:], False
        chunk = carry + chunk
        cut = chunk.rfind(b"\n") + 1
        carry = chunk[cut:]
        if len(carry) > MAX_LINE_BYTES:
            carry, skipping = b"", True
            dropped[0] += 1
        if cut:
            yield chunk[:cut]
    if carry:
        yield carry


def _backward_blocks(stream: BinaryIO, since: bytes, dropped: list[int]) -> Iterator[bytes]:
    end = stream.seek(0, 2)
    carry = b""
    skipping = False  # inside a dropped over-long line: back to the newline before it
    while end > 0:
        start = max(0, end - _BLOCK)
        stream.seek(start)
        block = stream.read(end - start)
        end = start
        if skipping:
            last = block.rfind(b"\n")
            if last < 0:
                continue
            block, skipping = block[: last + 1], False
        block += carry
        carry = b""
        if start > 0:
            # The first line of the block may begin in the block before: keep it for then.
            cut = block.find(b"\n") + 1
            carry, block = (block, b"") if cut == 0 else (block[:cut], block[cut:])
            if len(carry) > MAX_LINE_BYTES:
                carry, skipping = b"", True
                dropped[0] += 1
        if not block:
            continue
        yield block
        first = _TIMESTAMP.search(block, 0, 200)
        if first is not None and first.group(1) < since:
            return


def _etl_lines(block: bytes) -> Iterator[bytes]:
    """The lines of ``block`` that hold an ETL run event's mark, found without splitting the
    block into lines (most lines of a log are not ETL events)."""
    find, rfind = block.find, block.rfind
    at = find(_ETL_RUN_MARK)
    while at >= 0:
        begin = rfind(b"\n", 0, at) + 1
        stop = find(b"\n", at)
        if stop < 0:
            stop = len(block)
        yield block[begin:stop]
        at = find(_ETL_RUN_MARK, stop)
