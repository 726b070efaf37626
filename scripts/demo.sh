#!/usr/bin/env bash
# Set up the run profile (QLM and its runtime dependencies only: no dev extras, no Node), then run the
# main job: backtest the SMA-cross example on the bundled synthetic data, print its statistics and write
# an HTML report with interactive plotly charts.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
bash scripts/setup.sh --run
echo "demo: set up in $((SECONDS - t0)) s; running the backtest (the first run on a machine compiles the engine)" >&2
export QLM_HOME="${QLM_HOME:-$PWD/.qlm}"
.venv/bin/qlm backtest sma_cross --sample synthetic --n 100000 --seed 0 --fees 0.001 \
  --report reports/quickstart.html "$@"
echo "demo: done in $((SECONDS - t0)) s" >&2
