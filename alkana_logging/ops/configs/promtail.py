"""``promtail/config.yml``: Promtail tails the log directory and pushes to Loki.

Promtail reached end of life on 2026-03-02; :mod:`alkana_logging.ops.configs.alloy` is the same
pipeline for its successor, Grafana Alloy.
"""

from __future__ import annotations

from alkana_logging import fields as F
from alkana_logging.ops.configs.options import (
    BLANK_LINE,
    BLANK_REASON,
    DROP_REASON,
    MAX_LINE_SIZE,
    Artifact,
    RenderOptions,
    _header,
    _q,
)


def promtail(options: RenderOptions) -> list[Artifact]:
    """``promtail/config.yml``: tail ``<log-dir>/*.log`` with static labels and line timestamps."""
    labels = "".join(f"          {k}: {_q(v)}\n" for k, v in options.labels.items())
    text = f"""{_header("promtail")}#
# Promtail reached end of life on 2026-03-02: new installs should use Grafana Alloy
# (integrations/alloy/config.alloy is the same pipeline).

server:
  http_listen_port: 9080
  grpc_listen_port: 0

positions:
  # Where Promtail remembers how far it has read each file (keep it across restarts).
  filename: /var/lib/promtail/positions.yaml

clients:
  - url: {_q(options.push_url)}

scrape_configs:
  - job_name: {_q(options.job)}
    static_configs:
      - targets: [localhost]
        labels:
          # Static labels only. request_id, trace_id and user stay in the JSON line.
{labels}          # Current files only: rotated names (app.log.1, app.log-20261126-...) fall
          # outside this glob, so no line is shipped twice.
          __path__: {_q(options.log_glob)}
    pipeline_stages:
      # Loki refuses lines over {MAX_LINE_SIZE}: drop them here, counted under a reason.
      - drop:
          longer_than: {MAX_LINE_SIZE}
          drop_counter_reason: {DROP_REASON}
      # A line of spaces: the part of a line a full disk cut (the line is written again whole).
      - drop:
          expression: {_q(BLANK_LINE)}
          drop_counter_reason: {BLANK_REASON}
      - json:
          expressions:
            {F.TIMESTAMP}: {F.TIMESTAMP}
      # The line's own time (RFC 3339, UTC, microseconds), not the time Promtail read it.
      - timestamp:
          source: {F.TIMESTAMP}
          format: RFC3339Nano
      # Promtail adds the file's path as a label; the label set stays static without it.
      - labeldrop:
          - filename
"""
    return [Artifact("promtail/config.yml", text)]
