#!/usr/bin/env bash
# Make sure node and npm exist on the host: the MCP proxy's tests run the reference filesystem
# server (an npm package) as a real backend. A node already on PATH is used untouched; otherwise,
# on Debian/Ubuntu as root, Debian's nodejs and npm are installed. Idempotent and quick.
set -euo pipefail

say() { printf 'node: %s\n' "$*"; }
die() { printf 'node: error: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && exit 0

[ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release \
  || die "node and npm are missing and this is not Debian/Ubuntu; install Node.js (with npm)"
[ "$(id -u)" = 0 ] || die "node and npm are missing; as root, run 'make test' (installs Debian's nodejs and npm)"
say "installing Debian's nodejs and npm (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
say "node $(node --version), npm $(npm --version)"
