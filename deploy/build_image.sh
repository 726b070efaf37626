#!/usr/bin/env bash
# Build QLM's image with podman on this kind of machine (no container registry): the local Debian base
# (deploy/make_base_image.sh, cached), this machine's pip set-up passed into the build, the host's pip
# cache mounted (the build works without it), podman's layer cache reused. Prints the image name last.
#   bash deploy/build_image.sh [TAG]        TAG defaults to localhost/qlm:latest
#   QLM_BASE_IMAGE=python:3.11-slim ...     use another base (where a registry is reachable)
#   QLM_PIP_CACHE=DIR                       pip's cache on the host (default: `pip cache dir`, if any)
# The pip set-up is the host's effective `pip config list` (config files and PIP_* variables) written to a
# pip.conf for the build; the local folders it names (find-links, file:// indexes, constraints) and the
# host's CA bundle are mounted read-only, so a machine whose pip goes through a TLS-inspecting proxy or a
# local mirror builds as its pip installs. None of it ends up in the image.
# QLM is installed from the wheel scripts/build_wheel.sh builds; from the sources in the context when that
# script is missing or QLM_FROM_SOURCES=1 (the JupyterLab extension's labextension must be built).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
tag="${1:-localhost/qlm:latest}"
say() { printf 'build_image: %s\n' "$*" >&2; }
cd "$repo"

base="${QLM_BASE_IMAGE:-}"
if [[ -z "$base" ]]; then
  base="$(bash "$here/make_base_image.sh" | tail -1)"
fi

py=python3
[[ -x "$repo/.venv/bin/python" ]] && py="$repo/.venv/bin/python"
work="$(mktemp -d /tmp/qlm-build.XXXXXX)"
trap 'rm -rf "$work"' EXIT
args=(--format docker --layers --network host --build-arg "BASE=$base" -f Containerfile -t "$tag")

# --- this machine's pip set-up, for pip inside the build ---
# Everything is mounted under /run/qlm-build (only empty mount points stay behind in the image) and pip is
# pointed at it by PIP_CONFIG_FILE (an ARG of the Containerfile, unset in a plain docker build).
inside=/run/qlm-build
mounts=()
declare -A mounted=()
mount_ro() {  # mount_ro PATH: the path at $inside/PATH in the build, read-only (once)
  local p=$1
  [[ -e "$p" && -z "${mounted[$p]:-}" ]] || return 0
  mounted[$p]=1
  mounts+=(-v "$p:$inside$p:ro")
}
"$py" -m pip config list 2>/dev/null | while IFS= read -r line; do
  key="${line%%=*}"; key="${key#*.}"; value="${line#*=}"; value="${value#\'}"; value="${value%\'}"
  [[ "$key" == cert || "$key" == client-cert || "$key" == cache-dir ]] && continue  # set below
  echo "$key = $value"
done | awk -F' = ' '{ v[$1] = $0; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
                    END { for (i = 1; i <= n; i++) print v[order[i]] }' >"$work/options"  # PIP_* wins
{
  echo "[global]"
  while IFS= read -r line; do
    key="${line%% = *}"; out=()
    for token in ${line#* = }; do
      case "$token" in
        file:///*) path="${token#file://}"; path="${path%/}"; top="$path"
                   [[ "$(basename "$path")" == simple ]] && top="$(dirname "$path")"  # ../../files beside it
                   mount_ro "$top"; out+=("file://$inside$path") ;;
        /*) mount_ro "$token"; out+=("$inside$token") ;;
        *) out+=("$token") ;;
      esac
    done
    echo "$key = ${out[*]}"
  done <"$work/options"
  ca=""
  for candidate in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    [[ -n "$candidate" && -f "$candidate" ]] && { ca="$candidate"; break; }
  done
  if [[ -n "$ca" ]]; then
    echo "cert = $inside/ca-certificates.crt"
    mounts+=(-v "$ca:$inside/ca-certificates.crt:ro")
  fi
  cache="${QLM_PIP_CACHE:-$("$py" -m pip cache dir 2>/dev/null || true)}"
  if [[ -n "$cache" ]]; then
    mkdir -p "$cache"
    echo "cache-dir = $inside/pip-cache"
    mounts+=(-v "$cache:$inside/pip-cache")
  fi
} >"$work/pip.conf"
mounts+=(-v "$work/pip.conf:$inside/pip.conf:ro")
args+=(--build-arg "PIP_CONFIG_FILE=$inside/pip.conf")
say "pip inside the build: $(grep -v '^\[' "$work/pip.conf" | tr '\n' ';')"

# --- QLM from the wheel when it can be built, else from the sources (the extension prebuilt) ---
if [[ -f scripts/build_wheel.sh && "${QLM_FROM_SOURCES:-0}" != 1 ]]; then
  wheel="$(bash scripts/build_wheel.sh | tail -1)"
  wheel="$(realpath --relative-to="$repo" "$wheel")"
  [[ "$wheel" == dist/*.whl && -f "$wheel" ]] || { say "scripts/build_wheel.sh gave no wheel in dist/: $wheel"; exit 1; }
  args+=(--build-arg "QLM_WHEEL=$wheel")
  say "installing QLM from $wheel"
elif [[ ! -f extensions/qlm-jupyterlab/qlm_jupyterlab/labextension/package.json ]]; then
  say "building the JupyterLab extension first (bash extensions/qlm-jupyterlab/install.sh)"
  bash extensions/qlm-jupyterlab/install.sh
fi

t0=$SECONDS
old="$("$here/podman.sh" image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
say "podman build $tag from $base ..."
"$here/podman.sh" build "${args[@]}" "${mounts[@]}" . >&2
say "built $tag in $((SECONDS - t0)) s"
new="$("$here/podman.sh" image inspect --format '{{.Id}}' "$tag")"
if [[ -n "$old" && "$old" != "$new" ]]; then  # the previous build of this tag, unless a container uses it
  "$here/podman.sh" rmi "$old" >/dev/null 2>&1 || true
fi
echo "$tag"
