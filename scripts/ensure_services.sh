#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the tests use are up: start an installed-but-stopped server, and stop with
# a clear message when one is not installed. Hosts and ports follow TEST_DATABASE_URL and TEST_REDIS_URL.
set -euo pipefail

db_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/agentconsole}
redis_url=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}

hostport() {  # URL -> "host port"
  python3 - "$1" "$2" <<'PY'
import sys
from urllib.parse import urlsplit
parts = urlsplit(sys.argv[1])
print(parts.hostname or "127.0.0.1", parts.port or int(sys.argv[2]))
PY
}

port_open() {
  python3 - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

wait_for() {
  for _ in $(seq 1 30); do port_open "$1" "$2" && return 0; sleep 0.5; done
  return 1
}

read -r pg_host pg_port < <(hostport "$db_url" 5432)
read -r redis_host redis_port < <(hostport "$redis_url" 6379)

if ! port_open "$pg_host" "$pg_port"; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "PostgreSQL is installed but not running; starting cluster $version/main."
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster "$version" main start
    wait_for "$pg_host" "$pg_port" || { echo "PostgreSQL did not come up on $pg_host:$pg_port." >&2; exit 1; }
  else
    echo "PostgreSQL is not reachable on $pg_host:$pg_port and is not installed." >&2
    echo "Install it (Debian/Ubuntu: apt-get install postgresql) or set TEST_DATABASE_URL." >&2
    exit 1
  fi
fi

if ! port_open "$redis_host" "$redis_port"; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "Redis is installed but not running; starting it on $redis_host:$redis_port."
    redis-server --daemonize yes --bind "$redis_host" --port "$redis_port" --save "" --appendonly no
    wait_for "$redis_host" "$redis_port" || { echo "Redis did not come up on $redis_host:$redis_port." >&2; exit 1; }
  else
    echo "Redis is not reachable on $redis_host:$redis_port and is not installed." >&2
    echo "Install it (Debian/Ubuntu: apt-get install redis-server) or set TEST_REDIS_URL." >&2
    exit 1
  fi
fi
echo "PostgreSQL on $pg_host:$pg_port and Redis on $redis_host:$redis_port are up."
