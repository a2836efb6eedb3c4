#!/usr/bin/env bash
# Installs the deployment test's tools, cached per machine, and prints their paths as
# shell assignments (eval "$(scripts/deploy-tools.sh)"):
#   KUBECTL          Debian's kubectl (package kubernetes-client), unpacked into the cache
#                    so that it never clashes with another kubectl on the machine
#   DEPLOY_PYTHON    a venv with kubernetes-validate, hadolint and PyYAML
#                    (tests/deploy/requirements.txt)
#   HADOLINT         hadolint from that venv
# Idempotent; a second run only checks.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SAY_AS=deploy-tools
export SAY_AS
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

KUBECTL_DIR=$CACHE_DIR/kubectl-debian
if [ ! -x "$KUBECTL_DIR/usr/bin/kubectl" ]; then
  say "fetching Debian's kubernetes-client (apt-get download) into $KUBECTL_DIR"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  if ! (cd "$work" && apt-get download -qq kubernetes-client >/dev/null 2>&1); then
    as_root apt-get update -qq >&2
    (cd "$work" && apt-get download -qq kubernetes-client >&2 2>/dev/null) ||
      die "apt-get download kubernetes-client failed"
  fi
  rm -rf "$KUBECTL_DIR.tmp"
  dpkg-deb -x "$work"/kubernetes-client_*.deb "$KUBECTL_DIR.tmp"
  rm -rf "$KUBECTL_DIR"
  mv "$KUBECTL_DIR.tmp" "$KUBECTL_DIR"
fi

REQS=$ROOT/tests/deploy/requirements.txt
VENV=$CACHE_DIR/deploy-venv-$(content_key "$REQS")
if [ ! -f "$VENV/.complete" ]; then
  say "installing $(grep -c '==' "$REQS") Python packages into $VENV (pip)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS" >&2
  touch "$VENV/.complete"
fi

# The edge's NGINX (the test runs `nginx -t` and the edge as the image lays it out) and
# openssl for its test certificate.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_install nginx
command -v openssl >/dev/null 2>&1 || apt_install openssl

printf 'KUBECTL=%q\nDEPLOY_PYTHON=%q\nHADOLINT=%q\n' \
  "$KUBECTL_DIR/usr/bin/kubectl" "$VENV/bin/python" "$VENV/bin/hadolint"
