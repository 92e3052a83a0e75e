#!/usr/bin/env bash
# Run a command in a network namespace that has only loopback (when we may make one):
# WebRTC in the browser tests then pairs 127.0.0.1 with 127.0.0.1 only, and no test
# can send traffic anywhere but this machine's loopback.
set -euo pipefail
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  exec unshare -n bash -c 'ip link set lo up && exec "$@"' isolated "$@"
fi
echo "tests/isolated.sh: no network namespace (not root); running on the host's network" >&2
exec "$@"
