#!/usr/bin/env bash
# Apache Kafka (KRaft, one combined broker + controller) from Maven Central.
#
#   scripts/kafka-broker.sh install          fetch the broker's jars once per machine
#                                            (cached; prints the directory)
#   scripts/kafka-broker.sh run DIR PORT     format DIR on first use, then run the broker
#                                            in the foreground (exec: the pid is the JVM's)
#   scripts/kafka-broker.sh tools            fetch the command-line tools' jars once
#                                            (cached; prints the directory)
#   scripts/kafka-broker.sh tool CLASS ARG.. run one tool, e.g.
#                                            org.apache.kafka.tools.TopicCommand --list ...
#
# The jars are those of deploy/kafka/pom.xml (tools: deploy/kafka/tools-pom.xml); the
# configuration is deploy/kafka/server.properties with the ports and DIR filled in. Data
# stays in DIR/data, so a restart keeps every event. The controller listens on PORT + 1.
# KAFKA_ADVERTISED_PORT makes clients reach the broker through another port (a test's
# fault proxy). KAFKA_HEAP sets the JVM's maximum heap (1g).
#
# A broker of a multi-broker cluster (scripts/cluster-services.sh) sets, in addition:
#   KAFKA_PROPERTIES     the template to fill in (deploy/kafka/server.properties)
#   KAFKA_NODE_ID        its node.id, @NODE_ID@ in the template (1)
#   KAFKA_QUORUM_VOTERS  the controller quorum, @QUORUM_VOTERS@ (this broker alone)
#   KAFKA_CLUSTER_ID     the id DIR is formatted with on first use (a new random one);
#                        every broker of one cluster must be formatted with the same id
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SAY_AS=kafka
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

POM=$ROOT/deploy/kafka/pom.xml
LIBS=$CACHE_DIR/kafka-$(content_key "$POM")/libs
TOOLS_POM=$ROOT/deploy/kafka/tools-pom.xml
TOOLS_LIBS=$CACHE_DIR/kafka-tools-$(content_key "$TOOLS_POM")/libs

fetch_jars() { # pom dir what
  if [ -f "$2/.complete" ]; then
    echo "$2"
    return
  fi
  need_java
  say "fetching $3 and its dependencies from Maven Central (once per machine)"
  rm -rf "$2"
  mkdir -p "$2"
  mvn -q -B -Dstyle.color=never -f "$1" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$2" >&2 || die "mvn could not fetch $3"
  touch "$2/.complete"
  echo "$2"
}

install() { fetch_jars "$POM" "$LIBS" "Apache Kafka"; }
tools() { fetch_jars "$TOOLS_POM" "$TOOLS_LIBS" "Apache Kafka's tools"; }

tool() { # CLASS ARGS...
  local libs
  libs=$(tools)
  exec java -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    "-Dlog4j2.configurationFile=$ROOT/deploy/kafka/log4j2-tools.properties" \
    -cp "$libs/*" "$@"
}

run() { # DIR PORT
  local dir=$1 port=$2 libs
  libs=$(install)
  mkdir -p "$dir/data"
  sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$((port + 1))|g" \
    -e "s|@ADVERTISED_PORT@|${KAFKA_ADVERTISED_PORT:-$port}|g" \
    -e "s|@NODE_ID@|${KAFKA_NODE_ID:-1}|g" \
    -e "s|@QUORUM_VOTERS@|${KAFKA_QUORUM_VOTERS:-${KAFKA_NODE_ID:-1}@127.0.0.1:$((port + 1))}|g" \
    -e "s|@DATA_DIR@|$dir/data|g" "${KAFKA_PROPERTIES:-$ROOT/deploy/kafka/server.properties}" \
    >"$dir/server.properties"
  local jvm=(-Xms256m "-Xmx${KAFKA_HEAP:-1g}" -XX:+UseG1GC
    "-Dlog4j2.configurationFile=$ROOT/deploy/kafka/log4j2.properties" -cp "$libs/*")
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id
    cluster_id=${KAFKA_CLUSTER_ID:-$(java "${jvm[@]}" kafka.tools.StorageTool random-uuid)}
    java "${jvm[@]}" kafka.tools.StorageTool format --ignore-formatted \
      -t "$cluster_id" -c "$dir/server.properties" >&2
  fi
  exec java "${jvm[@]}" kafka.Kafka "$dir/server.properties"
}

case "${1:-}" in
  install) install ;;
  run) [ $# -eq 3 ] || die "usage: $0 run DIR PORT"; run "$2" "$3" ;;
  tools) tools ;;
  tool) [ $# -ge 2 ] || die "usage: $0 tool CLASS [ARG...]"; shift; tool "$@" ;;
  *) echo "usage: $0 install | run DIR PORT | tools | tool CLASS [ARG...]" >&2; exit 2 ;;
esac
