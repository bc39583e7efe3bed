#!/usr/bin/env bash
# Sets up everything the demo and the tests need on a fresh machine: Debian's logrotate, a
# virtualenv with the package and its dev tools, and Grafana's LogQL grammar from npm.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! command -v logrotate >/dev/null 2>&1 && [ ! -x /usr/sbin/logrotate ]; then
  echo "== installing logrotate (Debian package)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq logrotate >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "== installing the package and its dev dependencies into .venv"
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import alkana_logging, structlog, orjson, loguru, starlette, requests"

if [ -f tests/logql/package.json ]; then
  echo "== installing @grafana/lezer-logql (npm)"
  if [ -f tests/logql/package-lock.json ]; then
    npm ci --prefix tests/logql --no-audit --no-fund --loglevel=error
  else
    npm install --prefix tests/logql --no-audit --no-fund --loglevel=error
  fi
fi
