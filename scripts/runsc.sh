#!/usr/bin/env bash
# gVisor for an engine we installed: sessions run the agent under
# `runsc` (a user-space kernel) when the engine has it registered; rooms keep runc, where
# Landlock confines their children (session/runtime.py).
# - An engine that already lists runsc: nothing to do.
# - An engine we did not start (docker-ce, Docker Desktop, anyone else's dockerd) is never
#   edited: sessions use runc there, and this says how to register runsc by hand.
# - Our own engine (scripts/engine.sh started it: its pid is in our state folder and is the one
#   answering): install Debian's runsc, merge it into /etc/docker/daemon.json (other keys kept,
#   the file as it was saved beside our state), SIGHUP dockerd, wait until `docker info` lists it.
# IRONCURTAIN_RUNTIME=runc skips all of it. Idempotent and quick when done.
set -euo pipefail

STATE_DIR="${IRONCURTAIN_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/ironcurtain}"
DAEMON_JSON="${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}"
RUNSC=/usr/bin/runsc
WAIT_SECONDS="${RUNSC_WAIT_SECONDS:-30}"

say() { printf 'runsc: %s\n' "$*"; }
die() { printf 'runsc: error: %s\n' "$*" >&2; exit 1; }

registered() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }

# The engine is ours when the dockerd we started (state folder's pid) is alive, is dockerd, and
# is the daemon that wrote /var/run/docker.pid, and the client talks to the local socket.
ours() {
  local pid_file="$STATE_DIR/dockerd.pid" pid
  [ -r "$pid_file" ] || return 1
  pid="$(cat "$pid_file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
  [ "$(cat /var/run/docker.pid 2>/dev/null)" = "$pid" ] || return 1
  case "${DOCKER_HOST:-unix:///var/run/docker.sock}" in
    unix:///var/run/docker.sock | unix:///run/docker.sock) ;;
    *) return 1 ;;
  esac
}

if [ "${IRONCURTAIN_RUNTIME:-auto}" = runc ]; then
  exit 0
fi
registered && exit 0
if ! ours; then
  say "the engine lists no runsc and is not one IronCurtain started, so it is left untouched:"
  say "sessions run under runc (docs/isolation.md, 'gVisor', says how to register runsc)"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "registering runsc with our engine needs root"

if [ ! -x "$RUNSC" ]; then
  say "installing Debian's runsc (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends runsc >/dev/null
fi
[ -x "$RUNSC" ] || die "$RUNSC is missing after installing Debian's runsc"

# The file as it was before our first change, for the undo (README, "What set-up does").
mkdir -p "$STATE_DIR"
if [ ! -e "$STATE_DIR/daemon.json.before" ] && [ ! -e "$STATE_DIR/daemon.json.absent" ]; then
  if [ -e "$DAEMON_JSON" ]; then
    cp -p "$DAEMON_JSON" "$STATE_DIR/daemon.json.before"
  else
    : >"$STATE_DIR/daemon.json.absent"
  fi
fi
say "registering runsc in $DAEMON_JSON (runtimeArgs --network=host: the container's own namespace)"
mkdir -p "$(dirname "$DAEMON_JSON")"
python3 - "$DAEMON_JSON" "$RUNSC" <<'EOF'
import json, os, sys

path, runsc = sys.argv[1], sys.argv[2]
try:
    with open(path) as f:
        config = json.load(f)
except FileNotFoundError:
    config = {}
if not isinstance(config, dict) or not isinstance(config.get("runtimes", {}), dict):
    sys.exit(f"runsc: error: {path} is not a JSON object with a runtimes object; left as it is")
# Without --network=host runsc refuses every networked container on these engines; with it,
# gVisor uses the container's own network namespace (the session's networks still apply).
config.setdefault("runtimes", {})["runsc"] = {"path": runsc, "runtimeArgs": ["--network=host"]}
tmp = f"{path}.ironcurtain.tmp"
with open(tmp, "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
os.chmod(tmp, 0o644)
os.replace(tmp, path)
EOF
kill -HUP "$(cat "$STATE_DIR/dockerd.pid")"
deadline=$((SECONDS + WAIT_SECONDS))
until registered; do
  [ $SECONDS -lt $deadline ] || die "dockerd did not list runsc within ${WAIT_SECONDS}s of SIGHUP; its log is $STATE_DIR/dockerd.log"
  sleep 0.2  # poll interval of a bounded wait: 'docker info' is the check
done
say "the engine lists runsc ($("$RUNSC" --version 2>/dev/null | head -n 1))"
