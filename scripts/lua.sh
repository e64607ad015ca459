#!/usr/bin/env bash
# Make sure Debian's lua5.3 exists on the host: the socket proxy's Lua (the query allowlist and
# the JSON scanner that strips inspect answers) is unit-tested and fuzzed outside HAProxy with the
# same Lua version HAProxy 2.6 is built with. A lua5.3 already on PATH is used untouched;
# otherwise, on Debian/Ubuntu as root, Debian's lua5.3 is installed. Idempotent and quick.
set -euo pipefail

say() { printf 'lua: %s\n' "$*"; }
die() { printf 'lua: error: %s\n' "$*" >&2; exit 1; }

command -v lua5.3 >/dev/null 2>&1 && exit 0

[ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release \
  || die "lua5.3 is missing and this is not Debian/Ubuntu; install Lua 5.3 as lua5.3"
[ "$(id -u)" = 0 ] || die "lua5.3 is missing; as root, run 'make test' (installs Debian's lua5.3)"
say "installing Debian's lua5.3 (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends lua5.3 >/dev/null
say "$(lua5.3 -v)"
