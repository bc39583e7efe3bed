"""The package's two homes: the runtime (flat) and the ops toolkit (alkana_logging.ops).

The runtime never loads the ops toolkit; the import paths users name keep working.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import alkana_logging
from alkana_logging import fields as F
from alkana_logging.ops import presets as ops_presets
from tests._children import run_child

REPO = Path(__file__).resolve().parent.parent


def test_presets_is_the_ops_presets_module() -> None:
    import alkana_logging.presets
    from alkana_logging.presets import DEFAULT_SLOW_MS, Preset, get

    assert alkana_logging.presets is ops_presets
    assert sys.modules["alkana_logging.presets"] is ops_presets
    assert (get, Preset, DEFAULT_SLOW_MS) == (
        ops_presets.get,
        ops_presets.Preset,
        ops_presets.DEFAULT_SLOW_MS,
    )
    assert alkana_logging.presets.get("error_ratio") is ops_presets.get("error_ratio")


@pytest.mark.parametrize(
    "name",
    [
        "alkana_logging.render",
        "alkana_logging.report",
        "alkana_logging.loki_query",
        "alkana_logging.cli",
    ],
)
def test_the_old_ops_module_paths_are_gone(name: str) -> None:
    with pytest.raises(ModuleNotFoundError, match=name):
        importlib.import_module(name)


def test_the_runtime_never_loads_the_ops_toolkit(tmp_path: Path) -> None:
    # setup(), every front-end and helper, the middleware and the health check with its ETL
    # freshness read from the log directory: none of them imports alkana_logging.ops.
    log = tmp_path / "app.log"
    script = f"""
import asyncio, logging, sys
import alkana_logging
alkana_logging.setup(log_file={str(log)!r}, stdout=False)
alkana_logging.get_logger("x").info("structlog line")
logging.getLogger("legacy").warning("stdlib line")
with alkana_logging.etl_run("raw_mb51", job="daily") as run:
    run.rows(3)
with alkana_logging.timed("refresh_views"):
    pass
alkana_logging.metric("db_connections_active", 12)
alkana_logging.shutdown()
from alkana_logging.middleware import RequestContextMiddleware
from alkana_logging.healthcheck import HealthCheck
status, body = asyncio.run(HealthCheck(etl={str(tmp_path)!r}).detailed())
print(repr(body["components"]["etl"]["tables"]["raw_mb51"]["status"]))
print(sorted(m for m in sys.modules if m.startswith("alkana_logging.ops")))
"""
    result = run_child(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["'healthy'", "[]"]
    events = [json.loads(line).get(F.EVENT) for line in log.read_text().splitlines()]
    assert F.EVENT_ETL_RUN_FINISHED in events


def test_the_command_runs_the_ops_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alkana_logging", "render", "--help"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "promtail" in result.stdout
    assert alkana_logging.__name__ == "alkana_logging"


# -- the tests mirror the package -----------------------------------------------------------------

#: Modules without a test file of their own, and why.
UNMIRRORED = {
    "__init__": "the public names: tests/test_layout.py and every test that imports them",
    "__main__": "`python -m alkana_logging`: test_the_command_runs_the_ops_cli",
    "api": "setup(), shutdown(), get_logger(): tests/test_state.py (what they configure)",
    "exceptions": "one exception class, raised and matched throughout",
    "fields": "the contract's names: every test reads the lines by them",
    "presets": "the old import path of alkana_logging.ops.presets: test_presets_is_the_ops_...",
}
#: Modules whose test file is named for what the module becomes in the agreed module map.
RENAMED: dict[str, str] = {}
#: Ops modules that are another module's public path, tested with that module.
OPS_ALIASES = {"query": "the runtime's _query.py (the health check uses it): tests/test_query.py"}


def _modules(package: Path) -> list[str]:
    return sorted(p.stem for p in package.glob("*.py"))


@pytest.mark.parametrize(
    "module", [m for m in _modules(REPO / "alkana_logging") if m not in UNMIRRORED]
)
def test_each_runtime_module_has_its_test_file(module: str) -> None:
    name = RENAMED.get(module, module.lstrip("_"))
    assert (REPO / "tests" / f"test_{name}.py").is_file(), (
        f"alkana_logging/{module}.py has no tests/test_{name}.py: add one, or say in "
        "UNMIRRORED why it needs none"
    )


def test_the_unmirrored_modules_exist() -> None:
    assert set(UNMIRRORED) <= set(_modules(REPO / "alkana_logging"))


@pytest.mark.parametrize(
    "module",
    [m for m in _modules(REPO / "alkana_logging" / "ops") if m not in ("__init__", *OPS_ALIASES)],
)
def test_each_ops_module_has_its_test_file(module: str) -> None:
    assert (REPO / "tests" / "ops" / f"test_{module}.py").is_file(), module


@pytest.mark.parametrize(
    "module",
    [m for m in _modules(REPO / "alkana_logging" / "ops" / "configs") if not m.startswith("_")],
)
def test_each_config_artefact_is_tested_in_test_configs(module: str) -> None:
    text = (REPO / "tests" / "ops" / "test_configs.py").read_text()
    assert re.search(rf"\b{module}\b", text), f"tests/ops/test_configs.py never names {module}"
