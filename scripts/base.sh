#!/usr/bin/env bash
# Provide the base image every image of ours starts FROM (${BASE_IMAGE}).
# Order: a local image of that name, else `docker pull`, else a debootstrap --variant=minbase
# root filesystem imported under that name. Prints which path it took.
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
SUITE="${BASE_SUITE:-bookworm}"
STATE_DIR="${IRONCURTAIN_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/ironcurtain}"

say() { printf 'base: %s\n' "$*"; }
die() { printf 'base: error: %s\n' "$*" >&2; exit 1; }

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "using the local image $BASE_IMAGE"
  exit 0
fi

if timeout 60 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
  say "pulled $BASE_IMAGE"
  exit 0
fi

say "$BASE_IMAGE is not local and cannot be pulled; building it with debootstrap --variant=minbase $SUITE"
[ "$(id -u)" = 0 ] || die "debootstrap needs root; run 'make base' as root, or load $BASE_IMAGE into Docker yourself"
if ! command -v debootstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

mkdir -p "$STATE_DIR"
rootfs="$(mktemp -d "$STATE_DIR/rootfs.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
# Debootstrap uses the mirror apt already uses on this machine (a corporate mirror included).
mirror="$(awk '/^deb / && $3 ~ /^'"$SUITE"'$/ {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)"
if [ -z "$mirror" ]; then
  mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
fi
debootstrap --variant=minbase "$SUITE" "$rootfs" ${mirror:+"$mirror"} >"$STATE_DIR/debootstrap.log" 2>&1 \
  || { tail -n 20 "$STATE_DIR/debootstrap.log" >&2; die "debootstrap failed; its log is $STATE_DIR/debootstrap.log"; }
# Like the official slim image: no apt lists or caches baked in.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | docker import \
  -c 'CMD ["bash"]' -c 'ENV LANG=C.UTF-8' \
  -m "debootstrap --variant=minbase $SUITE" - "$BASE_IMAGE" >/dev/null
say "built $BASE_IMAGE with debootstrap"
