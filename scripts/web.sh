#!/usr/bin/env bash
# The web pages (Vue 3 + Bootstrap 5 in web/, built by Vite into static/).
#
#   scripts/web.sh build   install web/node_modules when missing or when
#                          web/package-lock.json changed, then build into static/
#
# Idempotent and quick when the dependencies are already installed. Installs Node.js and
# npm with apt when they are missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WEB=$ROOT/web
say() { printf '[web] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_node() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && return
  say "installing Node.js and npm (apt)"
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
}

# npm ci only when node_modules is missing or was installed from another lock file.
ensure_deps() {
  local stamp=$WEB/node_modules/.flash-sale-lock.sha256 want
  want=$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)
  if [ -d "$WEB/node_modules" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  say "npm ci (web/)"
  # No install scripts: nothing in the tree needs one (esbuild ships its binary as an
  # optional dependency), and it keeps third-party code from running at install time.
  (cd "$WEB" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  echo "$want" > "$stamp"
}

build() {
  ensure_node
  ensure_deps
  say "building the pages into static/"
  (cd "$WEB" && npm run --silent build -- --logLevel warn)
}

case "${1:-}" in
  build) build ;;
  *) echo "usage: $0 build" >&2; exit 2 ;;
esac
