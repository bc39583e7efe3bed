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
#: Written in place of a container that contains itself (directly or further down).
CIRCULAR: Final = "[circular reference]"
#: Containers copied for one value at most; the rest is written as :data:`TOO_MANY`.
MAX_CONTAINERS: Final = 10_000
TOO_MANY: Final = "[too many nested values]"
# The quick walk (no cycle tracking) gives up beyond these; legitimate values rarely do.
_QUICK_DEPTH: Final = 16
_QUICK_CONTAINERS: Final = 1_000


class _GiveUp(Exception):
    """The quick walk met a deep or big value: the careful walk takes over."""


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
        """Return ``value`` with secrets in nested dicts and lists replaced (copying them).

        A container met again on its own path becomes :data:`CIRCULAR`, and at most
        :data:`MAX_CONTAINERS` containers are copied (the rest become :data:`TOO_MANY`): a
        self-referencing or widely shared structure must not make a log call loop or take
        exponential time. The usual small value takes a quick walk that tracks neither; anything
        deep or big is handed to the careful walk.
        """
        if not isinstance(value, _CONTAINERS):
            return value
        try:
            return self._quick(value, depth, [_QUICK_CONTAINERS])
        except _GiveUp:
            return self._careful(value, depth, set(), [MAX_CONTAINERS])

    def _quick(self, value: Any, depth: int, budget: list[int]) -> Any:
        budget[0] -= 1
        if depth >= _QUICK_DEPTH or budget[0] < 0:
            raise _GiveUp
        walk = self._quick
        if isinstance(value, dict):
            is_secret = self.is_secret
            return {
                k: REDACTED
                if is_secret(k)
                else walk(v, depth + 1, budget)
                if isinstance(v, _CONTAINERS)
                else v
                for k, v in value.items()
            }
        return [walk(v, depth + 1, budget) if isinstance(v, _CONTAINERS) else v for v in value]

    def _careful(self, value: Any, depth: int, path: set[int], budget: list[int]) -> Any:
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        ident = id(value)
        if ident in path:
            return CIRCULAR
        budget[0] -= 1
        if budget[0] < 0:
            return TOO_MANY
        path.add(ident)
        walk = self._careful
        result: Any
        if isinstance(value, dict):
            is_secret = self.is_secret
            result = {
                k: REDACTED
                if is_secret(k)
                else walk(v, depth + 1, path, budget)
                if isinstance(v, _CONTAINERS)
                else v
                for k, v in value.items()
            }
        else:
            result = [
                walk(v, depth + 1, path, budget) if isinstance(v, _CONTAINERS) else v for v in value
            ]
        # Not in a `finally`: when the walk raises, the whole record is given up anyway.
        path.discard(ident)
        return result

    def args(self, args: Any) -> Any:
        """The ``%`` arguments of a stdlib call with secrets replaced, or ``args`` itself when
        they hold none (so that a tuple argument is still formatted as a tuple)."""
        if isinstance(args, dict):
            return self.value(args) if self._has_secret(args) else args
        if isinstance(args, tuple):
            for arg in args:
                if isinstance(arg, _CONTAINERS) and self._has_secret(arg):
                    return tuple(self.value(a) for a in args)
        return args

    def _has_secret(self, value: Any) -> bool:
        stack, seen, budget = [value], set(), MAX_CONTAINERS
        while stack and budget > 0:
            item = stack.pop()
            if id(item) in seen:
                continue
            seen.add(id(item))
            budget -= 1
            if isinstance(item, dict):
                if any(self.is_secret(k) for k in item):
                    return True
                stack.extend(v for v in item.values() if isinstance(v, _CONTAINERS))
            else:
                stack.extend(v for v in item if isinstance(v, _CONTAINERS))
        return bool(stack)  # out of budget: redact rather than risk it

    def mapping(self, values: Mapping[Any, Any]) -> dict[Any, Any]:
        """A redacted copy of a mapping (for values that the serializer meets late)."""
        return self.value(dict(values))  # type: ignore[no-any-return]


_CONTAINERS = (dict, list, tuple)
