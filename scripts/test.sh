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

scripts/stack.sh up --started-file "$started"

# The cross-provider identity test runs a third-party OIDC issuer from npm.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "[test] installing Node.js and npm (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
if [ ! -d tests/oidc-provider/node_modules/oauth2-mock-server ]; then
  echo "[test] npm ci (tests/oidc-provider)"
  (cd tests/oidc-provider && npm ci --no-audit --no-fund --silent)
fi

export FLASH__MYSQL__URL="mysql://root@127.0.0.1:${STACK_MYSQL_PORT:-3306}/test"
export FLASH__REDIS__URL="redis://127.0.0.1:${STACK_REDIS_PORT:-6379}"
export FLASH__KAFKA__BROKERS="127.0.0.1:${STACK_KAFKA_PORT:-19092}"

echo "[test] cargo test (all targets)"
cargo test --all-targets --no-fail-fast
