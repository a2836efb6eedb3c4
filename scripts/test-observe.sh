#!/usr/bin/env bash
# The observability test (part of `make test`; alone: `make test-observe`):
#   1. promtool checks the alert rules and runs their unit tests (every alert fires on
#      a bad series and stays quiet on a healthy one)
#   2. the api, payment and ws roles run as three processes against the local stack,
#      Prometheus (make observe's) scrapes them every second with the rules loaded, and
#      tests/observability/drive.py puts a short purchase load on them, sends 10,000
#      requests with invented methods, evaluates every dashboard panel's queries through
#      Prometheus's API (each must return data) and follows one purchase's request id
#      through the three roles' logs.
# FLASH_SALE_BIN names the binary (target/debug/flash-sale, built when missing). Needs
# the stack (MySQL, Redis, Kafka): brought up when not running, stopped if started here.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SAY_AS=test-observe
export SAY_AS
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

WORK=$(mktemp -d)
pids=()
db=""
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  OBSERVE_DIR=$WORK/prometheus scripts/observe.sh down >/dev/null 2>&1 || true
  [ ! -f "$WORK/started" ] || scripts/stack.sh stop-list "$WORK/started"
  if [ -n "$db" ]; then
    mariadb --protocol=TCP -h 127.0.0.1 -P "${STACK_MYSQL_PORT:-3306}" -uroot \
      -e "DROP DATABASE IF EXISTS \`$db\`" </dev/null || true
  fi
  if [ "${KEEP_OBSERVE_LOGS:-0}" = 1 ]; then say "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PROM_BIN=$(scripts/observe.sh install)
RULES=deploy/observability/prometheus
say "1/2 promtool: rules and their unit tests"
"$PROM_BIN/promtool" check rules "$RULES/alerts.yml"
(cd "$RULES" && "$PROM_BIN/promtool" test rules alerts.test.yml)

say "2/2 the roles under load, Prometheus, the dashboard's queries, one request id"
BIN=${FLASH_SALE_BIN:-${CARGO_TARGET_DIR:-target}/debug/flash-sale}
if [ ! -x "$BIN" ]; then
  scripts/build-tools.sh
  cargo build --quiet --bin flash-sale
fi
STACK_SERVICES="mysql redis kafka" scripts/stack.sh up --started-file "$WORK/started"
eval "$(scripts/stack.sh env)"
MYSQL_PORT=${STACK_MYSQL_PORT:-3306}
run=$(date +%s)-$$
db=observe_${run//-/_}
mariadb --protocol=TCP -h 127.0.0.1 -P "$MYSQL_PORT" -uroot \
  -e "CREATE DATABASE \`$db\` CHARACTER SET utf8mb4" </dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port)
WS_PORT=$(free_port)
PAYMENT_PORT=$(free_port)
PROM_PORT=$(free_port)

# What every role shares; json logs with the debug lines that name a purchase's request.
export FLASH_ENV=test
export FLASH__LOG__FORMAT=json
export RUST_LOG="warn,flash_sale=debug"
export FLASH__MYSQL__URL="mysql://root@127.0.0.1:$MYSQL_PORT/$db"
export FLASH__REDIS__URL="redis://127.0.0.1:${STACK_REDIS_PORT:-6379}"
export FLASH__REDIS__NAMESPACE="observe-$run"
export FLASH__KAFKA__BROKERS="127.0.0.1:${STACK_KAFKA_PORT:-19092}"
export FLASH__KAFKA__TOPIC_PREFIX="observe-$run-"
export FLASH__IDENTITY__PROVIDER=embedded
export FLASH__IDENTITY__ISSUER="http://127.0.0.1:$API_PORT"
export FLASH__IDENTITY__EMBEDDED__SIGNING_KEY="$WORK/signing.pem"
export FLASH__PURCHASE__AUDIT_INTERVAL_SECS=2
export FLASH__PAYMENT__GATEWAY_LATENCY_MS=20
export FLASH__WS__IDLE_TIMEOUT_MS=30000
export FLASH__WS__HEARTBEAT_INTERVAL_MS=5000
export FLASH__SERVER__STATIC_DIR=""

"$BIN" migrate >/dev/null
ADMIN_EMAIL=observe-admin@example.com
ADMIN_PASSWORD=observability-admin
FLASH_USER_PASSWORD=$ADMIN_PASSWORD "$BIN" user create "$ADMIN_EMAIL" --admin >/dev/null

start_role() { # role port
  FLASH__SERVER__PORT=$2 "$BIN" --role "$1" >"$WORK/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 150); do
    curl -fs -o /dev/null "http://127.0.0.1:$2/readyz" && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { tail -n 20 "$WORK/$1.log" >&2; die "the $1 role exited at start"; }
    sleep 0.2
  done
  tail -n 20 "$WORK/$1.log" >&2
  die "the $1 role did not become ready"
}
start_role api "$API_PORT"
start_role payment "$PAYMENT_PORT"
start_role ws "$WS_PORT"

OBSERVE_DIR=$WORK/prometheus OBSERVE_PORT=$PROM_PORT OBSERVE_SCRAPE_INTERVAL=1s \
  OBSERVE_TARGETS="api=127.0.0.1:$API_PORT ws=127.0.0.1:$WS_PORT payment=127.0.0.1:$PAYMENT_PORT" \
  scripts/observe.sh up

python3 tests/observability/drive.py \
  --api "http://127.0.0.1:$API_PORT" --ws "ws://127.0.0.1:$WS_PORT" \
  --prometheus "http://127.0.0.1:$PROM_PORT" \
  --dashboard deploy/observability/grafana/flash-sale.json \
  --logs "api=$WORK/api.log" "payment=$WORK/payment.log" "ws=$WORK/ws.log" \
  --admin "$ADMIN_EMAIL:$ADMIN_PASSWORD"
say "passed"
