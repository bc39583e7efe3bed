"""The public entry points: ``setup()``, ``shutdown()``, ``get_logger()``, ``pipeline_health()``."""

from __future__ import annotations

from typing import Any

from alkana_logging import _state, _structlog
from alkana_logging.settings import Settings


def setup(**overrides: Any) -> Settings:
    """Configure every logging front-end of the process to write the contract's JSON lines.

    Keyword arguments override the environment, which overrides the defaults (see
    :class:`~alkana_logging.Settings` and ``docs/configuration.md``). Calling it again
    reconfigures: the previous outputs are closed and nothing is installed twice.

    Args:
        **overrides: settings by name (``level``, ``log_file``, ``stdout``, ``format``,
            ``rotation``, ``max_bytes``, ``backup_count``, ``app_name``, ``app_env``,
            ``redact_keys``, ``loki_url``, ...); ``None`` means "not given".

    Returns:
        The effective settings.

    Raises:
        ConfigurationError: a setting has a value that is not accepted, or the log file cannot
            be opened (unless ``on_file_error="stdout"``).
        TypeError: an argument names no setting.
    """
    processors = overrides.pop("processors", ())
    return _state.configure(overrides, processors=processors)


def shutdown() -> None:
    """Flush and close the outputs, and undo what :func:`setup` installed (also run at exit)."""
    _state.shutdown()


def is_configured() -> bool:
    """Whether :func:`setup` is in force."""
    return _state.is_configured()


def get_logger(name: str | None = None, **initial_values: Any) -> Any:
    """A structlog bound logger named ``name`` (``logger`` in the line).

    Args:
        name: the logger's name, usually ``__name__``.
        **initial_values: fields bound to every line of this logger.
    """
    return _structlog.get_logger(name or "root", initial_values)


def pipeline_health() -> dict[str, Any]:
    """Counters of the pipeline in force: lines written, dropped by reason, write errors, ...

    Returns an empty ``configured: False`` report before :func:`setup`.
    """
    pipeline = _state.current()
    if pipeline is None:
        return {"configured": False}
    return {"configured": True, **pipeline.health.snapshot()}
