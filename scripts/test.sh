#!/usr/bin/env bash
# The whole test suite against real services: brings the stack up (installing what is
# missing), runs every test, and stops what it started. `make test` runs `make lint` first.
#
# Each test makes its own MariaDB database, Redis namespace and Kafka topic prefix and
# removes them afterwards, so runs can share the machine's servers.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

started=$(mktemp)
cleanup() { scripts/stack.sh stop-list "$started"; rm -f "$started"; }
trap cleanup EXIT

# OpenSearch too: the search engine adapter is tested against a real node.
STACK_SERVICES="mysql redis kafka keycloak opensearch" scripts/stack.sh up --started-file "$started"
eval "$(scripts/stack.sh env)"
# Each test makes its own database; the harness connects to this one to do so.
mariadb --protocol=TCP -h 127.0.0.1 -P "${STACK_MYSQL_PORT:-3306}" -uroot \
  -e "CREATE DATABASE IF NOT EXISTS test CHARACTER SET utf8mb4"

# The cross-provider identity test runs a third-party OIDC issuer from npm.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "[test] installing Node.js and npm (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
if [ ! -d tests/oidc-provider/node_modules/oauth2-mock-server ]; then
  echo "[test] npm ci (tests/oidc-provider)"
  (cd tests/oidc-provider && npm ci --no-audit --no-fund --silent)
fi

export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
export FLASH__MYSQL__URL="mysql://root@127.0.0.1:${STACK_MYSQL_PORT:-3306}/test"
export FLASH__REDIS__URL="redis://127.0.0.1:${STACK_REDIS_PORT:-6379}"
export FLASH__KAFKA__BROKERS="127.0.0.1:${STACK_KAFKA_PORT:-19092}"
export FLASH_TEST_KEYCLOAK_URL="http://127.0.0.1:${STACK_KEYCLOAK_PORT:-8180}"
export FLASH_TEST_OPENSEARCH_URL="http://127.0.0.1:${STACK_OPENSEARCH_PORT:-19200}"

# An S3-compatible server (moto) for the object store tests.
S3_PORT=${STACK_S3_PORT:-19000}
moto=$(scripts/s3-stand-in.sh "$S3_PORT")
cleanup() {
  [ -z "$moto" ] || kill "$moto" 2>/dev/null || true
  scripts/stack.sh stop-list "$started"
  rm -f "$started"
}
export FLASH_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"

# The breakdown test opens 1,000 sockets at once.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# All features: the benchmark-only purchase gates are tested too.
echo "[test] cargo test (all targets, all features)"
cargo test --all-targets --all-features --no-fail-fast
# The load tests (a 50,000-page crawl, a purchase flood) saturate both cores, and a few
# tests start processes of their own (a private broker, two payment instances): alone,
# so they neither starve nor are starved by the timing-sensitive tests.
echo "[test] load tests, one at a time"
cargo test --all-features --test integration -- --ignored --test-threads=1 --nocapture
# Every key family on a Redis Cluster (3 masters, a replica each): the integration tests
# again with redis.mode = cluster. Not those that run private single Redis servers.
# A cluster already running (`make cluster`) is used and left running.
if ! (exec 3<>/dev/tcp/127.0.0.1/"${CLUSTER_REDIS_PORT_BASE:-7001}") 2>/dev/null; then
  trap 'scripts/cluster-services.sh redis down; cleanup' EXIT
fi
scripts/cluster-services.sh redis up
echo "[test] integration tests on a Redis Cluster"
FLASH__REDIS__MODE=cluster FLASH__REDIS__NODES="$(scripts/cluster-services.sh redis nodes)" \
  cargo test --all-features --test integration -- --skip chaos:: --skip round_trips:: \
  --skip purchase::a_retry_after_a_redis_stall_gets_an_order_that_exists
# Schemathesis against the OpenAPI document the api serves: no 5xx, every answer as
# documented.
FLASH_SALE_BIN="${CARGO_TARGET_DIR:-target}/debug/flash-sale" scripts/contract-test.sh
# The deployment: manifests validated and checked against the policy, the Dockerfile
# linted, every role rehearsed as the manifests start it.
FLASH_SALE_BIN="${CARGO_TARGET_DIR:-target}/debug/flash-sale" scripts/test-deploy.sh
# Observability: the alert rules' unit tests, and the dashboard's queries and one
# request id followed through the roles under load.
FLASH_SALE_BIN="${CARGO_TARGET_DIR:-target}/debug/flash-sale" scripts/test-observe.sh
scripts/browser-test.sh
