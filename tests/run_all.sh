#!/usr/bin/env bash
# make test: the whole suite in three streams side by side: the non-browser tests on SQLite, the
# browser tests (on SQLite), and the non-browser tests again on PostgreSQL (browser tests there would
# test Chromium, not the database). Browser tests spend much of their time waiting on Chromium and
# media, so a third stream fills the two cores better than two. Each stream runs in its own
# loopback-only network namespace and its own temp folder; their outputs are shown one after the
# other once all are done, each with its slowest tests.
set -uo pipefail
PY=$1
shift
work=$(mktemp -d /tmp/cabinet-tests.XXXXXX)
trap 'rm -rf "$work"' EXIT
tests/isolated.sh "$PY" -m pytest --basetemp="$work/sqlite" -m "not browser" --durations=10 "$@" \
  > "$work/sqlite.log" 2>&1 &
sqlite=$!
tests/isolated.sh "$PY" -m pytest --basetemp="$work/browser" -m browser --durations=10 "$@" \
  > "$work/browser.log" 2>&1 &
browser=$!
tests/isolated.sh tests/with_postgres.sh "$PY" -m pytest --basetemp="$work/postgres" -m "not browser" \
  --durations=10 "$@" > "$work/postgres.log" 2>&1 &
postgres=$!
wait "$sqlite"; sqlite_status=$?
wait "$browser"; browser_status=$?
wait "$postgres"; postgres_status=$?
echo "=== SQLite (exit $sqlite_status)"
cat "$work/sqlite.log"
echo "=== Browser tests, on SQLite (exit $browser_status)"
cat "$work/browser.log"
echo "=== PostgreSQL (exit $postgres_status)"
cat "$work/postgres.log"
[ "$sqlite_status" = 0 ] && [ "$browser_status" = 0 ] && [ "$postgres_status" = 0 ]
