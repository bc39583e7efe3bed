"""The render targets by name, and :func:`render`, which gives a target's artefacts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from alkana_logging.ops.configs.alertmanager import alertmanager
from alkana_logging.ops.configs.alloy import alloy
from alkana_logging.ops.configs.compose import compose
from alkana_logging.ops.configs.grafana import dashboard
from alkana_logging.ops.configs.logrotate import logrotate
from alkana_logging.ops.configs.options import Artifact, RenderError, RenderOptions
from alkana_logging.ops.configs.promtail import promtail
from alkana_logging.ops.configs.rules import rules

TARGETS: Final = (
    "promtail",
    "alloy",
    "logrotate",
    "rules",
    "alertmanager",
    "dashboard",
    "compose",
)


_RENDERERS: Final[dict[str, Callable[[RenderOptions], list[Artifact]]]] = {
    "promtail": promtail,
    "alloy": alloy,
    "logrotate": logrotate,
    "rules": rules,
    "alertmanager": alertmanager,
    "dashboard": dashboard,
    "compose": compose,
}


def render(target: str, options: RenderOptions | None = None) -> list[Artifact]:
    """The artifacts of ``target`` (one of :data:`TARGETS`, or ``all``).

    Raises:
        RenderError: ``target`` is not known.
    """
    options = options or RenderOptions()
    if target == "all":
        return [artifact for name in TARGETS for artifact in _RENDERERS[name](options)]
    try:
        return _RENDERERS[target](options)
    except KeyError:
        raise RenderError(
            f"target: got {target!r}; expected one of {', '.join((*TARGETS, 'all'))}"
        ) from None
