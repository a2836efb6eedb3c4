#!/usr/bin/env bash
# `make observe`: Prometheus (Debian's package) scraping every local role, with the alert
# rules of deploy/observability/ loaded.
#
#   scripts/observe.sh up       start it (what it scrapes: below), print the URL
#   scripts/observe.sh down     stop it
#   scripts/observe.sh status
#   scripts/observe.sh install  only unpack Prometheus (prints the directory)
#
# What it scrapes: OBSERVE_TARGETS when set ("api=host:port ws=host:port payment=..."; a
# role may repeat), else the instances of `make cluster` when it runs, else `make dev`'s
# single process (127.0.0.1:8080, every role). Jobs are flash-sale-<role>, as the rules
# expect. OBSERVE_PORT (9090), OBSERVE_SCRAPE_INTERVAL (5s), OBSERVE_DIR (.observe).
# Grafana is not packaged for Debian: load deploy/observability/grafana/flash-sale.json
# into yours (grafana/provisioning/ has the provisioning files).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SAY_AS=observe
export SAY_AS
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

PORT=${OBSERVE_PORT:-9090}
INTERVAL=${OBSERVE_SCRAPE_INTERVAL:-5s}
DIR=${OBSERVE_DIR:-$ROOT/.observe}
PROM_DIR=$CACHE_DIR/prometheus-debian
RULES=$ROOT/deploy/observability/prometheus/alerts.yml

install() {
  if [ ! -x "$PROM_DIR/usr/bin/prometheus" ]; then
    say "fetching Debian's prometheus package (apt-get download) into $PROM_DIR"
    local work
    work=$(mktemp -d)
    if ! (cd "$work" && apt-get download -qq prometheus >/dev/null 2>&1); then
      as_root apt-get update -qq >&2
      (cd "$work" && apt-get download -qq prometheus >/dev/null 2>&1) ||
        { rm -rf "$work"; die "apt-get download prometheus failed"; }
    fi
    rm -rf "$PROM_DIR.tmp"
    dpkg-deb -x "$work"/prometheus_*.deb "$PROM_DIR.tmp"
    rm -rf "$work" "$PROM_DIR"
    mv "$PROM_DIR.tmp" "$PROM_DIR"
  fi
  echo "$PROM_DIR/usr/bin"
}

# role=host:port pairs to scrape.
targets() {
  if [ -n "${OBSERVE_TARGETS:-}" ]; then
    echo "$OBSERVE_TARGETS"
    return
  fi
  if [ -d "$ROOT/.cluster/pids" ] && ls "$ROOT/.cluster/pids"/*.pid >/dev/null 2>&1; then
    echo "api=127.0.0.1:18081 api=127.0.0.1:18082 ws=127.0.0.1:18091 ws=127.0.0.1:18092"
    echo "payment=127.0.0.1:18101 payment=127.0.0.1:18102"
    return
  fi
  echo "all=127.0.0.1:8080"
}

write_config() {
  local pairs role address roles
  pairs=$(targets)
  roles=$(for pair in $pairs; do echo "${pair%%=*}"; done | sort -u)
  {
    echo "# Written by scripts/observe.sh; edits are lost at the next start."
    echo "global:"
    echo "  scrape_interval: $INTERVAL"
    echo "  evaluation_interval: $INTERVAL"
    echo "rule_files:"
    echo "  - $RULES"
    echo "scrape_configs:"
    for role in $roles; do
      [[ $role =~ ^(api|ws|payment|all)$ ]] || die "OBSERVE_TARGETS: unknown role '$role'"
      echo "  - job_name: flash-sale-$role"
      echo "    static_configs:"
      echo "      - targets:"
      for pair in $pairs; do
        address=${pair#*=}
        [[ $address =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]] || die "OBSERVE_TARGETS: '$address' is not host:port"
        if [ "${pair%%=*}" = "$role" ]; then echo "          - $address"; fi
      done
    done
  } >"$DIR/prometheus.yml"
}

pid_running() { [ -f "$DIR/prometheus.pid" ] && kill -0 "$(cat "$DIR/prometheus.pid")" 2>/dev/null; }

up() {
  local bin
  bin=$(install)
  mkdir -p "$DIR/data"
  if pid_running; then
    say "already running (pid $(cat "$DIR/prometheus.pid")): http://127.0.0.1:$PORT/"
    return
  fi
  write_config
  "$bin/promtool" check config "$DIR/prometheus.yml" >/dev/null ||
    die "the generated configuration does not check: $DIR/prometheus.yml"
  "$bin/prometheus" --config.file="$DIR/prometheus.yml" \
    --storage.tsdb.path="$DIR/data" --storage.tsdb.retention.time=2d \
    --web.listen-address="127.0.0.1:$PORT" --web.enable-lifecycle \
    >"$DIR/prometheus.log" 2>&1 &
  echo $! >"$DIR/prometheus.pid"
  for _ in $(seq 1 100); do
    if curl -fs -o /dev/null "http://127.0.0.1:$PORT/-/ready"; then
      say "Prometheus on http://127.0.0.1:$PORT/ scraping $(targets | tr '\n' ' ')"
      say "alerts: http://127.0.0.1:$PORT/alerts   stop: make observe-stop"
      return
    fi
    pid_running || break
    sleep 0.2
  done
  tail -n 20 "$DIR/prometheus.log" >&2
  die "Prometheus did not become ready (log: $DIR/prometheus.log)"
}

down() {
  if pid_running; then
    kill "$(cat "$DIR/prometheus.pid")"
    say "stopped"
  fi
  rm -f "$DIR/prometheus.pid"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if pid_running; then echo "running: http://127.0.0.1:$PORT/"; else echo "stopped"; fi ;;
  install) install ;;
  *) echo "usage: $0 up | down | status | install" >&2; exit 2 ;;
esac
