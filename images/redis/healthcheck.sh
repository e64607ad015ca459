#!/bin/sh
# Healthy when an authenticated PING answers PONG.
REDISCLI_AUTH="$(cat /run/ironcurtain-redis/password)" redis-cli --no-auth-warning ping | grep -qx PONG
