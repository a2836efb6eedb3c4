#!/usr/bin/env bash
# The local stack: MariaDB, Redis and the Kafka-compatible broker tansu.
#
#   scripts/stack.sh up [--started-file F]   use what answers, install/start what does not;
#                                            names of services started now go to F
#   scripts/stack.sh stop-list F             stop the services named in F
#   scripts/stack.sh down                    stop every service these scripts started
#   scripts/stack.sh status                  what answers where
#
# Idempotent and quick when everything is up. Services these scripts start live under
# .stack/ (data, logs, pid files); a service that already answers at its address (the
# machine's MariaDB or Redis, say) is used as it is and never stopped by us.
#
# Addresses (override with the environment):
#   STACK_MYSQL_PORT (3306), STACK_REDIS_PORT (6379), STACK_KAFKA_PORT (19092)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
HOST=127.0.0.1
MYSQL_PORT=${STACK_MYSQL_PORT:-3306}
REDIS_PORT=${STACK_REDIS_PORT:-6379}
KAFKA_PORT=${STACK_KAFKA_PORT:-19092}
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
export PATH="$PATH:$CARGO_BIN:/usr/sbin:/sbin"

say() { printf '[stack] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_port() { # name port seconds logfile
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$2" && return 0
    sleep 0.1
  done
  [ -f "$4" ] && tail -n 20 "$4" >&2
  die "$1 did not start listening on $HOST:$2 within $3 s (log: $4)"
}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=""
apt_install() {
  say "installing $* (apt)"
  if [ -z "$APT_UPDATED" ]; then
    as_root apt-get update -qq >&2
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

STARTED_FILE=""
mark_started() { # name pid
  mkdir -p "$STACK_DIR/started"
  echo "$2" > "$STACK_DIR/started/$1.pid"
  if [ -n "$STARTED_FILE" ]; then echo "$1" >> "$STARTED_FILE"; fi
}

# --- MariaDB -------------------------------------------------------------------------
mysql_client() {
  command -v mariadb >/dev/null 2>&1 || apt_install mariadb-client
  mariadb --protocol=TCP -h "$HOST" -P "$MYSQL_PORT" -uroot "$@"
}

mysql_up() {
  if port_open "$MYSQL_PORT"; then
    say "MariaDB/MySQL answers on $HOST:$MYSQL_PORT"
    # Ship the slow query log settings of deploy/mysql/ to a server we did not start.
    mysql_client -e "SET GLOBAL slow_query_log = 1; SET GLOBAL long_query_time = 1;" 2>/dev/null ||
      say "warning: could not enable the slow query log (needs SUPER)"
    return
  fi
  command -v mariadbd >/dev/null 2>&1 || apt_install mariadb-server mariadb-client
  local dir="$STACK_DIR/mariadb"
  mkdir -p "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    say "initialising a private MariaDB in $dir/data"
    mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 ||
      { tail -n 20 "$dir/install.log" >&2; die "mariadb-install-db failed"; }
  fi
  say "starting MariaDB on $HOST:$MYSQL_PORT"
  nohup mariadbd --defaults-file="$ROOT/deploy/mysql/flash-sale.cnf" \
    --datadir="$dir/data" --port="$MYSQL_PORT" --bind-address="$HOST" \
    --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" --user="$(id -un)" \
    --slow-query-log-file="$dir/slow.log" --log-error="$dir/error.log" \
    >/dev/null 2>&1 &
  mark_started mariadb $!
  wait_port MariaDB "$MYSQL_PORT" 60 "$dir/error.log"
}

# --- Redis ---------------------------------------------------------------------------
redis_up() {
  if port_open "$REDIS_PORT"; then
    say "Redis answers on $HOST:$REDIS_PORT"
    return
  fi
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  local dir="$STACK_DIR/redis"
  mkdir -p "$dir"
  say "starting Redis on $HOST:$REDIS_PORT (no persistence)"
  nohup redis-server --bind "$HOST" --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" >/dev/null 2>&1 &
  mark_started redis $!
  wait_port Redis "$REDIS_PORT" 20 "$dir/redis.log"
}

# --- tansu (Kafka API) ---------------------------------------------------------------
tansu_install() {
  command -v tansu >/dev/null 2>&1 && return
  say "installing tansu from crates.io (cargo install; about 16 min on 2 cores, once per machine)"
  # The plain install has no storage engine; these features add memory:// and sqlite://.
  cargo install --locked tansu --features dynostore,libsql >&2 ||
    die "cargo install tansu failed"
}

kafka_up() {
  if port_open "$KAFKA_PORT"; then
    say "Kafka broker answers on $HOST:$KAFKA_PORT"
    return
  fi
  tansu_install
  local dir="$STACK_DIR/tansu"
  mkdir -p "$dir"
  say "starting tansu on $HOST:$KAFKA_PORT (in-memory storage)"
  # Run from its own directory: tansu resolves relative storage paths against it.
  # (A simple command in the background, so that $! is tansu itself, not a subshell.)
  (cd "$dir" || exit 1
    nohup tansu broker \
      --listener-url "tcp://$HOST:$KAFKA_PORT" \
      --advertised-listener-url "tcp://$HOST:$KAFKA_PORT" \
      --storage-engine "memory://tansu/" >"$dir/tansu.log" 2>&1 &
    echo $! > "$dir/launch.pid")
  mark_started tansu "$(cat "$dir/launch.pid")"
  wait_port tansu "$KAFKA_PORT" 30 "$dir/tansu.log"
}

# --- stop ----------------------------------------------------------------------------
stop_one() { # name
  local pidfile="$STACK_DIR/started/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $1 (pid $pid)"
    if [ "$1" = tansu ]; then
      kill -KILL "$pid" 2>/dev/null || true # tansu ignores SIGTERM
    else
      kill -TERM "$pid" 2>/dev/null || true
    fi
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}

status() {
  local name port
  for name in mysql:$MYSQL_PORT redis:$REDIS_PORT kafka:$KAFKA_PORT; do
    port=${name#*:}
    if port_open "$port"; then echo "${name%%:*}: up ($HOST:$port)"; else echo "${name%%:*}: down ($HOST:$port)"; fi
  done
}

case "${1:-}" in
  up)
    if [ "${2:-}" = "--started-file" ]; then STARTED_FILE=$3; : > "$STARTED_FILE"; fi
    mkdir -p "$STACK_DIR"
    mysql_up
    redis_up
    kafka_up
    ;;
  stop-list)
    [ -f "${2:-}" ] || exit 0
    while read -r name; do [ -n "$name" ] && stop_one "$name"; done < "$2"
    ;;
  down)
    for name in tansu redis mariadb; do stop_one "$name"; done
    ;;
  status) status ;;
  *) echo "usage: $0 up [--started-file F] | stop-list F | down | status" >&2; exit 2 ;;
esac
