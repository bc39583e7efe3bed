"""The ``alkana-logging`` command: presets, queries against Loki, the local report, tail, checks
and the rendered operational files.

Exit status: 0 when all went well, 1 when the work failed (Loki unreachable or refusing, a
check failed, rendered files differ), 2 for a usage error (unknown preset or parameter, bad
option value).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, TextIO

import orjson

from alkana_logging import freshness as Fresh
from alkana_logging.exceptions import AlkanaLoggingError, ConfigurationError
from alkana_logging.ops import configs as R
from alkana_logging.ops import presets as P
from alkana_logging.ops import report as Rep
from alkana_logging.ops.configs import options as Opt
from alkana_logging.settings import DEFAULT_JOB, DEFAULT_MAX_LINE_BYTES, Settings, load_settings

PROG: Final = "alkana-logging"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

_DURATION_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w|y)")


class UsageError(AlkanaLoggingError):
    """A command-line value that is not accepted (exit status 2)."""


class Failed(AlkanaLoggingError):
    """The work could not be done, said in one line (exit status 1)."""


def parse_duration(text: str, *, option: str) -> float:
    """``90s``, ``5m``, ``1h30m``, ``7d`` as seconds.

    Raises:
        UsageError: the text is not a duration.
    """
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise UsageError(
            f"{option}: got {text!r}; expected a duration such as 30s, 5m, 1h30m or 7d"
        )
    seconds = sum(float(n) * P.DURATION_UNITS_S[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError(f"{option}: got {text!r}; expected a duration > 0")
    return seconds


def parse_time(text: str, *, option: str) -> float:
    """Epoch seconds, or an RFC 3339 time (``2026-11-26T15:41:40Z``), as epoch seconds.

    Raises:
        UsageError: the text is neither.
    """
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option}: got {text!r}; expected epoch seconds or an RFC 3339 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _params(pairs: Iterable[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--param: got {pair!r}; expected NAME=VALUE")
        values[name.strip()] = value
    return values


def _print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


# -- presets --------------------------------------------------------------------------------------


def cmd_presets(args: argparse.Namespace, out: TextIO) -> int:
    if args.param and not args.name:
        raise UsageError("--param needs a preset: `presets NAME --param NAME=VALUE`")
    if args.name:
        preset = P.get(args.name)
        values = _params(args.param)
        logql = preset.render(values)
        if args.json:
            _print_json({**preset.as_dict(), "values": preset.resolve(values), "logql": logql}, out)
            return EXIT_OK
        out.write(f"{preset.name} ({preset.kind}, {preset.unit}): {preset.description}\n\n")
        out.write(
            Rep.format_table(
                ("param", "value", "description"),
                (
                    (p.name, value if value is not None else "-", p.description)
                    for p, value in zip(preset.params, preset.resolve(values).values(), strict=True)
                ),
            )
            + "\n\n"
        )
        out.write(logql + "\n")
        return EXIT_OK
    if args.json:
        _print_json([preset.as_dict() for preset in P.PRESETS], out)
        return EXIT_OK
    out.write(
        Rep.format_table(
            ("name", "kind", "unit", "description"),
            ((p.name, p.kind, p.unit, p.description) for p in P.PRESETS),
        )
        + "\n\n`alkana-logging presets NAME` shows a preset's parameters and LogQL.\n"
    )
    return EXIT_OK


# -- query ----------------------------------------------------------------------------------------


def _format_value(value: float, unit: str, now: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if unit == "ratio":
        return Rep.percent(value)
    if unit == "epoch_s":
        if value <= 0:
            return "never"
        stamp = datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return f"{stamp} ({Rep.age(now - value)} ago)"
    return Rep.number(value, 3)


def _label_columns(label_sets: Iterable[Mapping[str, str]]) -> list[str]:
    names: set[str] = set()
    for labels in label_sets:
        names.update(labels)
    return sorted(names)


def _sort_key(value: float) -> tuple[bool, float]:
    return (math.isnan(value), -value if not math.isnan(value) else 0.0)


def cmd_query(args: argparse.Namespace, out: TextIO) -> int:
    from alkana_logging.ops.query import LokiClient

    preset = P.get(args.preset)
    values: dict[str, Any] = _params(args.param)
    settings = load_settings()
    if "job" not in values:
        values["job"] = settings.loki_job
    since = parse_duration(args.since, option="--since") if args.since else None
    if preset.kind == "instant" and since is not None and "range" not in values:
        values["range"] = args.since
    logql = preset.render(values)
    now = time.time()
    with LokiClient.from_settings(settings, url=args.loki_url, timeout=args.timeout) as client:
        if preset.kind == "instant":
            result = client.query(logql, time=now)
            window: dict[str, Any] = {"type": "instant", "time": Fresh.iso(now)}
        else:
            start = now - (since or 3600.0)
            step = parse_duration(args.step, option="--step") if args.step else None
            result = client.query_range(
                logql,
                start=start,
                end=now,
                step=step,
                limit=args.limit if preset.kind == "logs" else None,
            )
            window = {"type": "range", "start": Fresh.iso(start), "end": Fresh.iso(now)}
    if args.json:
        _print_json(
            {
                "preset": preset.name,
                "kind": preset.kind,
                "unit": preset.unit,
                "logql": logql,
                "params": preset.resolve(values),
                "query": window,
                **result.to_dict(),
            },
            out,
        )
        return EXIT_OK
    out.write(f"{preset.name}: {preset.description}\n")
    if result.result_type == "vector":
        columns = _label_columns(s.labels for s in result.vector)
        rows = [
            (*(s.labels.get(c, "") for c in columns), _format_value(s.value, preset.unit, now))
            for s in sorted(result.vector, key=lambda s: _sort_key(s.value))
        ]
        _write_rows(out, (*columns, f"value ({preset.unit})"), rows)
    elif result.result_type == "matrix":
        columns = _label_columns(s.labels for s in result.matrix)
        matrix_rows = []
        for series in result.matrix:
            numbers = [v for _, v in series.points if not math.isnan(v)]
            last = series.points[-1] if series.points else None
            matrix_rows.append(
                (
                    *(series.labels.get(c, "") for c in columns),
                    f"{len(series.points):,}",
                    "-" if last is None else _format_value(last[1], preset.unit, now),
                    "-" if not numbers else _format_value(min(numbers), preset.unit, now),
                    "-" if not numbers else _format_value(max(numbers), preset.unit, now),
                )
            )
        _write_rows(out, (*columns, "points", "last", "min", "max"), matrix_rows)
    elif result.result_type == "streams":
        entries = sorted((ns, line) for stream in result.streams for ns, line in stream.entries)
        render = _line_renderer(_use_color(args.color, out))
        for _, line in entries:
            out.write(render(line))
        if not entries:
            out.write("(no lines)\n")
    else:
        out.write(f"value: {_format_value(result.scalar or 0.0, preset.unit, now)}\n")
    return EXIT_OK


def _write_rows(out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if not rows:
        out.write("(no data)\n")
        return
    from alkana_logging.console import escape

    # Label names and values come from the server: control characters escaped for the terminal.
    out.write(
        Rep.format_table([escape(h) for h in headers], [[escape(c) for c in r] for r in rows])
        + "\n"
    )


# -- report ---------------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    result = Rep.build_report(
        args.paths,
        now=parse_time(args.now, option="--now") if args.now else None,
        slow_ms=args.slow_ms,
        stale_after_s=parse_duration(args.stale_after, option="--stale-after"),
        top=args.top,
    )
    if args.json:
        _print_json(result.to_dict(), out)
    else:
        out.write(result.format())
    return EXIT_OK


# -- tail -----------------------------------------------------------------------------------------


def _use_color(choice: str, out: IO[str]) -> bool:
    from alkana_logging.console import use_colors

    return use_colors(out, choice)


def _line_renderer(colors: bool) -> Callable[[str], str]:
    """Turns one JSON line into the console form; any other line (not JSON, or JSON that is
    no object) is printed as it is, its control characters escaped as the JSON lines' are."""
    from alkana_logging.console import ConsoleFormat, escape

    renderer = ConsoleFormat(colors=colors)

    def render(line: str) -> str:
        text = line.rstrip("\r\n")
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError:
            return escape(text) + "\n"
        if not isinstance(record, dict):
            return escape(text) + "\n"
        return renderer(record)

    return render


def _last_lines(stream: IO[bytes], count: int, block: int = 65536) -> list[bytes]:
    """The last ``count`` lines of an open file, read from its end (the last one without its
    newline when the file does not end with one).

    The stream is left at the end it found, so following goes on from exactly there.
    """
    stream.seek(0, os.SEEK_END)
    end = position = stream.tell()
    data = b""
    while count > 0 and position > 0 and data.count(b"\n") <= count:
        step = min(block, position)
        position -= step
        stream.seek(position)
        data = stream.read(step) + data
    stream.seek(end)
    return data.splitlines(keepends=True)[-count:] if count > 0 else []


def _follow(
    stream: IO[bytes],
    path: Path,
    render: Callable[[str], str],
    out: TextIO,
    interval: float,
    pending: bytes = b"",
) -> Iterator[None]:
    """Print what is appended to ``path`` after the position of ``stream`` (open on it);
    reopen when the file is replaced (rotation) or truncated.

    A line is printed when its newline arrives (``pending``: the start of one already read);
    one that grows past ``DEFAULT_MAX_LINE_BYTES`` without it is printed as it is, so what is
    held stays bounded. Yields after each poll that found nothing new, so a caller (or a test)
    decides when to stop.
    """
    identity = os.fstat(stream.fileno()).st_ino
    try:
        while True:
            chunk = stream.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if len(pending) > DEFAULT_MAX_LINE_BYTES:
                    lines.append(pending)
                    pending = b""
                for line in lines:
                    out.write(render(line.decode("utf-8", "replace")))
                out.flush()
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_ino != identity or st.st_size < stream.tell()):
                # Rotated (a new file under the name) or truncated: the old file was read to
                # its end above (an unfinished last line of it is printed as it is), so start
                # the new one from its beginning.
                if pending:
                    out.write(render(pending.decode("utf-8", "replace")))
                    out.flush()
                    pending = b""
                stream.close()
                stream = path.open("rb")
                identity = os.fstat(stream.fileno()).st_ino
                continue
            yield
            time.sleep(interval)
    finally:
        stream.close()


def cmd_tail(args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.path).expanduser()
    if not path.is_file():
        raise UsageError(f"{args.path}: no such file")
    if args.lines < 0:
        raise UsageError(f"--lines: got {args.lines}; expected a number >= 0")
    if args.follow and path.name.endswith(".gz"):
        raise UsageError(f"{args.path}: a compressed file cannot be followed; drop -f")
    render = _line_renderer(_use_color(args.color, out))
    if not args.follow:
        lines = list(Fresh.read_lines(path))[-args.lines :] if args.lines > 0 else []
        for raw in lines:
            out.write(render(raw.decode("utf-8", "replace")))
        return EXIT_OK
    for _ in _tail_follow(path, args.lines, render, out, args.interval):
        pass
    return EXIT_OK


def _tail_follow(
    path: Path, count: int, render: Callable[[str], str], out: TextIO, interval: float
) -> Iterator[None]:
    """``tail -f``: the last ``count`` complete lines, then what is appended (see _follow)."""
    stream = path.open("rb")
    try:
        # An unfinished last line waits for the rest of it, as the lines appended later do:
        # the lines shown first are the last complete ones.
        lines = _last_lines(stream, count + 1)
        pending = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        for raw in lines[-count:] if count > 0 else []:
            out.write(render(raw.decode("utf-8", "replace")))
        out.flush()
    except BaseException:
        stream.close()
        raise
    yield from _follow(stream, path, render, out, interval, pending)


# -- check ----------------------------------------------------------------------------------------


def _try_log_file(path: Path) -> str:
    """Do what ``setup()`` does with the log file (create its missing directories, open the
    file for appending), then undo what this created; return what ``setup()`` will do.

    Raises:
        OSError: what ``setup()`` would meet, its message naming the path it failed on.
    """
    missing: list[Path] = []
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        missing.append(ancestor)
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"{ancestor} exists and is not a directory")
    created: list[Path] = []
    try:
        _make_directories(reversed(missing), created)
        new = _open_and_close(path)
    finally:
        for directory in reversed(created):
            with contextlib.suppress(OSError):  # something else was put in it meanwhile
                directory.rmdir()
    if missing:
        return f"can be written; {path.parent} will be created (tried, and removed)"
    if new:
        return "can be written; the file will be created (tried, and removed)"
    return "can be written"


def _make_directories(directories: Iterable[Path], created: list[Path]) -> None:
    """Make each directory, parents first, as ``setup()`` does; ``created``: those made here."""
    from alkana_logging.sinks import DIR_MODE

    for directory in directories:
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made by someone else meanwhile: not this check's to remove
        except OSError as err:
            raise OSError(f"{directory} cannot be created ({err.strerror or err})") from None
        created.append(directory)


def _open_and_close(path: Path) -> bool:
    """Open the log file for appending as ``setup()`` does, close it, and remove it if this
    made it (``O_EXCL``: never a file someone else made meanwhile). Returns whether it was new.
    """
    from alkana_logging.sinks import FILE_MODE

    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
    new = not path.exists()
    try:
        try:
            fd = os.open(path, flags | (os.O_CREAT | os.O_EXCL if new else 0), FILE_MODE)
        except FileExistsError:
            new = False
            fd = os.open(path, flags)
    except OSError as err:
        what = "created" if new else "opened for writing"
        raise OSError(f"{path} cannot be {what} ({err.strerror or err})") from None
    os.close(fd)
    if new:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return new


def _check_log_file(settings: Settings) -> tuple[bool, str]:
    if settings.log_file is None:
        return True, "no log file (stdout only)"
    path = settings.log_file
    note = (
        " (rotated by logrotate: LOG_ROTATION=external)" if settings.rotation == "external" else ""
    )
    try:
        message = _try_log_file(path)
    except OSError as err:
        text = str(err) if err.filename is None else f"{err.filename}: {err.strerror or err}"
        fallback = (
            "; setup() logs to stdout instead (LOG_ON_FILE_ERROR=stdout)"
            if settings.on_file_error == "stdout"
            else "; setup() will raise ConfigurationError"
        )
        return False, f"log file {path}: {text}{fallback}"
    return True, f"log file {path}: {message}{note}"


def _check_loki(
    settings: Settings, url: str | None, timeout: float
) -> tuple[bool | None, str, str]:
    from alkana_logging.ops.query import LokiClient, LokiQueryError

    url = url or settings.loki_url
    if not url:
        return None, "loki", "not configured (LOKI_URL is not set): skipped"
    try:
        with LokiClient.from_settings(settings, url=url, timeout=timeout) as client:
            ready = client.ready()
            labels = client.labels()
    except (LokiQueryError, ValueError) as err:
        return False, "loki", str(err)
    return True, "loki", f"{client.url}: {ready}; {len(labels)} label name(s)"


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    results: list[tuple[bool | None, str, str]] = []
    try:
        settings = load_settings()
    except ConfigurationError as err:
        results.append((False, "settings", str(err)))
    else:
        results.append(
            (
                True,
                "settings",
                f"level {settings.level}, format {settings.format}, rotation {settings.rotation}, "
                f"app {settings.app_name}, env {settings.app_env}",
            )
        )
        ok, message = _check_log_file(settings)
        results.append((ok, "log directory", message))
        results.append(_check_loki(settings, args.loki_url, args.timeout))
    for status, what, message in results:
        mark = {True: "ok", False: "FAIL", None: "skip"}[status]
        out.write(f"{mark:<5} {what}: {message}\n")
    return EXIT_FAILED if any(status is False for status, _, _ in results) else EXIT_OK


# -- render ---------------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace, out: TextIO) -> int:
    options = R.RenderOptions(
        job=args.job,
        app=args.app,
        env=args.env,
        host=args.host,
        log_dir=args.log_dir,
        loki_url=args.loki_url,
        user=args.user,
        group=args.group,
        alertmanager_url=args.alertmanager_url,
        pager_url=args.pager_url,
        email_to=args.email_to,
        email_from=args.email_from,
        smarthost=args.smarthost,
        smtp_user=args.smtp_user,
        smtp_require_tls=not args.smtp_no_tls,
        secrets_dir=args.secrets_dir,
        group_wait=args.group_wait,
        group_interval=args.group_interval,
        repeat_interval=args.repeat_interval,
    )
    artifacts = R.render(args.target, options)
    if args.check:
        root = Path(args.out or ".")
        stale = 0
        for artifact in artifacts:
            path = root / artifact.path
            if not path.is_file():
                out.write(f"missing: {path}\n")
            elif _read_text(path) != artifact.text:
                out.write(f"differs from the renderer's output: {path}\n")
            else:
                continue
            stale += 1
        if not stale:
            out.write(f"{len(artifacts)} file(s) up to date under {root}\n")
        return EXIT_FAILED if stale else EXIT_OK
    if args.out:
        for artifact in artifacts:
            (written,) = _write_artifact(artifact, args.out)
            out.write(f"wrote {written}\n")
        return EXIT_OK
    for artifact in artifacts:
        if len(artifacts) > 1:
            out.write(f"==> {artifact.path} <==\n")
        out.write(artifact.text)
    return EXIT_OK


def _read_text(path: Path) -> str | None:
    """The text of a rendered file, None when it is not UTF-8 (then it differs)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None
    except OSError as err:
        raise Failed(f"cannot read {path}: {err.strerror or err}") from None


def _write_artifact(artifact: R.Artifact, root: str) -> list[Path]:
    try:
        return R.write([artifact], root)
    except OSError as err:
        path = Path(root) / artifact.path
        raise Failed(f"cannot write {path}: {err.strerror or err}") from None


# -- the parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``alkana-logging``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="LogQL presets, Loki queries, a local report over JSON log files, a "
        "readable tail, checks, and the rendered Promtail/Alloy/logrotate/Loki/Grafana files.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    presets = sub.add_parser("presets", help="list the LogQL presets, or show one")
    presets.add_argument("name", nargs="?", help="show this preset's parameters and LogQL")
    presets.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    presets.add_argument("--json", action="store_true", help="print JSON")
    presets.set_defaults(func=cmd_presets)

    query = sub.add_parser("query", help="run a preset against Loki's HTTP API")
    query.add_argument("preset", help="the preset's name (see `presets`)")
    query.add_argument("--loki-url", help="Loki's base URL (default: LOKI_URL)")
    query.add_argument(
        "--since",
        help="how far back: the window of an instant preset, the start of a range preset "
        "(default: the preset's range, and 1h for series and lines)",
    )
    query.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    query.add_argument("--step", help="seconds between points of a range query (e.g. 1m)")
    query.add_argument("--limit", type=int, default=100, help="most lines for a log preset")
    query.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for Loki")
    query.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    query.add_argument("--json", action="store_true", help="print JSON")
    query.set_defaults(func=cmd_query)

    report = sub.add_parser("report", help="compute the presets' numbers from log files")
    report.add_argument("paths", nargs="+", metavar="PATH", help="log files or directories")
    report.add_argument("--json", action="store_true", help="print JSON")
    report.add_argument(
        "--slow-ms", type=float, default=float(P.DEFAULT_SLOW_MS), help="slow request threshold"
    )
    report.add_argument(
        "--stale-after", default=P.DEFAULT_STALE_AFTER, help="a table is stale after this"
    )
    report.add_argument("--now", help="measure ages from this time (default: now)")
    report.add_argument("--top", type=int, default=Rep.DEFAULT_TOP, help="exception types listed")
    report.set_defaults(func=cmd_report)

    tail = sub.add_parser("tail", help="show JSON log lines readably")
    tail.add_argument("path", help="the log file")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    tail.add_argument("-n", "--lines", type=int, default=10, help="how many last lines first")
    tail.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    tail.add_argument("--interval", type=float, default=0.25, help=argparse.SUPPRESS)
    tail.set_defaults(func=cmd_tail)

    check = sub.add_parser("check", help="check the settings, the log directory and Loki")
    check.add_argument("--loki-url", help="Loki's base URL (default: LOKI_URL)")
    check.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for Loki")
    check.set_defaults(func=cmd_check)

    _add_render(sub)
    return parser


def _add_render(sub: Any) -> None:
    render = sub.add_parser("render", help="render the shipped operational files")
    render.add_argument("target", choices=(*R.TARGETS, "all"))
    render.add_argument("--job", default=DEFAULT_JOB)
    render.add_argument("--app", default=Opt.DEFAULT_APP)
    render.add_argument("--env", default=Opt.DEFAULT_ENV)
    render.add_argument("--host", help="a static host label (default: none)")
    render.add_argument("--log-dir", default=Opt.DEFAULT_LOG_DIR)
    render.add_argument("--loki-url", default=Opt.DEFAULT_LOKI_URL)
    render.add_argument("--user", default=Opt.DEFAULT_USER, help="owner of the log files")
    render.add_argument("--group", default=Opt.DEFAULT_GROUP, help="group of the log files")
    alerting = render.add_argument_group("Alertmanager (target alertmanager, and the ruler)")
    alerting.add_argument(
        "--alertmanager-url",
        default=Opt.DEFAULT_ALERTMANAGER_URL,
        help="Alertmanager as Loki's ruler reaches it",
    )
    alerting.add_argument(
        "--pager-url", default=Opt.DEFAULT_PAGER_URL, help="PagerDuty events API v2 endpoint"
    )
    alerting.add_argument("--email-to", default=Opt.DEFAULT_EMAIL_TO, help="e-mail receiver")
    alerting.add_argument("--email-from", default=Opt.DEFAULT_EMAIL_FROM, help="sender")
    alerting.add_argument("--smarthost", default=Opt.DEFAULT_SMARTHOST, help="SMTP host:port")
    alerting.add_argument("--smtp-user", help="SMTP user name (default: the --email-from address)")
    alerting.add_argument(
        "--smtp-no-tls", action="store_true", help="do not require STARTTLS (a local relay)"
    )
    alerting.add_argument(
        "--secrets-dir", default=Opt.DEFAULT_SECRETS_DIR, help="directory of the secret files"
    )
    defaults = R.RenderOptions()
    alerting.add_argument("--group-wait", default=defaults.group_wait)
    alerting.add_argument("--group-interval", default=defaults.group_interval)
    alerting.add_argument("--repeat-interval", default=defaults.repeat_interval)
    render.add_argument(
        "--out", help="write under this directory at each file's path (default: stdout)"
    )
    render.add_argument(
        "--check",
        action="store_true",
        help="compare the files under --out (default .) with the output; exit 1 if they differ",
    )
    render.set_defaults(func=cmd_render)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``alkana-logging`` with ``argv`` (the process's arguments when omitted).

    Returns:
        The exit status.
    """
    from alkana_logging.ops.query import LokiQueryError

    parser = build_parser()
    args = parser.parse_args(argv)
    out = sys.stdout
    try:
        return int(args.func(args, out))
    except (UsageError, P.PresetError, R.RenderError, ConfigurationError, ValueError) as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's exit flush quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (LokiQueryError, Fresh.ReportError, Failed, OSError) as err:
        print(f"{PROG} {args.command}: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK
