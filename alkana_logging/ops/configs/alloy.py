"""``integrations/alloy/config.alloy``: the Promtail pipeline for Grafana Alloy."""

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


def alloy(options: RenderOptions) -> list[Artifact]:
    """``integrations/alloy/config.alloy``: the Promtail pipeline for Grafana Alloy."""
    width = max(len("__path__"), *(len(k) for k in options.labels)) + 2
    targets = [f"    {_q('__path__').ljust(width)} = {_q(options.log_glob)},"]
    targets += [f"    {_q(k).ljust(width)} = {_q(v)}," for k, v in options.labels.items()]
    target_lines = "\n".join(targets)
    text = f"""{_header("alloy", "//")}
// Current files only: rotated names (app.log.1, app.log-20261126-...) fall outside the glob.
// Static labels only; request_id, trace_id and user stay in the JSON line.
local.file_match "alkana" {{
  path_targets = [{{
{target_lines}
  }}]
}}

loki.source.file "alkana" {{
  targets    = local.file_match.alkana.targets
  forward_to = [loki.process.alkana.receiver]
}}

loki.process "alkana" {{
  forward_to = [loki.write.default.receiver]

  // Loki refuses lines over {MAX_LINE_SIZE}: drop them here, counted under a reason.
  stage.drop {{
    longer_than         = {_q(MAX_LINE_SIZE)}
    drop_counter_reason = {_q(DROP_REASON)}
  }}

  // A line of spaces: the part of a line a full disk cut (the line is written again whole).
  stage.drop {{
    expression          = {_q(BLANK_LINE)}
    drop_counter_reason = {_q(BLANK_REASON)}
  }}

  stage.json {{
    expressions = {{ {_q(F.TIMESTAMP)} = {_q(F.TIMESTAMP)} }}
  }}

  // The line's own time (RFC 3339, UTC, microseconds), not the time Alloy read it.
  stage.timestamp {{
    source = {_q(F.TIMESTAMP)}
    format = "RFC3339Nano"
  }}

  // loki.source.file adds the file's path as a label; the label set stays static without it.
  stage.label_drop {{
    values = ["filename"]
  }}
}}

loki.write "default" {{
  endpoint {{
    url = {_q(options.push_url)}
  }}
}}
"""
    return [Artifact("integrations/alloy/config.alloy", text)]
