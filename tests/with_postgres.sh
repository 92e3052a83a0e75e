#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL cluster on a Unix socket (no TCP),
# with TEST_DATABASE_URL pointing at it; the cluster is removed afterwards.
set -euo pipefail
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
DIR=$(mktemp -d /tmp/cabinet-pg.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
as_pg "$PGBIN/initdb" -D "$DIR/data" -A trust -U cabinet -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w \
  -o "-k $DIR -c listen_addresses='' -c max_connections=300 -c fsync=off -c full_page_writes=off" start >/dev/null
as_pg "$PGBIN/createdb" -h "$DIR" -U cabinet cabinet_test
export TEST_DATABASE_URL="postgresql://cabinet@/cabinet_test?host=$DIR"
echo "PostgreSQL: $("$PGBIN/postgres" --version)"
"$@"
