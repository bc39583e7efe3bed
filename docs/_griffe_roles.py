"""A Griffe extension for the docs build: Sphinx roles in docstrings become cross-references.

The package's docstrings name other objects the Sphinx way (``:func:`setup```,
``:class:`~alkana_logging.Settings```). mkdocstrings reads Markdown, where such a role would be
shown as it is written; this turns each one into an optional autorefs link: a link when the
object is on a page of the API reference, its name in code font when it is not (a private
module's object), never a warning.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([\w.]+)`")


class SphinxRoles(griffe.Extension):
    """Rewrites ``:role:`target``` in every docstring to an optional autorefs reference."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None or ":`" not in obj.docstring.value:
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

        obj.docstring.value = _ROLE.sub(link, obj.docstring.value)
