#!/bin/sh
# Healthy when a PING as the health user (it may do nothing else) answers PONG.
set -eu
read -r user password < /run/ironcurtain-redis/health
REDISCLI_AUTH="$password" redis-cli --user "$user" --no-auth-warning ping | grep -qx PONG
