#!/usr/bin/env bash
# Apache Kafka (KRaft, one combined broker + controller) from Maven Central.
#
#   scripts/kafka-broker.sh install          fetch the broker's jars once per machine
#                                            (cached; prints the directory)
#   scripts/kafka-broker.sh run DIR PORT     format DIR on first use, then run the broker
#                                            in the foreground (exec: the pid is the JVM's)
#
# The jars are those of deploy/kafka/pom.xml; the configuration is
# deploy/kafka/server.properties with the ports and DIR filled in. Data stays in DIR/data,
# so a restart keeps every event. The controller listens on PORT + 1. KAFKA_ADVERTISED_PORT
# makes clients reach the broker through another port (a test's fault proxy).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SAY_AS=kafka
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

POM=$ROOT/deploy/kafka/pom.xml
LIBS=$CACHE_DIR/kafka-$(content_key "$POM")/libs

install() {
  if [ -f "$LIBS/.complete" ]; then
    echo "$LIBS"
    return
  fi
  need_java
  say "fetching Apache Kafka and its dependencies from Maven Central (once per machine)"
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$LIBS" >&2 || die "mvn could not fetch the Kafka broker"
  touch "$LIBS/.complete"
  echo "$LIBS"
}

run() { # DIR PORT
  local dir=$1 port=$2 libs
  libs=$(install)
  mkdir -p "$dir/data"
  sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$((port + 1))|g" \
    -e "s|@ADVERTISED_PORT@|${KAFKA_ADVERTISED_PORT:-$port}|g" \
    -e "s|@DATA_DIR@|$dir/data|g" "$ROOT/deploy/kafka/server.properties" >"$dir/server.properties"
  local jvm=(-Xms256m "-Xmx${KAFKA_HEAP:-1g}" -XX:+UseG1GC
    "-Dlog4j2.configurationFile=$ROOT/deploy/kafka/log4j2.properties" -cp "$libs/*")
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java "${jvm[@]}" kafka.tools.StorageTool random-uuid)
    java "${jvm[@]}" kafka.tools.StorageTool format --ignore-formatted \
      -t "$cluster_id" -c "$dir/server.properties" >&2
  fi
  exec java "${jvm[@]}" kafka.Kafka "$dir/server.properties"
}

case "${1:-}" in
  install) install ;;
  run) [ $# -eq 3 ] || die "usage: $0 run DIR PORT"; run "$2" "$3" ;;
  *) echo "usage: $0 install | run DIR PORT" >&2; exit 2 ;;
esac
