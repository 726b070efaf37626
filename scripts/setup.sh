#!/usr/bin/env bash
# Set up (idempotently) the project's virtual environment in .venv with QLM and its dev/test extras.
# Re-installs only when pyproject.toml changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.qlm-install-stamp
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
  echo "setup: installing qlm-kernel and its dev extras into .venv (first run takes a minute)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import qlm_kernel, vectorbt, backtesting" # fail loudly if the install did not work
  echo "$want" > "$stamp"
fi

# --- JupyterLab extension (extensions/qlm-jupyterlab): build with jlpm when its sources changed, pip install -e ---
bash extensions/qlm-jupyterlab/install.sh
