#!/usr/bin/env bash
# Keycloak (Quarkus distribution) from Maven Central, with the realm of deploy/keycloak/.
#
#   scripts/keycloak.sh install          fetch, unpack and build the server once per
#                                        machine (cached; prints its directory)
#   scripts/keycloak.sh run DIR PORT     run it in the foreground (exec: the pid is the
#                                        JVM's), database and secrets under DIR
#
# First start imports deploy/keycloak/realm.json. The realm's client secret and the
# bootstrap admin's password are generated into DIR on first use and read from there
# by the other scripts (DIR/client-secret, DIR/admin-password). A changed realm file gets
# a fresh database (DIR/db-<hash of the realm file>), since Keycloak never re-imports a
# realm that exists.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SAY_AS=keycloak
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

VERSION=${KEYCLOAK_VERSION:-26.5.6}
HOME_DIR=$CACHE_DIR/keycloak-$VERSION
# Options fixed when the server is built (kc.sh build); `start --optimized` then skips
# the slow re-augmentation on every start.
BUILD_OPTS=(--db=dev-file --health-enabled=false --metrics-enabled=false)

install() {
  if [ -f "$HOME_DIR/.complete" ]; then
    echo "$HOME_DIR"
    return
  fi
  say "fetching Keycloak $VERSION from Maven Central (about 160 MB, once per machine)"
  unpack_maven_zip "org.keycloak:keycloak-quarkus-dist:$VERSION:zip" \
    "keycloak-quarkus-dist-$VERSION.zip" "keycloak-$VERSION" "$HOME_DIR"
  say "building the server (once per machine)"
  "$HOME_DIR/bin/kc.sh" build "${BUILD_OPTS[@]}" >&2 || die "kc.sh build failed"
  touch "$HOME_DIR/.complete"
  echo "$HOME_DIR"
}

# A secret kept in a file of DIR, made on first use.
secret_file() { # path
  if [ ! -s "$1" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$1")
  fi
  cat "$1"
}

run() { # DIR PORT
  local dir=$1 port=$2 home realm_key
  home=$(install)
  mkdir -p "$dir"
  realm_key=$(content_key "$ROOT/deploy/keycloak/realm.json")
  # The import directory is Keycloak's own; the file there is a copy of ours.
  mkdir -p "$home/data/import"
  cp "$ROOT/deploy/keycloak/realm.json" "$home/data/import/flash-sale-realm.json"
  FLASH_KEYCLOAK_CLIENT_SECRET=$(secret_file "$dir/client-secret")
  KC_BOOTSTRAP_ADMIN_PASSWORD=$(secret_file "$dir/admin-password")
  export FLASH_KEYCLOAK_CLIENT_SECRET KC_BOOTSTRAP_ADMIN_PASSWORD
  export KC_BOOTSTRAP_ADMIN_USERNAME=admin
  export JAVA_OPTS_KC_HEAP=${KEYCLOAK_HEAP:-"-Xms128m -Xmx768m"}
  exec "$home/bin/kc.sh" start --optimized \
    --http-enabled=true --http-host=127.0.0.1 --http-port="$port" \
    --hostname-strict=false --cache=local \
    --db-url="jdbc:h2:file:$dir/db-$realm_key/keycloakdb;NON_KEYWORDS=VALUE" \
    --import-realm
}

case "${1:-}" in
  install) install ;;
  run) [ $# -eq 3 ] || die "usage: $0 run DIR PORT"; run "$2" "$3" ;;
  *) echo "usage: $0 install | run DIR PORT" >&2; exit 2 ;;
esac
