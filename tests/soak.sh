#!/usr/bin/env bash
# The whole suite N times in a row (default 5), with CI=true, the SQLite run and the
# PostgreSQL run at the same time: each is the other's CPU-heavy neighbour on the
# machine.  Stops at the first failed round; logs in $SOAK_LOGS (default /tmp/soak).
#   tests/soak.sh [rounds] [postgresql-url]
# The PostgreSQL database must be a scratch one (the suite rebuilds its schema).
set -uo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
pg_url="${2:-postgresql://postgres@127.0.0.1:5432/test}"
logs="${SOAK_LOGS:-/tmp/soak}"
mkdir -p "$logs"
export CI=true
echo "commit $(git rev-parse --short HEAD), $rounds rounds, logs in $logs"
for i in $(seq 1 "$rounds"); do
  started=$(date +%s)
  .venv/bin/python -m pytest -q -p no:cacheprovider >"$logs/sqlite-$i.log" 2>&1 &
  sqlite_pid=$!
  TEST_DATABASE_URL="$pg_url" .venv/bin/python -m pytest -q -p no:cacheprovider \
    >"$logs/pg-$i.log" 2>&1 &
  pg_pid=$!
  wait "$sqlite_pid"; sqlite_rc=$?
  wait "$pg_pid"; pg_rc=$?
  echo "round $i: SQLite [$(tail -n1 "$logs/sqlite-$i.log")] PostgreSQL [$(tail -n1 "$logs/pg-$i.log")] $(( $(date +%s) - started )) s"
  if [ "$sqlite_rc" -ne 0 ] || [ "$pg_rc" -ne 0 ]; then
    echo "round $i failed (SQLite exit $sqlite_rc, PostgreSQL exit $pg_rc)" >&2
    exit 1
  fi
done
echo "$rounds rounds in a row passed"
