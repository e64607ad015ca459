#!/usr/bin/env bash
# Make sure a headless-capable Chromium exists for the browser tests (Playwright drives it with
# executable_path; `playwright install` downloads its own build, which these machines cannot).
# - A chromium already on PATH (or at $CHROMIUM) is used untouched.
# - Otherwise, on Debian/Ubuntu as root: install Debian's `chromium` with apt-get.
# Idempotent and quick when nothing is missing.
set -euo pipefail

say() { printf 'browser: %s\n' "$*"; }
die() { printf 'browser: error: %s\n' "$*" >&2; exit 1; }

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] && exit 0

[ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release \
  || die "no Chromium at $CHROMIUM and this is not Debian/Ubuntu; install Chromium and set CHROMIUM=path"
[ "$(id -u)" = 0 ] || die "no Chromium at $CHROMIUM; as root, run 'make test' (installs Debian's chromium)"
say "installing Debian's chromium (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
[ -x "$CHROMIUM" ] || die "chromium installed but $CHROMIUM is missing"
say "chromium ready: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
