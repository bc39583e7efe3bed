"""The config artefacts, one module each, rendered from the contract and the presets.

- :mod:`~alkana_logging.ops.configs.options`: what they share: :class:`RenderOptions` (defaults
  and validation), :class:`Artifact` and :func:`write`, the generated-file header.
- :mod:`~alkana_logging.ops.configs.promtail`: ``promtail/config.yml`` (Promtail).
- :mod:`~alkana_logging.ops.configs.alloy`: ``integrations/alloy/config.alloy`` (Grafana Alloy).
- :mod:`~alkana_logging.ops.configs.logrotate`: ``logrotate/<app>`` (``LOG_ROTATION=external``).
- :mod:`~alkana_logging.ops.configs.rules`: the Loki ruler's alert rules.
- :mod:`~alkana_logging.ops.configs.alertmanager`: Alertmanager's routes and receivers.
- :mod:`~alkana_logging.ops.configs.grafana`: the Grafana dashboard and its provisioning.
- :mod:`~alkana_logging.ops.configs.compose`: the local Loki + Alloy + Alertmanager + Grafana
  stack (``integrations/docker-compose.yml``) and its Loki config.

:func:`render` gives a target's artefacts (``alkana-logging render TARGET``).
"""

from __future__ import annotations

from alkana_logging.ops.configs._targets import TARGETS, render
from alkana_logging.ops.configs.options import Artifact, RenderError, RenderOptions, write

__all__ = ["TARGETS", "Artifact", "RenderError", "RenderOptions", "render", "write"]
