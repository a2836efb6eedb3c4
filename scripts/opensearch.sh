#!/usr/bin/env bash
# OpenSearch (a single node, no security plugin) from Maven Central, for the search
# engine adapter's tests and for trying `catalog.search.engine = "opensearch"` locally.
#
#   scripts/opensearch.sh install          fetch and unpack the distribution once per
#                                          machine (cached; prints its directory)
#   scripts/opensearch.sh run DIR PORT     run it in the foreground (exec: the pid is the
#                                          JVM's), config, data and logs under DIR
#
# The distribution is OpenSearch's integration-test zip: the server and its HTTP module,
# no bundled JDK. 2.19 runs on Java 17 (it still uses the Java security manager, which
# Java 24 and later removed). OpenSearch refuses to run as root: as root the node runs
# as the unprivileged user `nobody`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SAY_AS=opensearch
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

VERSION=${OPENSEARCH_VERSION:-2.19.6}
HOME_DIR=$CACHE_DIR/opensearch-$VERSION

install() {
  if [ -f "$HOME_DIR/.complete" ]; then
    echo "$HOME_DIR"
    return
  fi
  say "fetching OpenSearch $VERSION from Maven Central (about 56 MB, once per machine)"
  unpack_maven_zip "org.opensearch.distribution.integ-test-zip:opensearch:$VERSION:zip" \
    "opensearch-$VERSION.zip" "opensearch-$VERSION" "$HOME_DIR"
  touch "$HOME_DIR/.complete"
  echo "$HOME_DIR"
}

# A Java 17 home: 2.19 does not start on Java 24 or later.
java17_home() {
  local candidate
  for candidate in "${OPENSEARCH_JAVA_HOME:-}" /usr/lib/jvm/java-17-openjdk-*; do
    if [ -n "$candidate" ] && [ -x "$candidate/bin/java" ]; then
      echo "$candidate"
      return
    fi
  done
  apt_install openjdk-17-jre-headless
  for candidate in /usr/lib/jvm/java-17-openjdk-*; do
    [ -x "$candidate/bin/java" ] && echo "$candidate" && return
  done
  die "no Java 17 under /usr/lib/jvm after installing openjdk-17-jre-headless"
}

run() { # DIR PORT
  local dir=$1 port=$2 home
  home=$(install)
  mkdir -p "$dir/data" "$dir/logs" "$dir/tmp"
  if [ ! -d "$dir/config" ]; then
    cp -r "$home/config" "$dir/config"
    # The heap comes from OPENSEARCH_JAVA_OPTS below; no GC log file.
    sed -i -e '/^-Xm[sx]/d' -e '/Xlog:gc/d' "$dir/config/jvm.options"
  fi
  export OPENSEARCH_JAVA_HOME
  OPENSEARCH_JAVA_HOME=$(java17_home)
  # A small heap, not touched up front: the node holds a few thousand coupons.
  export OPENSEARCH_JAVA_OPTS=${OPENSEARCH_JAVA_OPTS:-"-Xms384m -Xmx384m -XX:-AlwaysPreTouch"}
  export OPENSEARCH_PATH_CONF=$dir/config OPENSEARCH_TMPDIR=$dir/tmp
  local args=(
    -Ecluster.name=flash-sale -Enode.name=flash-sale-1
    -Ediscovery.type=single-node
    -Enetwork.host=127.0.0.1 -Ehttp.port="$port" -Etransport.port=$((port + 100))
    -Epath.data="$dir/data" -Epath.logs="$dir/logs"
    -Ecluster.routing.allocation.disk.threshold_enabled=false
  )
  if [ "$(id -u)" = 0 ]; then
    # `nobody` cannot read root's cache: run a linked (else copied) tree under DIR.
    if [ ! -f "$dir/opensearch-$VERSION/.complete" ]; then
      rm -rf "$dir/opensearch-$VERSION"
      cp -al "$home" "$dir/opensearch-$VERSION" 2>/dev/null || cp -a "$home" "$dir/opensearch-$VERSION"
    fi
    home=$dir/opensearch-$VERSION
    chown -R 65534:65534 "$dir/config" "$dir/data" "$dir/logs" "$dir/tmp"
    exec setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$dir" \
      "$home/bin/opensearch" "${args[@]}"
  fi
  exec "$home/bin/opensearch" "${args[@]}"
}

case "${1:-}" in
  install) install ;;
  run) run "${2:?usage: $0 run DIR PORT}" "${3:?usage: $0 run DIR PORT}" ;;
  *) echo "usage: $0 install | run DIR PORT" >&2; exit 2 ;;
esac
