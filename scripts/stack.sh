#!/usr/bin/env bash
# The local stack: MariaDB, Redis, Apache Kafka and Keycloak (and, on request, OpenSearch).
#
#   scripts/stack.sh up [--started-file F]   use what answers, install/start what does not;
#                                            names of services started now go to F
#   scripts/stack.sh stop-list F             stop the services named in F
#   scripts/stack.sh down                    stop every service these scripts started
#   scripts/stack.sh status                  what answers where
#   scripts/stack.sh env                     shell exports of the secrets the stack made
#
# Idempotent and quick when everything is up. Services these scripts start live under
# .stack/ (data, logs, pid files); a service that already answers at its address is used
# as it is and never stopped by us. MariaDB and Redis come from Debian's packages;
# Kafka and Keycloak from Maven Central (scripts/kafka-broker.sh, scripts/keycloak.sh,
# cached per machine). Kafka and Keycloak keep their data on disk: a restart keeps the
# events, users and realm.
#
# Addresses (override with the environment):
#   STACK_MYSQL_PORT (3306), STACK_REDIS_PORT (6379), STACK_KAFKA_PORT (19092, its
#   controller one above), STACK_KEYCLOAK_PORT (8180), STACK_OPENSEARCH_PORT (19200)
# STACK_SERVICES picks which to bring up (by default the four the app needs: "mysql
# redis kafka keycloak"; add "opensearch" for the optional search engine).
# STACK_KAFKA=tansu runs the Kafka-compatible tansu instead of Apache Kafka (in-memory:
# a restart loses the events; needs a 16-minute cargo install on first use).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
HOST=127.0.0.1
MYSQL_PORT=${STACK_MYSQL_PORT:-3306}
REDIS_PORT=${STACK_REDIS_PORT:-6379}
KAFKA_PORT=${STACK_KAFKA_PORT:-19092}
KEYCLOAK_PORT=${STACK_KEYCLOAK_PORT:-8180}
OPENSEARCH_PORT=${STACK_OPENSEARCH_PORT:-19200}
KAFKA_KIND=${STACK_KAFKA:-apache}
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
export PATH="$PATH:$CARGO_BIN:/usr/sbin:/sbin"

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_port() { # name port seconds logfile [pid]
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$2" && return 0
    if [ -n "${5:-}" ] && ! kill -0 "$5" 2>/dev/null; then break; fi
    sleep 0.1
  done
  [ -f "$4" ] && tail -n 20 "$4" >&2
  die "$1 did not start listening on $HOST:$2 within $3 s (log: $4)"
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

tansu_up() {
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

# --- Apache Kafka ------------------------------------------------------------------
kafka_up() {
  if port_open "$KAFKA_PORT"; then
    say "Kafka broker answers on $HOST:$KAFKA_PORT"
    return
  fi
  if [ "$KAFKA_KIND" = tansu ]; then tansu_up; return; fi
  say "starting Apache Kafka on $HOST:$KAFKA_PORT (data in $STACK_DIR/kafka/data)"
  start_jvm_service kafka kafka-broker.sh "$KAFKA_PORT" 60
}

# Installs (once) and starts a service whose script has `install` and `run DIR PORT`,
# data and log under $STACK_DIR/NAME; waits up to SECONDS for its port.
start_jvm_service() { # name script port seconds
  local dir="$STACK_DIR/$1" pid
  "$ROOT/scripts/$2" install >/dev/null
  mkdir -p "$dir"
  nohup "$ROOT/scripts/$2" run "$dir" "$3" >"$dir/$1.log" 2>&1 &
  pid=$!
  mark_started "$1" "$pid"
  wait_port "$1" "$3" "$4" "$dir/$1.log" "$pid"
}

# --- OpenSearch ----------------------------------------------------------------------
opensearch_up() {
  if port_open "$OPENSEARCH_PORT"; then
    say "OpenSearch answers on $HOST:$OPENSEARCH_PORT"
    return 0
  fi
  say "starting OpenSearch on $HOST:$OPENSEARCH_PORT (about 20 s)"
  start_jvm_service opensearch opensearch.sh "$OPENSEARCH_PORT" 180
}

# --- Keycloak ------------------------------------------------------------------------
keycloak_ready() {
  curl -fs -o /dev/null --max-time 2 "http://$HOST:$KEYCLOAK_PORT/realms/flash-sale/.well-known/openid-configuration"
}

keycloak_up() {
  if port_open "$KEYCLOAK_PORT"; then
    say "Keycloak answers on $HOST:$KEYCLOAK_PORT"
  else
    say "starting Keycloak on $HOST:$KEYCLOAK_PORT (realm from deploy/keycloak/realm.json; about a minute)"
    start_jvm_service keycloak keycloak.sh "$KEYCLOAK_PORT" 240
  fi
  local i
  for ((i = 0; i < 600; i++)); do
    keycloak_ready && return 0
    sleep 0.2
  done
  die "Keycloak answers on $HOST:$KEYCLOAK_PORT but has no realm flash-sale (log: $STACK_DIR/keycloak/keycloak.log)"
}

# The secrets Keycloak was started with, for the app and the tests.
print_env() {
  local dir="$STACK_DIR/keycloak"
  [ -s "$dir/client-secret" ] && echo "export FLASH__IDENTITY__KEYCLOAK__CLIENT_SECRET=$(cat "$dir/client-secret")"
  [ -s "$dir/admin-password" ] && echo "export FLASH_KEYCLOAK_ADMIN_PASSWORD=$(cat "$dir/admin-password")"
  return 0
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
    # Kafka and Keycloak shut down in order (flush, leave the quorum): give them time.
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}

status() {
  local name port
  for name in mysql:$MYSQL_PORT redis:$REDIS_PORT kafka:$KAFKA_PORT keycloak:$KEYCLOAK_PORT \
    opensearch:$OPENSEARCH_PORT; do
    port=${name#*:}
    if port_open "$port"; then echo "${name%%:*}: up ($HOST:$port)"; else echo "${name%%:*}: down ($HOST:$port)"; fi
  done
}

case "${1:-}" in
  up)
    if [ "${2:-}" = "--started-file" ]; then STARTED_FILE=$3; : > "$STARTED_FILE"; fi
    mkdir -p "$STACK_DIR"
    for service in ${STACK_SERVICES:-mysql redis kafka keycloak}; do
      case "$service" in
        mysql | redis | kafka | keycloak | opensearch) "${service}_up" ;;
        *) die "unknown service in STACK_SERVICES: $service" ;;
      esac
    done
    ;;
  stop-list)
    [ -f "${2:-}" ] || exit 0
    while read -r name; do [ -n "$name" ] && stop_one "$name"; done < "$2"
    ;;
  down)
    for name in opensearch keycloak kafka tansu redis mariadb; do stop_one "$name"; done
    ;;
  status) status ;;
  env) print_env ;;
  *) echo "usage: $0 up [--started-file F] | stop-list F | down | status | env" >&2; exit 2 ;;
esac
