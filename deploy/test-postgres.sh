#!/usr/bin/env bash
# Prints IOTCLOUD_TEST_PG_* exports for a PostgreSQL the tests may use: the machine's own on
# 127.0.0.1:5432 when it trusts local connections, else a private throw-away cluster.
set -euo pipefail
state="${1:-.state/test-pg}"
port="${IOTCLOUD_TEST_PG_PORT:-5432}"

if psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  echo "export IOTCLOUD_TEST_PG_HOST=127.0.0.1 IOTCLOUD_TEST_PG_PORT=$port IOTCLOUD_TEST_PG_USER=postgres"
  exit 0
fi
# A service that is installed but stopped (as the machine image starts it) is started as is.
if [[ "$port" == 5432 ]] && command -v pg_ctlcluster >/dev/null && ls /etc/postgresql/*/main >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start >/dev/null 2>&1 || true
  if psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    echo "export IOTCLOUD_TEST_PG_HOST=127.0.0.1 IOTCLOUD_TEST_PG_PORT=5432 IOTCLOUD_TEST_PG_USER=postgres"
    exit 0
  fi
fi

bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
private_port=55432
mkdir -p "$state"
state="$(cd "$state" && pwd)"
run_as=()
[[ $(id -u) -eq 0 ]] && { chown -R postgres "$state"; run_as=(su postgres -s /bin/sh -c); }
as_pg() { if ((${#run_as[@]})); then "${run_as[@]}" "$*"; else sh -c "$*"; fi; }
if [[ ! -f "$state/data/PG_VERSION" ]]; then
  as_pg "$bin/initdb -D '$state/data' -U postgres --auth=trust -E UTF8" >"$state/initdb.log" 2>&1
fi
if ! psql -h 127.0.0.1 -p $private_port -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  as_pg "$bin/pg_ctl -D '$state/data' -l '$state/server.log' -o '-p $private_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$state' -w start" >/dev/null
fi
echo "export IOTCLOUD_TEST_PG_HOST=127.0.0.1 IOTCLOUD_TEST_PG_PORT=$private_port IOTCLOUD_TEST_PG_USER=postgres"
