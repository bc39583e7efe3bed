"""The core benchmark: one log call of alkana-logging side by side with the usual setups.

Run it from the repository root::

    .venv/bin/python benchmarks/bench_logging.py            # full run, about a minute
    .venv/bin/python benchmarks/bench_logging.py --quick    # a few seconds, for a quick look

It prints one Markdown table: microseconds per call (median of interleaved rounds) and the
ratio of every case to each anchor measured in the same run, then PASS/MISS for each target of
the speed issue. Everything writes to real files in a temporary directory that is removed at
the end; no case is configured through structlog's global configuration except alkana's own
``setup()``, so the anchors and alkana run side by side in one process without touching each
other's state between rounds.

``--profile KEY`` runs one case under cProfile instead (keys are listed by ``--list``).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import logging
import logging.handlers
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable
from itertools import repeat
from pathlib import Path
from typing import Any

import _common as C
import orjson
import structlog
from pythonjsonlogger.json import JsonFormatter

import alkana_logging
from alkana_logging import fields as F
from alkana_logging import pipeline, stdlib

MESSAGE = "request handled"
#: The cases that the ratios are taken against; ``--only`` keeps those of the groups it selects.
ANCHORS = (
    "info.structlog",
    "info.text",
    "info.pjl",
    "info.loguru",
    "off.empty",
    "off.structlog",
    "exc.floor",
    "exc.pjl",
)
ROTATE_BYTES = 10 * 1024 * 1024
ROTATE_BACKUPS = 5


# -- the exception: raised through 4 calls, caught in the case's own frame (5 frames) ---------


def _frame4() -> None:
    raise ValueError("the order could not be priced")


def _frame3() -> None:
    _frame4()


def _frame2() -> None:
    _frame3()


def _frame1() -> None:
    _frame2()


def _empty(event: Any = None, *args: Any, **kw: Any) -> None:
    return None


class _Foreign(logging.Handler):
    """A handler of someone else's on the root logger (pytest's caplog, an error tracker's): it
    takes every record and does nothing with it, so what is measured is alkana's offering of
    the line to it."""

    def emit(self, record: logging.LogRecord) -> None:
        return None


def _with_foreign_handler(run: Callable[[int], None]) -> Callable[[int], None]:
    def with_handler(n: int) -> None:
        root = logging.getLogger()
        handler = _Foreign()
        root.addHandler(handler)
        try:
            run(n)
        finally:
            root.removeHandler(handler)
            # The handler turned the stdlib's record details back on for good (as it would in
            # an application): the next case starts from setup()'s state again.
            pipeline.record_details_off(auto=True)

    return with_handler


def _stdlib_defaults(run: Callable[[int], None]) -> Callable[[int], None]:
    """An anchor of the stdlib runs with the stdlib's own record switches (caller, thread,
    process) and its own ``Logger._log``, as an application without alkana has them: setup()
    changed both in this process (LOG_RECORD_DETAILS=auto, the pipeline being the records'
    only consumer; the direct path, which an anchor's own handler would send back to the
    stdlib's ``_log`` with a frame more)."""

    def with_defaults(n: int) -> None:
        pipeline.record_details_on()
        logging.Logger._log = stdlib._STDLIB_LOG  # type: ignore[method-assign]
        try:
            run(n)
        finally:
            logging.Logger._log = stdlib._direct_log  # type: ignore[method-assign]
            pipeline.record_details_off(auto=True)

    return with_defaults


# -- the cases --------------------------------------------------------------------------------


class Bench:
    """Builds every logger once, up front, and the ``run(n)`` functions that call them."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.files: list[Any] = []
        self.loguru: Any = self._loguru_anchor()  # before setup(): see _loguru_anchor
        alkana_logging.setup(log_file=directory / "app.log", stdout=False, level="INFO")
        self.alk = alkana_logging.get_logger("bench.structlog")
        self.alk_std = logging.getLogger("bench.stdlib")
        self.sl = self._structlog_anchor()
        # What structlog gives without its lazy proxy (a logger bound once, up front): shows
        # how much of a call the proxy of ``get_logger()``/``wrap_logger()`` costs.
        self.sl_bound = self.sl.bind()
        self.text = self._stdlib_logger(
            "anchor.text",
            logging.FileHandler(directory / "text.log"),
            logging.Formatter("%(asctime)s %(levelname)s %(message)s"),
        )
        self.pjl = self._stdlib_logger(
            "anchor.pjl",
            logging.handlers.RotatingFileHandler(
                directory / "pjl.log", maxBytes=ROTATE_BYTES, backupCount=ROTATE_BACKUPS
            ),
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"),
        )
        self.floor_fd = os.open(directory / "floor.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def _structlog_anchor(self) -> Any:
        # structlog's documented fast path, built with wrap_logger so that alkana's global
        # structlog configuration and this logger never meet.
        out = open(self.dir / "structlog.log", "wb")  # noqa: SIM115 - open for the whole run
        self.files.append(out)
        return structlog.wrap_logger(
            structlog.BytesLoggerFactory(out)(),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            context_class=dict,
            cache_logger_on_first_use=True,
        )

    def _stdlib_logger(
        self, name: str, handler: logging.Handler, formatter: logging.Formatter
    ) -> logging.Logger:
        handler.setFormatter(formatter)
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # not through alkana's handler on the root logger
        return logger

    def _loguru_anchor(self) -> Any:
        try:
            from loguru import logger
        except ImportError:
            return None
        # An independent loguru logger (loguru's documented way: deepcopy after remove()), so
        # that the sink alkana's setup() adds to the global logger does not see its calls.
        logger.remove()
        own = copy.deepcopy(logger)
        own.add(self.dir / "loguru.log", serialize=True, level="INFO")
        return own

    def close(self) -> None:
        alkana_logging.shutdown()
        for name in ("anchor.text", "anchor.pjl"):
            for handler in list(logging.getLogger(name).handlers):
                handler.close()
        if self.loguru is not None:
            self.loguru.remove()
        for out in self.files:
            out.close()
        os.close(self.floor_fd)

    # Each run(n) writes its call out literally, as a caller would, so that building the
    # keyword arguments or the extra= dict is part of every case alike.

    def cases(self) -> dict[str, C.Case]:
        sl, sl_bound, text, pjl, lg, alk, alk_std = (
            self.sl,
            self.sl_bound,
            self.text,
            self.pjl,
            self.loguru,
            self.alk,
            self.alk_std,
        )

        def sl_info(n: int) -> None:
            for _ in repeat(None, n):
                sl.info(
                    MESSAGE, user_id=42, route="/items/{item_id}", duration_ms=12.5, status="ok"
                )

        def sl_bound_info(n: int) -> None:
            for _ in repeat(None, n):
                sl_bound.info(
                    MESSAGE, user_id=42, route="/items/{item_id}", duration_ms=12.5, status="ok"
                )

        def sl_bound_debug(n: int) -> None:
            for _ in repeat(None, n):
                sl_bound.debug(
                    MESSAGE, user_id=42, route="/items/{item_id}", duration_ms=12.5, status="ok"
                )

        def text_info(n: int) -> None:
            for _ in repeat(None, n):
                text.info(
                    MESSAGE,
                    extra={
                        "user_id": 42,
                        "route": "/items/{item_id}",
                        "duration_ms": 12.5,
                        "status": "ok",
                    },
                )

        def pjl_info(n: int) -> None:
            for _ in repeat(None, n):
                pjl.info(
                    MESSAGE,
                    extra={
                        "user_id": 42,
                        "route": "/items/{item_id}",
                        "duration_ms": 12.5,
                        "status": "ok",
                    },
                )

        def loguru_info(n: int) -> None:
            for _ in repeat(None, n):
                lg.info(
                    MESSAGE, user_id=42, route="/items/{item_id}", duration_ms=12.5, status="ok"
                )

        def alk_info(n: int) -> None:
            for _ in repeat(None, n):
                alk.info(
                    MESSAGE, user_id=42, route="/items/{item_id}", duration_ms=12.5, status="ok"
                )

        def alk_std_info(n: int) -> None:
            for _ in repeat(None, n):
                alk_std.info(
                    MESSAGE,
                    extra={
                        "user_id": 42,
                        "route": "/items/{item_id}",
                        "duration_ms": 12.5,
                        "status": "ok",
                    },
                )

        def alk_info_ctx(n: int) -> None:
            with alkana_logging.bound_context(
                request_id="4bf92f3577b34da6a3ce929d0e0e4736", user="alice"
            ):
                for _ in repeat(None, n):
                    alk.info(
                        MESSAGE, user_id=42, route="/items/{item_id}", duration_ms=12.5, status="ok"
                    )

        def empty(n: int) -> None:
            for _ in repeat(None, n):
                _empty(MESSAGE, user_id=42, route="/items/{item_id}", duration_ms=12.5, status="ok")

        def sl_debug(n: int) -> None:
            for _ in repeat(None, n):
                sl.debug(
                    MESSAGE, user_id=42, route="/items/{item_id}", duration_ms=12.5, status="ok"
                )

        def alk_debug(n: int) -> None:
            for _ in repeat(None, n):
                alk.debug(
                    MESSAGE, user_id=42, route="/items/{item_id}", duration_ms=12.5, status="ok"
                )

        def alk_std_debug(n: int) -> None:
            for _ in repeat(None, n):
                alk_std.debug(
                    MESSAGE,
                    extra={
                        "user_id": 42,
                        "route": "/items/{item_id}",
                        "duration_ms": 12.5,
                        "status": "ok",
                    },
                )

        # The exception is raised once per round and every call logs it from inside the
        # except block, so raising is not measured; the traceback is formatted at every call.
        fd = self.floor_fd

        def exc_floor(n: int) -> None:
            try:
                _frame1()
            except ValueError:
                for _ in repeat(None, n):
                    exc = sys.exc_info()[1]
                    assert exc is not None
                    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                    os.write(
                        fd,
                        orjson.dumps(
                            {
                                "message": MESSAGE,
                                "user_id": 42,
                                "route": "/items/{item_id}",
                                "duration_ms": 12.5,
                                "status": "ok",
                                "exception": stack,
                            },
                            option=orjson.OPT_APPEND_NEWLINE,
                        ),
                    )

        def exc_stdlib(logger: logging.Logger) -> Callable[[int], None]:
            def run(n: int) -> None:
                try:
                    _frame1()
                except ValueError:
                    for _ in repeat(None, n):
                        logger.exception(
                            MESSAGE,
                            extra={
                                "user_id": 42,
                                "route": "/items/{item_id}",
                                "duration_ms": 12.5,
                                "status": "ok",
                            },
                        )

            return run

        def alk_exc(n: int) -> None:
            try:
                _frame1()
            except ValueError:
                for _ in repeat(None, n):
                    alk.exception(
                        MESSAGE, user_id=42, route="/items/{item_id}", duration_ms=12.5, status="ok"
                    )

        cases = {
            "info.structlog": C.Case("INFO: structlog fast path [anchor]", sl_info),
            "info.structlog_bound": C.Case(
                "INFO: structlog fast path, bound up front (no proxy) [ref]", sl_bound_info
            ),
            "info.text": C.Case(
                "INFO: stdlib plain text + FileHandler [anchor]", _stdlib_defaults(text_info)
            ),
            "info.pjl": C.Case(
                "INFO: stdlib + python-json-logger + Rotating 10MBx5 [anchor]",
                _stdlib_defaults(pjl_info),
            ),
            "info.loguru": C.Case("INFO: loguru serialize=True [anchor]", loguru_info),
            "info.alk": C.Case("INFO: alkana, structlog API", alk_info),
            "info.alk_std": C.Case("INFO: alkana, stdlib API", alk_std_info),
            "info.alk_ctx": C.Case("INFO: alkana, structlog API, 2 values bound", alk_info_ctx),
            "info.alk_foreign": C.Case(
                "INFO: alkana, structlog API, a foreign root handler [offered]",
                _with_foreign_handler(alk_info),
            ),
            "info.alk_std_foreign": C.Case(
                "INFO: alkana, stdlib API, a foreign root handler",
                _with_foreign_handler(alk_std_info),
            ),
            "off.empty": C.Case("filtered: empty function, same arguments [floor]", empty),
            "off.structlog": C.Case("filtered DEBUG: structlog fast path [anchor]", sl_debug),
            "off.structlog_bound": C.Case(
                "filtered DEBUG: structlog fast path, bound up front [ref]", sl_bound_debug
            ),
            "off.alk": C.Case("filtered DEBUG: alkana, structlog API", alk_debug),
            "off.alk_std": C.Case("filtered DEBUG: alkana, stdlib API", alk_std_debug),
            "exc.floor": C.Case("exception: format_exception+orjson+write [floor]", exc_floor),
            "exc.pjl": C.Case(
                "exception: stdlib + python-json-logger [anchor]",
                _stdlib_defaults(exc_stdlib(pjl)),
            ),
            "exc.text": C.Case(
                "exception: stdlib plain text [anchor]", _stdlib_defaults(exc_stdlib(text))
            ),
            "exc.alk": C.Case("exception: alkana, structlog API", alk_exc),
            "exc.alk_std": C.Case("exception: alkana, stdlib API", exc_stdlib(alk_std)),
        }
        if lg is None:
            del cases["info.loguru"]
        return cases

    def check_output(self, keys: Iterable[str]) -> None:
        """The lines were really written, and alkana's have the contract's keys."""
        files = {
            "structlog": "structlog.log",
            "text": "text.log",
            "pjl": "pjl.log",
            "loguru": "loguru.log",
            "floor": "floor.log",
        }
        # Filtered-out calls write nothing; every other case writes to its file.
        writers = {key.split(".")[1].split("_")[0] for key in keys if not key.startswith("off.")}
        for name in sorted({files.get(writer, "app.log") for writer in writers}):
            if (self.dir / name).stat().st_size == 0:
                raise SystemExit(f"benchmark broken: nothing was written to {name}")
        lines = (self.dir / "app.log").read_bytes().splitlines()
        if not lines:
            return
        record = json.loads(lines[-1])
        expected = (*F.SCHEMA_KEYS, "user_id", "route", "duration_ms", "status")
        missing = [k for k in expected if k not in record]
        if missing:
            raise SystemExit(f"benchmark broken: alkana's last line lacks {missing}: {lines[-1]!r}")
        if any(json.loads(line)[F.LEVEL] == F.DEBUG for line in lines):
            raise SystemExit("benchmark broken: a filtered-out DEBUG call was written")


# -- memory: a child process per API, RSS read at two line counts ---------------------------


def memory_child(api: str, directory: Path, checkpoint: int, lines: int) -> None:
    alkana_logging.setup(log_file=directory / f"mem-{api}.log", stdout=False, level="INFO")
    if api == "structlog":
        log = alkana_logging.get_logger("bench.memory")

        def one() -> None:
            log.info(MESSAGE, user_id=42, route="/items/{item_id}", duration_ms=12.5, status="ok")

    else:
        std = logging.getLogger("bench.memory")

        def one() -> None:
            std.info(
                MESSAGE,
                extra={
                    "user_id": 42,
                    "route": "/items/{item_id}",
                    "duration_ms": 12.5,
                    "status": "ok",
                },
            )

    for _ in repeat(None, 1000):  # warm up: caches filled, first rotation checks done
        one()
    rss = {"start": C.rss_kib()}
    for _ in repeat(None, checkpoint):
        one()
    rss["checkpoint"] = C.rss_kib()
    for _ in repeat(None, lines - checkpoint):
        one()
    rss["end"] = C.rss_kib()
    alkana_logging.shutdown()
    print(json.dumps(rss))


def measure_memory(api: str, directory: Path, checkpoint: int, lines: int) -> dict[str, int]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--memory-child",
            api,
            str(directory),
            str(checkpoint),
            str(lines),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- report -----------------------------------------------------------------------------------


def _count(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def report(
    cases: dict[str, C.Case], memory: dict[str, dict[str, int]], mem_counts: tuple[int, int]
) -> list[str]:
    med = {k: c.median_us for k, c in cases.items()}
    info_anchors = [("info.structlog", 3), ("info.text", 4), ("info.pjl", 5), ("info.loguru", 6)]
    headers = [
        "case",
        "µs/call",
        "±",
        "×structlog",
        "×stdlib text",
        "×pjl",
        "×loguru",
        "×floor",
        "note",
    ]
    rows = []
    for key, case in cases.items():
        row = [case.name, C.fmt_us(med[key]), f"{case.spread * 100:.0f}%", "", "", "", "", "", ""]
        group = key.split(".")[0]
        if group == "info":
            for anchor, col in info_anchors:
                if anchor in med:
                    row[col] = C.fmt_ratio(med[key] / med[anchor])
        elif group == "off":
            row[3] = C.fmt_ratio(med[key] / med["off.structlog"])
            row[8] = f"{med[key] - med['off.empty']:+.3f} µs vs empty call"
        else:
            row[5] = C.fmt_ratio(med[key] / med["exc.pjl"])
            row[7] = C.fmt_ratio(med[key] / med["exc.floor"])
        rows.append(row)
    low, high = mem_counts
    for api, rss in memory.items():
        growth = (rss["end"] - rss["checkpoint"]) / 1024
        rows.append(
            [
                f"memory: alkana, {api} API, RSS at {_count(low)} → {_count(high)} lines",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                f"{rss['checkpoint'] / 1024:.1f} → {rss['end'] / 1024:.1f} MiB ({growth:+.1f} MiB)",
            ]
        )
    print(C.table(headers, rows))
    print()
    return targets(med, memory)


def targets(med: dict[str, float], memory: dict[str, dict[str, int]]) -> list[str]:
    """PASS/MISS for each target of the speed issue (those whose cases were measured)."""
    checks: list[tuple[bool, str]] = []

    def ratio(name: str, key: str, anchor: str, limit: float) -> None:
        if key in med and anchor in med:
            value = med[key] / med[anchor]
            checks.append((value <= limit, f"{name}: {value:.2f}x (target ≤ {limit:.1f}x)"))

    def faster(name: str, key: str, limit: float) -> None:
        if key in med and "info.pjl" in med:
            value = med["info.pjl"] / med[key]
            checks.append((value >= limit, f"{name}: {value:.1f}x faster (target ≥ {limit:.0f}x)"))

    def filtered(name: str, key: str) -> None:
        if key in med:
            above = med[key] - med["off.empty"]
            checks.append(
                (above <= 0.1, f"{name}: {above:+.3f} µs above an empty call (target ≤ +0.1 µs)")
            )

    ratio("structlog-API line vs structlog fast path", "info.alk", "info.structlog", 0.5)
    ratio("stdlib-API line vs stdlib plain text", "info.alk_std", "info.text", 0.7)
    faster("structlog-API line vs stdlib + python-json-logger + rotation", "info.alk", 5)
    faster("stdlib-API line vs stdlib + python-json-logger + rotation", "info.alk_std", 5)
    ratio("exception, structlog API, vs the traceback floor", "exc.alk", "exc.floor", 1.2)
    ratio("exception, stdlib API, vs the traceback floor", "exc.alk_std", "exc.floor", 1.2)
    filtered("filtered-out DEBUG, structlog API", "off.alk")
    filtered("filtered-out DEBUG, stdlib API", "off.alk_std")
    for api, rss in memory.items():
        growth = (rss["end"] - rss["checkpoint"]) / 1024
        checks.append(
            (
                growth <= 1.0,
                f"memory, {api} API: RSS {growth:+.1f} MiB from the first count to the second "
                "(target ≤ +1 MiB)",
            )
        )
    lines = [f"{'PASS' if ok else 'MISS'}  {text}" for ok, text in checks]
    print("\n".join(lines))
    return lines


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer, shorter rounds and 250k lines for memory"
    )
    parser.add_argument("--rounds", type=int, help="rounds per case (default 31, quick 9)")
    parser.add_argument(
        "--round-ms", type=float, help="length of one round of a case (default 40, quick 15)"
    )
    parser.add_argument(
        "--only",
        help="measure only cases whose key contains this text (plus the anchors they need)",
    )
    parser.add_argument(
        "--clock",
        choices=sorted(C.CLOCKS),
        default="cpu",
        help="cpu: process CPU time, robust to other processes on the machine (default); wall",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the RSS measurement")
    parser.add_argument(
        "--profile", metavar="KEY", help="run one case under cProfile and print the top functions"
    )
    parser.add_argument("--list", action="store_true", help="list the case keys")
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.memory_child:
        api, directory, checkpoint, lines = args.memory_child
        memory_child(api, Path(directory), int(checkpoint), int(lines))
        return

    C.use_clock(args.clock)
    rounds = args.rounds or (9 if args.quick else 31)
    round_s = (args.round_ms or (15 if args.quick else 40)) / 1000
    mem_counts = (50_000, 250_000) if args.quick else (200_000, 1_000_000)

    directory = Path(tempfile.mkdtemp(prefix="alkana-bench-"))
    try:
        bench = Bench(directory)
        try:
            cases = bench.cases()
            if args.list:
                for key, case in cases.items():
                    print(f"{key:16} {case.name}")
                return
            if args.profile:
                profile(cases[args.profile], round_s)
                return
            if args.only:
                groups = {key.split(".")[0] for key in cases if args.only in key}
                keep = {key for key in cases if args.only in key} | {
                    key for key in ANCHORS if key.split(".")[0] in groups
                }
                cases = {key: case for key, case in cases.items() if key in keep}
            print(f"# alkana-logging core benchmark\n\n{C.machine()}")
            print(f"alkana_logging from {Path(alkana_logging.__file__).parent}; ", end="")
            print(
                f"{rounds} rounds of ~{round_s * 1000:.0f} ms per case, interleaved; "
                f"median per call; clock: {args.clock} time\n"
            )
            C.measure(list(cases.values()), rounds=rounds, target_s=round_s)
            bench.check_output(cases)
        finally:
            bench.close()
        memory: dict[str, dict[str, int]] = {}
        if not args.no_memory:
            for api in ("structlog", "stdlib"):
                print(f"  memory: {api} API, {mem_counts[1]} lines", file=sys.stderr, flush=True)
                memory[api] = measure_memory(api, directory, *mem_counts)
        report(cases, memory, mem_counts)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def profile(case: C.Case, round_s: float) -> None:
    C.calibrate(case, round_s)
    n = case.n * 5
    profiler = cProfile.Profile()
    profiler.runcall(case.run, n)
    print(f"{case.name}: {n} calls under cProfile\n")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
