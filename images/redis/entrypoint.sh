#!/bin/sh
# Starts redis-server as the redis user with the team's ACL file (users and SHA-256 password
# hashes, made by `ironcurtain shared up`; the default user off) and the team's TLS certificate.
# No plain password is ever in this container but the health check's own, which may only PING.
# Refuses to start without the ACL file, with one that leaves the default user on, or without
# the TLS certificate and key (there is no plaintext port to fall back to): fail closed.
set -eu
acl="${REDIS_ACL_FILE:-/run/secrets/redis_acl}"
cert="${REDIS_TLS_CERT_FILE:-/run/secrets/redis_tls_cert}"
key="${REDIS_TLS_KEY_FILE:-/run/secrets/redis_tls_key}"
ca="${REDIS_TLS_CA_FILE:-/run/secrets/redis_ca}"
if [ ! -r "$acl" ]; then
  echo "redis: refusing to start: no ACL file at $acl (set REDIS_ACL_FILE)" >&2
  exit 64
fi
if ! grep -qx 'user default off[^>]*' "$acl" || grep -q '>' "$acl"; then
  echo "redis: refusing to start: $acl must turn the default user off and hold no plain password" >&2
  exit 64
fi
for file in "$cert" "$key" "$ca"; do
  if [ ! -s "$file" ]; then
    echo "redis: refusing to start: no TLS file at $file (TLS only: \`ironcurtain shared up\` makes them)" >&2
    exit 64
  fi
done
conf_dir="$(mktemp -d /run/ironcurtain-redis.XXXXXX 2>/dev/null || mktemp -d)"
umask 077
health="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
{ cat "$acl"; printf 'user ironcurtain-health on >%s resetkeys resetchannels -@all +ping\n' "$health"; } \
  > "$conf_dir/users.acl"
# Private copies for the redis user (the mounted key is the host's 0600 file).
cp "$cert" "$conf_dir/server.pem"
cp "$key" "$conf_dir/server-key.pem"
cp "$ca" "$conf_dir/ca.pem"
{
  cat /etc/ironcurtain/redis.conf
  printf 'aclfile "%s/users.acl"\n' "$conf_dir"
  printf 'tls-cert-file "%s/server.pem"\ntls-key-file "%s/server-key.pem"\n' "$conf_dir" "$conf_dir"
  printf 'tls-ca-cert-file "%s/ca.pem"\n' "$conf_dir"
} > "$conf_dir/redis.conf"
# The health check logs in as that user, from a file only redis can read.
printf 'ironcurtain-health %s\n' "$health" > "$conf_dir/health"
ln -sfn "$conf_dir" /run/ironcurtain-redis
chown -R redis:redis "$conf_dir"
exec setpriv --reuid=redis --regid=redis --init-groups --inh-caps=-all \
  redis-server "$conf_dir/redis.conf"
