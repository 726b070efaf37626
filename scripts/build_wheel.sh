#!/usr/bin/env bash
# Build QLM's sdist and wheel into dist/ (the wheel holds the prebuilt JupyterLab extension, so installing
# it needs no Node; docs/install.md), and print the wheel's absolute path as the LAST line of stdout
# (everything else goes to stderr): `whl="$(bash scripts/build_wheel.sh | tail -n1)"`.
#
# Builds only when the sources changed: the result is cached in .venv/.qlm-wheel/<hash>/, the hash over
# qlm_kernel/, strategies/, the extension's sources and its built labextension, pyproject.toml,
# hatch_build.py, README.md, LICENSE (and the few other files the sdist holds). A lock makes two callers at
# once safe (the second waits, then finds the cache). Needs the dev .venv (the `build` package, and
# jupyterlab's jlpm + Node the first time, to build the labextension); runs scripts/setup.sh when it lacks
# `build`, and extensions/qlm-jupyterlab/install.sh when the labextension is not built.
# QLM_PIP_CACHE, when set, is the pip cache the isolated build environment (hatchling) installs from.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
ext=extensions/qlm-jupyterlab
labext="$ext/qlm_jupyterlab/labextension"
cache_root=.venv/.qlm-wheel
keep=3  # cached builds kept (the newest)

say() { printf 'build_wheel: %s\n' "$*" >&2; }
if [[ -n "${QLM_PIP_CACHE:-}" ]]; then export PIP_CACHE_DIR="$QLM_PIP_CACHE"; fi

mkdir -p "$cache_root"
exec 9>"$cache_root/lock"
flock 9  # held until this script exits

if ! .venv/bin/python -c "import build" 2>/dev/null; then
  say "the dev .venv has no 'build' package: running scripts/setup.sh (dev profile)"
  bash scripts/setup.sh >&2
fi
if [[ ! -f "$labext/package.json" ]]; then
  say "the prebuilt labextension is missing: building it ($ext/install.sh, needs Node)"
  bash "$ext/install.sh" >&2
fi

source_hash() {  # what the sdist is made of; __pycache__ (numba's caches too) and node_modules left out
  {
    find qlm_kernel strategies "$ext/src" "$ext/style" "$ext/jupyter-config" "$ext/qlm_jupyterlab" \
      -name __pycache__ -prune -o -type f ! -name '*.py[co]' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    sha256sum pyproject.toml hatch_build.py README.md LICENSE environment.yml notebooks/quickstart.ipynb \
      "$ext"/{package.json,yarn.lock,tsconfig.json,.yarnrc.yml,pyproject.toml,install.json,install.sh}
  } | sha256sum | cut -c1-16
}

want="$(source_hash)"
cached="$cache_root/$want"
if compgen -G "$cached/*.whl" >/dev/null && compgen -G "$cached/*.tar.gz" >/dev/null; then
  say "sources unchanged ($want): cached build"
else
  start=$SECONDS
  say "building the sdist and the wheel ($want): python -m build"
  tmp="$cache_root/.tmp.$$"
  rm -rf "$tmp"
  .venv/bin/python -m build --outdir "$tmp" . >&2
  if [[ "$(source_hash)" != "$want" ]]; then
    # the sources changed while building: use this build, but do not cache it under either hash
    say "the sources changed during the build: not cached"
    cached="$tmp"
    trap 'rm -rf "$root/$tmp"' EXIT
  else
    rm -rf "$cached"
    mv "$tmp" "$cached"
  fi
  say "built in $((SECONDS - start)) s"
  # keep the newest few builds only
  find "$cache_root" -mindepth 1 -maxdepth 1 -type d ! -name '.tmp.*' -printf '%T@ %p\n' \
    | sort -rn | tail -n +$((keep + 1)) | cut -d' ' -f2- | xargs -r rm -rf
fi

mkdir -p dist
wheel=""
for file in "$cached"/*.whl "$cached"/*.tar.gz; do
  name="$(basename "$file")"
  cp "$file" "dist/.$name.$$"
  mv -f "dist/.$name.$$" "dist/$name"  # atomic: a reader of dist/ never sees half a file
  if [[ "$name" == *.whl ]]; then wheel="$root/dist/$name"; fi
done
say "sdist and wheel in dist/"
echo "$wheel"
