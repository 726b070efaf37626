#!/usr/bin/env bash
# Make (only when missing) QLM's local base image: Debian bookworm minbase with Python 3.11 (python3,
# python3-venv, ca-certificates), bootstrapped from Debian's packages with debootstrap and loaded with
# `podman import`, for machines that reach no container registry. Prints the image's name as the last
# line of stdout: localhost/qlm-base:bookworm-<hash of this script>, kept in podman's own storage, so
# later runs (and the Containerfile's builds, `--build-arg BASE=...`) reuse it.
# Installs debootstrap, podman and runc with apt when missing (root only). A machine that can pull
# images needs none of this: build with `--build-arg BASE=python:3.11-slim` instead.
#   QLM_DEBIAN_MIRROR  the Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
hash="$(cat "$0" | sha256sum | cut -c1-12)"
image="localhost/qlm-base:bookworm-$hash"
mirror="${QLM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
say() { printf 'make_base_image: %s\n' "$*" >&2; }

need=()
for tool in debootstrap podman runc; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if ((${#need[@]})); then
  if [[ "$(id -u)" != 0 ]]; then
    say "missing ${need[*]}: install them (apt-get install debootstrap podman runc), or run as root"
    exit 1
  fi
  # the set that works on the project's machines (with apt's recommends: netavark, aardvark-dns,
  # containernetworking-plugins, iptables, catatonit, buildah come along)
  say "installing debootstrap podman runc uidmap slirp4netns fuse-overlayfs with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq debootstrap podman runc uidmap slirp4netns fuse-overlayfs >/dev/null
fi

podman() { "$here/podman.sh" "$@"; }
if podman image exists "$image"; then
  say "$image is there (cached)"
  echo "$image"
  exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
  say "debootstrap needs root: run this script as root once (the image is then cached)"
  exit 1
fi

t0=$SECONDS
work="$(mktemp -d /var/tmp/qlm-base.XXXXXX)"
cleanup() {
  # debootstrap may leave proc/sys mounted when it fails
  for m in proc sys dev/pts dev; do umount -l "$work/rootfs/$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
say "debootstrap --variant=minbase bookworm from $mirror (a minute or two) ..."
if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -30 "$work/debootstrap.log" >&2
  cat "$work/rootfs/debootstrap/debootstrap.log" 2>/dev/null | tail -30 >&2 || true
  say "debootstrap failed"
  exit 1
fi
root="$work/rootfs"
# slim it: no apt lists or downloaded packages, no docs or man pages; apt keeps working after `apt-get update`
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log \
  "$root"/tmp/* "$root"/var/tmp/*
printf 'deb %s bookworm main\n' "$mirror" >"$root/etc/apt/sources.list"
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"
chroot "$root" python3 -c "import venv, ensurepip, ssl, sqlite3" || { say "python3 in the rootfs is incomplete"; exit 1; }

say "podman import as $image ..."
# drop older bases made by other versions of this script
podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/qlm-base:bookworm-' \
  | xargs -r -n1 "$here/podman.sh" rmi -f >/dev/null 2>&1 || true
tar --numeric-owner -C "$root" -c . | podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --message "QLM base: Debian bookworm minbase + python3 (debootstrap)" - "$image" >/dev/null
say "$image made in $((SECONDS - t0)) s"
echo "$image"
