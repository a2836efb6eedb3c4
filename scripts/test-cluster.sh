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
# A database, Redis namespace and topic of this run's own (removed at the end): the
# drills and the pages start from the demo coupons alone.
run=drills$started
export CLUSTER_DB=flash_sale_$run CLUSTER_NAMESPACE=$run CLUSTER_TOPIC_PREFIX=$run-

echo "[test-cluster] building the drills"
cargo test --quiet --all-features --test cluster --no-run
scripts/cluster.sh down >/dev/null 2>&1 || true
# MariaDB is the local stack's: started here when it was not running, and then stopped
# again at the end, like `make test` does with the services it starts.
started_file=$(mktemp)
STACK_SERVICES=mysql scripts/stack.sh up --started-file "$started_file"
trap 'scripts/cluster.sh down; mariadb --protocol=TCP -h 127.0.0.1 -P "${STACK_MYSQL_PORT:-3306}" -uroot -e "DROP DATABASE IF EXISTS \`$CLUSTER_DB\`" </dev/null || true; scripts/stack.sh stop-list "$started_file"; rm -f "$started_file"' EXIT
scripts/cluster.sh up
eval "$(scripts/cluster.sh env)"
# The pages through NGINX: the shopper's browser test (sign up, buy, the result live).
# Its other tests exercise Keycloak's sessions; the cluster runs the built-in issuer.
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "[test-cluster] installing chromium (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
echo "[test-cluster] the shopper's browser test through NGINX"
# shellcheck disable=SC2153 # CLUSTER_CA and CLUSTER_URL come from `cluster.sh env`
admin_token=$(curl -fsS --cacert "$CLUSTER_CA" -H 'Content-Type: application/json' \
  -d '{"email":"admin@flash-sale.local","password":"flash-sale-admin"}' "$CLUSTER_URL/api/auth/login" |
  python3 -c 'import sys,json;print(json.load(sys.stdin)["access_token"])')
mkdir -p target/screenshots
BASE_URL=$CLUSTER_URL ADMIN_EMAIL=admin@flash-sale.local ADMIN_PASSWORD=flash-sale-admin \
  ADMIN_TOKEN=$admin_token CHROMIUM=${CHROMIUM:-/usr/bin/chromium} SCREENSHOT_DIR=$ROOT/target/screenshots \
  IGNORE_HTTPS_ERRORS=1 NODE_EXTRA_CA_CERTS=$CLUSTER_CA \
  node --test --test-name-pattern='register, log in, browse, buy' web/tests/shopper.test.js

echo "[test-cluster] drills, one at a time"
cargo test --all-features --test cluster -- --test-threads=1 --nocapture
echo "[test-cluster] done in $(($(date +%s) - started)) s"

