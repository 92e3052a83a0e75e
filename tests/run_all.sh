#!/usr/bin/env bash
# make test: the whole suite on SQLite (browser tests included) and again on PostgreSQL (browser tests
# there would test Chromium, not the database), side by side: each is mostly one Python process, and
# the machine has two cores. Each runs in its own loopback-only network namespace and its own temp
# folder; their outputs are shown one after the other once both are done.
set -uo pipefail
PY=$1
shift
work=$(mktemp -d /tmp/cabinet-tests.XXXXXX)
trap 'rm -rf "$work"' EXIT
tests/isolated.sh "$PY" -m pytest --basetemp="$work/sqlite" "$@" > "$work/sqlite.log" 2>&1 &
sqlite=$!
tests/isolated.sh tests/with_postgres.sh "$PY" -m pytest --basetemp="$work/postgres" -m "not browser" "$@" \
  > "$work/postgres.log" 2>&1 &
postgres=$!
wait "$sqlite"; sqlite_status=$?
wait "$postgres"; postgres_status=$?
echo "=== SQLite, browser tests included (exit $sqlite_status)"
cat "$work/sqlite.log"
echo "=== PostgreSQL (exit $postgres_status)"
cat "$work/postgres.log"
[ "$sqlite_status" = 0 ] && [ "$postgres_status" = 0 ]
