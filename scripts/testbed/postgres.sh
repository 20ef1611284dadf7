#!/usr/bin/env bash
# Test-bed PostgreSQL: a private cluster on 127.0.0.1 (and a unix socket in its directory), run by the
# `postgres` user (postgres refuses to run as root), trust auth on loopback only.
#   postgres.sh [start] [PORT]   start (idempotent); default port 55432; installs PostgreSQL with apt-get
#   postgres.sh stop             stop the cluster (only ours: the one in $BASE/postgres)
#   postgres.sh restart          stop -m fast, then start again (fault tests restart the server)
#   postgres.sh status|env
# stdout of start/env: KEY=VALUE lines (eval-able); also written to $BASE/postgres.env.
set -euo pipefail

BASE="${ATOMKIT_TESTBED_DIR:-/tmp/atomkit-testbed}"
DIR="$BASE/postgres"
DATA="$DIR/data"
PORT_FILE="$DIR/port"

log() { echo "postgres.sh: $*" >&2; }

cmd="start"
case "${1:-}" in start|stop|restart|status|env) cmd="$1"; shift ;; esac
port="${1:-$(cat "$PORT_FILE" 2>/dev/null || echo 55432)}"
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1024 ] || [ "$port" -gt 65535 ]; then
  log "bad port '$port' (want 1024-65535)"; exit 2
fi

bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }; done
  return 1
}

ensure_installed() {
  bindir >/dev/null && command -v psql >/dev/null && return 0
  log "installing postgresql with apt-get"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >&2
}

# everything the server runs as the postgres user; root may not run it
as_pg() { su postgres -s /bin/sh -c "$*"; }

running() {
  local bin; bin="$(bindir)" || return 1
  [ -f "$DATA/postmaster.pid" ] && as_pg "'$bin/pg_ctl' -D '$DATA' status" >/dev/null 2>&1
}

print_env() {
  cat <<EOF | tee "$BASE/postgres.env"
ATOMKIT_PG_URL=postgres://postgres@127.0.0.1:$(cat "$PORT_FILE")/atomkit
ATOMKIT_PG_SOCKET=$DIR
ATOMKIT_PG_PORT=$(cat "$PORT_FILE")
ATOMKIT_PG_BIN=$(bindir)
ATOMKIT_PG_DATA=$DATA
EOF
}

start() {
  [ "$(id -u)" = 0 ] || { log "run as root (it starts the server as the postgres user)"; exit 1; }
  ensure_installed
  local bin; bin="$(bindir)"
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DIR" --shell /usr/sbin/nologin postgres
  mkdir -p "$DIR"
  # the postgres user needs to reach its directory through $BASE
  chmod o+x "$BASE" 2>/dev/null || true
  chown postgres "$DIR"
  if running; then print_env; return 0; fi
  echo "$port" >"$PORT_FILE"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    as_pg "'$bin/initdb' -D '$DATA' -A trust -U postgres --no-sync -E UTF8 --locale=C" >"$DIR/initdb.log" 2>&1 \
      || { log "initdb failed: $(tail -5 "$DIR/initdb.log")"; exit 1; }
  fi
  # loopback and the socket only; fsync stays on (the trail's durability is what is tested)
  as_pg "'$bin/pg_ctl' -D '$DATA' -l '$DIR/server.log' -w -t 120 \
    -o \"-c listen_addresses=127.0.0.1 -p $port -k $DIR -c max_connections=400\" start" >&2 \
    || { log "the server did not start: $(tail -5 "$DIR/server.log")"; exit 1; }
  as_pg "'$bin/psql' -h '$DIR' -p $port -U postgres -d postgres -tAc \"SELECT 1 FROM pg_database WHERE datname='atomkit'\"" | grep -q 1 \
    || as_pg "'$bin/createdb' -h '$DIR' -p $port -U postgres atomkit"
  print_env
}

stop() {
  local bin; bin="$(bindir)" || return 0
  running || return 0
  as_pg "'$bin/pg_ctl' -D '$DATA' -m fast -w -t 120 stop" >&2
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if running; then echo "running on 127.0.0.1:$(cat "$PORT_FILE")"; else echo "stopped"; fi ;;
  env) print_env ;;
esac
