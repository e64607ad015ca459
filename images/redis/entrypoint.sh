#!/bin/sh
# Reads the password from a secret file, writes a private config for the redis user and starts
# redis-server as that user. Refuses to start without a password: fail closed.
set -eu
secret="${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}"
if [ ! -r "$secret" ]; then
  echo "redis: refusing to start: no password file at $secret (set REDIS_PASSWORD_FILE)" >&2
  exit 64
fi
password="$(tr -d '\r\n' < "$secret")"
if [ "${#password}" -lt 16 ]; then
  echo "redis: refusing to start: the password in $secret is shorter than 16 characters" >&2
  exit 64
fi
case "$password" in
  *[!A-Za-z0-9_.:+/=-]*)
    echo "redis: refusing to start: the password in $secret has characters outside [A-Za-z0-9_.:+/=-]" >&2
    exit 64 ;;
esac
conf_dir="$(mktemp -d /run/ironcurtain-redis.XXXXXX 2>/dev/null || mktemp -d)"
umask 077
{ cat /etc/ironcurtain/redis.conf; printf 'requirepass "%s"\n' "$password"; } > "$conf_dir/redis.conf"
# The health check authenticates with the same password, from a file only redis can read.
printf '%s' "$password" > "$conf_dir/password"
ln -sfn "$conf_dir" /run/ironcurtain-redis
chown -R redis:redis "$conf_dir"
exec setpriv --reuid=redis --regid=redis --init-groups --inh-caps=-all \
  redis-server "$conf_dir/redis.conf"
