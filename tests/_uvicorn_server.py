"""A real uvicorn server in a child process, on 127.0.0.1 and an ephemeral port, for the tests.

The child is started as ``python -m uvicorn ... --port 0``, exactly as a user would start an
application; the application factories below call ``alkana_logging.setup()`` (the log file comes
from ``LOG_FILE`` in the child's environment). The port is read back from uvicorn's own
"Uvicorn running on" line in the log file, which also tells that the server is ready. The server
stops on SIGINT (uvicorn's graceful shutdown), and by itself when the test process goes away or
after ``MAX_SECONDS``.

Importing this module in the test process does nothing; the factories run in the child only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tests._logfiles import read_records

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "integrations" / "examples"
#: A child server exits by itself after this many seconds, whatever happens to the tests.
MAX_SECONDS = 300
_PARENT_ENV = "ALKANA_TEST_PARENT_PID"
_RUNNING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:(\d+))")


# -- the test process side ----------------------------------------------------------------------


def wait_for(
    log_file: Path,
    predicate: Callable[[dict[str, Any]], bool],
    count: int = 1,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """The records matching ``predicate``, once there are at least ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        # The server is running: a line being written now is not a line yet.
        found = [r for r in read_records(log_file, torn_last_line="skip") if predicate(r)]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(found)} of {count} expected records in {log_file} after {timeout} s"
            )
        time.sleep(0.02)


class Server:
    """A started uvicorn child process."""

    def __init__(self, process: subprocess.Popen[bytes], base_url: str, log_file: Path, out: Path):
        self.process = process
        self.base_url = base_url
        self.ws_url = base_url.replace("http://", "ws://", 1)
        self.port = int(base_url.rsplit(":", 1)[1])
        self.log_file = log_file
        self.output_file = out

    def output(self) -> str:
        """What the child wrote on stdout and stderr."""
        return self.output_file.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


@contextlib.contextmanager
def serve(
    app: str,
    log_file: Path,
    *,
    factory: bool = True,
    app_dir: Path | None = None,
    uvicorn_args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """Run ``python -m uvicorn APP --host 127.0.0.1 --port 0`` until the block ends."""
    out = log_file.with_name(log_file.name + ".out")
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "0"]
    if factory:
        command.append("--factory")
    if app_dir is not None:
        command += ["--app-dir", str(app_dir)]
    command += list(uvicorn_args)
    child_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
        "LOG_FILE": str(log_file),
        "LOG_STDOUT": "false",
        "LOG_LEVEL": "DEBUG",
        "APP_NAME": "test-backend",
        _PARENT_ENV: str(os.getpid()),
        **(env or {}),
    }
    with out.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=REPO, env=child_env, stdout=output, stderr=subprocess.STDOUT
        )
    server: Server | None = None
    try:
        deadline = time.monotonic() + 60
        while server is None:
            for record in read_records(log_file, torn_last_line="skip"):
                match = _RUNNING.search(str(record.get("message", "")))
                if match:
                    server = Server(process, match.group(1), log_file, out)
                    break
            else:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"uvicorn exited with {process.returncode} before it was ready:\n"
                        + out.read_text(errors="replace")
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        "uvicorn was not ready after 60 s:\n" + out.read_text(errors="replace")
                    )
                time.sleep(0.05)
        yield server
    finally:
        if server is not None:
            server.stop()
        elif process.poll() is None:
            process.kill()
            process.wait(timeout=10)


# -- the child side: application factories -----------------------------------------------------


def _watchdog() -> None:
    """Stop this server when the test process is gone or after MAX_SECONDS."""
    parent = int(os.environ.get(_PARENT_ENV, "0") or 0)
    started = time.monotonic()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            gone = parent and os.getppid() != parent
            if gone or time.monotonic() - started > MAX_SECONDS:
                os.kill(os.getpid(), signal.SIGINT)
                return

    threading.Thread(target=watch, name="test-server-watchdog", daemon=True).start()


def starlette_app() -> Any:
    """A Starlette app wrapped by the middleware (outermost), with one route per behaviour."""
    from starlette.applications import Starlette
    from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
    from starlette.background import BackgroundTask
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.requests import HTTPConnection, Request
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.websockets import WebSocket

    import alkana_logging
    from alkana_logging.middleware import RequestContextMiddleware

    alkana_logging.setup()
    _watchdog()
    log = alkana_logging.get_logger("tests.app")
    stdlib = logging.getLogger("tests.app.stdlib")

    class HeaderAuth(AuthenticationBackend):
        async def authenticate(self, conn: HTTPConnection) -> Any:
            name = conn.headers.get("x-test-user")
            return (AuthCredentials(["authenticated"]), SimpleUser(name)) if name else None

    def context_json() -> dict[str, Any]:
        return alkana_logging.get_context()

    async def item(request: Request) -> JSONResponse:
        marker = request.query_params.get("m", "")
        await asyncio.sleep(0.001 * (sum(map(ord, marker)) % 5))  # interleave requests
        log.info("item read", marker=marker)
        return JSONResponse({"item_id": request.path_params["item_id"], **context_json()})

    def sync_item(request: Request) -> JSONResponse:  # a sync endpoint: run in the threadpool
        marker = request.query_params.get("m", "")
        time.sleep(0.001 * (sum(map(ord, marker)) % 5))
        stdlib.info("sync item read", extra={"marker": marker})
        return JSONResponse({"n": request.path_params["n"], **context_json()})

    async def fail(request: Request) -> None:
        raise RuntimeError("boom from /fail")

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(5):
                log.info("chunk produced", chunk=n)
                yield f"chunk{n};".encode()
                await asyncio.sleep(0.01)
            log.info("stream generator done")

        return StreamingResponse(chunks(), media_type="text/plain")

    async def endless(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(400):  # 20 s at most: the client goes away long before
                yield f"tick{n}\n".encode()
                await asyncio.sleep(0.05)

        return StreamingResponse(chunks(), media_type="text/plain")

    async def background(request: Request) -> PlainTextResponse:
        def task() -> None:
            log.info("background task ran")

        return PlainTextResponse("accepted", background=BackgroundTask(task))

    async def plain(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def slow(request: Request) -> PlainTextResponse:
        await asyncio.sleep(float(request.query_params.get("s", "1")))
        return PlainTextResponse("late")

    async def order(request: Request) -> JSONResponse:
        return JSONResponse(request.path_params)

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        log.info("websocket connected")
        await websocket.send_text(alkana_logging.get_context().get("request_id", ""))
        await websocket.close()

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        log.info("lifespan startup")
        yield
        log.info("lifespan shutdown")

    app = Starlette(
        routes=[
            Route("/items/{item_id}", item),
            Route("/sync/{n:int}", sync_item),
            Route("/fail", fail),
            Route("/stream", stream),
            Route("/endless", endless),
            Route("/background", background),
            Route("/health", plain),
            Route("/slow", slow),
            Route("/skipped", plain),
            Route("/post-only", plain, methods=["POST"]),
            Mount("/api", routes=[Route("/orders/{order_id}", order)]),
            WebSocketRoute("/ws", ws),
        ],
        middleware=[Middleware(AuthenticationMiddleware, backend=HeaderAuth())],
        lifespan=lifespan,
    )
    return RequestContextMiddleware(
        app,
        debug_paths=["/health"],
        skip_paths=["/skipped"],
        trusted_proxies=["127.0.0.1/32"],
    )


def fastapi_app() -> Any:
    """A FastAPI app with the middleware added the usual way, ``app.add_middleware``."""
    from fastapi import APIRouter, FastAPI

    import alkana_logging
    from alkana_logging.middleware import RequestContextMiddleware

    alkana_logging.setup()
    _watchdog()
    log = alkana_logging.get_logger("tests.fastapi")
    silence = os.environ.get("TEST_SILENCE_UVICORN_ACCESS", "true") == "true"

    app = FastAPI()
    router = APIRouter(prefix="/users/{user_id}")

    @router.get("/orders/{order_id}")
    async def order(user_id: int, order_id: int) -> dict[str, Any]:
        log.info("order read")
        return {"user_id": user_id, "order_id": order_id}

    @app.get("/sync")
    def sync() -> dict[str, Any]:
        log.info("sync endpoint")
        return alkana_logging.get_context()

    @app.get("/fail")
    async def fail() -> None:
        raise ValueError("fastapi boom")

    app.include_router(router, prefix="/api")
    app.add_middleware(RequestContextMiddleware, silence_uvicorn_access=silence)
    return app


def fastapi_instrumented_app() -> Any:
    """A FastAPI app as users write one, logging installed by ``instrument(app)``.

    ``TEST_APP_MODE``: ``handlers`` (the app's own exception handlers, a mounted sub-app that
    is instrumented too), ``plain`` (no handler: Starlette's plain 500), ``debug`` (FastAPI's
    ``debug=True``: Starlette's debug page). ``TEST_OTEL``: ``before``/``after`` instruments the
    app with OpenTelemetry's FastAPI instrumentation (real SDK, in-memory exporter) before or
    after ours; the finished spans are written to ``TEST_SPANS_FILE`` at shutdown.
    """
    from fastapi import APIRouter, FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse

    import alkana_logging
    from alkana_logging.middleware import instrument

    alkana_logging.setup()
    _watchdog()
    log = alkana_logging.get_logger("tests.instrumented")
    mode = os.environ.get("TEST_APP_MODE", "handlers")
    otel = os.environ.get("TEST_OTEL", "")
    exporter: Any = None

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        if exporter is not None:
            spans = [
                {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": format(span.context.trace_id, "032x"),
                    "span_id": format(span.context.span_id, "016x"),
                    "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
                    "http_route": (span.attributes or {}).get("http.route"),
                }
                for span in exporter.get_finished_spans()
            ]
            Path(os.environ["TEST_SPANS_FILE"]).write_text(json.dumps(spans))

    app = FastAPI(debug=mode == "debug", lifespan=lifespan)

    class TeapotError(Exception):
        pass

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        log.info("item read", item_id=item_id)
        return {"item_id": item_id, "state": app.state.name, **alkana_logging.get_context()}

    @app.get("/fail")
    async def fail() -> None:
        raise ValueError("unhandled in /fail")

    @app.get("/teapot")
    async def teapot() -> None:
        raise TeapotError("short and stout")

    @app.get("/missing")
    async def missing() -> None:
        raise HTTPException(status_code=404, detail="no such thing")

    if mode == "handlers":

        @app.exception_handler(Exception)
        async def on_error(request: Request, exc: Exception) -> JSONResponse:
            log.error("handled by the app", error=str(exc))
            return JSONResponse({"error": str(exc), **alkana_logging.get_context()}, 500)

        @app.exception_handler(TeapotError)
        async def on_teapot(request: Request, exc: TeapotError) -> JSONResponse:
            log.warning("teapot handler")
            return JSONResponse({"error": str(exc), **alkana_logging.get_context()}, 418)

        sub = FastAPI()

        @sub.get("/things/{n}")
        async def thing(n: int) -> dict[str, Any]:
            log.info("sub-app thing", n=n)
            return alkana_logging.get_context()

        instrument(sub)
        app.mount("/sub", sub)

    if otel == "before":
        exporter = _instrument_otel(app)
    assert instrument(app) is app
    if otel == "after":
        exporter = _instrument_otel(app)
    # What users still do with the app itself after instrumenting it.
    app.state.name = "inventory"
    router = APIRouter(prefix="/users/{user_id}")

    @router.get("/orders/{order_id}")
    async def order(user_id: int, order_id: int) -> dict[str, Any]:
        log.info("order read")
        return {"user_id": user_id, "order_id": order_id}

    app.include_router(router, prefix="/api")
    return app


def _instrument_otel(app: Any) -> Any:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    return exporter


def fastapi_routes_app() -> Any:
    """Every kind of route a FastAPI app has, for the route templates of its events, on any
    FastAPI of those pyproject.toml admits. FastAPI before 0.141 drops a ``Mount`` or ``Host``
    inside an included router: there they are mounted on the app under the same prefix, so the
    expected templates are the same. ``app.frontend()`` exists in recent FastAPI only; the
    directory it serves is ``TEST_FRONTEND_DIR``."""
    from fastapi import APIRouter, FastAPI
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Host, Mount, Route
    from starlette.staticfiles import StaticFiles

    import alkana_logging
    from alkana_logging.middleware import instrument

    alkana_logging.setup()
    _watchdog()
    frontend_dir = os.environ["TEST_FRONTEND_DIR"]

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("raw")(scope, receive, send)

    app = FastAPI()
    things = APIRouter()

    @things.get("")
    def list_things() -> str:
        return "things"

    @things.get("/{tid}")
    def one_thing(tid: int) -> int:
        return tid

    orders = APIRouter(prefix="/users/{uid}")

    @orders.get("/orders/{oid}")
    def order(uid: int, oid: int) -> list[int]:
        return [uid, oid]

    v1 = APIRouter()
    v1.include_router(orders)
    app.include_router(things, prefix="/things")
    app.include_router(v1, prefix="/api/v1")

    mounts = [
        Mount("/files", app=Starlette(routes=[Route("/f/{name}", hello)])),
        Mount("/raw", app=raw),
        Host("api.example.com", app=Starlette(routes=[Route("/h/{x}", hello)])),
    ]
    probe = FastAPI()
    probe.include_router(APIRouter(routes=[Mount("/probe", app=raw)]))
    keeps_mounts = any(
        type(r).__name__ not in ("APIRoute", "Route", "APIWebSocketRoute", "WebSocketRoute")
        for r in probe.router.routes
    )
    if keeps_mounts:
        app.include_router(APIRouter(routes=list(mounts)), prefix="/m")
    else:
        app.router.routes.append(Mount("/m", routes=mounts))
    app.mount("/static", StaticFiles(directory=frontend_dir))

    def sub_app() -> Any:
        sub = FastAPI()

        @sub.get("/x/{item}")
        def x(item: str) -> str:
            return item

        return sub

    # Mounts whose own paths have parameters: values repeated, equal to literals, inside a
    # segment; and a 404 inside a mounted app that has routes.
    app.mount("/t/{tenant}/app", sub_app())
    app.mount("/r/{region}/{zone}", sub_app())
    app.mount("/v{version}", sub_app())
    app.mount("/w/{ws}", sub_app())
    app.mount("/sub", sub_app())
    # A mount's parameter named as its route's: path_params keeps the inner value only.
    same = FastAPI()

    @same.get("/{org}/x")
    def same_name(org: str) -> str:
        return org

    app.mount("/orgs/{org}", same)
    if hasattr(app, "frontend"):
        app.frontend("/app", directory=frontend_dir)
    return instrument(app)
