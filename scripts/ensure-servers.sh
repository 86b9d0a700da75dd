#!/usr/bin/env bash
# Installs the server binaries the tests start (redis-server, redis-cli, memcached; each test starts its own on a free port) when
# they are missing, from Debian's packages. Fails loudly if it cannot: tests never skip for a
# missing server.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v memcached >/dev/null 2>&1 || missing+=(memcached)
# redis-cli makes the Redis Cluster of the scale-out tests (--cluster create); the Sentinel
# setups run redis-server --sentinel, so the redis-sentinel package is not needed.
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
redis-server --version
redis-cli --version
memcached -V
