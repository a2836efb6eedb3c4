#!/usr/bin/env bash
# `make profile SCENARIO=purchase [PROFILE_SECS=10] [CONNECTIONS=64]`: a CPU profile of the
# api process under one scenario's load, as `make bench` runs it (release build, the
# same wrk scripts, the local stack). Writes bench/profiles/<scenario>-<stamp>.svg (the
# flame graph) and .md (the functions holding the CPU most: own samples, and including
# what they called). pprof-rs samples inside the process (cargo feature `profile`), so
# no system profiler is needed.
#
# Scenarios: purchase (hot coupon, accepted purchases), healthz (the hello-world
# request), browse (a cached coupon).
#
# Reading the flame graph: the x-axis is the share of samples, not time; each box is a
# function, the boxes above it are what it called. A wide box with nothing above it is
# where the CPU went. Compare a scenario's graph with healthz's: what they share is the
# cost of any request (actix, the metrics middleware, tracing), the rest is the
# scenario's own.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SAY_AS=profile
export SAY_AS
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

SCENARIO=${SCENARIO:-purchase}
SECONDS_TO_SAMPLE=${PROFILE_SECS:-10}
CONNECTIONS=${CONNECTIONS:-64}
case "$SCENARIO" in purchase | healthz | browse) ;; *) die "SCENARIO must be purchase, healthz or browse" ;; esac
command -v wrk >/dev/null 2>&1 || apt_install wrk

WORK=$(mktemp -d)
API_PID=""
RUN_ID="$(date +%s)$RANDOM"
DB="fsprofile_$RUN_ID"
cleanup() {
  [ -z "$API_PID" ] || kill "$API_PID" 2>/dev/null || true
  mariadb --protocol=TCP -h 127.0.0.1 -P "${STACK_MYSQL_PORT:-3306}" -uroot \
    -e "DROP DATABASE IF EXISTS \`$DB\`" 2>/dev/null || true
  [ ! -f "$WORK/started" ] || scripts/stack.sh stop-list "$WORK/started"
  rm -rf "$WORK"
}
trap cleanup EXIT

STACK_SERVICES="mysql redis kafka" scripts/stack.sh up --started-file "$WORK/started"
say "building the release binaries with the profiler (the first time takes several minutes)"
scripts/build-tools.sh
cargo build --release --quiet --features bench,profile --bins
BIN=${CARGO_TARGET_DIR:-target}/release/flash-sale
TOOL=${CARGO_TARGET_DIR:-target}/release/flash-sale-bench

export FLASH_ENV=bench
export FLASH__MYSQL__URL="mysql://root@127.0.0.1:${STACK_MYSQL_PORT:-3306}/$DB"
export FLASH__REDIS__URL="redis://127.0.0.1:${STACK_REDIS_PORT:-6379}"
export FLASH__KAFKA__BROKERS="127.0.0.1:${STACK_KAFKA_PORT:-19092}"
export FLASH__REDIS__NAMESPACE="profile:$RUN_ID"
export FLASH__KAFKA__TOPIC_PREFIX="profile$RUN_ID-"
export FLASH__IDENTITY__EMBEDDED__SIGNING_KEY="$WORK/signing.pem"
export FLASH__SERVER__STATIC_DIR=""
PORT=18080
API="http://127.0.0.1:$PORT"

mariadb --protocol=TCP -h 127.0.0.1 -P "${STACK_MYSQL_PORT:-3306}" -uroot -e "CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4"
"$BIN" migrate >/dev/null
"$BIN" keys generate "$FLASH__IDENTITY__EMBEDDED__SIGNING_KEY" >/dev/null
FLASH__SERVER__PORT=$PORT "$BIN" --role api >"$WORK/api.log" 2>&1 &
API_PID=$!
for _ in $(seq 1 300); do curl -fs -o /dev/null "$API/readyz" && break; sleep 0.1; done
curl -fs -o /dev/null "$API/readyz" || { tail -n 20 "$WORK/api.log" >&2; die "the api did not become ready"; }

FLASH_USER_PASSWORD=profile-admin-password "$BIN" user create admin@profile.local --admin >/dev/null
ADMIN=$(curl -fs "$API/api/auth/login" -H 'content-type: application/json' \
  -d '{"email":"admin@profile.local","password":"profile-admin-password"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["access_token"])')
start=$(date -u -d '-1 minute' +%Y-%m-%dT%H:%M:%SZ)
end=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)
COUPON=$(curl -fs "$API/api/admin/coupons" -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
  -d "{\"name\":\"Profiled\",\"description\":\"profile\",\"price_cents\":100,\"total_quantity\":10000000,\"per_user_limit\":100,\"sale_starts_at\":\"$start\",\"sale_ends_at\":\"$end\"}" |
  python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])')
"$TOOL" tokens --count 10000 --prefix shopper --issuer "$API" --out "$WORK/tokens.lua"
export BENCH_WRK_DIR="$ROOT/bench/wrk" BENCH_TOKENS="$WORK/tokens.lua" BENCH_COUPON="$COUPON"
case "$SCENARIO" in
  purchase) SCRIPT=purchase.lua ;;
  healthz) SCRIPT=get.lua; export BENCH_PATH=/healthz ;;
  browse) SCRIPT=get.lua; export BENCH_PATH="/api/coupons/$COUPON" ;;
esac

say "$SCENARIO: warm-up, then $SECONDS_TO_SAMPLE s sampled at $CONNECTIONS connections"
wrk -t2 -c"$CONNECTIONS" -d3s --timeout 5s -s "bench/wrk/$SCRIPT" "$API" >/dev/null 2>&1
wrk -t2 -c"$CONNECTIONS" -d"$((SECONDS_TO_SAMPLE + 3))s" --timeout 5s -s "bench/wrk/$SCRIPT" "$API" >"$WORK/wrk.out" 2>&1 &
WRK=$!
sleep 1
curl -fs --max-time $((SECONDS_TO_SAMPLE + 60)) "$API/debug/profile?seconds=$SECONDS_TO_SAMPLE" >"$WORK/profile.json"
wait "$WRK" || true

mkdir -p bench/profiles
STAMP="$SCENARIO-$(date -u +%Y%m%dT%H%M%SZ)"
python3 - "$WORK/profile.json" "bench/profiles/$STAMP" "$SCENARIO" "$CONNECTIONS" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import json, sys
profile = json.load(open(sys.argv[1]))
out, scenario, connections, commit = sys.argv[2:6]
open(out + ".svg", "w").write(profile["flamegraph_svg"])
with open(out + ".md", "w") as md:
    md.write(f"# CPU profile: {scenario}, {connections} connections, commit {commit}\n\n")
    md.write(f"{profile['samples']} samples in {profile['seconds']} s at 997 Hz (every thread of the api process).\n")
    sections = (("Own samples (on top of the stack)", "top_self"),
                ("This crate's functions, including callees", "top_ours"),
                ("Any function, including callees", "top_inclusive"))
    for title, key in sections:
        md.write(f"\n## {title}\n\n| % | samples | function |\n|---:|---:|---|\n")
        for hot in profile[key]:
            md.write(f"| {hot['percent']:.1f} | {hot['samples']} | `{hot['function']}` |\n")
PY
say "flame graph: bench/profiles/$STAMP.svg"
say "top functions: bench/profiles/$STAMP.md"
head -n 20 "bench/profiles/$STAMP.md"
