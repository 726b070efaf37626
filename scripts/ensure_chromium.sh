#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium is installed (the browser tests drive it with Playwright;
# Playwright's own browser download cannot run here). Idempotent: does nothing when it is there.
set -euo pipefail
CHROMIUM="${QLM_CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$CHROMIUM" ]]; then
  exit 0
fi
if [[ "$(id -u)" != "0" ]] && ! command -v sudo >/dev/null 2>&1; then
  echo "ensure_chromium: $CHROMIUM is missing; install Debian's 'chromium' package (needs root)" >&2
  exit 1
fi
SUDO=""
[[ "$(id -u)" != "0" ]] && SUDO="sudo"
echo "ensure_chromium: installing Debian's chromium (first run only)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
[[ -x "$CHROMIUM" ]] || { echo "ensure_chromium: chromium did not install" >&2; exit 1; }
