#!/usr/bin/env bash
# An S3-compatible server for the tests: moto[server] from PyPI, in a venv cached per
# user (later runs skip the install). Starts it on PORT unless something answers there
# already, and prints the PID it started (nothing when it started none).
#   pid=$(scripts/s3-stand-in.sh 19000)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SAY_AS=s3-stand-in
export SAY_AS
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

PORT=${1:?usage: $0 PORT}
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
answers && exit 0

MOTO_VENV=${XDG_CACHE_HOME:-$HOME/.cache}/flash-sale/moto-venv
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  say "installing moto[server] into $MOTO_VENV (pip)"
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]" >&2
fi
"$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"${TMPDIR:-/tmp}/flash-sale-moto.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if answers; then
    echo "$pid"
    exit 0
  fi
  sleep 0.1
done
kill "$pid" 2>/dev/null || true
die "moto did not answer on 127.0.0.1:$PORT (log: ${TMPDIR:-/tmp}/flash-sale-moto.log)"
