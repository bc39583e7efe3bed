"""``integrations/docker-compose.yml``: a local Loki + Alloy + Alertmanager + Grafana stack with
the example backend, and the single-binary Loki config it runs (``integrations/loki/``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Final

from alkana_logging.ops.configs.alertmanager import ALERTMANAGER_IMAGE
from alkana_logging.ops.configs.options import (
    MAX_LINE_SIZE,
    Artifact,
    RenderOptions,
    _header,
    _q,
)

#: Images of the local stack (pinned: a compose file that pulls "latest" changes by itself).
LOKI_IMAGE: Final = "grafana/loki:3.7.1"
ALLOY_IMAGE: Final = "grafana/alloy:v1.21.0"
GRAFANA_IMAGE: Final = "grafana/grafana:12.3.1"
#: The example backend's image: the package is installed into it from the repository.
APP_IMAGE: Final = "python:3.11-slim-bookworm"
APP_PORT: Final = 8000

_APP_HEALTH_PROBE: Final = (
    "import sys, urllib.request; "
    f"sys.exit(urllib.request.urlopen('http://127.0.0.1:{APP_PORT}/health', timeout=3)"
    ".status != 200)"
)


def _q_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_q(value) for value in values) + "]"


def compose(options: RenderOptions) -> list[Artifact]:
    """``integrations/docker-compose.yml`` and the single-binary Loki config it runs."""
    loki = f"""{_header("compose")}#
# A minimal single-binary Loki for trying things out: filesystem storage, one replica, no
# authentication (tenant 'fake'), and the ruler reading the rules in /loki/rules/<tenant>/
# (integrations/loki/rules is mounted there). Not for production.

auth_enabled: false

server:
  http_listen_port: 3100
  grpc_listen_port: 9096
  log_level: info

common:
  instance_addr: 127.0.0.1
  path_prefix: /loki
  storage:
    filesystem:
      chunks_directory: /loki/chunks
      rules_directory: /loki/rules
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory

schema_config:
  configs:
    - from: 2024-01-01
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h

limits_config:
  # The shippers drop longer lines before they get here (their drop counters show them).
  max_line_size: {MAX_LINE_SIZE}

ruler:
  storage:
    type: local
    local:
      directory: /loki/rules
  rule_path: /loki/rules-temp
  evaluation_interval: 1m
  enable_api: true
  # Firing alerts go to the stack's Alertmanager (integrations/alertmanager/alertmanager.yml),
  # and show at /prometheus/api/v1/alerts.
  alertmanager_url: {_q(options.alertmanager_url)}
  enable_alertmanager_v2: true

analytics:
  reporting_enabled: false
"""
    text = f"""{_header("compose")}#
# A local Loki + Alloy + Alertmanager + Grafana, and the example backend, for trying the
# shipped configs: run
#   docker compose -f integrations/docker-compose.yml up -d
# from the repository root; the backend (http://127.0.0.1:8000/health/detailed) and whatever
# else writes its *.log files to logs/ there (or to ALKANA_LOG_DIR) is shipped; then open
# http://127.0.0.1:3000 (anonymous admin: for a local trial only). Ports listen on 127.0.0.1.

name: alkana-logging

services:
  loki:
    image: {LOKI_IMAGE}
    command: ["-config.file=/etc/loki/loki-local.yaml"]
    ports:
      - "127.0.0.1:3100:3100"
    volumes:
      - ./loki/loki-local.yaml:/etc/loki/loki-local.yaml:ro
      - ./loki/rules:/loki/rules/fake:ro
      - loki-data:/loki
    depends_on:
      - alertmanager

  alloy:
    image: {ALLOY_IMAGE}
    command:
      - run
      - --server.http.listen-addr=0.0.0.0:12345
      - --storage.path=/var/lib/alloy/data
      - /etc/alloy/config.alloy
    ports:
      - "127.0.0.1:12345:12345"
    volumes:
      - ./alloy/config.alloy:/etc/alloy/config.alloy:ro
      - ${{ALKANA_LOG_DIR:-../logs}}:{options.log_dir}:ro
      - alloy-data:/var/lib/alloy/data
    depends_on:
      - loki

  alertmanager:
    image: {ALERTMANAGER_IMAGE}
    command:
      - --config.file=/etc/alertmanager/alertmanager.yml
      - --storage.path=/alertmanager
    ports:
      - "127.0.0.1:9093:9093"
    volumes:
      - ./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro
      # The secret files (see alertmanager.yml); kept out of the repository.
      - ${{ALKANA_ALERTMANAGER_SECRETS:-./alertmanager/secrets}}:{options.secrets_dir}:ro
      - alertmanager-data:/alertmanager

  # The example backend (integrations/examples/backend.py), writing the directory Alloy reads.
  app:
    image: {APP_IMAGE}
    working_dir: /src
    command:
      - sh
      - -c
      - >-
        pip install --no-cache-dir --quiet '/src[all]' fastapi uvicorn &&
        exec python -m uvicorn --app-dir integrations/examples backend:app
        --host 0.0.0.0 --port {APP_PORT}
    environment:
      APP_NAME: {_q(options.app)}
      APP_ENV: {_q(options.env)}
      LOG_FILE: {_q(str(PurePosixPath(options.log_dir) / "app.log"))}
    ports:
      - "127.0.0.1:{APP_PORT}:{APP_PORT}"
    volumes:
      - ..:/src:ro
      - ${{ALKANA_LOG_DIR:-../logs}}:{options.log_dir}
    healthcheck:
      # /health is cheap (no database, no file read): it says the process serves.
      test: {_q_list(["CMD", "python", "-c", _APP_HEALTH_PROBE])}
      interval: 10s
      timeout: 5s
      retries: 3
      start_period: 60s

  grafana:
    image: {GRAFANA_IMAGE}
    ports:
      - "127.0.0.1:3000:3000"
    environment:
      GF_AUTH_ANONYMOUS_ENABLED: "true"
      GF_AUTH_ANONYMOUS_ORG_ROLE: "Admin"
      GF_AUTH_DISABLE_LOGIN_FORM: "true"
    volumes:
      - ./grafana/provisioning:/etc/grafana/provisioning:ro
      - ./grafana/dashboards:/var/lib/grafana/dashboards:ro
    depends_on:
      - loki

volumes:
  loki-data: {{}}
  alloy-data: {{}}
  alertmanager-data: {{}}
"""
    return [
        Artifact("integrations/docker-compose.yml", text),
        Artifact("integrations/loki/loki-local.yaml", loki),
    ]
