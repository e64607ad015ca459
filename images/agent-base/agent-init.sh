#!/bin/sh
# Copies the session's orientation files (mounted read-only) into the agent's HOME, then runs
# the agent. HOME is a tmpfs in a session: the root filesystem is read-only.
#
# Package tools: pip and npm read the CA and proxy from the environment (PIP_CERT,
# NPM_CONFIG_CAFILE, HTTPS_PROXY). apt reads neither, so when the session names a CA
# (IRONCURTAIN_CA_CERT) an apt configuration is written to HOME and APT_CONFIG points at it:
# trust that CA, use the proxy, keep lists and downloads in HOME (the agent is not root), and take
# the session's sources (IRONCURTAIN_APT_SOURCES, one-line format) instead of the image's.
set -eu
session=/run/ironcurtain/session
if [ -d "$session" ]; then
  cp -R "$session"/. "$HOME"/
fi
if [ -n "${IRONCURTAIN_CA_CERT:-}" ]; then
  apt_dir="$HOME/.config/ironcurtain/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  printf '%s\n' "${IRONCURTAIN_APT_SOURCES:-}" >"$apt_dir/sources.list"
  cat >"$apt_dir/apt.conf" <<CONF
Acquire::https::CAInfo "$IRONCURTAIN_CA_CERT";
Acquire::https::Proxy "${HTTPS_PROXY:-}";
Acquire::http::Proxy "${HTTPS_PROXY:-}";
Acquire::Languages "none";
Dir::State::Lists "$apt_dir/lists";
Dir::Cache "$apt_dir/cache";
Dir::Etc::SourceList "$apt_dir/sources.list";
Dir::Etc::SourceParts "$apt_dir/none";
Debug::NoLocking "true";
CONF
  export APT_CONFIG="$apt_dir/apt.conf"
fi
exec "$@"
