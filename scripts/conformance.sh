#!/usr/bin/env bash
# Provide the MCP conformance suite and the Node it needs in a project-local prefix:
# `@modelcontextprotocol/conformance` (pinned) needs Node >= 22, and the host's node may be older,
# so Node 22 comes from the npm registry's `node@22` package (its binary ships in a registry
# package) into PREFIX too. Uses the host's npm (scripts/node.sh provides it). Idempotent, and
# quick when both are present: nothing is asked of the registry then.
set -euo pipefail

PREFIX="${IRONCURTAIN_CONFORMANCE_PREFIX:-$(cd "$(dirname "$0")/.." && pwd)/.cache/conformance}"
SUITE_VERSION=0.1.16
NODE_SPEC=node@22

say() { printf 'conformance: %s\n' "$*"; }
die() { printf 'conformance: error: %s\n' "$*" >&2; exit 1; }

present() {
  local node="$PREFIX/node_modules/.bin/node" suite="$PREFIX/node_modules/@modelcontextprotocol/conformance/package.json"
  [ -x "$node" ] && [ -f "$suite" ] || return 1
  case "$("$node" --version 2>/dev/null)" in v22.*) ;; *) return 1 ;; esac
  grep -q "\"version\": \"$SUITE_VERSION\"" "$suite"
}

present && exit 0
"$(dirname "$0")/node.sh"
command -v npm >/dev/null 2>&1 || die "npm is missing"
mkdir -p "$PREFIX"
[ -f "$PREFIX/package.json" ] || printf '{"private": true}\n' > "$PREFIX/package.json"
say "installing $NODE_SPEC and @modelcontextprotocol/conformance@$SUITE_VERSION into $PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error --save-exact \
  "$NODE_SPEC" "@modelcontextprotocol/conformance@$SUITE_VERSION" >/dev/null
present || die "the install finished but node 22 or the suite $SUITE_VERSION is not in $PREFIX"
say "node $("$PREFIX/node_modules/.bin/node" --version), suite $SUITE_VERSION in $PREFIX"
