#!/bin/sh
# Copies the session's orientation files (mounted read-only) into the agent's HOME, then runs
# the agent. HOME is a tmpfs in a session: the root filesystem is read-only.
set -eu
session=/run/ironcurtain/session
if [ -d "$session" ]; then
  cp -R "$session"/. "$HOME"/
fi
exec "$@"
