"""A worker process for the rotation tests: logs N numbered lines through one front-end."""

from __future__ import annotations

import argparse
import logging
import time

import alkana_logging


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", required=True)
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--lines", type=int, required=True)
    parser.add_argument("--rotation", default="size")
    parser.add_argument("--max-bytes", type=int, default=65536)
    parser.add_argument("--backup-count", type=int, default=10_000)
    parser.add_argument("--pause-every", type=int, default=0, help="sleep 1 ms every N lines")
    parser.add_argument("--api", choices=["structlog", "stdlib"], default="structlog")
    args = parser.parse_args()
    alkana_logging.setup(
        log_file=args.file,
        stdout=False,
        rotation=args.rotation,
        max_bytes=args.max_bytes,
        backup_count=args.backup_count,
    )
    log = alkana_logging.get_logger("writer")
    stdlib = logging.getLogger("writer")
    padding = "x" * 100
    for seq in range(args.lines):
        if args.api == "structlog":
            log.info("line", worker=args.worker, seq=seq, padding=padding)
        else:
            stdlib.info("line", extra={"worker": args.worker, "seq": seq, "padding": padding})
        if args.pause_every and seq % args.pause_every == 0:
            time.sleep(0.001)
    health = alkana_logging.pipeline_health()
    alkana_logging.shutdown()
    print(health["lines_written"], health["write_errors"], health["rotations"])


if __name__ == "__main__":
    main()
