#!/usr/bin/env bash
# Renders the edge's site for Kubernetes (deploy/k8s/base/edge/flash-sale.conf) from the
# NGINX template that `make cluster` uses too. Run it after changing the template; the
# deployment test fails while the committed file differs from a fresh render.
#
#   scripts/render-k8s-edge.sh          write the file
#   scripts/render-k8s-edge.sh --check  exit 1 when the file is out of date
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/deploy/k8s/base/edge/flash-sale.conf

# The Services of deploy/k8s/base; the load balancer in front keeps the client's
# address (see the overlays), so no hop is trusted. Logs go to the container's output.
render() {
  API_UPSTREAMS=api:8080 WS_UPSTREAMS=ws:8080 TRUSTED_HOPS="" \
    HTTPS_PORT=8443 HTTP_PORT=8088 PUBLIC_HTTPS_PORT=443 \
    STATIC_DIR=/usr/share/flash-sale/static \
    TLS_CERT=/etc/nginx/tls/tls.crt TLS_KEY=/etc/nginx/tls/tls.key \
    ACCESS_LOG=/dev/stdout PROXY_BIND="" IMG_SRC="" \
    "$ROOT/scripts/render-nginx.sh"
}

render_file() {
  echo "# Rendered by scripts/render-k8s-edge.sh from deploy/nginx/flash-sale.conf.template;"
  echo "# edit the template, not this file."
  render
}

if [ "${1:-}" = --check ]; then
  if ! diff -u "$OUT" <(render_file) >&2; then
    echo "render-k8s-edge: $OUT is out of date: run scripts/render-k8s-edge.sh" >&2
    exit 1
  fi
  exit 0
fi
mkdir -p "$(dirname "$OUT")"
render_file >"$OUT"
echo "wrote $OUT"
