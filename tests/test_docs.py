"""The docs against the code: every setting on the configuration page with its environment
variable and default, every name of the contract on its page, the README's links.

The site itself is built with ``mkdocs build --strict`` in the lint stage (``make docs``); these
are the facts a build cannot check.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from alkana_logging import fields as F
from alkana_logging.settings import DEFAULT_REDACT_KEYS, ENV_VARS, Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"

# | `LOG_LEVEL` | `level` | `INFO` | meaning |
_ROW = re.compile(r"^\| `(?P<env>[A-Z0-9_]+)` \| `(?P<arg>[a-z0-9_]+)` \| (?P<default>[^|]+?) \|")


def _rows() -> dict[str, tuple[str, str]]:
    """The configuration page's settings rows: environment variable -> (argument, default)."""
    rows: dict[str, tuple[str, str]] = {}
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            assert match["env"] not in rows, f"{match['env']} has two rows"
            rows[match["env"]] = (match["arg"], match["default"].strip())
    return rows


def _documented_default(field: dataclasses.Field[Any]) -> str:
    """How the page writes a field's default."""
    if field.name == "host":
        return "the host name"  # socket.gethostname() where setup() runs
    value = field.default
    if field.name == "redact_keys":
        # The built-in keys are always redacted; the variable adds to them, and adds none.
        assert value == DEFAULT_REDACT_KEYS
        return "(none)"
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


SETTINGS = dataclasses.fields(Settings)


@pytest.mark.parametrize("field", SETTINGS, ids=[f.name for f in SETTINGS])
def test_every_setting_has_its_row_with_variable_argument_and_default(
    field: dataclasses.Field[Any],
) -> None:
    rows = _rows()
    env = ENV_VARS[field.name]
    assert env in rows, f"docs/configuration.md has no row for {env} (setup({field.name}=...))"
    assert (field.name, _documented_default(field)) == rows[env]


def test_every_row_names_a_setting() -> None:
    assert set(ENV_VARS.values()) >= set(_rows())


def test_every_name_of_the_contract_is_on_its_page() -> None:
    page = (DOCS / "contract.md").read_text(encoding="utf-8")
    names = {
        name: value for name, value in vars(F).items() if name.isupper() and isinstance(value, str)
    }
    assert names  # the module was read
    missing = sorted(
        f"{name} = {value!r}" for name, value in names.items() if f"`{value}" not in page
    )
    assert missing == []


def test_the_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [target for target in targets if "://" not in target]
    assert local  # the README links to the docs
    assert [target for target in local if not (ROOT / target).is_file()] == []


def _documented_keys() -> list[str]:
    """The keys the redaction page lists as redacted by default (before the first ';')."""
    text = (DOCS / "redaction.md").read_text()
    listing = text[text.index('`"[REDACTED]"`:') : text.index("; any key ending in")]
    return re.findall(r"`([a-z_]+)`", listing)


def test_every_documented_default_key_is_redacted_and_no_other() -> None:
    import alkana_logging
    from alkana_logging.testing import capture_logs

    documented = _documented_keys()
    assert len(documented) >= 40
    assert set(documented) == set(DEFAULT_REDACT_KEYS)
    alkana_logging.setup(stdout=False, log_file=None)
    try:
        with capture_logs() as events:
            alkana_logging.get_logger("t").info("keys", **dict.fromkeys(documented, "s3cr3t"))
    finally:
        alkana_logging.shutdown()
    [event] = events
    assert {key: event[key] for key in documented} == dict.fromkeys(documented, "[REDACTED]")
