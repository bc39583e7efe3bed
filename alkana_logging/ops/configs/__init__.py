"""The config artefacts, rendered from the contract and the presets."""

from __future__ import annotations

from alkana_logging.ops.configs.options import (
    TARGETS,
    Artifact,
    RenderError,
    RenderOptions,
    render,
    write,
)

__all__ = ["TARGETS", "Artifact", "RenderError", "RenderOptions", "render", "write"]
