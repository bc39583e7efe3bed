"""What RequestContextMiddleware and its one ``http_request`` event add to a request.

A raw ASGI call loop (no HTTP client, no server) over a bare Starlette app with one route, three
ways: the bare app, the app with ``RequestContextMiddleware`` (logging set up with a file in a
temporary directory, stdout off), and the app with asgi-correlation-id's
``CorrelationIdMiddleware`` (which logs nothing), each added with ``app.add_middleware``. The
cases run interleaved over several rounds so that a slow spell of the machine hits them all; the
table gives the median microseconds per request and, per case, the median over rounds of what it
added to the bare app in the same round. Requests come without an incoming id (the common case:
a new id is made) and, in a second variant, with an ``X-Request-ID`` and a ``traceparent``.

Goal (issue 16): our middleware, its log line included, adds at most 1.0 times what
asgi-correlation-id adds without writing any line, in the same run (PASS or MISS is printed).
Time is the process's CPU time by default (``--clock wall`` for perf_counter): on a shared
machine it leaves out the time other processes take.

``--callgrind`` counts instructions instead (valgrind): each case runs in its own interpreter
twice, with ``N`` and ``N + M`` requests, and ``(count at N + M - count at N) / M`` is one
request's cost without the start-up; the same for the bare app gives what each middleware adds.
Steady from run to run, noise or not (``PYTHONHASHSEED=0``).

    .venv/bin/python benchmarks/bench_middleware.py [--rounds 15] [--requests 2000]
    .venv/bin/python benchmarks/bench_middleware.py --callgrind
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import alkana_logging
from alkana_logging import _state
from alkana_logging import fields as F
from alkana_logging.middleware import RequestContextMiddleware, instrument

#: What ours may add per request, as a multiple of what asgi-correlation-id adds (issue 16).
GOAL_RATIO = 1.0
#: Requests of the short and the long callgrind run: their difference is what is counted.
CALLGRIND_BASE = 500
CALLGRIND_EXTRA = 2000

Message = dict[str, Any]


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/items/{item_id}", item)])


def with_ours() -> Starlette:
    app = bare_app()
    app.add_middleware(RequestContextMiddleware)
    return app


def with_instrument() -> Starlette:
    return instrument(bare_app())


def with_correlation_id() -> Starlette:
    app = bare_app()
    app.add_middleware(CorrelationIdMiddleware)
    return app


def make_scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/items/42",
        "raw_path": b"/items/42",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"bench/1.0"),
            (b"accept", b"*/*"),
            *headers,
        ],
        "client": ("127.0.0.1", 51000),
        "server": ("127.0.0.1", 8000),
    }


PLAIN = make_scope([])
WITH_IDS = make_scope(
    [
        (b"x-request-id", b"3f2b8c1d9e7a4b6c8d0e1f2a3b4c5d6e"),
        (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ]
)


class Cycle:
    """One request's ``receive`` as uvicorn gives it: a method of the request's cycle, which has
    a ``disconnected`` flag (our middleware reads it instead of calling ``receive``). The
    (empty) body comes once, then it waits for the client's disconnect (which never comes
    here), as the ASGI spec says."""

    __slots__ = ("body_sent", "disconnected")

    def __init__(self) -> None:
        self.body_sent = False
        self.disconnected = False

    async def receive(self) -> Message:
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.get_running_loop().create_future()  # never done
        raise AssertionError("unreachable")


class OtherCycle:
    """The same without the flag, as other servers' (hypercorn's, granian's): our middleware
    then calls ``receive()`` before the last body chunk, up to its first wait (the dearer
    path)."""

    __slots__ = ("body_sent",)

    def __init__(self) -> None:
        self.body_sent = False

    receive = Cycle.receive


async def send(message: Message) -> None:
    return None


_clock: Callable[[], float] = time.process_time


async def loop(app: Any, template: dict[str, Any], requests: int, cycle: Any = Cycle) -> float:
    """Microseconds per request of ``requests`` sequential calls."""
    started = _clock()
    for _ in range(requests):
        # A fresh scope each time (the router writes into it), dropped after it as a server does.
        await app(dict(template), cycle().receive, send)
    return (_clock() - started) / requests * 1e6


def log_line_only(requests: int) -> float:
    """Microseconds of the event's log line alone (what the pipeline costs, not the middleware)."""
    fields = {
        F.EVENT: F.EVENT_HTTP_REQUEST,
        F.METHOD: "GET",
        F.ROUTE: "/items/{item_id}",
        F.PATH: "/items/42",
        F.STATUS_CODE: 200,
        F.DURATION_MS: 0.042,
        F.CLIENT_IP: "127.0.0.1",
        F.REQUEST_ID: "3f2b8c1d9e7a4b6c8d0e1f2a3b4c5d6e",
    }
    started = _clock()
    for _ in range(requests):
        _state.emit(F.INFO, "alkana_logging.middleware", "GET /items/42 200", fields)
    return (_clock() - started) / requests * 1e6


#: name -> (the app's factory, the request's scope). The first is the bare app, the second the
#: anchor, the third the target.
CASES: dict[str, tuple[Callable[[], Any], dict[str, Any], Any]] = {
    "bare Starlette": (bare_app, PLAIN, Cycle),
    "asgi-correlation-id": (with_correlation_id, PLAIN, Cycle),
    "RequestContextMiddleware": (with_ours, PLAIN, Cycle),
    "RequestContextMiddleware, incoming ids": (with_ours, WITH_IDS, Cycle),
    "instrument(app): outside ServerErrorMiddleware": (with_instrument, PLAIN, Cycle),
    "RequestContextMiddleware, a server without the flag": (with_ours, PLAIN, OtherCycle),
}
BARE, ANCHOR, TARGET = list(CASES)[:3]
#: Short names of the cases, for --cases and the callgrind children.
KEYS: dict[str, str] = dict(
    zip(("bare", "anchor", "ours", "ids", "instrument", "other"), CASES, strict=True)
)


def verdict(ours: float, anchor: float, unit: str) -> str:
    ratio = ours / anchor
    return (
        ("PASS" if ratio <= GOAL_RATIO else "MISS")
        + f"  RequestContextMiddleware with its http_request line adds {ours:+,.2f} {unit} a "
        f"request: {ratio:.2f}x what asgi-correlation-id adds without a line ({anchor:+,.2f} "
        f"{unit}); target <= {GOAL_RATIO:.1f}x"
    )


def run(rounds: int, requests: int) -> int:
    cases = CASES
    apps = {name: factory() for name, (factory, _, _) in cases.items()}
    times: dict[str, list[float]] = {name: [] for name in cases}
    line_times: list[float] = []

    async def main() -> None:
        for name, app in apps.items():  # warm-up: builds the middleware stacks, fills caches
            await loop(app, cases[name][1], 500, cases[name][2])
        for round_no in range(rounds):
            names = list(cases)
            # Rotate the order so that no case always runs first or last in a round.
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                gc.collect()
                times[name].append(await loop(apps[name], cases[name][1], requests, cases[name][2]))
            gc.collect()
            line_times.append(log_line_only(requests))

    asyncio.run(main())

    bare = times["bare Starlette"]
    print(
        f"{rounds} rounds x {requests} requests, raw ASGI calls, {_clock.__name__}, "
        f"Python {sys.version.split()[0]}"
    )
    print()
    print(f"{'case':<52} {'median µs/req':>14} {'added µs':>10} {'x anchor':>9}")
    print("-" * 88)
    added: dict[str, float] = {}
    for name, samples in times.items():
        if name != "bare Starlette":
            added[name] = statistics.median(s - b for s, b in zip(samples, bare, strict=True))
    anchor = added["asgi-correlation-id"]
    for name, samples in times.items():
        median = statistics.median(samples)
        if name == "bare Starlette":
            print(f"{name:<52} {median:>14.2f}")
            continue
        print(f"{name:<52} {median:>14.2f} {added[name]:>+10.2f} {added[name] / anchor:>9.2f}")
    print("-" * 88)
    print(
        f"{'the log line alone (pipeline, no request)':<48} {statistics.median(line_times):>14.2f}"
    )
    print()
    print(verdict(added[TARGET], anchor, "µs"))
    return 0


def _child(case: str, requests: int) -> None:
    """The callgrind run of one case: ``requests`` requests, nothing printed."""
    factory, template, cycle = CASES[KEYS[case]]
    app = factory()

    async def main() -> None:
        for _ in range(requests):
            await app(dict(template), cycle().receive, send)

    asyncio.run(main())


def _instructions(case: str, requests: int) -> int:
    with tempfile.NamedTemporaryFile(suffix=".out") as out:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out.name}",
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                case,
                str(requests),
            ],
            env={**os.environ, "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not found:
        raise SystemExit(f"{case} ({requests} requests) failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def callgrind(keys: list[str]) -> int:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    per_request = {
        KEYS[key]: (
            _instructions(key, CALLGRIND_BASE + CALLGRIND_EXTRA)
            - _instructions(key, CALLGRIND_BASE)
        )
        / CALLGRIND_EXTRA
        for key in keys
    }
    print(
        f"instructions per request (callgrind, {CALLGRIND_EXTRA} requests counted), "
        f"Python {sys.version.split()[0]}"
    )
    print()
    print(f"{'case':<52} {'instructions':>13} {'added':>10} {'x anchor':>9}")
    print("-" * 87)
    bare = per_request[BARE]
    anchor = per_request[ANCHOR] - bare
    for name, count in per_request.items():
        if name == BARE:
            print(f"{name:<52} {count:>13,.0f}")
        else:
            added = count - bare
            print(f"{name:<52} {count:>13,.0f} {added:>+10,.0f} {added / anchor:>9.2f}")
    print()
    if TARGET in per_request:
        print(verdict(per_request[TARGET] - bare, anchor, "instructions"))
    return 0


def main(argv: list[str] | None = None) -> int:
    global _clock  # noqa: PLW0603 - one clock for the whole run
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument(
        "--cases",
        default="ids,other",
        help=f"with --callgrind: more cases, comma-separated, of {', '.join(list(KEYS)[3:])} "
        "(bare, anchor and ours are always counted)",
    )
    parser.add_argument("--child", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter
    with tempfile.TemporaryDirectory() as tmp:
        alkana_logging.setup(log_file=str(Path(tmp) / "bench.log"), stdout=False)
        try:
            if args.child:
                _child(args.child[0], int(args.child[1]))
                return 0
            if args.callgrind:
                keys = list(KEYS)[:3]
                for key in filter(None, args.cases.split(",")):
                    if key not in KEYS:
                        raise SystemExit(f"unknown case {key!r}; known: {', '.join(KEYS)}")
                    if key not in keys:
                        keys.append(key)
                return callgrind(keys)
            return run(args.rounds, args.requests)
        finally:
            alkana_logging.shutdown()


if __name__ == "__main__":
    sys.exit(main())
