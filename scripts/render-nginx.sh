#!/usr/bin/env bash
# Renders deploy/nginx/flash-sale.conf.template from the environment to stdout (bash only).
#
#   API_UPSTREAMS=127.0.0.1:18081,127.0.0.1:18082 scripts/render-nginx.sh > flash-sale.conf
#
# The result belongs inside nginx.conf's `http { }` block. Values (lists are separated by
# spaces or commas):
#   API_UPSTREAMS       host:port of every api replica (required)
#   WS_UPSTREAMS        host:port of every ws replica (API_UPSTREAMS: one role serves both)
#   TRUSTED_HOPS        addresses or CIDRs allowed to name the client in X-Forwarded-For,
#                       e.g. the load balancer in front (none: the peer is the client)
#   HTTPS_PORT (8443), HTTP_PORT (8088)   where NGINX listens
#   PUBLIC_HTTPS_PORT   the HTTPS port clients see, for redirects and the CSP (HTTPS_PORT)
#   SERVER_NAME (_)     server_name of both servers
#   STATIC_DIR          the built pages (/usr/share/flash-sale/static)
#   TLS_CERT, TLS_KEY   certificate (chain) and key files (/etc/nginx/tls/tls.crt, .key)
#   ACCESS_LOG          access log path (/var/log/nginx/flash-sale.access.log)
#   IMG_SRC             further image sources for the CSP, e.g. https://images.example.com
#   PROXY_BIND          source address of NGINX's connections to the app (none: the OS's)
#   MAX_IMAGE_BYTES     the app's image limit, named in NGINX's own 413 answer (2097152)
#   LOGIN_RATE / LOGIN_BURST (10r/s / 20), REGISTER_RATE / REGISTER_BURST (2r/s / 5),
#   PURCHASE_RATE / PURCHASE_BURST (50r/s / 100)   POST requests per client address
# TEMPLATE overrides the template's path.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SAY_AS=render-nginx
export SAY_AS
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

TEMPLATE=${TEMPLATE:-$ROOT/deploy/nginx/flash-sale.conf.template}
[ -f "$TEMPLATE" ] || die "no template at $TEMPLATE"

# A list from spaces and/or commas; every item must look like WHAT (no quotes, braces or
# semicolons can reach the configuration).
read_list() { # name value pattern what
  local item
  LIST=()
  for item in ${2//,/ }; do
    [[ $item =~ $3 ]] || die "$1: '$item' is not $4"
    LIST+=("$item")
  done
}
ADDRESS='^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$'
HOP='^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$'

[ -n "${API_UPSTREAMS:-}" ] || die "API_UPSTREAMS is required (host:port of the api replicas)"
read_list API_UPSTREAMS "$API_UPSTREAMS" "$ADDRESS" "host:port"
API_SERVERS=("${LIST[@]}")
[ ${#API_SERVERS[@]} -gt 0 ] || die "API_UPSTREAMS is empty"
read_list WS_UPSTREAMS "${WS_UPSTREAMS:-$API_UPSTREAMS}" "$ADDRESS" "host:port"
WS_SERVERS=("${LIST[@]}")
[ ${#WS_SERVERS[@]} -gt 0 ] || die "WS_UPSTREAMS is empty"
read_list TRUSTED_HOPS "${TRUSTED_HOPS:-}" "$HOP" "an address or CIDR"
HOPS=("${LIST[@]}")
read_list PROXY_BIND "${PROXY_BIND:-}" '^[0-9A-Fa-f:.]+$' "an address"
[ ${#LIST[@]} -le 1 ] || die "PROXY_BIND: one address at most"
BIND=("${LIST[@]}")

check() { # name value pattern what
  [[ $2 =~ $3 ]] || die "$1: '$2' is not $4"
  printf '%s' "$2"
}
PORT='^[0-9]{1,5}$'
RATE='^[0-9]+r/[sm]$'
COUNT='^[0-9]+$'
PATHLIKE='^/[A-Za-z0-9._/+@-]*$'
HTTPS_PORT=$(check HTTPS_PORT "${HTTPS_PORT:-8443}" "$PORT" "a port")
HTTP_PORT=$(check HTTP_PORT "${HTTP_PORT:-8088}" "$PORT" "a port")
PUBLIC_HTTPS_PORT=$(check PUBLIC_HTTPS_PORT "${PUBLIC_HTTPS_PORT:-$HTTPS_PORT}" "$PORT" "a port")
# shellcheck disable=SC2034 # read through SCALARS below
if [ "$PUBLIC_HTTPS_PORT" = 443 ]; then PUBLIC_PORT_SUFFIX=""; else PUBLIC_PORT_SUFFIX=":$PUBLIC_HTTPS_PORT"; fi
img_src=""
if [ -n "${IMG_SRC:-}" ]; then
  read_list IMG_SRC "$IMG_SRC" '^https://[A-Za-z0-9.:-]+$' "an https:// origin"
  img_src=" ${LIST[*]}"
fi

SERVER_NAME=$(check SERVER_NAME "${SERVER_NAME:-_}" '^[A-Za-z0-9._* -]+$' "a list of host names")
STATIC_DIR=$(check STATIC_DIR "${STATIC_DIR:-/usr/share/flash-sale/static}" "$PATHLIKE" "an absolute path")
TLS_CERT=$(check TLS_CERT "${TLS_CERT:-/etc/nginx/tls/tls.crt}" "$PATHLIKE" "an absolute path")
TLS_KEY=$(check TLS_KEY "${TLS_KEY:-/etc/nginx/tls/tls.key}" "$PATHLIKE" "an absolute path")
ACCESS_LOG=$(check ACCESS_LOG "${ACCESS_LOG:-/var/log/nginx/flash-sale.access.log}" "$PATHLIKE" "an absolute path")
LOGIN_RATE=$(check LOGIN_RATE "${LOGIN_RATE:-10r/s}" "$RATE" "a rate like 10r/s")
LOGIN_BURST=$(check LOGIN_BURST "${LOGIN_BURST:-20}" "$COUNT" "a number")
REGISTER_RATE=$(check REGISTER_RATE "${REGISTER_RATE:-2r/s}" "$RATE" "a rate like 2r/s")
REGISTER_BURST=$(check REGISTER_BURST "${REGISTER_BURST:-5}" "$COUNT" "a number")
PURCHASE_RATE=$(check PURCHASE_RATE "${PURCHASE_RATE:-50r/s}" "$RATE" "a rate like 50r/s")
PURCHASE_BURST=$(check PURCHASE_BURST "${PURCHASE_BURST:-100}" "$COUNT" "a number")
MAX_IMAGE_BYTES=$(check MAX_IMAGE_BYTES "${MAX_IMAGE_BYTES:-2097152}" "$COUNT" "a number")
IMG_SRC=$img_src

# @NAME@ in the template is replaced by $NAME.
SCALARS=(HTTPS_PORT HTTP_PORT PUBLIC_PORT_SUFFIX SERVER_NAME STATIC_DIR TLS_CERT TLS_KEY
  ACCESS_LOG IMG_SRC LOGIN_RATE LOGIN_BURST REGISTER_RATE REGISTER_BURST PURCHASE_RATE
  PURCHASE_BURST MAX_IMAGE_BYTES)

# Bash 5.2 would read `&` in a replacement as the matched text; these values are plain.
shopt -u patsub_replacement 2>/dev/null || true

# Repeats LINE once per item, with @MARK@ replaced by it (no items: no line).
repeat_line() { # line mark items...
  local line=$1 mark=$2 item
  shift 2
  for item in "$@"; do printf '%s\n' "${line//"$mark"/"$item"}"; done
}

out=""
while IFS= read -r line || [ -n "$line" ]; do
  case $line in
    *@API_SERVER@*) out+=$(repeat_line "$line" @API_SERVER@ "${API_SERVERS[@]}")$'\n' ;;
    *@WS_SERVER@*) out+=$(repeat_line "$line" @WS_SERVER@ "${WS_SERVERS[@]}")$'\n' ;;
    *@TRUSTED_HOP@*)
      if [ ${#HOPS[@]} -eq 0 ]; then
        out+="# (no trusted hops: NGINX takes the peer's address as the client's)"$'\n'
      else
        out+=$(repeat_line "$line" @TRUSTED_HOP@ "${HOPS[@]}")$'\n'
      fi
      ;;
    *@PROXY_BIND@*) [ ${#BIND[@]} -eq 0 ] || out+=$(repeat_line "$line" @PROXY_BIND@ "${BIND[@]}")$'\n' ;;
    *) out+=$line$'\n' ;;
  esac
done <"$TEMPLATE"

for name in "${SCALARS[@]}"; do
  out=${out//"@$name@"/"${!name}"}
done

if [[ $out =~ @[A-Z_]+@ ]]; then
  die "the template uses ${BASH_REMATCH[0]}, which this script does not fill in"
fi
printf '%s' "$out"
