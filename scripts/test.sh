#!/usr/bin/env bash
# Set up, then run the whole test suite (lint first: a style error fails the run like a test).
set -euo pipefail
cd "$(dirname "$0")/.."
# bytecode is cached (QLM's modules and pytest's rewritten test modules): with PYTHONDONTWRITEBYTECODE set,
# as some machines and CI images do, every one of the suite's hundreds of Python processes would compile
# the same sources again (about 0.3 s each for QLM's modules on a fresh clone)
unset PYTHONDONTWRITEBYTECODE
bash scripts/setup.sh
bash scripts/ensure_chromium.sh   # the browser tests (widgets, Voila, JupyterLab) drive Debian's Chromium
.venv/bin/ruff check qlm_kernel tests bench strategies extensions
.venv/bin/lint-imports   # the layer contract in pyproject.toml (docs/architecture.md "Layers"): a backward import fails
.venv/bin/qlm warmup --quiet   # compile the engine's modes on all cores once, not one by one inside tests
# the first-run test installs the run profile into a fresh clone: from pip's cache when it can
export QLM_PIP_CACHE="${QLM_PIP_CACHE:-$(.venv/bin/python -m pip cache dir 2>/dev/null || true)}"
# own HOME and workspace so tests never touch the user's files
export QLM_TEST_TMP="${QLM_TEST_TMP:-$(mktemp -d)}"
export HOME="$QLM_TEST_TMP/home" QLM_HOME="$QLM_TEST_TMP/qlm" MPLBACKEND=Agg PLOTLY_RENDERER=plotly_mimetype
mkdir -p "$HOME" "$QLM_HOME"
# on every core (QLM_TEST_WORKERS=N to choose; 0 runs in this process): whole files per worker, the
# longest files first (tests/conftest.py), each worker with its own HOME and QLM_HOME. Arguments (test
# paths, -k, ...) run just those, in one pytest run.
workers="${QLM_TEST_WORKERS:-auto}"
xdist=(-n "$workers" --dist loadfile --no-loadscope-reorder)
[[ "$workers" == "0" ]] && xdist=()
pytest_run() {  # pytest's exit code; "collected nothing" (5) counts as a failure
  local code=0
  .venv/bin/python -m pytest -q -p no:cacheprovider "$@" || code=$?
  if [[ $code -eq 5 ]]; then echo "test.sh: pytest collected no tests" >&2; code=1; fi
  return $code
}
status=0
if [[ $# -gt 0 ]]; then  # the tests named on the command line, as one run
  pytest_run "${xdist[@]}" --durations=25 "$@" || status=$?
  exit $status
fi
# 1. the suite, on every core; 2. the container check on its own (an image build wants every core, and
# its time is reported apart: docs/deploy.md). Both always run; either failing fails the command.
started=$SECONDS
pytest_run "${xdist[@]}" --durations=25 --ignore=tests/test_container.py || status=$?
suite_s=$((SECONDS - started))
started=$SECONDS
pytest_run --durations=10 tests/test_container.py || status=$?
echo "test.sh: the suite took ${suite_s} s, the container check $((SECONDS - started)) s"
exit $status
