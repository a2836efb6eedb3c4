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

export FLASH__MYSQL__URL="mysql://root@127.0.0.1:${STACK_MYSQL_PORT:-3306}/test"
export FLASH__REDIS__URL="redis://127.0.0.1:${STACK_REDIS_PORT:-6379}"
export FLASH__KAFKA__BROKERS="127.0.0.1:${STACK_KAFKA_PORT:-19092}"

echo "[test] cargo test (all targets)"
cargo test --all-targets --no-fail-fast
