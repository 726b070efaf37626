#!/usr/bin/env bash
# Serve notebooks/dashboard.ipynb as a Voila dashboard on http://127.0.0.1:${QLM_DASHBOARD_PORT:-8866}/
# (no code cells shown; each browser tab gets its own kernel). Extra arguments go to voila.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/voila ]] || bash scripts/setup.sh
exec .venv/bin/voila notebooks/dashboard.ipynb --no-browser --port="${QLM_DASHBOARD_PORT:-8866}" \
  --Voila.ip=127.0.0.1 --show_tracebacks=True "$@"
