#!/usr/bin/env bash
# Browser tests of the web pages: a real Chromium (Debian's, driven by playwright-core)
# against `flash-sale --role all` with its own database, Redis namespace and topics.
#
#   scripts/browser-test.sh              build pages and binary, run web/tests/*.test.js
#   scripts/browser-test.sh FILE...      only these test files
#
# Installs chromium with apt when /usr/bin/chromium is missing (playwright's own browser
# downloads are never used). Screenshots go to target/screenshots/. Exits non-zero when
# a test fails; the server, database, Redis keys and temp files are removed either way.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { printf '[browser-test] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

MYSQL_PORT=${STACK_MYSQL_PORT:-3306}
REDIS_PORT=${STACK_REDIS_PORT:-6379}
KAFKA_PORT=${STACK_KAFKA_PORT:-19092}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$CHROMIUM" ]; then
  say "installing chromium (apt)"
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi

# --- everything this run creates, removed on exit ------------------------------------
RUN_ID=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
DB="fsb_$(date +%s)_$RUN_ID"
NAMESPACE="b:$RUN_ID"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/flash-sale-browser.XXXXXX")
started="$TMP/stack-started"
app=""
db_created=""

cleanup() {
  local rc=$?
  set +e
  if [ -n "$app" ] && kill -0 "$app" 2>/dev/null; then
    kill -TERM "$app" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$app" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$app" 2>/dev/null
    wait "$app" 2>/dev/null
  fi
  if [ -n "$db_created" ]; then
    mariadb --protocol=TCP -h 127.0.0.1 -P "$MYSQL_PORT" -uroot -e "DROP DATABASE IF EXISTS \`$DB\`"
  fi
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --scan --pattern "$NAMESPACE:*" |
    xargs -r redis-cli -h 127.0.0.1 -p "$REDIS_PORT" del >/dev/null
  scripts/stack.sh stop-list "$started" 2>/dev/null
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/stack.sh up --started-file "$started"
eval "$(scripts/stack.sh env)"
KEYCLOAK_URL="http://127.0.0.1:${STACK_KEYCLOAK_PORT:-8180}"
command -v redis-cli >/dev/null 2>&1 || {
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools >&2
}

scripts/web.sh build
scripts/build-tools.sh
say "cargo build"
cargo build --quiet
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/flash-sale

PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
export FLASH_ENV=test
export FLASH__SERVER__PORT=$PORT
export FLASH__SERVER__STATIC_DIR=$ROOT/static
export FLASH__MYSQL__URL="mysql://root@127.0.0.1:$MYSQL_PORT/$DB"
export FLASH__REDIS__URL="redis://127.0.0.1:$REDIS_PORT"
export FLASH__REDIS__NAMESPACE=$NAMESPACE
export FLASH__KAFKA__BROKERS="127.0.0.1:$KAFKA_PORT"
export FLASH__KAFKA__TOPIC_PREFIX="b$RUN_ID-"
# Keycloak of the local stack is the provider, as in `make dev` and the deployments.
export FLASH__IDENTITY__PROVIDER=keycloak
export FLASH__IDENTITY__ISSUER="$KEYCLOAK_URL/realms/flash-sale"
export FLASH__IDENTITY__ROLES_CLAIM=realm_access.roles
export FLASH__IDENTITY__KEYCLOAK__BASE_URL=$KEYCLOAK_URL
export FLASH__OBJECT_STORE__FILESYSTEM__ROOT=$TMP/objects
# Slow enough that PENDING is on screen before PAID.
export FLASH__PAYMENT__GATEWAY_LATENCY_MS=200
# config/test.toml's tiny timings suit the integration tests, not a browser.
export FLASH__WS__IDLE_TIMEOUT_MS=30000
export FLASH__WS__HEARTBEAT_INTERVAL_MS=5000
export FLASH__CATALOG__LOCAL_TTL_MS=1000
export FLASH__CATALOG__REDIS_TTL_MS=1000

mariadb --protocol=TCP -h 127.0.0.1 -P "$MYSQL_PORT" -uroot \
  -e "CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4"
db_created=1
"$BIN" migrate >"$TMP/migrate.log" 2>&1 || { cat "$TMP/migrate.log" >&2; exit 1; }
"$BIN" seed-demo >/dev/null
# The realm is shared by runs (users stay in Keycloak): an admin of this run's own.
ADMIN_EMAIL="admin-$RUN_ID@example.com"
ADMIN_PASSWORD="admin-$RUN_ID-pw"
FLASH_USER_PASSWORD=$ADMIN_PASSWORD "$BIN" user create "$ADMIN_EMAIL" --admin >/dev/null

say "starting flash-sale on 127.0.0.1:$PORT (database $DB)"
"$BIN" --role all >"$TMP/server.log" 2>&1 &
app=$!
ready=""
for _ in $(seq 1 600); do
  if curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$app" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ready" ]; then
  say "flash-sale did not become ready; its log:"
  tail -n 40 "$TMP/server.log" >&2
  exit 1
fi

# One admin login for the whole run: logins are rate-limited per e-mail.
ADMIN_TOKEN=$(curl -fsS -H 'Content-Type: application/json' \
  -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" \
  "http://127.0.0.1:$PORT/api/auth/login" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).access_token))')

mkdir -p target/screenshots
if [ $# -gt 0 ]; then tests=("$@"); else tests=(web/tests/*.test.js); fi
say "node --test ${tests[*]}"
status=0
BASE_URL="http://127.0.0.1:$PORT" ADMIN_EMAIL=$ADMIN_EMAIL ADMIN_PASSWORD=$ADMIN_PASSWORD ADMIN_TOKEN=$ADMIN_TOKEN \
  CHROMIUM=$CHROMIUM SCREENSHOT_DIR=$ROOT/target/screenshots \
  node --test "${tests[@]}" || status=$?
if [ "$status" -ne 0 ]; then
  say "tests failed; the server's log (last 60 lines):"
  tail -n 60 "$TMP/server.log" >&2
fi
exit "$status"
