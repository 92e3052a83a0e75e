#!/usr/bin/env bash
# make test: the whole suite on SQLite (browser tests included) and again on PostgreSQL, side by side:
# each is mostly one Python process, and the machine has two cores. The PostgreSQL pass leaves out what
# does not touch the database (browser tests would test Chromium; the relay, catalogue, architecture,
# fuzzing, access-matrix and deployment-docs modules test code that is the same whatever the database). Each pass runs in its own
# loopback-only network namespace and its own temp folder; their outputs, with their slowest tests,
# are shown one after the other once both are done.
set -uo pipefail
PY=$1
shift
work=$(mktemp -d /tmp/cabinet-tests.XXXXXX)
trap 'rm -rf "$work"' EXIT
tests/isolated.sh "$PY" -m pytest --basetemp="$work/sqlite" --durations=10 "$@" > "$work/sqlite.log" 2>&1 &
sqlite=$!
same_on_any_database=()
# Who may open which page (test_access_matrix: 282 routes x roles) is decided in Python before any
# query that differs between the databases; the deployment docs' checks read files only.
for module in tests/test_relay_*.py tests/test_i18n*.py tests/test_architecture.py tests/test_fuzz.py \
              tests/test_access_matrix.py tests/test_deploy_docs.py; do
  # test_relay_workers pins visits to workers with a conditional UPDATE: that one is database work.
  [ "$module" = tests/test_relay_workers.py ] && continue
  same_on_any_database+=(--ignore="$module")
done
# The demo is the same ORM calls on either database, and its PDFs made it 31 s on PostgreSQL.
same_on_any_database+=(--deselect=tests/test_cli.py::test_demo)
tests/isolated.sh tests/with_postgres.sh "$PY" -m pytest --basetemp="$work/postgres" -m "not browser" \
  "${same_on_any_database[@]}" --durations=10 "$@" > "$work/postgres.log" 2>&1 &
postgres=$!
wait "$sqlite"; sqlite_status=$?
wait "$postgres"; postgres_status=$?
echo "=== SQLite, browser tests included (exit $sqlite_status)"
cat "$work/sqlite.log"
echo "=== PostgreSQL (exit $postgres_status)"
cat "$work/postgres.log"
[ "$sqlite_status" = 0 ] && [ "$postgres_status" = 0 ]
