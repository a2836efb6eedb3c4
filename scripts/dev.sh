#!/usr/bin/env bash
# `make dev`: local stack up, build, migrate, seed demo coupons, run every role in one
# process in the foreground and print where to point a browser. Ctrl-C stops the app
# (the stack keeps running for the next start; `make stop` stops it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

scripts/stack.sh up
scripts/build-tools.sh
# The Keycloak client secret the stack generated (.stack/keycloak/client-secret).
eval "$(scripts/stack.sh env)"
scripts/web.sh build

export FLASH_ENV=${FLASH_ENV:-dev}
export FLASH__MYSQL__URL=${FLASH__MYSQL__URL:-"mysql://root@127.0.0.1:${STACK_MYSQL_PORT:-3306}/flash_sale"}
export FLASH__REDIS__URL=${FLASH__REDIS__URL:-"redis://127.0.0.1:${STACK_REDIS_PORT:-6379}"}
export FLASH__KAFKA__BROKERS=${FLASH__KAFKA__BROKERS:-"127.0.0.1:${STACK_KAFKA_PORT:-19092}"}
KEYCLOAK_URL="http://127.0.0.1:${STACK_KEYCLOAK_PORT:-8180}"
export FLASH__IDENTITY__KEYCLOAK__BASE_URL=${FLASH__IDENTITY__KEYCLOAK__BASE_URL:-$KEYCLOAK_URL}
if [ "${FLASH__IDENTITY__PROVIDER:-keycloak}" = keycloak ]; then
  export FLASH__IDENTITY__ISSUER=${FLASH__IDENTITY__ISSUER:-"$KEYCLOAK_URL/realms/flash-sale"}
else
  # The built-in issuer: its own address is the issuer, roles in the `roles` claim.
  export FLASH__IDENTITY__ISSUER=${FLASH__IDENTITY__ISSUER:-} FLASH__IDENTITY__ROLES_CLAIM=roles
fi
PORT=${FLASH__SERVER__PORT:-8080}

echo "[dev] building"
cargo build --quiet
BIN=${CARGO_TARGET_DIR:-target}/debug/flash-sale

# The database itself is ours to create; migrations make the tables.
db=$(basename "${FLASH__MYSQL__URL%%\?*}")
mariadb --protocol=TCP -h 127.0.0.1 -P "${STACK_MYSQL_PORT:-3306}" -uroot \
  -e "CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4"
"$BIN" migrate
"$BIN" seed-demo
# A demo admin for the admin pages (development only; the password is printed below).
ADMIN_EMAIL=admin@flash-sale.local
ADMIN_PASSWORD=flash-sale-admin
FLASH_USER_PASSWORD=$ADMIN_PASSWORD "$BIN" user create "$ADMIN_EMAIL" --admin

"$BIN" --role all &
app=$!
trap 'kill -TERM $app 2>/dev/null; wait $app' INT TERM
for _ in $(seq 1 300); do
  if curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then break; fi
  kill -0 $app 2>/dev/null || { echo "[dev] flash-sale exited during start-up" >&2; exit 1; }
  sleep 0.1
done
cat <<MSG

  flash-sale is running (--role all).
  Web pages:  http://127.0.0.1:$PORT/
  Readiness:  http://127.0.0.1:$PORT/readyz
  Metrics:    http://127.0.0.1:$PORT/metrics
  Demo admin: $ADMIN_EMAIL / $ADMIN_PASSWORD   (development only)
  Keycloak:   http://127.0.0.1:${STACK_KEYCLOAK_PORT:-8180}/admin/  (admin / password in .stack/keycloak/admin-password)
  Ctrl-C stops it; 'make stop' stops the local stack.

MSG
wait $app
