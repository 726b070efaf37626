#!/usr/bin/env bash
# podman as QLM's deploy scripts and tests call it: deploy/containers.conf (runc, cgroupfs, modest
# ulimits, file event log) via CONTAINERS_CONF, and the storage driver that works on this machine.
# Usage: deploy/podman.sh <podman arguments...>
# Storage: podman's configured default (overlay here) when it works; else vfs in a store of its own
# (/var/lib/containers/storage-vfs), so the two drivers never share one store. QLM_PODMAN_STORAGE=vfs
# forces the fall-back.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
storage=()
if [[ "${QLM_PODMAN_STORAGE:-}" == "vfs" ]] || ! podman info >/dev/null 2>&1; then
  storage=(--storage-driver vfs --root /var/lib/containers/storage-vfs)
fi
exec podman "${storage[@]}" "$@"
