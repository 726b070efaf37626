#!/usr/bin/env bash
# Set up (idempotently) the project's virtual environment in .venv, in one of two profiles:
#   bash scripts/setup.sh         dev: QLM with its dev/test extras and the JupyterLab extension (the test
#                                 command; needs Node to build the extension)
#   bash scripts/setup.sh --run   run: QLM and its runtime dependencies only: no dev extras, no Node, no
#                                 extension build (the run command, scripts/demo.sh)
# A profile re-installs only when pyproject.toml changed since its last install (a dev install also
# satisfies the run profile).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=dev
if [[ "${1:-}" == "--run" ]]; then profile=run; fi
PYTHON="${PYTHON:-python3}"
want="$(sha256sum pyproject.toml | cut -c1-16)"
dev_stamp=.venv/.qlm-install-stamp
run_stamp=.venv/.qlm-install-run-stamp

step() { printf 'setup: %s\n' "$*" >&2; }
timed() {  # timed "what" command...: a line before and one with the seconds it took
  local what=$1 t0=$SECONDS
  shift
  step "$what ..."
  "$@"
  step "$what: done in $((SECONDS - t0)) s"
}
pip_install() {  # pip's own progress lines, without the ones that say nothing; fails when pip fails
  .venv/bin/python -m pip install --disable-pip-version-check "$@" 2>&1 \
    | { grep --line-buffered -v -e "^Requirement already satisfied" -e "^WARNING: Location" >&2 || true; }
}
current() { [[ "$(cat "$1" 2>/dev/null || true)" == "$want" ]]; }

if [[ ! -x .venv/bin/python ]]; then
  timed "creating .venv with $PYTHON" "$PYTHON" -m venv .venv
fi

if [[ "$profile" == "run" ]]; then
  if ! current "$run_stamp" && ! current "$dev_stamp"; then
    timed "upgrading pip" pip_install --quiet --upgrade pip
    timed "installing qlm-kernel and its runtime dependencies (no dev extras)" pip_install -e .
    .venv/bin/python -c "import qlm_kernel"  # fail loudly if the install did not work
    timed "compiling the engine (every mode, on all cores; cached on disk)" .venv/bin/qlm warmup --quiet
    echo "$want" > "$run_stamp"
  fi
  exit 0
fi

if ! current "$dev_stamp"; then
  echo "setup: installing qlm-kernel and its dev extras into .venv (first run takes a minute)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import qlm_kernel, vectorbt, backtesting" # fail loudly if the install did not work
  echo "$want" > "$dev_stamp"
fi

# --- JupyterLab extension (extensions/qlm-jupyterlab): build with jlpm when its sources changed, pip install -e ---
bash extensions/qlm-jupyterlab/install.sh
