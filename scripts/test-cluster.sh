#!/usr/bin/env bash
# `make test-cluster`: the fault drills of tests/cluster/ against the production shape.
# It runs a cluster of its own: a running `make cluster` is stopped first, and the
# cluster is stopped again at the end. The drills play the load balancer in front of
# NGINX (CLUSTER_TRUSTED_HOPS=127.0.0.1), so each shopper has an address of its own.
#
# CLUSTER_PROFILE=release runs the release build (default: the debug build the test suite
# already made).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CLUSTER_TRUSTED_HOPS=127.0.0.1
export CLUSTER_PROFILE=${CLUSTER_PROFILE:-debug}
started=$(date +%s)

echo "[test-cluster] building the drills"
cargo test --quiet --all-features --test cluster --no-run
scripts/cluster.sh down >/dev/null 2>&1 || true
trap 'scripts/cluster.sh down' EXIT
scripts/cluster.sh up
eval "$(scripts/cluster.sh env)"
echo "[test-cluster] drills, one at a time"
cargo test --all-features --test cluster -- --test-threads=1 --nocapture
echo "[test-cluster] done in $(($(date +%s) - started)) s"
