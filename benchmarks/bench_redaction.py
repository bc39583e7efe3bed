"""What redaction and URL scrubbing cost a line: the renderer alone, no file, no sink.

Run it from the repository root::

    .venv/bin/python benchmarks/bench_redaction.py            # about half a minute
    .venv/bin/python benchmarks/bench_redaction.py --quick    # a few seconds

Every case renders one call of ``Renderer.render`` (what every front-end ends in) with the
benchmark call of ``bench_logging.py`` (``"request handled"`` and four fields), changed as the
row says. The anchors, measured in the same rounds: ``orjson.dumps`` of the finished record (the
floor of any JSON line) and the URL pre-check alone (``line_may_hold_url_secrets`` on the plain
line: all that a line without a URL secret pays for URL scrubbing).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import _common as C
import orjson

from alkana_logging import fields as F
from alkana_logging._line import Renderer
from alkana_logging.redaction import Redactor, line_may_hold_url_secrets

MESSAGE = "request handled"
FIELDS: dict[str, Any] = {
    "user_id": 42,
    "route": "/items/{item_id}",
    "duration_ms": 12.5,
    "status": "ok",
}
HTTPX = 'HTTP Request: GET https://api.example.com/v1/items/42 "HTTP/1.1 200 OK"'
HTTPX_TOKEN = (
    'HTTP Request: GET https://api.example.com/v1/items/42?api_key=abc123&page=2 "HTTP/1.1 200 OK"'
)
SIGNED = (
    "fetched https://bucket.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIA%2F20261201&X-Amz-Signature=0123456789abcdef"
)


def renderer() -> Renderer:
    return Renderer(
        app="bench", env="bench", host="bench", redactor=Redactor(), max_line_bytes=65536
    )


def render_case(message: str, fields: dict[str, Any]) -> C.Run:
    render = renderer().render
    ns = time.time_ns()

    def run(n: int) -> None:
        for _ in range(n):
            render(ns, F.INFO, "bench", message, dict(fields))

    run(10)
    return run


def dumps_floor() -> C.Run:
    record, _ = renderer().render(time.time_ns(), F.INFO, "bench", MESSAGE, dict(FIELDS))
    dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE

    def run(n: int) -> None:
        for _ in range(n):
            dumps(record, None, option)

    return run


def precheck() -> C.Run:
    _, line = renderer().render(time.time_ns(), F.INFO, "bench", MESSAGE, dict(FIELDS))

    check = line_may_hold_url_secrets

    def run(n: int) -> None:
        for _ in range(n):
            if check(line):
                raise AssertionError("the plain line has no URL")

    return run


CASES = {
    "floor.dumps": ("anchor: orjson.dumps of the record", dumps_floor),
    "floor.precheck": ("anchor: the URL pre-check alone, plain line", precheck),
    "plain": ("plain line (4 fields)", lambda: render_case(MESSAGE, FIELDS)),
    "secret_key": (
        "plain + password= (redacted key)",
        lambda: render_case(MESSAGE, {**FIELDS, "password": "hunter2"}),
    ),
    "camel_key": (
        "plain + accessToken= (camelCase key)",
        lambda: render_case(MESSAGE, {**FIELDS, "accessToken": "abc"}),
    ),
    "nested": (
        "plain + a nested dict with a secret",
        lambda: render_case(MESSAGE, {**FIELDS, "db": {"host": "h", "password": "x"}}),
    ),
    "url_clean": ("httpx line, URL without secrets", lambda: render_case(HTTPX, {})),
    "url_query": (
        "httpx line, harmless ?page=2&sort=asc",
        lambda: render_case(HTTPX.replace("/42", "/42?page=2&sort=asc"), {}),
    ),
    "url_token": ("httpx line, ?api_key= redacted", lambda: render_case(HTTPX_TOKEN, {})),
    "url_signed": ("S3 presigned URL in a message", lambda: render_case(SIGNED, {})),
    "url_userinfo": (
        "field with user:pass@ URL",
        lambda: render_case(MESSAGE, {**FIELDS, "dsn": "postgresql://app:pw@db:5432/x"}),
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--clock", choices=sorted(C.CLOCKS), default="cpu")
    args = parser.parse_args()
    C.use_clock(args.clock)
    cases = [C.Case(key, make()) for key, (_, make) in CASES.items()]
    rounds, target = (5, 0.05) if args.quick else (15, 0.2)
    C.measure(cases, rounds=rounds, target_s=target)
    by_key = {case.name: case for case in cases}
    plain = by_key["plain"].median_us
    floor = by_key["floor.dumps"].median_us
    rows = [
        [
            f"`{case.name}` {CASES[case.name][0]}",
            C.fmt_us(case.median_us),
            f"{case.spread * 100:.0f} %",
            C.fmt_ratio(case.median_us / plain),
            C.fmt_ratio(case.median_us / floor),
        ]
        for case in cases
    ]
    print(C.machine())
    print()
    print(C.table(["case", "µs/line", "spread", "vs plain", "vs dumps"], rows))


if __name__ == "__main__":
    main()
