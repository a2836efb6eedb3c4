#!/usr/bin/env bash
# Contract test: Schemathesis (pinned, from PyPI) reads the OpenAPI document the api serves
# (GET /api/openapi.json), generates requests for every operation and checks every answer
# against it with all its checks: no 5xx, documented status codes, content types, headers
# and bodies, valid input accepted, invalid input rejected, undeclared methods refused.
#
#   scripts/contract-test.sh [ST_RUN_OPTION...]   exit 0 only when Schemathesis finds
#                                                nothing; options go to `st run`
#                                                (e.g. --include-path /api/coupons)
# Environment:
#   FLASH_SALE_BIN         the binary to test (default target/debug/flash-sale; not built here)
#   CONTRACT_MAX_EXAMPLES  test cases per operation and phase (50)
#   CONTRACT_SEED          Schemathesis's random seed (fixed, so that a run can be repeated)
#   CONTRACT_PORT          HTTP port of the app (default: a free one)
#   CONTRACT_SCHEMA        a document file to test instead of the served one (to try a
#                          change of the document without a rebuild)
#   CONTRACT_DIR           logs and reports (${TMPDIR:-/tmp}/flash-sale-contract)
#   CONTRACT_KEEP=1        keep the database, Redis keys and topics afterwards
#
# It uses the local stack (scripts/stack.sh up; services it had to start are stopped at
# the end) with a database, Redis namespace and topic prefix of its own, replaced on every
# run, and one process serving every role (`--role all`, so /ws is served too) with the
# built-in token issuer and the limits of default.toml (config/contract.toml).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SAY_AS=contract
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
START=$(date +%s)

SCHEMATHESIS_VERSION=4.32.5
VENV=${XDG_CACHE_HOME:-$HOME/.cache}/flash-sale/schemathesis-venv
BIN=${FLASH_SALE_BIN:-$ROOT/target/debug/flash-sale}
MAX_EXAMPLES=${CONTRACT_MAX_EXAMPLES:-50}
SEED=${CONTRACT_SEED:-20251128}
WORK=${CONTRACT_DIR:-${TMPDIR:-/tmp}/flash-sale-contract}
DB=contract
NAMESPACE=contract
# A topic prefix per run, so that events of an earlier run never reach the fresh database.
TOPIC_PREFIX="contract-$START-"
MYSQL_PORT=${STACK_MYSQL_PORT:-3306}
REDIS_PORT=${STACK_REDIS_PORT:-6379}
BROKERS="127.0.0.1:${STACK_KAFKA_PORT:-19092}"

[ -x "$BIN" ] || die "no binary at $BIN: build it (cargo build) or set FLASH_SALE_BIN"
command -v curl >/dev/null 2>&1 || apt_install curl
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
command -v redis-cli >/dev/null 2>&1 || apt_install redis-tools
command -v mariadb >/dev/null 2>&1 || apt_install mariadb-client

# --- Schemathesis, in a venv cached per user ---------------------------------------------
if [ "$("$VENV/bin/st" --version 2>/dev/null)" != "st, version $SCHEMATHESIS_VERSION" ]; then
  say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV (pip)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
PY=$VENV/bin/python

# --- our database, Redis namespace and topics --------------------------------------------
mysql() { mariadb --protocol=TCP -h 127.0.0.1 -P "$MYSQL_PORT" -uroot "$@" </dev/null; }

# Removes the contract test's database and Redis namespace.
drop_state() {
  mysql -e "DROP DATABASE IF EXISTS \`$DB\`"
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --scan --pattern "$NAMESPACE:*" |
    xargs -r -d '\n' -n 500 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" DEL >/dev/null
}

# Deletes the Kafka topics whose names start with $1. Best effort: the app has no command
# for it, so this needs Java and the Apache Kafka jars scripts/kafka-broker.sh cached.
delete_topics() {
  local libs
  libs=$(find "$CACHE_DIR" -maxdepth 2 -path "$CACHE_DIR/kafka-*/libs" 2>/dev/null | head -n 1)
  if ! command -v java >/dev/null 2>&1 || [ ! -f "$libs/.complete" ]; then
    say "note: topics $1* stay on the broker (deleting them needs Java and the Kafka jars)"
    return 0
  fi
  local src
  src=$(mktemp -d)
  cat >"$src/DeleteTopics.java" <<'JAVA'
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;

public class DeleteTopics {
  public static void main(String[] args) throws Exception {
    try (Admin admin = Admin.create(Map.of("bootstrap.servers", args[0]))) {
      List<String> topics = admin.listTopics().names().get(10, TimeUnit.SECONDS).stream()
          .filter(name -> name.startsWith(args[1])).toList();
      if (!topics.isEmpty()) admin.deleteTopics(topics).all().get(10, TimeUnit.SECONDS);
    }
  }
}
JAVA
  java -cp "$libs/*" "$src/DeleteTopics.java" "$BROKERS" "$1" >"$src/log" 2>&1 ||
    { tail -n 5 "$src/log" >&2; say "note: could not delete the topics $1*"; }
  rm -rf "$src"
}

started=$(mktemp)
app=""
finish() {
  local rc=$?
  if [ -n "$app" ] && kill -0 "$app" 2>/dev/null; then
    kill -TERM "$app" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$app" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$app" 2>/dev/null || true
    wait "$app" 2>/dev/null || true
  fi
  if [ "${CONTRACT_KEEP:-0}" != 1 ]; then
    drop_state 2>/dev/null || true
    # This run's topics, and those of runs that were killed before they could clean up.
    delete_topics contract-
  fi
  scripts/stack.sh stop-list "$started" || true
  rm -f "$started"
  say "finished in $(($(date +%s) - START)) s (exit $rc; logs in $WORK)"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

scripts/stack.sh up --started-file "$started"

if [ -e "$WORK" ] && [ ! -e "$WORK/.contract-test" ]; then
  die "$WORK exists and is not this script's (set CONTRACT_DIR)"
fi
rm -rf "$WORK"
mkdir -p "$WORK/objects" "$WORK/keys" "$WORK/report" "$WORK/pages"
touch "$WORK/.contract-test"
# A stand-in for the built web pages: the pages' catch-all at / is mounted as in
# development, so its effect on the API's routing is tested too.
echo '<!doctype html><title>flash-sale</title>' >"$WORK/pages/index.html"
drop_state
mysql -e "CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4"

# Only this script's settings: none inherited from the caller's environment.
while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^FLASH(__|_ENV$|_ROLE$|_CONFIG_DIR$)')
PORT=${CONTRACT_PORT:-$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
BASE="http://127.0.0.1:$PORT"
export FLASH_ENV=contract
export FLASH__SERVER__PORT=$PORT
export FLASH__MYSQL__URL="mysql://root@127.0.0.1:$MYSQL_PORT/$DB"
export FLASH__REDIS__URL="redis://127.0.0.1:$REDIS_PORT"
export FLASH__REDIS__NAMESPACE=$NAMESPACE
export FLASH__KAFKA__BROKERS=$BROKERS
export FLASH__KAFKA__TOPIC_PREFIX=$TOPIC_PREFIX
export FLASH__IDENTITY__EMBEDDED__SIGNING_KEY="$WORK/keys/signing.pem"
export FLASH__OBJECT_STORE__FILESYSTEM__ROOT="$WORK/objects"
export FLASH__SERVER__STATIC_DIR="$WORK/pages"

# --- the app, two accounts, a few coupons ------------------------------------------------
say "migrating the database $DB"
"$BIN" migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; die "migrate failed"; }
SHOPPER_EMAIL=shopper@contract.test
ADMIN_EMAIL=admin@contract.test
PASSWORD="contract-$START-password"
FLASH_USER_PASSWORD=$PASSWORD "$BIN" user create "$SHOPPER_EMAIL" >/dev/null
FLASH_USER_PASSWORD=$PASSWORD "$BIN" user create "$ADMIN_EMAIL" --admin >/dev/null

say "starting $BIN --role all on $BASE (log: $WORK/app.log)"
"$BIN" --role all >"$WORK/app.log" 2>&1 &
app=$!
for _ in $(seq 1 600); do
  curl -fs -o /dev/null "$BASE/readyz" && break
  kill -0 "$app" 2>/dev/null || { tail -n 20 "$WORK/app.log" >&2; die "flash-sale exited during start-up"; }
  sleep 0.1
done
curl -fs -o /dev/null "$BASE/readyz" || { curl -s "$BASE/readyz" >&2; die "not ready within 60 s"; }

json_field() { "$PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
login() { # email -> access token
  curl -fsS -X POST "$BASE/api/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\": \"$1\", \"password\": \"$PASSWORD\"}" | json_field access_token
}
SHOPPER_TOKEN=$(login "$SHOPPER_EMAIL")
ADMIN_TOKEN=$(login "$ADMIN_EMAIL")
export SHOPPER_TOKEN ADMIN_TOKEN

at() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }
coupon() { # name starts ends quantity per_user_limit
  curl -fsS -o /dev/null -X POST "$BASE/api/admin/coupons" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d "{\"name\": \"$1\", \"description\": \"contract test\", \"price_cents\": 500,
         \"total_quantity\": $4, \"per_user_limit\": $5,
         \"sale_starts_at\": \"$(at "$2")\", \"sale_ends_at\": \"$(at "$3")\"}"
}
# Every state of a sale: open, sold out after one unit, not started, over.
coupon "On sale" "-1 hour" "+1 day" 100000 100
coupon "Last one" "-1 hour" "+1 day" 1 1
coupon "Coming soon" "+1 day" "+2 days" 100 2
coupon "Over" "-2 days" "-1 day" 100 2

# --- Schemathesis --------------------------------------------------------------------------
cat >"$WORK/schemathesis.toml" <<'TOML'
# Every run from scratch (no failures replayed from earlier runs, no .schemathesis/ here).
cache.enabled = false
# The shopper's token everywhere, the admin's for the admin operations.
headers = { Authorization = "Bearer ${SHOPPER_TOKEN}" }

[[operations]]
include-path-regex = "^/api/admin/"
headers = { Authorization = "Bearer ${ADMIN_TOKEN}" }

# A WebSocket handshake carries the token as its subprotocols. Schemathesis cannot
# upgrade (it does not speak WebSocket, and a 101 breaks its checks), so a handshake
# past authentication is refused with the documented 400 INVALID_REQUEST.
[[operations]]
include-operation-id = "upgrade"
headers = { Sec-WebSocket-Protocol = "bearer, ${SHOPPER_TOKEN}" }
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

# Rules JSON Schema cannot state, so schema-valid input may break them (each answer is
# still checked against the document): a sale must end after it starts and the per-user
# limit must not exceed the quantity (422 INVALID_COUPON) ...
[[operations]]
include-operation-id = ["create_coupon", "update_coupon"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]

# ... a search's q must not be blank and min_price must not exceed max_price
# (422 INVALID_SEARCH) ...
[[operations]]
include-operation-id = "search_coupons"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "422", "429", "5xx"]

# ... and an image is recognised by its first bytes (415 UNSUPPORTED_IMAGE).
[[operations]]
include-operation-id = "upload_image"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "415", "429", "5xx"]
TOML

SCHEMA=${CONTRACT_SCHEMA:-$BASE/api/openapi.json}
say "schemathesis $SCHEMATHESIS_VERSION on $SCHEMA: all checks, $MAX_EXAMPLES examples per operation, seed $SEED"
rc=0
# Unsanitized output, so that each reproducing curl is complete (the tokens are this
# run's, valid for an hour on a database that is dropped at the end).
"$VENV/bin/st" --config-file "$WORK/schemathesis.toml" run "$SCHEMA" \
  --url "$BASE" \
  --checks all \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --generation-database none \
  --workers 1 \
  --request-timeout 10 \
  --continue-on-failure \
  --output-sanitize false \
  --report junit --report-dir "$WORK/report" \
  --no-color "$@" 2>&1 | tee "$WORK/schemathesis.log" || rc=$?
if [ "$rc" -ne 0 ]; then
  say "contract violations (output: $WORK/schemathesis.log, app log: $WORK/app.log)"
  exit "$rc"
fi
say "the api keeps its documented contract"
