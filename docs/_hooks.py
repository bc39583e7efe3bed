"""MkDocs hooks for the docs build: the command's options, printed by the command itself.

``<!-- cli-help -->`` in a page becomes the ``--help`` of ``alkana-logging`` and of each of its
commands, taken from :func:`alkana_logging.ops.cli.build_parser` when the site is built, so the
page cannot drift from the parser.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

MARKER = "<!-- cli-help -->"


def _help(parser: argparse.ArgumentParser) -> str:
    # A fixed width, so the text does not depend on the terminal the build runs in.
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return parser.format_help()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def cli_reference() -> str:
    """Markdown: the top-level help, then one section per command with its help."""
    from alkana_logging.ops.cli import build_parser

    parser = build_parser()
    parts = ["```text\n" + _help(parser).rstrip() + "\n```"]
    for action in parser._actions:  # argparse lists its subcommands nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts.append(f"### `{name}`\n\n```text\n{_help(sub).rstrip()}\n```")
    return "\n\n".join(parts)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())
