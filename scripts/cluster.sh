#!/usr/bin/env bash
# `make cluster`: the production shape on one machine. NGINX (TLS from a local CA) is the
# only entrance; behind it 2 api, 2 ws and 2 payment processes; a Redis Cluster of 3
# masters with a replica each; 3 Kafka brokers (replication factor 3, min.insync.replicas
# 2, producers wait for every in-sync replica); MariaDB.
#
#   scripts/cluster.sh up              everything up (idempotent), prints the URL
#   scripts/cluster.sh down            stop the roles, NGINX, Redis and Kafka (MariaDB is
#                                      the local stack's: `make stop`)
#   scripts/cluster.sh status          what runs
#   scripts/cluster.sh env             shell exports for the drills (URL, CA, ports)
#   scripts/cluster.sh start|stop|kill INSTANCE    one role instance (api-1 ... payment-2):
#                                      stop is SIGTERM (drain, then exit), kill is SIGKILL
#   scripts/cluster.sh restart-all     rolling restart: each instance in turn, the next
#                                      once the new one is ready
#   scripts/cluster.sh cli ARGS...     flash-sale with the cluster's settings, e.g.
#                                      `cli audit`, `cli reconcile 7`
#   scripts/cluster.sh exec CMD...     any command with the cluster's FLASH__* settings
#
# Environment:
#   CLUSTER_PROFILE       release (default) or debug: which build of flash-sale runs
#   CLUSTER_TRUSTED_HOPS  addresses in front of NGINX allowed to name the client in
#                         X-Forwarded-For (none). The drills set 127.0.0.1: they play the
#                         load balancer in front, so each shopper has an address of its own.
#   CLUSTER_DRAIN_SECS    how long a stopping instance keeps serving while not ready (3)
#   CLUSTER_DB            database name (flash_sale_cluster)
#   CLUSTER_NAMESPACE     Redis key prefix (fs); one per database
#   CLUSTER_TOPIC_PREFIX  prefix of the orders topic (none); one per database
#   CLUSTER_SKIP_BUILD=1  use the binary and pages already built
# and those of scripts/cluster-services.sh (ports, directories).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CLUSTER_DIR=${CLUSTER_DIR:-$ROOT/.cluster}
export CLUSTER_DIR
SAY_AS=cluster
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# The cluster's settings are its own: FLASH_* variables of the caller's shell (a dev or
# bench setup) must not leak into its processes.
for var in $(compgen -e); do
  case "$var" in FLASH__* | FLASH_ENV | FLASH_ROLE) unset "$var" ;; esac
done
HOST=127.0.0.1
PROFILE=${CLUSTER_PROFILE:-release}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/flash-sale
DB=${CLUSTER_DB:-flash_sale_cluster}
# Sale state in Redis belongs to one database: another database (CLUSTER_DB) needs a
# namespace of its own, or its coupon ids meet the other's keys.
NAMESPACE=${CLUSTER_NAMESPACE:-fs}
# Likewise the orders topic: the payment role keeps its offsets in the database, so a
# new database would replay another's events from the start.
TOPIC_PREFIX=${CLUSTER_TOPIC_PREFIX:-}
MYSQL_PORT=${STACK_MYSQL_PORT:-3306}
REDIS_BASE=${CLUSTER_REDIS_PORT_BASE:-7001}
KAFKA_BASE=${CLUSTER_KAFKA_PORT_BASE:-29092}
HTTPS_PORT=${CLUSTER_HTTPS_PORT:-8443}
DRAIN_SECS=${CLUSTER_DRAIN_SECS:-3}
# NGINX connects to the roles from its own loopback address, so the roles trust it (and
# the hops it trusts) without trusting every local client.
export CLUSTER_PROXY_BIND=${CLUSTER_PROXY_BIND:-127.0.0.2}
export CLUSTER_TRUSTED_HOPS=${CLUSTER_TRUSTED_HOPS:-}
PIDS=$CLUSTER_DIR/pids
LOGS=$CLUSTER_DIR/logs
INSTANCES=(api-1:18081 api-2:18082 ws-1:18091 ws-2:18092 payment-1:18101 payment-2:18102)
export CLUSTER_API_UPSTREAMS="$HOST:18081 $HOST:18082"
export CLUSTER_WS_UPSTREAMS="$HOST:18091 $HOST:18092"
PUBLIC_URL="https://localhost:$HTTPS_PORT"

port_of() { local i; for i in "${INSTANCES[@]}"; do [ "${i%%:*}" = "$1" ] && echo "${i#*:}" && return; done; die "no instance $1 (one of: ${INSTANCES[*]%%:*})"; }
role_of() { echo "${1%-*}"; }

redis_nodes() { scripts/cluster-services.sh redis nodes; }
kafka_brokers() { echo "$HOST:$KAFKA_BASE,$HOST:$((KAFKA_BASE + 2)),$HOST:$((KAFKA_BASE + 4))"; }

# A secret made once per cluster directory (mode 0600).
secret() { # name
  local file=$CLUSTER_DIR/secrets/$1
  if [ ! -s "$file" ]; then
    mkdir -p "$CLUSTER_DIR/secrets"
    (umask 077; openssl rand -hex 32 >"$file")
  fi
  cat "$file"
}

# The settings every instance shares: production overlay, the cluster's stores, the
# public URL as the token issuer, one signing key for both api instances.
role_env() { # instance
  local trusted=$CLUSTER_PROXY_BIND hop
  for hop in $CLUSTER_TRUSTED_HOPS; do trusted="$trusted,$hop"; done
  cat <<ENV
FLASH_ENV=production
FLASH__SERVER__HOST=$HOST
FLASH__SERVER__PORT=$(port_of "$1")
FLASH__SERVER__DRAIN_SECS=$DRAIN_SECS
FLASH__SERVER__STATIC_DIR=
FLASH__SERVER__TRUSTED_PROXIES=$trusted
FLASH__MYSQL__URL=mysql://root@$HOST:$MYSQL_PORT/$DB
FLASH__REDIS__MODE=cluster
FLASH__REDIS__NODES=$(redis_nodes)
FLASH__REDIS__NAMESPACE=$NAMESPACE
FLASH__KAFKA__BROKERS=$(kafka_brokers)
FLASH__KAFKA__TOPIC_PREFIX=$TOPIC_PREFIX
FLASH__KAFKA__EVENT_SIGNING_KEY=$(secret event-signing-key)
FLASH__IDENTITY__PROVIDER=embedded
FLASH__IDENTITY__ISSUER=$PUBLIC_URL
FLASH__IDENTITY__EMBEDDED__SIGNING_KEY=$CLUSTER_DIR/keys/signing.pem
FLASH__OBJECT_STORE__FILESYSTEM__ROOT=$CLUSTER_DIR/objects
SSL_CERT_FILE=$CLUSTER_DIR/tls/ca.pem
ENV
}

instance_pid() { # instance: the live pid we started, if any
  local file=$PIDS/$1.pid pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--role $(role_of "$1")" || return 1
  echo "$pid"
}

wait_ready() { # instance seconds
  local port i
  port=$(port_of "$1")
  for ((i = 0; i < $2 * 10; i++)); do
    curl -fs -o /dev/null --max-time 1 "http://$HOST:$port/readyz" && return 0
    instance_pid "$1" >/dev/null || { tail -n 20 "$LOGS/$1.log" >&2; die "$1 exited during start-up (log: $LOGS/$1.log)"; }
    sleep 0.1
  done
  tail -n 20 "$LOGS/$1.log" >&2
  die "$1 not ready on $HOST:$port within $2 s (log: $LOGS/$1.log)"
}

start_instance() { # instance
  local name=$1 pid
  if pid=$(instance_pid "$name"); then
    say "$name runs (pid $pid)"
    return
  fi
  mkdir -p "$PIDS" "$LOGS"
  local -a env_vars
  mapfile -t env_vars < <(role_env "$name")
  env "${env_vars[@]}" nohup "$BIN" --role "$(role_of "$name")" >>"$LOGS/$name.log" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDS/$name.pid"
  say "started $name on $HOST:$(port_of "$name") (pid $pid)"
}

stop_instance() { # instance signal
  local pid i
  pid=$(instance_pid "$1") || return 0
  kill "-$2" "$pid" 2>/dev/null || true
  # A SIGTERM drains first (DRAIN_SECS), then stops within the shutdown timeout.
  for ((i = 0; i < (DRAIN_SECS + 15) * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  rm -f "$PIDS/$1.pid"
  say "$1 stopped ($2)"
}

build() {
  # A caller that built the binary already (make bench) skips this.
  [ "${CLUSTER_SKIP_BUILD:-0}" = 1 ] && [ -x "$BIN" ] && [ -f static/index.html ] && return
  scripts/build-tools.sh
  if [ "$PROFILE" = release ]; then
    say "building flash-sale (release)"
    cargo build --release --quiet --bin flash-sale
  else
    cargo build --quiet --all-features --bin flash-sale
  fi
  scripts/web.sh build
}

database() {
  mariadb --protocol=TCP -h "$HOST" -P "$MYSQL_PORT" -uroot \
    -e "CREATE DATABASE IF NOT EXISTS \`$DB\` CHARACTER SET utf8mb4" </dev/null
  local -a env_vars
  mapfile -t env_vars < <(role_env api-1)
  env "${env_vars[@]}" "$BIN" migrate
  env "${env_vars[@]}" "$BIN" seed-demo
  if [ ! -f "$CLUSTER_DIR/keys/signing.pem" ]; then
    mkdir -p "$CLUSTER_DIR/keys"
    env "${env_vars[@]}" "$BIN" keys generate "$CLUSTER_DIR/keys/signing.pem"
  fi
  FLASH_USER_PASSWORD=flash-sale-admin env "${env_vars[@]}" \
    "$BIN" user create admin@flash-sale.local --admin >/dev/null 2>&1 || true
}

up() {
  local started
  started=$(date +%s)
  build
  STACK_SERVICES=mysql scripts/stack.sh up
  scripts/cluster-services.sh redis up
  scripts/cluster-services.sh kafka up
  scripts/cluster-services.sh ca
  database
  local entry
  for entry in "${INSTANCES[@]}"; do start_instance "${entry%%:*}"; done
  for entry in "${INSTANCES[@]}"; do wait_ready "${entry%%:*}" 120; done
  CLUSTER_STATIC_DIR=$ROOT/static scripts/cluster-services.sh nginx up
  curl -fs -o /dev/null --max-time 5 --cacert "$CLUSTER_DIR/tls/ca.pem" "$PUBLIC_URL/readyz" ||
    die "NGINX does not reach the api instances ($PUBLIC_URL/readyz)"
  cat <<MSG

  flash-sale runs in the production shape ($(($(date +%s) - started)) s).
  Web pages:   $PUBLIC_URL/   (trust $CLUSTER_DIR/tls/ca.pem, or accept the warning)
  Instances:   ${INSTANCES[*]}   (logs in $LOGS)
  Redis:       cluster on $HOST:$REDIS_BASE-$((REDIS_BASE + 5));  Kafka: $(kafka_brokers)
  Demo admin:  admin@flash-sale.local / flash-sale-admin   (local only)
  Stop:        make cluster-stop

MSG
}

down() {
  local entry
  for entry in "${INSTANCES[@]}"; do stop_instance "${entry%%:*}" TERM & done
  wait
  scripts/cluster-services.sh down
}

status() {
  local entry name pid
  for entry in "${INSTANCES[@]}"; do
    name=${entry%%:*}
    if pid=$(instance_pid "$name"); then echo "$name: up (pid $pid, $HOST:${entry#*:})"; else echo "$name: down"; fi
  done
  scripts/cluster-services.sh status
}

print_env() {
  cat <<ENV
export CLUSTER_URL=$PUBLIC_URL
export CLUSTER_CA=$CLUSTER_DIR/tls/ca.pem
export CLUSTER_DIR=$CLUSTER_DIR
export CLUSTER_SIGNING_KEY=$CLUSTER_DIR/keys/signing.pem
export CLUSTER_NAMESPACE=$NAMESPACE
export CLUSTER_MYSQL_URL=mysql://root@$HOST:$MYSQL_PORT/$DB
export CLUSTER_REDIS_NODES=$(redis_nodes)
export CLUSTER_KAFKA_BROKERS=$(kafka_brokers)
export CLUSTER_EVENT_SIGNING_KEY=$(secret event-signing-key)
ENV
}

restart_all() {
  local entry name
  for entry in "${INSTANCES[@]}"; do
    name=${entry%%:*}
    stop_instance "$name" TERM
    start_instance "$name"
    wait_ready "$name" 120
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) print_env ;;
  start) [ $# -eq 2 ] || die "usage: $0 start INSTANCE"; port_of "$2" >/dev/null; start_instance "$2"; wait_ready "$2" 120 ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop INSTANCE"; port_of "$2" >/dev/null; stop_instance "$2" TERM ;;
  kill) [ $# -eq 2 ] || die "usage: $0 kill INSTANCE"; port_of "$2" >/dev/null; stop_instance "$2" KILL ;;
  restart-all) restart_all ;;
  cli)
    shift
    mapfile -t env_vars < <(role_env api-1)
    exec env "${env_vars[@]}" FLASH__LOG__LEVEL=warn "$BIN" "$@"
    ;;
  exec)
    shift
    mapfile -t env_vars < <(role_env api-1)
    exec env "${env_vars[@]}" FLASH__LOG__LEVEL=warn "$@"
    ;;
  *) echo "usage: $0 up | down | status | env | start|stop|kill INSTANCE | restart-all | cli ARGS | exec CMD" >&2; exit 2 ;;
esac
