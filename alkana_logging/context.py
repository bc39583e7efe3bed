"""Context bound to the current task or thread, merged into every line.

One ``ContextVar`` holds a dict that is never changed in place (binding makes a new one), so
reading the context on the hot path is a single ``get()``, and a context copied into a task or a
thread (asyncio and Starlette's threadpool copy it) never sees later changes of its parent.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

_EMPTY: Mapping[str, Any] = {}
_CONTEXT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "alkana_logging_context", default=_EMPTY
)


def get_context() -> dict[str, Any]:
    """Return a copy of the values bound in the current context."""
    return dict(_CONTEXT.get())


def bind_context(**values: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Bind ``values`` for everything logged later in this context.

    Returns:
        A token; ``reset_context(token)`` restores the context as it was before this call.
    """
    current = _CONTEXT.get()
    # ``values`` is this call's own dict: with nothing bound yet it is bound as it is.
    return _CONTEXT.set({**current, **values} if current else values)


def unbind_context(*keys: str) -> None:
    """Remove ``keys`` from the current context (missing keys are ignored)."""
    current = _CONTEXT.get()
    if any(key in current for key in keys):
        _CONTEXT.set({k: v for k, v in current.items() if k not in keys})


def reset_context(token: contextvars.Token[Mapping[str, Any]]) -> None:
    """Restore the context to what it was when ``token`` was returned by :func:`bind_context`."""
    _CONTEXT.reset(token)


def clear_context() -> None:
    """Remove every bound value from the current context."""
    _CONTEXT.set(_EMPTY)


@contextlib.contextmanager
def bound_context(**values: Any) -> Iterator[None]:
    """Bind ``values`` inside the ``with`` block; the previous context is restored on exit."""
    current = _CONTEXT.get()
    token = _CONTEXT.set({**current, **values} if current else values)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


#: ``current()``: the bound mapping itself, for the package's own readers (the line renderer,
#: the stdlib front-end, the middleware): read-only, not a copy. It is the variable's own
#: ``get``, so the hot path pays no Python call for it; everything that binds goes through
#: :func:`bind_context` and :func:`reset_context`.
current: Final[Callable[[], Mapping[str, Any]]] = _CONTEXT.get
