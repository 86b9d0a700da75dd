#!/usr/bin/env bash
# Installs the server binaries the tests start (redis-server, redis-cli, memcached; each test starts its own on a free port) when
# they are missing, from Debian's packages. Fails loudly if it cannot: tests never skip for a
# missing server.
#
# When another package manager (unattended-upgrades, a second apt-get, a provisioning script)
# holds the apt or dpkg lock, apt-get fails at once; this script waits for the lock instead, for
# up to ENSURE_SERVERS_LOCK_WAIT seconds (300 by default) at each apt-get step, saying so, and
# then fails naming the process that holds it.
set -euo pipefail

lock_wait=${ENSURE_SERVERS_LOCK_WAIT:-300}
case $lock_wait in
  '' | *[!0-9]*)
    echo "ensure-servers: ENSURE_SERVERS_LOCK_WAIT=$lock_wait: want a whole number of seconds" >&2
    exit 2
    ;;
esac

# apt_get runs apt-get with its arguments, again every 2s for as long as it fails only because
# another process holds an apt or dpkg lock, for up to lock_wait seconds in all. apt-get's output
# is shown when it fails for another reason, or when the wait ends.
apt_get() {
  local start=$SECONDS told=-1 out status holder pid
  while :; do
    status=0
    out=$($SUDO env DEBIAN_FRONTEND=noninteractive apt-get "$@" 2>&1) || status=$?
    if [ "$status" -eq 0 ]; then
      [ -n "$out" ] && printf '%s\n' "$out"
      return 0
    fi
    # apt 1.x and 2.x: "Could not get lock /var/lib/dpkg/lock-frontend. It is held by process
    # 1234 (apt-get)", or "... - open (11: Resource temporarily unavailable)".
    if ! grep -q 'Could not get lock' <<<"$out"; then
      printf '%s\n' "$out" >&2
      return "$status"
    fi
    holder=$(grep -m1 -o 'Could not get lock [^ ]*' <<<"$out" | sed 's/^Could not get lock //; s/\.$//' || true)
    pid=$(grep -m1 -o 'held by process [0-9]* ([^)]*)' <<<"$out" || true)
    holder="$holder${pid:+, $pid}"
    local waited=$((SECONDS - start))
    if [ "$waited" -ge "$lock_wait" ]; then
      printf '%s\n' "$out" >&2
      echo "ensure-servers: gave up after ${waited}s waiting for the apt/dpkg lock ($holder):" \
        "another package manager is still running. Let it finish, or stop it, and run this again;" \
        "ENSURE_SERVERS_LOCK_WAIT=<seconds> waits longer." >&2
      return 1
    fi
    if [ "$told" -lt 0 ] || [ $((waited - told)) -ge 30 ]; then
      echo "ensure-servers: apt-get $1: waiting for another package manager to release the apt/dpkg lock" \
        "($holder); ${waited}s of at most ${lock_wait}s" >&2
      told=$waited
    fi
    sleep 2
  done
}

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
  apt_get update -qq
  apt_get install -y -qq "${missing[@]}"
fi
redis-server --version
redis-cli --version
memcached -V
