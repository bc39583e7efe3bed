"""Redaction: values of secret-looking keys are written as ``"[REDACTED]"``.

A key is secret when its normalised form (lower case, ``-`` as ``_``) is one of the configured
keys, or ends with ``_`` plus one of :data:`SECRET_SUFFIXES` (``db_password``, ``github_token``).
Decisions are cached per key, so the hot path pays one dict lookup a key. The caller's objects
are never changed: a nested dict or list that is walked is copied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from alkana_logging.settings import DEFAULT_REDACT_KEYS, normalise_key

REDACTED: Final = "[REDACTED]"
#: Nested containers deeper than this are replaced by :data:`TOO_DEEP` (they cannot be checked
#: for secrets, and a JSON serialiser refuses them anyway).
MAX_DEPTH: Final = 64
TOO_DEEP: Final = "[nested too deep]"
SECRET_SUFFIXES: Final = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
)
_CACHE_LIMIT = 4096


class Redactor:
    """Decides which keys are secret and copies values with their secrets replaced."""

    __slots__ = ("_cache", "_keys")

    def __init__(self, keys: Iterable[str] = DEFAULT_REDACT_KEYS) -> None:
        self._keys = frozenset(normalise_key(k) for k in keys)
        self._cache: dict[Any, bool] = {}

    def is_secret(self, key: Any) -> bool:
        """Whether values under ``key`` are redacted."""
        decision = self._cache.get(key)
        if decision is None:
            decision = self._decide(key)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[key] = decision
        return decision

    def _decide(self, key: Any) -> bool:
        if not isinstance(key, str):
            return False
        name = normalise_key(key)
        return name in self._keys or any(name.endswith("_" + s) for s in SECRET_SUFFIXES)

    def value(self, value: Any, depth: int = 0) -> Any:
        """Return ``value`` with secrets in nested dicts and lists replaced (copying them)."""
        if isinstance(value, dict):
            if depth >= MAX_DEPTH:
                return TOO_DEEP
            is_secret = self.is_secret
            walk = self.value
            return {
                k: REDACTED
                if is_secret(k)
                else walk(v, depth + 1)
                if isinstance(v, _CONTAINERS)
                else v
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            if depth >= MAX_DEPTH:
                return TOO_DEEP
            walk = self.value
            return [walk(v, depth + 1) if isinstance(v, _CONTAINERS) else v for v in value]
        return value

    def mapping(self, values: Mapping[Any, Any]) -> dict[Any, Any]:
        """A redacted copy of a mapping (for values that the serializer meets late)."""
        return self.value(dict(values))  # type: ignore[no-any-return]


_CONTAINERS = (dict, list, tuple)
