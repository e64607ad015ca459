#!/bin/bash
# FORWARDS="LISTEN:HOST:PORT,..." e.g. "8080:mcp-proxy:8080,3128:mitm-proxy:3128".
#   run     one socat per declared forward; if any of them stops, the sidecar stops (fail closed)
#   health  every declared listen port accepts a connection on loopback
set -euo pipefail

EXIT_CONFIG=64

refuse() {
  echo "sidecar: refusing to start: $*" >&2
  exit "$EXIT_CONFIG"
}

# Parse FORWARDS into the arrays LISTEN, HOST, PORT; anything malformed refuses.
parse() {
  LISTEN=() HOST=() PORT=()
  local raw="${FORWARDS:-}" entry
  [[ -n "${raw//[[:space:],]/}" ]] || refuse "no FORWARDS declared (LISTEN:HOST:PORT,...)"
  local -A seen=()
  IFS=',' read -ra entries <<<"$raw"
  for entry in "${entries[@]}"; do
    read -r entry <<<"$entry" || true # trim the ends; inner spaces stay (and are refused)
    [[ -n "$entry" ]] || continue
    [[ "$entry" =~ ^([0-9]{1,5}):([A-Za-z0-9][A-Za-z0-9_.-]{0,252}):([0-9]{1,5})$ ]] \
      || refuse "malformed forward '$entry' (want LISTEN_PORT:HOST:PORT)"
    local listen=$((10#${BASH_REMATCH[1]})) host=${BASH_REMATCH[2]} port=$((10#${BASH_REMATCH[3]}))
    ((listen >= 1024 && listen <= 65535)) || refuse "listen port $listen: use 1024-65535 (non-root)"
    ((port >= 1 && port <= 65535)) || refuse "target port $port is not a TCP port"
    [[ ! "$host" =~ ^[0-9.]+$ ]] || refuse "target '$host': declare services by name, not address"
    [[ -z "${seen[$listen]:-}" ]] || refuse "listen port $listen is declared twice"
    seen[$listen]=1
    LISTEN+=("$listen") HOST+=("$host") PORT+=("$port")
  done
}

run() {
  parse
  local i
  for i in "${!LISTEN[@]}"; do
    echo "sidecar: forwarding :${LISTEN[$i]} -> ${HOST[$i]}:${PORT[$i]}" >&2
    socat -d "TCP4-LISTEN:${LISTEN[$i]},fork,reuseaddr,max-children=256" \
      "TCP4:${HOST[$i]}:${PORT[$i]},connect-timeout=5" &
  done
  wait -n || true
  echo "sidecar: a forward stopped; stopping" >&2
  exit 1
}

health() {
  parse
  local listen
  for listen in "${LISTEN[@]}"; do
    (exec 3<>"/dev/tcp/127.0.0.1/$listen") 2>/dev/null || {
      echo "sidecar: :$listen is not listening" >&2
      exit 1
    }
  done
}

case "${1:-run}" in
  run) run ;;
  health) health ;;
  *) echo "usage: ironcurtain-sidecar [run|health]" >&2; exit 2 ;;
esac
