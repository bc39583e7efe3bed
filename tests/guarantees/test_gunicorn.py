"""A real gunicorn with uvicorn workers and ``--preload`` over a log file that is already full.

``--preload`` imports the application in the master, so ``setup()`` runs there and the master
writes the first line. The file is past ``max_bytes`` when gunicorn starts: that first line
rotates it in the master, and the two workers are forked from a master that has rotated once
(its rotation lock taken and released). Then real HTTP requests from several client threads,
each logging one numbered line through the structlog API and one through stdlib ``logging``,
make both workers rotate the file many times side by side. After gunicorn's graceful shutdown
(SIGTERM), every line is in ``app.log*`` exactly once, none torn, and so is every line that was
in the file before. Then gunicorn starts again over the full file: the same again.

The server runs under ``timeout`` so that it stops by itself if the test process goes away;
the test stops it with SIGTERM to gunicorn's master (the pid from its ``--pid`` file).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from alkana_logging import fields as F
from tests._children import MAX_SECONDS, server_env, wait_for_pid_file
from tests._logfiles import log_files, read_records

#: The directory that holds the package under test, for the server's processes.
MAX_BYTES = 20_000
BACKUP_COUNT = 1000  # far more than the rotations: no line may leave by the oldest backup
REQUESTS = 2000
CLIENTS = 4
WORKERS = 2

APP = """
    import logging
    import os

    import alkana_logging

    alkana_logging.setup(
        log_file=os.environ["TEST_GUNICORN_LOG_FILE"],
        stdout=False,
        max_bytes={max_bytes},
        backup_count={backup_count},
        app_name="gunicorn-test",
    )
    RUN = int(os.environ["TEST_GUNICORN_RUN"])
    log = alkana_logging.get_logger("tests.gunicorn")
    std = logging.getLogger("tests.gunicorn")
    # Written in gunicorn's master (--preload): the file is full, so this line rotates it.
    log.info("app loaded", run=RUN)


    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({{"type": "lifespan.startup.complete"}})
                elif message["type"] == "lifespan.shutdown":
                    await send({{"type": "lifespan.shutdown.complete"}})
                    return
        assert scope["type"] == "http"
        seq = int(scope["path"].rsplit("/", 1)[1])
        log.info("request", run=RUN, seq=seq, api="structlog")
        std.info("request", extra={{"run": RUN, "seq": seq, "api": "stdlib"}})
        await send({{
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")],
        }})
        await send({{"type": "http.response.body", "body": str(os.getpid()).encode()}})
"""


def prefill(log_file: Path, run: int) -> int:
    """Append valid JSON lines to ``log_file`` until it is past ``MAX_BYTES``; how many."""
    size = log_file.stat().st_size if log_file.exists() else 0
    lines = []
    n = 0
    while size <= MAX_BYTES:
        line = json.dumps(
            {
                F.TIMESTAMP: "2026-12-01T00:00:00.000000Z",
                F.LEVEL: "info",
                F.LOGGER: "tests.prefill",
                F.MESSAGE: "written before gunicorn started",
                F.APP: "gunicorn-test",
                F.ENV: "dev",
                F.HOST: "test",
                F.PID: 0,
                "run": run,
                "prefill": n,
                "padding": "p" * 100,
            },
            separators=(",", ":"),
        )
        lines.append(line + "\n")
        size += len(line) + 1
        n += 1
    with log_file.open("a") as f:
        f.write("".join(lines))
    return n


def get(port: int, seq: int) -> int:
    """One request on a new connection (so that both workers take some); the worker's pid."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", f"/log/{seq}", headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (response.status, body)
        return int(body)
    finally:
        conn.close()


def serve_and_load(tmp_path: Path, log_file: Path, run: int) -> dict[str, Any]:
    """Start gunicorn, send ``REQUESTS`` requests, stop it with SIGTERM; what happened."""
    app_dir = tmp_path / "app"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "gunicorn_app.py").write_text(
        textwrap.dedent(APP).format(max_bytes=MAX_BYTES, backup_count=BACKUP_COUNT)
    )
    pid_file = tmp_path / f"gunicorn-{run}.pid"
    output = tmp_path / f"gunicorn-{run}.out"
    # A free port of 127.0.0.1, bound here and handed over (fd://): no race for the port, and
    # no need to read it back from a log line that this test may find lost.
    with socket.create_server(("127.0.0.1", 0), backlog=128) as listener:
        port = listener.getsockname()[1]
        command = [
            "timeout",
            "--kill-after=10",
            str(MAX_SECONDS),
            sys.executable,
            "-m",
            "gunicorn",
            "--worker-class",
            "uvicorn_worker.UvicornWorker",
            "--preload",
            "--workers",
            str(WORKERS),
            "--bind",
            f"fd://{listener.fileno()}",
            "--pid",
            str(pid_file),
            "--graceful-timeout",
            "20",
            "--no-control-socket",  # else gunicorn makes one in ~/.gunicorn
            "--chdir",
            str(app_dir),
            "gunicorn_app:app",
        ]
        with output.open("wb") as out:
            process = subprocess.Popen(
                command,
                env=server_env(log_file, run),
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(),),
                start_new_session=True,
            )
    try:
        master = wait_for_pid_file(pid_file, process, output)
        with ThreadPoolExecutor(CLIENTS) as pool:
            pids = Counter(pool.map(lambda seq: get(port, seq), range(REQUESTS)))
        os.kill(master, signal.SIGTERM)  # gunicorn's graceful shutdown
        returncode = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # timeout's own group: gunicorn and workers
            process.wait(timeout=10)
    return {
        "returncode": returncode,
        "master": master,
        "workers": pids,
        "output": output.read_text(errors="replace"),
    }


def count_lines(log_file: Path, run: int, prefilled: int) -> dict[str, Any]:
    """What of run ``run`` is in ``app.log*``: request lines and the lines there before it."""
    records = read_records(log_file)  # strict JSON line by line, each file ends with "\n"
    found = Counter(
        (r["api"], r["seq"])
        for r in records
        if r[F.LOGGER] == "tests.gunicorn" and r[F.MESSAGE] == "request" and r["run"] == run
    )
    sent = {(api, seq) for api in ("structlog", "stdlib") for seq in range(REQUESTS)}
    old = Counter(
        r["prefill"] for r in records if r[F.LOGGER] == "tests.prefill" and r["run"] == run
    )
    return {
        "run": run,
        "sent": len(sent),
        "found": len(set(found) & sent),
        "missing": len(sent - set(found)),
        "duplicated": sum(n - 1 for n in found.values()),
        "unexpected": len(set(found) - sent),
        "prefilled": prefilled,
        "prefilled_found": len(set(old) & set(range(prefilled))),
        "prefilled_duplicated": sum(n - 1 for n in old.values()),
        "app_loaded": sum(r[F.MESSAGE] == "app loaded" and r.get("run") == run for r in records),
    }


@pytest.mark.slow
def test_gunicorn_preload_uvicorn_workers_over_a_full_file_then_a_restart(
    tmp_path: Path,
) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    log_file = log_dir / "app.log"
    counts, outputs = [], []
    for run in (1, 2):  # 2: a restart over the file the first run left, topped up to full
        prefilled = prefill(log_file, run)
        result = serve_and_load(tmp_path, log_file, run)
        assert result["returncode"] == 0, result["output"]
        assert len(result["workers"]) == WORKERS, result["workers"]  # both workers served
        assert result["master"] not in result["workers"]
        counts.append(count_lines(log_file, run, prefilled))
        outputs.append(result["output"])
    summary = "; ".join(
        f"run {c['run']}: {c['found']} of {c['sent']} request lines found, {c['missing']} "
        f"missing, {c['duplicated']} duplicated, {c['unexpected']} unexpected; "
        f"{c['prefilled_found']} of {c['prefilled']} earlier lines kept, "
        f"{c['prefilled_duplicated']} duplicated; 'app loaded' {c['app_loaded']} time(s)"
        for c in counts
    )
    for run, output in zip(counts, outputs, strict=True):  # both runs' numbers, on a failure
        assert run["found"] == run["sent"], summary
        assert run["missing"] == run["duplicated"] == run["unexpected"] == 0, summary
        assert run["prefilled_found"] == run["prefilled"], summary
        assert run["prefilled_duplicated"] == 0, summary
        assert run["app_loaded"] == 1, summary
        # The library reports write and rotation errors on stderr: there must be none.
        assert "alkana_logging:" not in output, output
        assert "Traceback" not in output, output
    # The runs rotated many times (8000 lines of about 200 bytes; a file can pass MAX_BYTES by
    # a few KiB before a process checks it): the case was exercised.
    assert len(log_files(log_file)) > 2 * REQUESTS * 2 * 100 // MAX_BYTES
