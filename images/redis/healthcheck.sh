#!/bin/sh
# Healthy when a PING as the health user (it may do nothing else) answers PONG, over TLS checked
# against the team CA (the only port there is).
set -eu
read -r user password < /run/ironcurtain-redis/health
REDISCLI_AUTH="$password" redis-cli --tls --cacert /run/ironcurtain-redis/ca.pem \
  --user "$user" --no-auth-warning ping | grep -qx PONG
