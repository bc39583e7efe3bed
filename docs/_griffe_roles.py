"""A Griffe extension for the docs build: the docstrings' reStructuredText bits, as Markdown.

The package's docstrings name other objects the Sphinx way (``:func:`setup```,
``:class:`~alkana_logging.Settings```) and introduce examples with ``::``. mkdocstrings reads
Markdown, where both would be shown as they are written. Each role becomes an optional autorefs
link: a link when the object is on a page of the API reference, its name in code font when it
is not (a private module's object), never a warning. A ``::`` that opens an indented example
becomes ``:`` (on a line of its own, nothing), as reStructuredText shows it; the indented block
is a code block in Markdown already.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([\w.]+)`")
_LITERAL = re.compile(r"(?m)^([^\n]*?)::[ \t]*$")


def _literal(match: re.Match[str]) -> str:
    text = match.group(1)
    return f"{text}:" if text.strip() else ""


class SphinxRoles(griffe.Extension):
    """Rewrites ``:role:`target``` and ``::`` in every docstring for Markdown."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None or ":" not in obj.docstring.value:
            return

        def link(match: re.Match[str]) -> str:
            short, target = match.group(1) == "~", match.group(2)
            shown = target.rsplit(".", 1)[-1] if short else target
            try:
                identifier = obj.resolve(target)
            except (griffe.NameResolutionError, ValueError):
                identifier = target
            return (
                f'<autoref identifier="{html.escape(identifier)}" optional>'
                f"<code>{html.escape(shown)}</code></autoref>"
            )

        obj.docstring.value = _LITERAL.sub(_literal, _ROLE.sub(link, obj.docstring.value))
