#!/usr/bin/env bash
# The scale-out configuration (docs/architecture/queue-and-database.md, "Scale-out"): the same code on PostgreSQL and
# django-q2's Redis broker. Installs Debian's postgresql and redis-server when missing, starts them on
# this machine, runs the tests that use the database against PostgreSQL (ORM broker), then the worker
# end-to-end tests with Redis as the broker, and stops whatever it started, whether the tests pass or not.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
die() { echo "test-scaleout: $*" >&2; exit 1; }

if ! command -v pg_ctlcluster >/dev/null || ! command -v redis-server >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql redis-server >/dev/null
fi

# --- PostgreSQL: the first cluster Debian set up, on the port it was given -----------------------------
read -r PG_VERSION PG_CLUSTER PG_PORT PG_STATUS < <(pg_lsclusters --no-header | awk 'NR==1 {print $1, $2, $3, $4}') \
  || die "no PostgreSQL cluster found (pg_lsclusters lists none)"
STARTED_PG=""
REDIS_PORT=6399
REDIS_DIR=$(mktemp -d)
STARTED_REDIS=""
stop_started() {
  if [ -n "$STARTED_REDIS" ]; then redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; fi
  if [ -n "$STARTED_PG" ]; then $SUDO pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop >/dev/null 2>&1 || true; fi
  rm -rf "$REDIS_DIR"
}
trap stop_started EXIT

if [ "$PG_STATUS" != "online" ]; then
  $SUDO pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start || die "PostgreSQL $PG_VERSION/$PG_CLUSTER did not start"
  STARTED_PG=1
fi
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
ready=""
for _ in $(seq 1 30); do
  if as_postgres psql -p "$PG_PORT" -qtc "SELECT 1" >/dev/null 2>&1; then ready=1; break; fi
  sleep 1
done
[ -n "$ready" ] || die "PostgreSQL on port $PG_PORT did not answer within 30 s"
as_postgres psql -p "$PG_PORT" -qtc "SELECT 1 FROM pg_roles WHERE rolname='videojobs'" | grep -q 1 \
  || as_postgres psql -p "$PG_PORT" -qc "CREATE ROLE videojobs LOGIN CREATEDB PASSWORD 'videojobs'"
as_postgres psql -p "$PG_PORT" -qtc "SELECT 1 FROM pg_database WHERE datname='videojobs'" | grep -q 1 \
  || as_postgres psql -p "$PG_PORT" -qc "CREATE DATABASE videojobs OWNER videojobs"
PG_URL="postgres://videojobs:videojobs@localhost:$PG_PORT/videojobs"

# --- Redis: our own instance on a port of its own, no snapshots written anywhere -------------------------
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  redis-server --port "$REDIS_PORT" --daemonize yes --save "" --appendonly no --dir "$REDIS_DIR" >/dev/null \
    || die "redis-server did not start on port $REDIS_PORT"
  STARTED_REDIS=1
  ready=""
  for _ in $(seq 1 30); do
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.2
  done
  [ -n "$ready" ] || die "Redis on port $REDIS_PORT did not answer"
fi

# The PostgreSQL pass runs the tests that use the database (--database-only, tests/conftest.py): the rest
# (FFmpeg, byte ranges, names, settings, the bench smoke tests, which start their own SQLite service) would
# only run the same code again. Also left out, and why:
# - tests/e2e/test_browser.py: the pages do not depend on the database engine, and the browser tests
#   are the slowest part of the suite; they run once, on SQLite, in `make test`.
# - test_sqlite_runs_in_wal_mode_with_immediate_transactions: it checks SQLite's own settings.
# - tests/e2e/test_soak.py: what it checks does not depend on the engine beyond what the worker tests below
#   cover, and it runs once, on SQLite, in `make test`.
# - the worker end-to-end files (WORKER_E2E): they run once on PostgreSQL, in the second pass, with the
#   Redis broker; on SQLite, in `make test`, with the ORM broker.
WORKER_E2E="tests/e2e/test_worker.py tests/e2e/test_cancel_worker.py tests/e2e/test_crash_recovery.py tests/e2e/test_scale_out.py"
PYTEST=(.venv/bin/pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadgroup)
echo "== PostgreSQL (port $PG_PORT), ORM broker: the tests that use the database"
ignored=()
for file in tests/e2e/test_browser.py tests/e2e/test_soak.py $WORKER_E2E; do ignored+=("--ignore=$file"); done
DATABASE_URL=$PG_URL "${PYTEST[@]}" --database-only "${ignored[@]}" \
  --deselect tests/test_settings.py::test_sqlite_runs_in_wal_mode_with_immediate_transactions
echo "== PostgreSQL + Redis broker (port $REDIS_PORT): the worker end-to-end tests, two machines sharing jobs"
# shellcheck disable=SC2086
DATABASE_URL=$PG_URL REDIS_URL="redis://localhost:$REDIS_PORT/0" "${PYTEST[@]}" $WORKER_E2E
