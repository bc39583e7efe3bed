"""The package's exceptions: one base class, and the configuration error."""

from __future__ import annotations


class AlkanaLoggingError(Exception):
    """Base class of every exception this package raises on purpose."""


class ConfigurationError(AlkanaLoggingError, ValueError):
    """A setting (keyword argument or environment variable) has a value that is not accepted.

    The message names the setting, the value received and what is accepted.
    """
