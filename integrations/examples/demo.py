"""The demo: a real backend under uvicorn, real HTTP traffic, an ETL run, every front-end, one log.

Run it with ``make demo`` (or ``.venv/bin/python integrations/examples/demo.py``). Everything goes
to ``./logs/app.log`` in one JSON schema; the demo prints a few lines of each kind and ends with
the local report (the numbers the LogQL presets compute in Loki, from the file).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import requests

import alkana_logging
from alkana_logging import fields as F

HERE = Path(__file__).resolve().parent
LOG_DIR = Path("logs")
LOG_FILE = LOG_DIR / "app.log"
ENV = {
    **os.environ,
    "LOG_FILE": str(LOG_FILE),
    "LOG_STDOUT": "false",
    "APP_NAME": "alkana-dashboard",
    "APP_ENV": "demo",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_backend_traffic() -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(HERE),
            "backend:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=ENV,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/health", timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the backend did not start") from None
                time.sleep(0.1)
        with requests.Session() as http:
            for n in range(40):
                http.get(f"{base}/items", timeout=5)
                http.get(f"{base}/items/{n % 7}", timeout=5)
                if n % 10 == 0:
                    http.get(f"{base}/items/999", timeout=5)  # 404
                    http.get(f"{base}/fail", timeout=5)  # 500
                if n % 20 == 0:
                    http.get(f"{base}/slow", timeout=10)
            http.get(f"{base}/items", headers={"X-Request-ID": "demo-request-1"}, timeout=5)
            live = http.get(f"{base}/health", timeout=5).json()
            detailed = http.get(f"{base}/health/detailed", timeout=10)
        print(f"backend on {base}: traffic sent; /health says {json.dumps(live)}")
        show_health(detailed.status_code, detailed.json())
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def show_health(code: int, body: dict[str, object]) -> None:
    """The detailed health answer, shortly: overall, each component, each ETL table."""
    components = body["components"]
    assert isinstance(components, dict)
    print(f"/health/detailed: HTTP {code}, {body['status']}")
    for name, part in components.items():
        if name == "checks":
            for check, result in part.items():
                print(f"  check {check}: {result['status']} ({result['duration_ms']} ms)")
            continue
        problems = part.get("problems") or ([part["error"]] if part.get("error") else [])
        print(f"  {name}: {part['status']}" + (f" ({'; '.join(problems)})" if problems else ""))
        for table, state in part.get("tables", {}).items():
            success = (
                f"{state['last_success']} ({state['age_hours']} h ago)"
                if state["last_success"]
                else "none this week"
            )
            print(
                f"    {table:<14} {state['status']:<8} last success {success}; "
                f"last run {state['last_status']}"
            )


def run_etl() -> None:
    result = subprocess.run([sys.executable, str(HERE / "etl_job.py")], env=ENV, check=False)
    print(f"ETL script exited with status {result.returncode}")


def log_through_every_front_end() -> None:
    alkana_logging.setup(
        log_file=str(LOG_FILE), stdout=False, app_name="alkana-dashboard", app_env="demo"
    )
    log = alkana_logging.get_logger("demo")
    log.info("structlog line", table="raw_mb51", rows=1200, password="not-written")
    logging.getLogger("demo.stdlib").info("stdlib line", extra={"user": "alice"})
    try:
        from loguru import logger

        logger.bind(job="sync").info("loguru line")
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a captured warning", UserWarning, stacklevel=1)
    with alkana_logging.bound_context(request_id="demo-ctx"):
        try:
            {}["missing"]
        except KeyError:
            log.exception("an exception with its traceback in one field")
    alkana_logging.shutdown()


def show() -> None:
    lines = LOG_FILE.read_text().split("\n")[:-1]
    print(f"\n{len(lines)} lines in {LOG_FILE}; the first of each kind (cut at 300 characters):\n")
    shown: set[str] = set()
    for line in lines:
        record = json.loads(line)
        kind = record.get(F.EVENT) or record[F.LOGGER]
        if kind not in shown:
            shown.add(kind)
            print(line if len(line) <= 300 else line[:300] + " ...")
    print()
    subprocess.run([sys.executable, "-m", "alkana_logging", "report", str(LOG_DIR)], check=False)


def main() -> None:
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    # The ETL script first, so that the backend's /health/detailed has tables to report.
    run_etl()
    run_backend_traffic()
    log_through_every_front_end()
    show()


if __name__ == "__main__":
    main()
