"""Instructions per log call, counted by callgrind: steady on a shared, noisy machine.

Each case runs in its own interpreter under ``valgrind --tool=callgrind`` twice, with ``N`` and
``N + 10000`` calls; the difference divided by 10000 is the cost of one call, without the
start-up, the imports and ``setup()``. The anchors run the same way, so the ratios of the last
column compare like with like. Instruction counts are not time (a cache miss costs more than an
add), but a change that adds instructions to the hot path shows here at once, noise or not.

    .venv/bin/python benchmarks/bench_callgrind.py                # this tree
    .venv/bin/python benchmarks/bench_callgrind.py --ref main     # and another commit, beside it
    .venv/bin/python benchmarks/bench_callgrind.py --cases structlog_scalars,stdlib_extra

``PYTHONHASHSEED=0`` keeps the dict and set layouts the same from run to run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_N = 2000
EXTRA_N = 10000

#: name -> (what it measures, the anchor it is compared with or None). The child's code for
#: each case is in CHILD below.
CASES: dict[str, tuple[str, str | None]] = {
    "structlog_scalars": ("structlog API, message + 4 fields, to a file", "anchor_structlog"),
    "structlog_dict": ("structlog API, a small dict field", "anchor_structlog"),
    "stdlib_extra": ("stdlib API, extra= with 4 fields, to a file", "anchor_filehandler"),
    "forwarded_scalars": ("structlog API with a foreign root handler (forwarded)", None),
    "loguru_scalars": ("loguru API, message + 4 bound fields", None),
    "anchor_structlog": ("structlog's fast path: filtering logger + orjson + bytes file", None),
    "anchor_filehandler": ("stdlib FileHandler, plain-text line", None),
}

CHILD = r"""
import logging, os, sys, tempfile
case, n = sys.argv[1], int(sys.argv[2])
d = tempfile.mkdtemp()
path = os.path.join(d, "app.log")
fields = dict(user_id=42, path="/api/items", status=200, duration_ms=12.5)
if case.startswith("anchor_structlog"):
    import orjson, structlog
    structlog.configure(
        cache_logger_on_first_use=True,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        logger_factory=structlog.BytesLoggerFactory(open(path, "wb")),
    )
    log = structlog.get_logger()
    call = lambda: log.info("request handled", **fields)
elif case == "anchor_filehandler":
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.root.addHandler(handler)
    logging.root.setLevel(logging.INFO)
    logger = logging.getLogger("bench")
    call = lambda: logger.info("request handled", extra=fields)
else:
    import alkana_logging
    root = os.environ["BENCH_ROOT"]
    assert alkana_logging.__file__.startswith(root), (alkana_logging.__file__, root)
    alkana_logging.setup(app_name="bench", log_file=path, stdout=False, max_bytes=0)
    if case == "forwarded_scalars":
        class Other(logging.Handler):
            def emit(self, record): pass
        logging.root.addHandler(Other())
    if case == "stdlib_extra":
        logger = logging.getLogger("bench")
        call = lambda: logger.info("request handled", extra=fields)
    elif case == "loguru_scalars":
        from loguru import logger as loguru_logger
        bound = loguru_logger.bind(**fields)
        call = lambda: bound.info("request handled")
    elif case == "structlog_dict":
        log = alkana_logging.get_logger("bench")
        call = lambda: log.info("loaded", table="t", meta={"a": 1, "b": [1, 2]})
    else:
        log = alkana_logging.get_logger("bench")
        call = lambda: log.info("request handled", **fields)
for _ in range(n):
    call()
"""


def _instructions(python: str, tree: Path, case: str, n: int) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(tree), "BENCH_ROOT": str(tree)}
    with tempfile.NamedTemporaryFile(suffix=".out") as out:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out.name}",
                python,
                "-c",
                CHILD,
                case,
                str(n),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
            cwd=tempfile.gettempdir(),  # not the checkout: the -c child puts its cwd first
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not found:
        raise SystemExit(f"{case} (n={n}) failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_call(python: str, tree: Path, case: str) -> float:
    low = _instructions(python, tree, case, BASE_N)
    high = _instructions(python, tree, case, BASE_N + EXTRA_N)
    return (high - low) / EXTRA_N


def _export(ref: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "alkana_logging"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="also measure this commit's package, beside this tree's")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES)}")
    for case in cases:  # the anchors the cases are compared with are measured too
        anchor = CASES[case][1]
        if anchor and anchor not in cases:
            cases.append(anchor)
    python = sys.executable
    print(f"# instructions per call (callgrind), Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": ROOT}
        if args.ref:
            trees[args.ref] = _export(args.ref, Path(tmp))
        results = {
            label: {case: per_call(python, tree, case) for case in cases}
            for label, tree in trees.items()
        }
    header = "| case | " + " | ".join(trees) + " | vs its anchor |"
    print(header)
    print("|---" * (len(trees) + 2) + "|")
    mine = results["this tree"]
    for case in cases:
        anchor = CASES[case][1]
        ratio = f"{mine[case] / mine[anchor]:.2f}x {anchor}" if anchor else ""
        counts = " | ".join(f"{results[label][case]:,.0f}" for label in trees)
        print(f"| {case}: {CASES[case][0]} | {counts} | {ratio} |")


if __name__ == "__main__":
    main()
