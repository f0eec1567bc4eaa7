#!/usr/bin/env bash
# The head node of a work pool: a Prefect server backed by PostgreSQL, which holds up under many writers where
# SQLite reports "database is locked". Run it on the machine that runs the research flow; workers on the GPU
# hosts and the research flow then talk to http://HEAD:PORT/api.
#
#   scripts/head_node.sh start       # PostgreSQL (created on first use), the work pool, then the Prefect server
#                                    # in the foreground: Ctrl-C stops the server, the database keeps running
#   scripts/head_node.sh stop-db     # stop PostgreSQL (after the server)
#
# Settings (environment): AUTORESEARCH_HEAD_DIR (default ~/.autoresearch-head, or /var/lib/autoresearch-head for
# root), AUTORESEARCH_PG_PORT (5433, not the system cluster's 5432), PREFECT_SERVER_HOST (127.0.0.1; 0.0.0.0 lets
# other hosts in), PREFECT_SERVER_PORT (4200), AUTORESEARCH_POOL (gpu: the process work pool created here).
#
# The database password is made once, kept in $AUTORESEARCH_HEAD_DIR/db-password (0600), handed to Prefect in
# its password setting and never printed. PostgreSQL listens on 127.0.0.1 only: just the server reaches it.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$(id -u)" = "0" ]; then default_dir=/var/lib/autoresearch-head; else default_dir="$HOME/.autoresearch-head"; fi
head_dir="${AUTORESEARCH_HEAD_DIR:-$default_dir}"
pg_dir="$head_dir/postgres"
pg_port="${AUTORESEARCH_PG_PORT:-5433}"
server_host="${PREFECT_SERVER_HOST:-127.0.0.1}"
server_port="${PREFECT_SERVER_PORT:-4200}"
pool="${AUTORESEARCH_POOL:-gpu}"
password_file="$head_dir/db-password"
prefect="${PREFECT_BIN:-$(command -v prefect || echo "$here/.venv/bin/prefect")}"

fail() { echo "error: $*" >&2; exit 1; }

pg_bin() {
  # Debian keeps the server programs out of PATH, under /usr/lib/postgresql/<version>/bin; take the newest.
  local found
  found="$(command -v "$1" 2>/dev/null || true)"
  [ -n "$found" ] || found="$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$found" ] || fail "PostgreSQL's $1 was not found: install PostgreSQL (apt-get install postgresql) and run this again."
  echo "$found"
}

# initdb and postgres refuse to run as root: as root, the database belongs to the system's `postgres` user.
as_db_user() {
  if [ "$(id -u)" = "0" ]; then
    getent passwd postgres >/dev/null || fail "running as root needs the 'postgres' user that Debian's postgresql package creates."
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

psql_admin() { as_db_user "$(pg_bin psql)" -X -q -v ON_ERROR_STOP=1 -h "$pg_dir" -p "$pg_port" -d postgres "$@"; }

init_database() {
  mkdir -p "$head_dir"
  chmod 755 "$head_dir"  # the database user must be able to enter it when this runs as root
  if [ ! -s "$password_file" ]; then
    (umask 077; od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > "$password_file")
  fi
  [ -f "$pg_dir/PG_VERSION" ] && return 0
  mkdir -p "$pg_dir"
  if [ "$(id -u)" = "0" ]; then chown postgres:postgres "$pg_dir"; fi
  chmod 700 "$pg_dir"
  as_db_user test -w "$pg_dir" || fail "the database user cannot write $pg_dir (a parent folder is closed to it): set AUTORESEARCH_HEAD_DIR to a folder others may enter."
  echo "creating the PostgreSQL cluster in $pg_dir"
  # Local socket connections are trusted: the socket lives inside the 0700 data folder, so only the database's
  # own OS user (and root) reach it. TCP connections need the password.
  as_db_user "$(pg_bin initdb)" -D "$pg_dir" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --no-instructions >"$head_dir/initdb.log" 2>&1 \
    || fail "initdb failed; see $head_dir/initdb.log."
}

start_database() {
  if as_db_user "$(pg_bin pg_ctl)" -D "$pg_dir" status >/dev/null 2>&1; then
    return 0
  fi
  echo "starting PostgreSQL on 127.0.0.1:$pg_port"
  as_db_user "$(pg_bin pg_ctl)" -D "$pg_dir" -w -t 60 -l "$pg_dir/server.log" \
    -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$pg_dir -c max_connections=200" \
    start >/dev/null || fail "PostgreSQL did not start; see $pg_dir/server.log (is port $pg_port taken? set AUTORESEARCH_PG_PORT)."
  # The role and database Prefect uses; the password goes through stdin, never on a command line.
  if ! psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname='prefect'" | grep -q 1; then
    printf "CREATE ROLE prefect LOGIN PASSWORD '%s';\n" "$(cat "$password_file")" | psql_admin
    psql_admin -c "CREATE DATABASE prefect OWNER prefect"
    psql_admin -d prefect -c "CREATE EXTENSION IF NOT EXISTS pg_trgm"  # Prefect's migrations need it
  fi
}

stop_database() {
  [ -f "$pg_dir/PG_VERSION" ] || return 0
  as_db_user "$(pg_bin pg_ctl)" -D "$pg_dir" -m fast -w stop >/dev/null 2>&1 || true
}

server_env() {
  export PREFECT_SERVER_DATABASE_DRIVER=postgresql+asyncpg PREFECT_SERVER_DATABASE_HOST=127.0.0.1
  export PREFECT_SERVER_DATABASE_PORT="$pg_port" PREFECT_SERVER_DATABASE_USER=prefect PREFECT_SERVER_DATABASE_NAME=prefect
  PREFECT_SERVER_DATABASE_PASSWORD="$(cat "$password_file")"
  export PREFECT_SERVER_DATABASE_PASSWORD
  export PREFECT_HOME="${PREFECT_HOME:-$head_dir/prefect}"
  # Slot leases on disk (under PREFECT_HOME), not in the server's memory: a restarted server would otherwise
  # forget the leases behind every held device slot, and those slots would stay taken for ever.
  export PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE="${PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE:-prefect.server.concurrency.lease_storage.filesystem}"
  export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
  export PREFECT_UI_API_URL="${PREFECT_UI_API_URL:-http://$server_host:$server_port/api}"
}

server_running() {
  # Gone, or a zombie its parent has not reaped yet: either way it serves no more. Without ps, kill -0 alone.
  kill -0 "$1" 2>/dev/null || return 1
  command -v ps >/dev/null 2>&1 || return 0
  case "$(ps -o stat= -p "$1" 2>/dev/null)" in Z*) return 1 ;; esac
}

while_server_runs() {
  # Runs "${@:2}" quietly and stops it if server $1 goes first: the call's status, or 1 when it was stopped.
  local server="$1" call
  shift
  "$@" >/dev/null 2>&1 &
  call=$!
  while kill -0 "$call" 2>/dev/null; do
    if ! server_running "$server"; then
      kill "$call" 2>/dev/null || true
      wait "$call" 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
  wait "$call"
}

create_pool_when_ready() {
  # In the background: the pool can be created only once the server answers; an existing pool is kept. It ends
  # with the server ($1, this script's pid, which exec makes the server's): bash starts a background job with
  # SIGINT ignored, so the Ctrl-C that stops the server does not stop this loop, and without this check it went
  # on calling the stopped server for 240 tries (16 minutes in a test).
  local server="$1" api="http://127.0.0.1:$server_port/api"
  for _ in $(seq 1 240); do
    server_running "$server" || return 0
    if while_server_runs "$server" env PREFECT_API_URL="$api" "$prefect" work-pool inspect "$pool"; then
      echo "work pool '$pool' found"; return 0
    fi
    server_running "$server" || return 0
    if while_server_runs "$server" env PREFECT_API_URL="$api" "$prefect" work-pool create "$pool" --type process; then
      echo "work pool '$pool' created"; return 0
    fi
    sleep 0.5
  done
  echo "warning: the work pool '$pool' could not be created; run: prefect work-pool create $pool --type process" >&2
}

case "${1:-start}" in
  start)
    init_database
    start_database
    server_env
    create_pool_when_ready "$$" &
    echo "Prefect server on http://$server_host:$server_port (database: PostgreSQL on 127.0.0.1:$pg_port)"
    # exec: SIGINT to this process stops the server, as Ctrl-C does to `prefect server start`.
    exec "$prefect" server start --host "$server_host" --port "$server_port"
    ;;
  start-db)
    init_database
    start_database
    ;;
  stop-db)
    stop_database
    ;;
  *)
    fail "unknown command '$1': use start, start-db or stop-db."
    ;;
esac
