#!/usr/bin/env bash
# The scale-out configuration of DESIGN.md: the same code on PostgreSQL + django-q2's Redis broker.
# Installs Debian's postgresql and redis-server when missing, starts them on this machine, and runs
# the suite against PostgreSQL (ORM broker) and the worker end-to-end tests with Redis as the broker.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
if ! command -v pg_ctlcluster >/dev/null || ! command -v redis-server >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql redis-server >/dev/null
fi
read -r PG_VERSION PG_CLUSTER < <(pg_lsclusters --no-header | awk 'NR==1 {print $1, $2}')
$SUDO pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start >/dev/null 2>&1 || true  # already running is fine
REDIS_PORT=6399
redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || redis-server --port "$REDIS_PORT" --daemonize yes --save "" >/dev/null
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
wait_for_postgres() { for _ in $(seq 1 30); do as_postgres psql -qtc "SELECT 1" >/dev/null 2>&1 && return 0; sleep 1; done; return 1; }
wait_for_postgres
as_postgres psql -qtc "SELECT 1 FROM pg_roles WHERE rolname='videojobs'" | grep -q 1 \
  || as_postgres psql -qc "CREATE ROLE videojobs LOGIN CREATEDB PASSWORD 'videojobs'"
as_postgres psql -qtc "SELECT 1 FROM pg_database WHERE datname='videojobs'" | grep -q 1 \
  || as_postgres psql -qc "CREATE DATABASE videojobs OWNER videojobs"
PG_URL="postgres://videojobs:videojobs@localhost:5432/videojobs"

echo "== PostgreSQL, ORM broker: the suite without the browser tests"
DATABASE_URL=$PG_URL .venv/bin/pytest -q -p no:logging --ignore=tests/e2e/test_browser.py \
  --deselect tests/test_settings.py::test_sqlite_runs_in_wal_mode_with_immediate_transactions
echo "== PostgreSQL + Redis broker: the worker end-to-end tests"
DATABASE_URL=$PG_URL REDIS_URL="redis://localhost:$REDIS_PORT/0" .venv/bin/pytest -q -p no:logging \
  tests/e2e/test_worker.py tests/e2e/test_cancel_worker.py tests/e2e/test_crash_recovery.py
