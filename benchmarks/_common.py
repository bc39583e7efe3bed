"""Timing helpers shared by the benchmarks: interleaved rounds, medians, the machine, tables.

A case is a function ``run(n)`` that makes ``n`` calls in its own loop, so the loop costs the
same for every case and no extra call per iteration is measured. Each case's ``n`` is calibrated
once so that one round of it lasts about ``target_s``; then every round runs every case once,
in an order that rotates (and reverses every other round), so that a slow spell of the machine
hits all cases alike. The figure reported is the median over rounds of the time per call.
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence

Run = Callable[[int], object]


@dataclasses.dataclass
class Case:
    """One measured thing: ``run(n)`` makes ``n`` calls."""

    name: str
    run: Run
    n: int = 0
    samples_us: list[float] = dataclasses.field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples_us)

    @property
    def spread(self) -> float:
        """Relative half-range of the middle half of the rounds (a noise indicator)."""
        if len(self.samples_us) < 4:
            return 0.0
        q = statistics.quantiles(self.samples_us, n=4)
        return (q[2] - q[0]) / 2 / self.median_us


#: The clock of the measurements. ``cpu`` (the process's CPU time, user + system) leaves out
#: the time the process waits while other processes run, which on a shared machine is most of
#: the noise; for single-threaded work that never sleeps it equals wall time on an idle machine.
#: ``wall`` is ``perf_counter``.
CLOCKS: dict[str, Callable[[], int]] = {
    "cpu": time.process_time_ns,
    "wall": time.perf_counter_ns,
}
_clock = CLOCKS["cpu"]


def use_clock(name: str) -> None:
    global _clock  # noqa: PLW0603 - one clock for the whole run
    _clock = CLOCKS[name]


def _time_once(run: Run, n: int) -> float:
    gc.collect()
    clock = _clock
    start = clock()
    run(n)
    return (clock() - start) / 1000


def calibrate(case: Case, target_s: float) -> None:
    """Warm the case up and pick ``n`` so that one round lasts about ``target_s``."""
    n = 16
    while True:
        elapsed_us = _time_once(case.run, n)
        if elapsed_us >= target_s * 1e6 / 4 or n >= 1 << 24:
            break
        n *= 4
    per_call_us = elapsed_us / n
    case.n = max(16, int(target_s * 1e6 / max(per_call_us, 1e-3)))


def measure(cases: Sequence[Case], *, rounds: int, target_s: float, progress: bool = True) -> None:
    """Fill ``samples_us`` of every case with ``rounds`` interleaved rounds."""
    for case in cases:
        calibrate(case, target_s)
    order = list(cases)
    for index in range(rounds):
        shift = index % len(order)
        this_round = order[shift:] + order[:shift]
        if index % 2:
            this_round.reverse()
        for case in this_round:
            case.samples_us.append(_time_once(case.run, case.n) / case.n)
        if progress:
            print(f"  round {index + 1}/{rounds} done", file=sys.stderr, flush=True)


def rss_kib() -> int:
    """The process's resident set size now, in KiB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found in /proc/self/status")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line saying where and when the numbers were measured."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{now}; {usable} cores ({_cpu_model()}); "
        f"{platform.python_implementation()} {platform.python_version()} on "
        f"{platform.system()} {platform.release()}; load average {load:.2f} at start"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table (so the README can take it as printed)."""
    rows = [list(r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    rule = (
        "|"
        + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def fmt_us(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}x"
