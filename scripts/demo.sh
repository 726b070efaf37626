#!/usr/bin/env bash
# Set up, then run the main job: backtest the SMA-cross example on the bundled synthetic data,
# print its statistics and write an HTML report with interactive plotly charts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QLM_HOME="${QLM_HOME:-$PWD/.qlm}"
.venv/bin/qlm backtest sma_cross --sample synthetic --n 100000 --seed 0 --fees 0.001 \
  --report reports/quickstart.html "$@"
