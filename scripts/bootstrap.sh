#!/usr/bin/env bash
# Sets up everything the demo and the tests need on a fresh machine: Debian's logrotate and
# prometheus-alertmanager (with amtool), a virtualenv with the package and its dev tools at the
# versions of uv.lock (installed by uv, itself from PyPI at UV_VERSION, into .tools/), and
# Grafana's LogQL grammar from npm.
#
#   bash scripts/bootstrap.sh                  # .venv (Python 3.11: demo, lint, mypy, tests)
#   bash scripts/bootstrap.sh 3.11 3.12 3.13   # also .venv-3.12 and .venv-3.13, for the tests
#
# Each version named is looked for under pyenv's versions (`pyenv root`, ~/.pyenv), then as
# pythonX.Y on PATH and in /usr/local/bin and /usr/bin; PYTHON_X_Y=/path/to/python overrides
# (PYTHON_3_12=...). A version that cannot be found stops the script with the places it looked.
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_VERSION="3.11"
# The uv that reads uv.lock: pinned, so a fresh machine resolves and installs as CI did.
UV_VERSION="0.13.9"
UV=".tools/bin/uv"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

die() {
  echo "bootstrap: error: $*" >&2
  exit 1
}

# Prints the path of a working interpreter of version $1 (X.Y), or nothing.
find_python() {
  local version="$1" override candidate root
  local -a candidates=()
  override="PYTHON_${version//./_}"
  if [ -n "${!override:-}" ]; then
    candidates+=("${!override}")
  fi
  for root in "$(pyenv root 2>/dev/null || true)" "${PYENV_ROOT:-}" "$HOME/.pyenv" /root/.pyenv; do
    [ -n "$root" ] && [ -d "$root/versions" ] || continue
    # Newest patch release first; only plain X.Y.Z builds (not 3.13.0t, not virtualenvs).
    while IFS= read -r candidate; do
      candidates+=("$root/versions/$candidate/bin/python$version")
    done < <(find "$root/versions" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null |
      grep -E "^${version//./\\.}\.[0-9]+$" | sort -rV)
  done
  candidate="$(command -v "python$version" 2>/dev/null || true)"
  [ -n "$candidate" ] && candidates+=("$candidate")
  candidates+=("/usr/local/bin/python$version" "/usr/bin/python$version")
  for candidate in "${candidates[@]}"; do
    # A pyenv shim for a version that is installed but not selected exists and fails: run it.
    if [ -x "$candidate" ] && "$candidate" -c "
import sys, ensurepip, venv
sys.exit(sys.version_info[:2] != tuple(map(int, '$version'.split('.'))))
" >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

require_python() {
  local version="$1" found
  if ! found="$(find_python "$version")"; then
    die "Python $version is needed but was not found (with venv and ensurepip).
  Looked at: \$PYTHON_${version//./_}, \$(pyenv root)/versions/$version.*, ~/.pyenv/versions/$version.*,
  python$version on PATH, /usr/local/bin and /usr/bin.
  Install it (e.g. 'pyenv install $version'), point PYTHON_${version//./_} at it, or leave it out
  of the versions tested (e.g. 'make test PYTHONS=\"3.11\"')."
  fi
  echo "$found"
}

# The X.Y of an interpreter, of a venv's; empty if it does not run.
python_version() {
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true
}
venv_version() {
  python_version "$1/bin/python"
}

# uv at UV_VERSION in .tools/ (a venv of its own: uv sync leaves only the lock's packages in
# the venvs it fills).
ensure_uv() {
  if [ -x "$UV" ] && [ "$("$UV" --version 2>/dev/null | cut -d' ' -f2)" = "$UV_VERSION" ]; then
    return 0
  fi
  local python
  python="$(find_python "$DEFAULT_VERSION" || command -v python3)" ||
    die "no Python to install uv with"
  echo "== installing uv $UV_VERSION (PyPI) into .tools"
  rm -rf .tools
  "$python" -m venv .tools
  .tools/bin/python -m pip install -q "uv==$UV_VERSION" 2>&1 | grep -v "^WARNING: Location" || true
  [ -x "$UV" ] || die "uv $UV_VERSION did not install into .tools (see pip's output above)"
}

# make_venv DIR VERSION [INTERPRETER]: create DIR (again, if it is broken or of another version)
# and install the package (editable) with its dev dependencies into it, as uv.lock pins them.
make_venv() {
  local dir="$1" version="$2" python="${3:-}"
  if [ -e "$dir" ] && [ "$(venv_version "$dir")" != "$version" ]; then
    echo "== $dir is not a working Python $version venv: creating it again"
    rm -rf "$dir"
  fi
  if [ ! -x "$dir/bin/python" ]; then
    if [ -z "$python" ]; then
      python="$(require_python "$version")" || exit 1
    fi
    echo "== creating $dir ($("$python" -V 2>&1), $python)"
    "$python" -m venv --without-pip "$dir"
  fi
  echo "== installing the package and its dev dependencies into $dir (uv.lock)"
  UV_PROJECT_ENVIRONMENT="$dir" "$UV" sync --quiet --locked --extra dev --python "$dir/bin/python" ||
    die "$dir: uv sync failed (uv.lock out of step with pyproject.toml? run '$UV lock')"
  "$dir/bin/python" -c "import alkana_logging, structlog, orjson, loguru, starlette, requests" ||
    die "$dir: the package or a dependency does not import (see uv's output above)"
}

# Every version asked for is known and can be found before anything is installed.
for version in "$@"; do
  [[ "$version" =~ ^3\.[0-9]+$ ]] || die "'$version' is not a Python version like 3.12"
  if [ "$(venv_version ".venv-$version")" != "$version" ] &&
    [ "$(venv_version .venv)" != "$version" ]; then
    require_python "$version" >/dev/null || exit 1
  fi
done

if ! command -v logrotate >/dev/null 2>&1 && [ ! -x /usr/sbin/logrotate ]; then
  echo "== installing logrotate (Debian package)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq logrotate >/dev/null
fi

# The tests run the rendered Alertmanager config with the real binary, and amtool checks it.
if ! command -v amtool >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  echo "== installing prometheus-alertmanager (Debian package: alertmanager and amtool)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    prometheus-alertmanager >/dev/null
fi

ensure_uv

# The Loki clients' TLS tests make a certificate with openssl.
if ! command -v openssl >/dev/null 2>&1; then
  echo "== installing openssl (Debian package)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssl >/dev/null
fi

# .venv: Python 3.11 (the oldest supported), for the demo, ruff, mypy and the tests; PYTHON
# overrides it, and without a 3.11 python3 is taken if it is 3.11 or newer.
if [ -n "${PYTHON:-}" ]; then
  make_venv .venv "$(python_version "$PYTHON")" "$PYTHON"
elif default_python="$(find_python "$DEFAULT_VERSION")"; then
  make_venv .venv "$DEFAULT_VERSION" "$default_python"
elif python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "== no Python $DEFAULT_VERSION found: .venv uses python3 ($(python3 -V 2>&1))"
  make_venv .venv "$(python_version python3)" "$(command -v python3)"
else
  require_python "$DEFAULT_VERSION" >/dev/null
fi
base_version="$(venv_version .venv)"

# One more venv per other version asked for: .venv-X.Y.
for version in "$@"; do
  [ "$version" = "$base_version" ] && continue
  make_venv ".venv-$version" "$version"
done

if [ -f tests/logql/package.json ]; then
  echo "== installing @grafana/lezer-logql (npm)"
  if [ -f tests/logql/package-lock.json ]; then
    npm ci --prefix tests/logql --no-audit --no-fund --loglevel=error
  else
    npm install --prefix tests/logql --no-audit --no-fund --loglevel=error
  fi
fi
