#!/usr/bin/env bash
# The services of the production shape on one machine (`make cluster`): a Redis Cluster,
# three Kafka brokers, a local CA and NGINX in front.
#
#   scripts/cluster-services.sh redis up|down|status   3 masters + 1 replica each
#   scripts/cluster-services.sh redis nodes            their URLs, comma-separated
#   scripts/cluster-services.sh kafka up|down|status   3 brokers (KRaft, 3-voter quorum)
#   scripts/cluster-services.sh ca                     local CA + certificate for localhost
#   scripts/cluster-services.sh nginx up|down|status|reload
#   scripts/cluster-services.sh status | down          all of them
#
# Every `up` is idempotent: what runs and is healthy is left alone, a node or broker of
# ours that died is started again (it rejoins: a killed Redis master comes back as a
# replica of the one that took over). `down` stops only what these scripts started
# (pid files under $CLUSTER_DIR/pids) and keeps the data, so the next `up` is warm.
#
# Environment:
#   CLUSTER_DIR               state, data and logs (<repo>/.cluster)
#   CLUSTER_REDIS_PORT_BASE   first of six Redis ports (7001: 7001-7006)
#   CLUSTER_KAFKA_PORT_BASE   first broker's client port (29092: brokers on 29092, 29094,
#                             29096, each one's controller one above)
#   CLUSTER_KAFKA_HEAP        heap of each broker (512m)
#   CLUSTER_API_UPSTREAMS     api replicas for NGINX (127.0.0.1:18081 127.0.0.1:18082)
#   CLUSTER_WS_UPSTREAMS      ws replicas (127.0.0.1:18091 127.0.0.1:18092)
#   CLUSTER_TRUSTED_HOPS      hops allowed to name the client in X-Forwarded-For (none)
#   CLUSTER_PROXY_BIND        source address of NGINX's connections to the app, e.g.
#                             127.0.0.2 so the app can trust NGINX but not local clients
#   CLUSTER_HTTPS_PORT (8443), CLUSTER_HTTP_PORT (8088, redirects to HTTPS)
#   CLUSTER_STATIC_DIR        the built pages (<repo>/static)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER_DIR=${CLUSTER_DIR:-$ROOT/.cluster}
HOST=127.0.0.1
REDIS_BASE=${CLUSTER_REDIS_PORT_BASE:-7001}
KAFKA_BASE=${CLUSTER_KAFKA_PORT_BASE:-29092}
KAFKA_HEAP=${CLUSTER_KAFKA_HEAP:-512m}
HTTPS_PORT=${CLUSTER_HTTPS_PORT:-8443}
HTTP_PORT=${CLUSTER_HTTP_PORT:-8088}
STATIC_DIR=${CLUSTER_STATIC_DIR:-$ROOT/static}
API_UPSTREAMS=${CLUSTER_API_UPSTREAMS:-127.0.0.1:18081 127.0.0.1:18082}
WS_UPSTREAMS=${CLUSTER_WS_UPSTREAMS:-127.0.0.1:18091 127.0.0.1:18092}
TRUSTED_HOPS=${CLUSTER_TRUSTED_HOPS:-}
PROXY_BIND=${CLUSTER_PROXY_BIND:-}
PIDS=$CLUSTER_DIR/pids
SAY_AS=cluster
export PATH="$PATH:/usr/sbin:/sbin"

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# The pid recorded for NAME when that process is still alive and still the program we
# started (its command line contains MATCH), so a recycled pid is never taken for ours.
our_pid() { # name match
  local pid
  [ -f "$PIDS/$1.pid" ] || return 1
  pid=$(cat "$PIDS/$1.pid")
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
  echo "$pid"
}

record_pid() { mkdir -p "$PIDS"; echo "$2" >"$PIDS/$1.pid"; }

# Stops the processes named (TERM to all at once, KILL after SECONDS).
stop_pids() { # seconds name:match...
  local seconds=$1 item pid waiting=() i
  shift
  for item in "$@"; do
    if pid=$(our_pid "${item%%:*}" "${item#*:}"); then
      say "stopping ${item%%:*} (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      waiting+=("$pid")
    fi
    rm -f "$PIDS/${item%%:*}.pid"
  done
  for ((i = 0; i < seconds * 10 && ${#waiting[@]} > 0; i++)); do
    local alive=()
    for pid in "${waiting[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    waiting=("${alive[@]}")
    [ ${#waiting[@]} -gt 0 ] && sleep 0.1
  done
  for pid in "${waiting[@]}"; do
    say "pid $pid did not stop within $seconds s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# elapsed START (microseconds, from EPOCHREALTIME): the time since, e.g. "4.7 s".
elapsed() {
  local tenths=$(((${EPOCHREALTIME/[.,]/} - $1) / 100000))
  echo "$((tenths / 10)).$((tenths % 10)) s"
}

# --- Redis Cluster ----------------------------------------------------------------------
REDIS_PORTS=()
for ((n = 0; n < 6; n++)); do REDIS_PORTS+=($((REDIS_BASE + n))); done

need_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  command -v redis-cli >/dev/null 2>&1 || apt_install redis-tools
}

rcli() { redis-cli -h "$HOST" -p "$@"; }
# A node's process title: redis-server 127.0.0.1:7001 [cluster]
redis_match() { echo "redis-server $HOST:$1"; }

# The setting of one node. deploy/redis/flash-sale.conf first (noeviction, AOF), then
# what the cluster on one machine needs.
redis_conf() { # port dir
  cat <<EOF
# Written by scripts/cluster-services.sh on every start; edit deploy/redis/ or the script.
include $ROOT/deploy/redis/flash-sale.conf
port $1
bind $HOST
dir $2
logfile $2/redis.log
daemonize no
cluster-enabled yes
cluster-config-file nodes.conf
# A master that does not answer for 2 s is failed over to its replica: a failover drill
# finishes in a few seconds. (A real network wants more slack against false failovers.)
cluster-node-timeout 2000
# The AOF is the persistence; no RDB snapshots besides it.
save ""
# flash-sale.conf asks for one replica close behind before a write is taken. With one
# replica per master that means: while a replica is down (or after a failover, until the
# old master returns as the new replica) a third of the coupons could not sell at all.
# Here availability wins; the window of writes a failover can lose stays bounded by the
# replication lag instead, and the README's remedy after a failover (reconcile) applies.
# Production with two replicas per master keeps min-replicas-to-write 1.
min-replicas-to-write 0
EOF
}

redis_start_node() { # port
  local port=$1 dir="$CLUSTER_DIR/redis/$1" pid
  mkdir -p "$dir"
  redis_conf "$port" "$dir" >"$dir/redis.conf"
  nohup redis-server "$dir/redis.conf" >>"$dir/redis.log" 2>&1 &
  pid=$!
  record_pid "redis-$port" "$pid"
}

redis_info_field() { # port field
  rcli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}

redis_wait() { # seconds command...
  local seconds=$1 i
  shift
  for ((i = 0; i < seconds * 5; i++)); do
    "$@" && return 0
    sleep 0.2
  done
  return 1
}

redis_all_answer() {
  local port
  for port in "${REDIS_PORTS[@]}"; do
    [ "$(rcli "$port" ping 2>/dev/null)" = PONG ] || return 1
  done
}

# Every node says cluster_state:ok and knows all six.
redis_all_ok() {
  local port
  for port in "${REDIS_PORTS[@]}"; do
    [ "$(redis_info_field "$port" cluster_state)" = ok ] || return 1
    [ "$(redis_info_field "$port" cluster_known_nodes)" = 6 ] || return 1
  done
}

# Every replica has its master's data stream (after a rejoin it resynchronises first).
redis_links_up() {
  local port
  for port in "${REDIS_PORTS[@]}"; do
    if rcli "$port" info replication 2>/dev/null | grep -q '^role:slave'; then
      rcli "$port" info replication | tr -d '\r' | grep -q '^master_link_status:up' || return 1
    fi
  done
}

redis_up() {
  need_redis
  local start=${EPOCHREALTIME/[.,]/} port started=0
  for port in "${REDIS_PORTS[@]}"; do
    if our_pid "redis-$port" "$(redis_match "$port")" >/dev/null; then continue; fi
    port_open "$port" && die "port $port is taken by a process these scripts did not start"
    say "starting Redis node $HOST:$port"
    redis_start_node "$port"
    started=$((started + 1))
  done
  redis_wait 20 redis_all_answer ||
    die "Redis nodes did not answer within 20 s (logs: $CLUSTER_DIR/redis/*/redis.log)"

  local assigned known
  assigned=$(redis_info_field "$REDIS_BASE" cluster_slots_assigned)
  known=$(redis_info_field "$REDIS_BASE" cluster_known_nodes)
  if [ "$assigned" = 0 ] && [ "$known" = 1 ]; then
    local addrs=() p
    for p in "${REDIS_PORTS[@]}"; do
      [ "$(redis_info_field "$p" cluster_known_nodes)" = 1 ] ||
        die "node $p already belongs to a cluster that $REDIS_BASE does not know; start afresh: $0 redis down && rm -rf $CLUSTER_DIR/redis"
      addrs+=("$HOST:$p")
    done
    say "creating the Redis Cluster (3 masters, 1 replica each)"
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$CLUSTER_DIR/redis/create.log" 2>&1 ||
      { tail -n 20 "$CLUSTER_DIR/redis/create.log" >&2; die "redis-cli --cluster create failed"; }
  fi
  redis_wait 30 redis_all_ok ||
    { redis_status >&2; die "the Redis Cluster is not ok on every node after 30 s"; }
  redis_wait 30 redis_links_up ||
    { redis_status >&2; die "a Redis replica has no link to its master after 30 s"; }
  if [ "$started" -gt 0 ]; then
    say "Redis Cluster ok on $HOST:${REDIS_PORTS[0]}-${REDIS_PORTS[5]} ($started node(s) started, $(elapsed "$start"))"
  else
    say "Redis Cluster ok on $HOST:${REDIS_PORTS[0]}-${REDIS_PORTS[5]} (nothing to do)"
  fi
}

redis_down() {
  local items=() port
  for port in "${REDIS_PORTS[@]}"; do items+=("redis-$port:$(redis_match "$port")"); done
  stop_pids 20 "${items[@]}"
}

redis_status() {
  local port role state pid
  for port in "${REDIS_PORTS[@]}"; do
    pid=$(our_pid "redis-$port" "$(redis_match "$port")") || pid="-"
    role=$(rcli "$port" role 2>/dev/null | tr '\n' ' ') || role=""
    if [ -n "$role" ]; then
      # "master 123 ..." or "slave 127.0.0.1 7001 connected 123"
      case $role in
        slave*) role=$(echo "$role" | awk '{print "replica of " $2 ":" $3 " (" $4 ")"}') ;;
        *) role=${role%% *} ;;
      esac
      state=$(redis_info_field "$port" cluster_state)
      echo "redis $HOST:$port: up, $role, cluster_state:${state:-?} (pid $pid)"
    else
      echo "redis $HOST:$port: down"
    fi
  done
}

# --- Kafka --------------------------------------------------------------------------------
KAFKA_IDS=(1 2 3)
kafka_port() { echo $((KAFKA_BASE + 2 * ($1 - 1))); }
kafka_voters() {
  local id out=""
  for id in "${KAFKA_IDS[@]}"; do out+="${out:+,}$id@$HOST:$(($(kafka_port "$id") + 1))"; done
  echo "$out"
}
kafka_bootstrap() {
  local id out=""
  for id in "${KAFKA_IDS[@]}"; do out+="${out:+,}$HOST:$(kafka_port "$id")"; done
  echo "$out"
}
# The broker's command line names its directory (the launching script's and the JVM's).
kafka_match() { echo "$CLUSTER_DIR/kafka/$1"; }

# One id for the whole cluster: kept in a file, or read back from a formatted broker.
kafka_cluster_id() {
  local file="$CLUSTER_DIR/kafka/cluster-id" meta id
  if [ -s "$file" ]; then cat "$file"; return; fi
  for meta in "$CLUSTER_DIR"/kafka/*/data/meta.properties; do
    [ -f "$meta" ] || continue
    id=$(sed -n 's/^cluster.id=//p' "$meta")
    [ -n "$id" ] && { echo "$id" >"$file"; echo "$id"; return; }
  done
  # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding; Kafka's own
  # generator avoids a leading '-' (it would read as an option).
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [ "${id:0:1}" != - ] && break
  done
  echo "$id" >"$file"
  echo "$id"
}

kafka_started() { # id: its log says it finished starting
  grep -q 'Kafka Server started' "$CLUSTER_DIR/kafka/$1/kafka.log" 2>/dev/null
}

kafka_tool() { "$ROOT/scripts/kafka-broker.sh" tool "$@"; }

kafka_up() {
  local start=${EPOCHREALTIME/[.,]/} id port dir cluster_id started=() pid p
  "$ROOT/scripts/kafka-broker.sh" install >/dev/null
  "$ROOT/scripts/kafka-broker.sh" tools >/dev/null
  mkdir -p "$CLUSTER_DIR/kafka"
  cluster_id=$(kafka_cluster_id)
  for id in "${KAFKA_IDS[@]}"; do
    port=$(kafka_port "$id")
    dir="$CLUSTER_DIR/kafka/$id"
    if our_pid "kafka-$id" "$(kafka_match "$id")" >/dev/null; then continue; fi
    for p in "$port" $((port + 1)); do
      port_open "$p" && die "port $p is taken by a process these scripts did not start"
    done
    say "starting Kafka broker $id on $HOST:$port (controller $((port + 1)))"
    mkdir -p "$dir"
    [ -f "$dir/kafka.log" ] && mv -f "$dir/kafka.log" "$dir/kafka.log.1"
    KAFKA_PROPERTIES="$ROOT/deploy/kafka/server-cluster.properties" KAFKA_NODE_ID=$id \
      KAFKA_QUORUM_VOTERS=$(kafka_voters) KAFKA_CLUSTER_ID=$cluster_id KAFKA_HEAP=$KAFKA_HEAP \
      nohup "$ROOT/scripts/kafka-broker.sh" run "$dir" "$port" >"$dir/kafka.log" 2>&1 &
    pid=$!
    record_pid "kafka-$id" "$pid"
    started+=("$id")
  done
  # A broker finishes starting only once the quorum has a leader and it has caught up
  # with the metadata, so "started" in every log means the cluster is usable.
  local i ready
  for ((i = 0; i < 1800; i++)); do
    ready=1
    for id in "${KAFKA_IDS[@]}"; do
      # (kill -0: a process just forked may not show the broker's command line yet)
      if ! kill -0 "$(cat "$PIDS/kafka-$id.pid")" 2>/dev/null; then
        tail -n 30 "$CLUSTER_DIR/kafka/$id/kafka.log" >&2
        die "Kafka broker $id exited (log: $CLUSTER_DIR/kafka/$id/kafka.log)"
      fi
      kafka_started "$id" && port_open "$(kafka_port "$id")" || ready=""
    done
    [ -n "$ready" ] && break
    sleep 0.1
  done
  [ -n "$ready" ] || die "the Kafka brokers did not all start within 180 s (logs: $CLUSTER_DIR/kafka/*/kafka.log)"
  # The quorum, as the controllers see it: a leader and three voters.
  local quorum leader voters
  quorum=$(kafka_tool org.apache.kafka.tools.MetadataQuorumCommand \
    --bootstrap-controller "$HOST:$(($(kafka_port 1) + 1))" describe --status 2>&1) ||
    { echo "$quorum" >&2; die "could not describe the controller quorum"; }
  leader=$(echo "$quorum" | sed -n 's/^LeaderId:[[:space:]]*//p')
  voters=$(echo "$quorum" | sed -n 's/^CurrentVoters://p' | grep -o '"id": *[0-9]*' | wc -l)
  if [ -z "$leader" ] || [ "$leader" = -1 ]; then
    echo "$quorum" >&2
    die "the controller quorum has no leader"
  fi
  if [ ${#started[@]} -gt 0 ]; then
    say "Kafka cluster up on $(kafka_bootstrap) (broker(s) ${started[*]} started, quorum leader $leader, $voters voters, $(elapsed "$start"))"
  else
    say "Kafka cluster up on $(kafka_bootstrap) (nothing to do; quorum leader $leader)"
  fi
}

kafka_down() {
  local items=() id
  for id in "${KAFKA_IDS[@]}"; do items+=("kafka-$id:$(kafka_match "$id")"); done
  # A broker leaving hands its partitions over first; give it time.
  stop_pids 45 "${items[@]}"
}

kafka_status() {
  local id port pid any=""
  for id in "${KAFKA_IDS[@]}"; do
    port=$(kafka_port "$id")
    pid=$(our_pid "kafka-$id" "$(kafka_match "$id")") || pid="-"
    if port_open "$port"; then
      echo "kafka broker $id $HOST:$port: up (pid $pid)"
      any=$port
    else
      echo "kafka broker $id $HOST:$port: down"
    fi
  done
  if [ -n "$any" ]; then
    kafka_tool org.apache.kafka.tools.MetadataQuorumCommand \
      --bootstrap-controller "$HOST:$((any + 1))" describe --status 2>/dev/null |
      sed -n 's/^\(LeaderId\|HighWatermark\|CurrentVoters\):[[:space:]]*/kafka quorum \1: /p' || true
  fi
}

# --- Local CA -------------------------------------------------------------------------------
TLS_DIR=$CLUSTER_DIR/tls

ca_valid() {
  [ -s "$TLS_DIR/ca.pem" ] && [ -s "$TLS_DIR/server.pem" ] && [ -s "$TLS_DIR/server.key" ] &&
    openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" >/dev/null 2>&1 &&
    openssl x509 -in "$TLS_DIR/server.pem" -noout -checkend 86400 >/dev/null 2>&1
}

CA_CHANGED=""
ca_up() {
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  if ca_valid; then
    say "TLS: $TLS_DIR/server.pem (signed by $TLS_DIR/ca.pem) is valid"
    return
  fi
  say "making a local CA and a certificate for localhost, 127.0.0.1 in $TLS_DIR"
  mkdir -p "$TLS_DIR"
  chmod 700 "$TLS_DIR"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  if [ ! -s "$TLS_DIR/ca.pem" ] || [ ! -s "$TLS_DIR/ca.key" ]; then
    openssl req -x509 "${ec[@]}" -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" -days 3650 \
      -subj "/CN=flash-sale local CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  fi
  openssl req "${ec[@]}" -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" \
    -subj "/CN=localhost" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$TLS_DIR/server.ext"
  openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
    -CAcreateserial -out "$TLS_DIR/server.pem" -days 825 -extfile "$TLS_DIR/server.ext" 2>/dev/null
  rm -f "$TLS_DIR/server.csr" "$TLS_DIR/server.ext"
  chmod 600 "$TLS_DIR"/*.key
  ca_valid || die "the new certificate does not verify against the CA"
  CA_CHANGED=1
}

# --- NGINX ----------------------------------------------------------------------------------
NGINX_DIR=$CLUSTER_DIR/nginx
NGINX=/usr/sbin/nginx

need_nginx() {
  [ -x "$NGINX" ] && return
  apt_install nginx
  [ -x "$NGINX" ] || die "no $NGINX after installing nginx"
  # The package enables (and, where policy-rc.d allows, starts) the system service on
  # port 80. Ours runs apart from it (own prefix, ports and pid file); the service was
  # installed just now for us, so it is stopped and left disabled.
  say "disabling the nginx system service the package enabled (this script runs its own)"
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now nginx >/dev/null 2>&1 || true
  else
    [ -f /run/nginx.pid ] && as_root /etc/init.d/nginx stop >/dev/null 2>&1
    as_root update-rc.d nginx disable >/dev/null 2>&1 || true
    as_root systemctl disable nginx >/dev/null 2>&1 || true
  fi
}

# The frame around the rendered template (what a packaged nginx.conf would hold).
nginx_frame() { # rendered file to include
  cat <<EOF
# Written by scripts/cluster-services.sh; the flash-sale part is flash-sale.conf.
# One worker per core: TLS for a few hundred connections is more than one core's work.
worker_processes auto;
daemon off;
events { worker_connections 8192; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    client_body_temp_path $NGINX_DIR/tmp/client_body;
    proxy_temp_path $NGINX_DIR/tmp/proxy;
    fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
    uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
    scgi_temp_path $NGINX_DIR/tmp/scgi;
    include $1;
}
EOF
}

# Renders the template into $NGINX_DIR, tests it with nginx -t, and only then puts it in
# place; NGINX_CHANGED says whether it differs from what was there.
nginx_render() {
  mkdir -p "$NGINX_DIR/logs" "$NGINX_DIR/tmp"
  [ -f "$STATIC_DIR/index.html" ] ||
    say "warning: no built pages in $STATIC_DIR (build web/ with npm run build); pages answer 500"
  if [ "$(id -u)" -eq 0 ] && [ -f "$STATIC_DIR/index.html" ] &&
    ! runuser -u nobody -- test -r "$STATIC_DIR/index.html" 2>/dev/null; then
    say "warning: NGINX's workers run as nobody and cannot read $STATIC_DIR"
  fi
  local conf="$NGINX_DIR/flash-sale.conf" main="$NGINX_DIR/nginx.conf"
  API_UPSTREAMS=$API_UPSTREAMS WS_UPSTREAMS=$WS_UPSTREAMS TRUSTED_HOPS=$TRUSTED_HOPS \
    PROXY_BIND=$PROXY_BIND HTTPS_PORT=$HTTPS_PORT HTTP_PORT=$HTTP_PORT \
    SERVER_NAME="localhost 127.0.0.1" STATIC_DIR=$STATIC_DIR \
    TLS_CERT=$TLS_DIR/server.pem TLS_KEY=$TLS_DIR/server.key \
    ACCESS_LOG=$NGINX_DIR/logs/access.log "$ROOT/scripts/render-nginx.sh" >"$conf.new"
  nginx_frame "$conf.new" >"$main.new"
  "$NGINX" -p "$NGINX_DIR/" -e "$NGINX_DIR/logs/error.log" -c "$main.new" \
    -g "pid $NGINX_DIR/nginx.pid;" -t -q ||
    die "nginx -t rejects the rendered configuration ($conf.new)"
  NGINX_CHANGED=""
  cmp -s "$conf.new" "$conf" 2>/dev/null || NGINX_CHANGED=1
  mv -f "$conf.new" "$conf"
  nginx_frame "$conf" >"$main"
  rm -f "$main.new"
}

# Reloads the configuration and waits until a worker started with it runs (a reload
# is asynchronous: until then the old workers answer).
nginx_hup() { # master pid
  local old new i
  old=" $(ps -o pid= --ppid "$1" | tr -s ' \n' ' ') "
  kill -HUP "$1"
  for ((i = 0; i < 50; i++)); do
    for new in $(ps -o pid= --ppid "$1"); do
      [[ $old == *" $new "* ]] || return 0
    done
    sleep 0.1
  done
  say "warning: NGINX (pid $1) started no new worker within 5 s of the reload (log: $NGINX_DIR/logs/error.log)"
}

nginx_up() {
  local start=${EPOCHREALTIME/[.,]/} pid
  need_nginx
  ca_up
  nginx_render
  if pid=$(our_pid nginx "nginx: master"); then
    if [ -n "$NGINX_CHANGED$CA_CHANGED" ]; then
      say "NGINX runs (pid $pid): reloading the changed configuration"
      nginx_hup "$pid"
    else
      say "NGINX runs on https://localhost:$HTTPS_PORT (pid $pid; nothing to do)"
    fi
    return
  fi
  local port
  for port in "$HTTPS_PORT" "$HTTP_PORT"; do
    port_open "$port" && die "port $port is taken by a process these scripts did not start"
  done
  say "starting NGINX on https://localhost:$HTTPS_PORT (http://localhost:$HTTP_PORT redirects)"
  # Our prefix, configuration and pid file; -e: the error log from the start, before the
  # configuration is read (the packaged default is under /var/log/nginx).
  nohup "$NGINX" -p "$NGINX_DIR/" -e "$NGINX_DIR/logs/error.log" -c "$NGINX_DIR/nginx.conf" \
    -g "pid $NGINX_DIR/nginx.pid;" >>"$NGINX_DIR/logs/stderr.log" 2>&1 &
  pid=$!
  record_pid nginx "$pid"
  local i
  for ((i = 0; i < 100; i++)); do
    port_open "$HTTPS_PORT" && port_open "$HTTP_PORT" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  port_open "$HTTPS_PORT" ||
    { tail -n 20 "$NGINX_DIR/logs/error.log" >&2; die "NGINX did not start (log: $NGINX_DIR/logs/error.log)"; }
  say "NGINX up ($(elapsed "$start")); api: $API_UPSTREAMS; ws: $WS_UPSTREAMS; CA: $TLS_DIR/ca.pem"
}

nginx_reload() {
  local pid
  pid=$(our_pid nginx "nginx: master") || die "NGINX is not running (start it with: $0 nginx up)"
  nginx_render
  nginx_hup "$pid"
  say "NGINX reloaded (pid $pid)"
}

nginx_down() { stop_pids 10 "nginx:nginx: master"; }

nginx_status() {
  local pid
  if pid=$(our_pid nginx "nginx: master"); then
    echo "nginx https://localhost:$HTTPS_PORT http://localhost:$HTTP_PORT: up (pid $pid)"
  elif port_open "$HTTPS_PORT"; then
    echo "nginx: port $HTTPS_PORT answers, not ours"
  else
    echo "nginx: down"
  fi
}

# --- main ---------------------------------------------------------------------------------
# The seed list the app takes (redis.nodes): every node of the cluster.
redis_nodes() {
  local i nodes=()
  for i in 0 1 2 3 4 5; do nodes+=("redis://$HOST:$((REDIS_BASE + i))"); done
  (IFS=,; echo "${nodes[*]}")
}

usage() {
  echo "usage: $0 redis up|down|status|nodes | kafka up|down|status | ca | nginx up|down|status|reload | status | down" >&2
  exit 2
}

mkdir -p "$CLUSTER_DIR"
case "${1:-} ${2:-}" in
  "redis up") redis_up ;;
  "redis down") redis_down ;;
  "redis status") redis_status ;;
  "redis nodes") redis_nodes ;;
  "kafka up") kafka_up ;;
  "kafka down") kafka_down ;;
  "kafka status") kafka_status ;;
  "ca "*) ca_up ;;
  "nginx up") nginx_up ;;
  "nginx down") nginx_down ;;
  "nginx status") nginx_status ;;
  "nginx reload") nginx_reload ;;
  "status "*) redis_status; kafka_status; nginx_status ;;
  "down "*) nginx_down; kafka_down; redis_down ;;
  *) usage ;;
esac
