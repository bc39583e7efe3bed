"""The sinks alone: one line written by ``StreamSink`` and ``FileSink``, this tree's against
another commit's, side by side in one process.

    .venv/bin/python benchmarks/bench_sinks.py                # against main
    .venv/bin/python benchmarks/bench_sinks.py --ref HEAD~3   # against another commit
    .venv/bin/python benchmarks/bench_sinks.py --quick

The other commit's ``alkana_logging/sinks.py`` is loaded from ``git show REF:...`` as a second
module next to this tree's (both share this tree's ``health`` module), so both run in the same
rounds on the same machine and only their ratio matters. The line is the JSON bytes of the
core benchmark's call (about 250 bytes, with its newline). ``stream``: stdout as a text stream
over ``/dev/null`` (one ``write(2)`` a line either way); ``file``: a file in a temporary
directory with the default size rotation (10 MB x 5).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import _common as C

ROOT = Path(__file__).resolve().parents[1]
LINE = (
    b'{"timestamp":"2026-12-01T17:40:00.123456Z","level":"info","logger":"bench",'
    b'"message":"request handled","app":"app","env":"dev","host":"web-1","pid":4242,'
    b'"user_id":42,"route":"/items/{item_id}","duration_ms":12.5,"status":"ok"}\n'
)


def load(name: str, source: str) -> ModuleType:
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look the module up by name
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def cases(name: str, sinks: ModuleType, directory: Path) -> tuple[list[C.Case], list[Any]]:
    null = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - closed by main()
    stream = sinks.StreamSink(null)
    file = sinks.FileSink(directory / name / "app.log", max_bytes=10 * 1024 * 1024)

    def run_stream(n: int) -> None:
        write = stream.write
        for _ in range(n):
            write(LINE, {}, 0)

    def run_file(n: int) -> None:
        write = file.write
        for _ in range(n):
            write(LINE, {}, 0)

    return [C.Case(f"stream.{name}", run_stream), C.Case(f"file.{name}", run_file)], [
        stream,
        file,
        null,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="main", help="the commit to compare with (main)")
    parser.add_argument("--quick", action="store_true", help="9 short rounds")
    parser.add_argument("--rounds", type=int, help="rounds (default 31, quick 9)")
    args = parser.parse_args()
    base = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{args.ref}:alkana_logging/sinks.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    here = (ROOT / "alkana_logging" / "sinks.py").read_text()
    rounds = args.rounds or (9 if args.quick else 31)
    with tempfile.TemporaryDirectory() as tmp:
        all_cases: list[C.Case] = []
        opened: list[Any] = []
        for name, source in (("ref", base), ("tree", here)):
            more, objects = cases(name, load(f"bench_sinks_{name}", source), Path(tmp))
            all_cases += more
            opened += objects
        C.measure(all_cases, rounds=rounds, target_s=0.05 if args.quick else 0.2)
        by_name = {case.name: case for case in all_cases}
        rows = []
        for kind in ("stream", "file"):
            ref, tree = by_name[f"{kind}.ref"], by_name[f"{kind}.tree"]
            rows.append(
                [
                    kind,
                    C.fmt_us(ref.median_us),
                    C.fmt_us(tree.median_us),
                    C.fmt_ratio(tree.median_us / ref.median_us),
                    f"{max(ref.spread, tree.spread):.0%}",
                ]
            )
        for thing in opened:
            thing.close()
    print(C.machine())
    print(f"reference: {args.ref}; clock: cpu; {rounds} rounds")
    print(C.table(["sink", f"{args.ref} µs/line", "this tree µs/line", "ratio", "spread"], rows))


if __name__ == "__main__":
    main()
