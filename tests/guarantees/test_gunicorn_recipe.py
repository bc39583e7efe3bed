"""The docs' gunicorn recipe, run as written: a FastAPI app module that calls ``setup()`` and
``instrument(app)``, served by a real gunicorn with ``UvicornWorker``, ``--preload`` and two
workers on 127.0.0.1. Every response carries its id (the unhandled 500 included), every request
has one event from the worker that served it, and gunicorn's and uvicorn's own lines (the
traceback of the 500 included) are JSON lines of the file, none on the terminal.

The server runs under ``timeout`` so that it stops by itself if the test process goes away.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from alkana_logging import fields as F
from tests._children import MAX_SECONDS, server_env, wait_for_pid_file
from tests._logfiles import read_records

REQUESTS = 40
WORKERS = 2

# The recipe of docs/operations.md, plus a route that fails.
APP = """
    import os

    from fastapi import FastAPI

    import alkana_logging
    from alkana_logging.middleware import instrument

    alkana_logging.setup(log_file=os.environ["TEST_GUNICORN_LOG_FILE"], stdout=False)
    log = alkana_logging.get_logger("recipe")

    app = FastAPI()


    @app.get("/work/{n}")
    async def work(n: int) -> dict:
        log.info("work done", n=n)
        return {"pid": os.getpid(), **alkana_logging.get_context()}


    @app.get("/fail")
    async def fail() -> None:
        raise ValueError("recipe failure")


    instrument(app)
"""


def _start(tmp_path: Path, listener: socket.socket) -> subprocess.Popen[bytes]:
    """gunicorn serving the recipe on ``listener``, under ``timeout``; output to gunicorn.out."""
    (tmp_path / "recipe_app.py").write_text(textwrap.dedent(APP))
    command = [
        "timeout",
        "--kill-after=10",
        str(MAX_SECONDS),
        sys.executable,
        "-m",
        "gunicorn",
        "recipe_app:app",
        "--worker-class",
        "uvicorn_worker.UvicornWorker",
        "--workers",
        str(WORKERS),
        "--preload",
        "--bind",
        f"fd://{listener.fileno()}",
        "--pid",
        str(tmp_path / "gunicorn.pid"),
        "--no-control-socket",
        "--chdir",
        str(tmp_path),
    ]
    with (tmp_path / "gunicorn.out").open("wb") as out:
        return subprocess.Popen(
            command,
            env=server_env(tmp_path / "app.log", 1),
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(listener.fileno(),),
            start_new_session=True,
        )


@pytest.mark.slow
def test_gunicorn_recipe(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    pid_file = tmp_path / "gunicorn.pid"
    output = tmp_path / "gunicorn.out"
    with socket.create_server(("127.0.0.1", 0), backlog=128) as listener:
        port = listener.getsockname()[1]
        process = _start(tmp_path, listener)
    master: int | None = None
    try:
        master = wait_for_pid_file(pid_file, process, output)
        ids = [f"recipe-{n}-{uuid.uuid4().hex[:8]}" for n in range(REQUESTS)]
        served: dict[str, int] = {}
        for n, request_id in enumerate(ids):
            # A new connection each time, so that both workers take some.
            response = httpx.get(
                f"http://127.0.0.1:{port}/work/{n}",
                headers={"X-Request-ID": request_id, "Connection": "close"},
                trust_env=False,
                timeout=15,
            )
            assert response.status_code == 200
            assert request_id == response.headers["x-request-id"]
            assert request_id == response.json()[F.REQUEST_ID]
            served[request_id] = response.json()["pid"]
        failed_id = f"recipe-fail-{uuid.uuid4().hex[:8]}"
        failed = httpx.get(
            f"http://127.0.0.1:{port}/fail",
            headers={"X-Request-ID": failed_id},
            trust_env=False,
            timeout=15,
        )
    finally:
        returncode, terminal = _stop(process, master, output)

    assert returncode == 0, terminal
    assert failed.status_code == 500
    assert failed_id == failed.headers["x-request-id"]
    workers = set(served.values())
    assert len(workers) == WORKERS, served
    assert master not in workers
    records = read_records(log_file)
    events = Counter(
        (r[F.REQUEST_ID], r[F.PID], r[F.ROUTE], r[F.STATUS_CODE])
        for r in records
        if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST
    )
    assert events == Counter(
        [(request_id, pid, "/work/{n}", 200) for request_id, pid in served.items()]
        + [(failed_id, events_pid(records, failed_id), "/fail", 500)]
    )
    work = {r[F.REQUEST_ID] for r in records if r[F.MESSAGE] == "work done"}
    assert work == set(ids)
    # gunicorn's own lines (master and workers) and uvicorn's (each worker), in the schema
    booting = [
        r for r in records if r[F.LOGGER] == "gunicorn.error" and "Booting worker" in r[F.MESSAGE]
    ]
    assert {r[F.PID] for r in booting} == workers
    listening = [
        r for r in records if r[F.LOGGER] == "gunicorn.error" and "Listening at" in r[F.MESSAGE]
    ]
    assert [r[F.PID] for r in listening] == [master]
    # uvicorn's lines in each worker, those written before the lifespan ran included (the
    # worker gives uvicorn.error gunicorn.error's handlers and no propagation)
    for line in (
        "Started server process",
        "Waiting for application startup.",
        "Application startup complete.",
    ):
        pids = [
            r[F.PID]
            for r in records
            if r[F.LOGGER] == "uvicorn.error" and r[F.MESSAGE].startswith(line)
        ]
        assert sorted(pids) == sorted(workers), (line, pids)
    # the 500's exception once: in its event, with its id (uvicorn's own line of it dropped)
    crashes = [r for r in records if r.get(F.EXCEPTION_TYPE)]
    assert [(r[F.LOGGER], r.get(F.REQUEST_ID)) for r in crashes] == [
        ("alkana_logging.middleware", failed_id)
    ]
    assert crashes[0][F.EXCEPTION_MESSAGE] == "recipe failure"
    # no access line of gunicorn's or uvicorn's, nothing on the terminal
    assert not [r for r in records if r[F.LOGGER] in ("uvicorn.access", "gunicorn.access")]
    assert "Traceback" not in terminal, terminal
    assert "recipe failure" not in terminal, terminal


def events_pid(records: list[dict[str, object]], request_id: str) -> object:
    [event] = [
        r
        for r in records
        if r.get(F.EVENT) == F.EVENT_HTTP_REQUEST and r.get(F.REQUEST_ID) == request_id
    ]
    return event[F.PID]


@pytest.mark.slow
def test_a_reload_by_sighup_keeps_gunicorns_lines_in_the_schema_once(tmp_path: Path) -> None:
    """SIGHUP: gunicorn reloads its configuration, gives its loggers their own text handlers
    again and replaces its workers. Every line stays one JSON line of the file."""
    log_file = tmp_path / "app.log"
    output = tmp_path / "gunicorn.out"
    with socket.create_server(("127.0.0.1", 0), backlog=128) as listener:
        port = listener.getsockname()[1]
        process = _start(tmp_path, listener)
    master: int | None = None
    try:
        master = wait_for_pid_file(tmp_path / "gunicorn.pid", process, output)
        first = _wait_for_workers(log_file, WORKERS, process)
        os.kill(master, signal.SIGHUP)
        replaced = _wait_for_workers(log_file, 2 * WORKERS, process) - first
        request_id = f"after-hup-{uuid.uuid4().hex[:8]}"
        response = httpx.get(
            f"http://127.0.0.1:{port}/work/1",
            headers={"X-Request-ID": request_id, "Connection": "close"},
            trust_env=False,
            timeout=15,
        )
    finally:
        returncode, terminal = _stop(process, master, output)
    assert returncode == 0, terminal
    assert response.status_code == 200
    assert response.json()["pid"] in replaced
    assert terminal == "", terminal  # nothing as text: gunicorn's handlers were taken back
    records = read_records(log_file)
    messages = Counter((r[F.PID], r[F.MESSAGE]) for r in records)
    assert messages[(master, "Hang up: Master")] == 1
    assert messages[(master, "Shutting down: Master")] == 1
    for pid in replaced:
        assert messages[(pid, f"Booting worker with pid: {pid}")] == 1
        assert messages[(pid, f"Started server process [{pid}]")] == 1
        assert messages[(pid, "Waiting for application startup.")] == 1
    assert [r[F.PID] for r in records if r.get(F.REQUEST_ID) == request_id and r.get(F.EVENT)] == [
        response.json()["pid"]
    ]


def _stop(
    process: subprocess.Popen[bytes], master: int | None, output: Path
) -> tuple[int | None, str]:
    """gunicorn's graceful shutdown (SIGTERM to the master), or a kill when it did not start:
    the exit status (None when killed) and what it wrote to the terminal."""
    returncode: int | None = None
    try:
        if master is not None:
            os.kill(master, signal.SIGTERM)
            returncode = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return returncode, output.read_text(errors="replace")


def _wait_for_workers(log_file: Path, count: int, process: subprocess.Popen[bytes]) -> set[int]:
    """The pids of the workers that completed their startup, once there are ``count``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn ended"
        data = log_file.read_bytes() if log_file.exists() else b""
        complete = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
        pids = {
            record[F.PID]
            for record in map(json.loads, complete.splitlines())
            if record[F.MESSAGE] == "Application startup complete."
        }
        if len(pids) >= count:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} workers started within 30 s")
