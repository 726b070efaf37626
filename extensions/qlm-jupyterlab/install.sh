#!/usr/bin/env bash
# Build (only when its sources changed) and install the QLM JupyterLab extension into <repo>/.venv.
# Run by scripts/setup.sh. Steps: `jlpm install --immutable` (yarn.lock is committed) and
# `jlpm build:prod` (TypeScript + the prebuilt labextension, @jupyter/builder/rspack, offline-safe), then
# `pip install -e` of the Python package, whose wheel puts the labextension into
# .venv/share/jupyter/labextensions/qlm-jupyterlab and enables the server extension in
# .venv/etc/jupyter. A stamp (hash of src/, style/, package.json, yarn.lock, configs) keeps re-runs instant.
set -euo pipefail
ext="$(cd "$(dirname "$0")" && pwd)"
venv="$(cd "$ext/../.." && pwd)/.venv"
export PATH="$venv/bin:$PATH"
cd "$ext"
stamp="$venv/.qlm-jupyterlab-stamp"
want="$({ find src style jupyter-config -type f -print0 | sort -z | xargs -0 sha256sum
          sha256sum package.json yarn.lock tsconfig.json .yarnrc.yml pyproject.toml install.json; } | sha256sum | cut -c1-16)"
installed="$venv/share/jupyter/labextensions/qlm-jupyterlab/package.json"
if [[ "$(cat "$stamp" 2>/dev/null || true)" == "$want" && -f "$installed" && -f qlm_jupyterlab/labextension/package.json ]]; then
  exit 0
fi
if ! command -v node >/dev/null 2>&1; then
  if [[ "$(id -u)" == "0" ]]; then
    echo "qlm-jupyterlab: installing Debian's nodejs (first run only)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs >/dev/null
  else
    echo "qlm-jupyterlab: Node.js >= 18 is needed to build the JupyterLab extension" >&2
    exit 1
  fi
fi
start=$SECONDS
echo "qlm-jupyterlab: building the JupyterLab extension (jlpm install + build:prod)" >&2
export YARN_ENABLE_TELEMETRY=0 YARN_ENABLE_PROGRESS_BARS=0
jlpm install --immutable >/tmp/qlm-jupyterlab-jlpm.log 2>&1 || { cat /tmp/qlm-jupyterlab-jlpm.log >&2; exit 1; }
jlpm build:prod >/tmp/qlm-jupyterlab-build.log 2>&1 || { cat /tmp/qlm-jupyterlab-build.log >&2; exit 1; }
# the wheel's build hook would run jlpm again: the labextension was just built
SKIP_JUPYTER_BUILDER=1 python -m pip install --quiet --disable-pip-version-check --no-deps -e . 2>&1 \
  | grep -v "^WARNING: Location" || true
[[ -f "$installed" ]] || { echo "qlm-jupyterlab: the labextension was not installed" >&2; exit 1; }
python -c "import qlm_jupyterlab"
echo "$want" > "$stamp"
echo "qlm-jupyterlab: built and installed in $((SECONDS - start)) s" >&2
