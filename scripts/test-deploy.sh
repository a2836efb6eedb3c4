#!/usr/bin/env bash
# The deployment test (part of `make test`; alone: `make test-deploy`):
#   1. the edge's rendered site and the local overlay's realm copy are current
#   2. each overlay renders with Debian's kubectl (kustomize) and, when a newer kubectl is
#      on the PATH, renders the same objects with it
#   3. every rendered object validates, strictly, against the Kubernetes schemas of the
#      three newest minor versions kubernetes-validate knows
#   4. the policy: limits, probes, non-root, read-only root, no escalation (and a
#      self-test that it catches each of those)
#   5. hadolint on deploy/Dockerfile
#   6. the rehearsal: every flash-sale workload of each overlay started as the manifests
#      and the Dockerfile say (tests/deploy/rehearse.py), `nginx -t` on the edge's
#      configuration, each ready on its declared probe; and a broken deployment (the
#      embedded issuer with no signing key mounted) must be caught
# Step 6 brings up the stack (MySQL, Redis, Kafka, Keycloak) and the S3 stand-in when
# they are not running, and stops what it started. FLASH_SALE_BIN names the binary
# (target/debug/flash-sale, built when missing).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SAY_AS=test-deploy
export SAY_AS
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

eval "$(scripts/deploy-tools.sh)"
OUT=$(mktemp -d)
db=""
moto=""
started=$OUT/started
cleanup() {
  [ -z "$moto" ] || kill "$moto" 2>/dev/null || true
  [ ! -f "$started" ] || scripts/stack.sh stop-list "$started"
  if [ -n "$db" ]; then
    mariadb --protocol=TCP -h 127.0.0.1 -P "${STACK_MYSQL_PORT:-3306}" -uroot \
      -e "DROP DATABASE IF EXISTS \`$db\`" </dev/null || true
  fi
  rm -rf "$OUT"
}
trap cleanup EXIT

say "1/6 generated files are current"
scripts/render-k8s-edge.sh --check
cmp -s deploy/keycloak/realm.json deploy/k8s/overlays/local/realm.json ||
  die "deploy/k8s/overlays/local/realm.json differs from deploy/keycloak/realm.json: copy it"

say "2/6 render (Debian's kubectl: $("$KUBECTL" version --client --short 2>/dev/null || echo '?'))"
OVERLAYS=(local eks)
for overlay in "${OVERLAYS[@]}"; do
  "$KUBECTL" kustomize "deploy/k8s/overlays/$overlay" >"$OUT/$overlay.yaml"
  newer=$(command -v kubectl || true)
  if [ -n "$newer" ] && [ "$newer" != "$KUBECTL" ]; then
    # New kustomize warns about the fields old kustomize needs; the objects must agree.
    "$newer" kustomize "deploy/k8s/overlays/$overlay" >"$OUT/$overlay.newer.yaml" 2>"$OUT/warnings" ||
      { cat "$OUT/warnings" >&2; die "$newer cannot render overlays/$overlay"; }
    "$DEPLOY_PYTHON" tests/deploy/manifests.py same "$OUT/$overlay.yaml" "$OUT/$overlay.newer.yaml"
  fi
done

schemas=$("$DEPLOY_PYTHON" - <<'PY'
import os, re, kubernetes_validate
d = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
versions = {tuple(map(int, m.groups())) for n in os.listdir(d) if (m := re.fullmatch(r"v(\d+)\.(\d+)\.\d+-local-strict", n))}
print(" ".join(f"{a}.{b}.0" for a, b in sorted(versions)[-3:]))
PY
)
say "3/6 validate against Kubernetes $schemas (strict)"
VALIDATE=$(dirname "$DEPLOY_PYTHON")/kubernetes-validate
for version in $schemas; do
  for overlay in "${OVERLAYS[@]}"; do
    "$VALIDATE" --strict --quiet -k "$version" "$OUT/$overlay.yaml" ||
      die "overlays/$overlay does not validate against Kubernetes $version"
  done
done

say "4/6 policy"
"$DEPLOY_PYTHON" tests/deploy/manifests.py self-test
policy_files=()
for overlay in "${OVERLAYS[@]}"; do policy_files+=("$OUT/$overlay.yaml"); done
"$DEPLOY_PYTHON" tests/deploy/manifests.py policy "${policy_files[@]}"

say "5/6 hadolint deploy/Dockerfile ($("$HADOLINT" --version))"
"$HADOLINT" deploy/Dockerfile

say "6/6 rehearsal"
BIN=${FLASH_SALE_BIN:-${CARGO_TARGET_DIR:-target}/debug/flash-sale}
if [ ! -x "$BIN" ]; then
  scripts/build-tools.sh
  cargo build --quiet --bin flash-sale
fi
[ -f static/index.html ] || scripts/web.sh build
scripts/stack.sh up --started-file "$started"
eval "$(scripts/stack.sh env)"
moto=$(scripts/s3-stand-in.sh "${STACK_S3_PORT:-19000}")
MYSQL_PORT=${STACK_MYSQL_PORT:-3306}
run_id=$(date +%s)-$$
db=deploy_rehearsal_${run_id//-/_}
mariadb --protocol=TCP -h 127.0.0.1 -P "$MYSQL_PORT" -uroot \
  -e "CREATE DATABASE \`$db\` CHARACTER SET utf8mb4" </dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=flash-sale.test \
  -keyout "$OUT/tls.key" -out "$OUT/tls.crt" 2>/dev/null
S3=${FLASH_TEST_S3_ENDPOINT:-http://127.0.0.1:${STACK_S3_PORT:-19000}}
# The deployment-specific values: where this machine's stores are. Everything else comes
# from the manifests as rendered.
write_values() { # overlay file
"$DEPLOY_PYTHON" - "$1" "$2" <<PY
import json, sys
overlay = sys.argv[1]
keycloak = "http://127.0.0.1:${STACK_KEYCLOAK_PORT:-8180}"
endpoints = {
    "FLASH__REDIS__MODE": "standalone",
    "FLASH__REDIS__NAMESPACE": f"rehearsal-$run_id-{overlay}",
    "FLASH__KAFKA__BROKERS": "127.0.0.1:${STACK_KAFKA_PORT:-19092}",
    # A topic per overlay: each overlay's partition count is checked against its own.
    "FLASH__KAFKA__TOPIC_PREFIX": f"rehearsal-$run_id-{overlay}-",
    "FLASH__KAFKA__SECURITY_PROTOCOL": "plaintext",
    "FLASH__KAFKA__SASL_MECHANISM": None,
    "FLASH__KAFKA__SASL_USERNAME": None,
    # One broker here.
    "FLASH__KAFKA__ORDERS_REPLICATION_FACTOR": "1",
    "FLASH__KAFKA__ORDERS_MIN_INSYNC_REPLICAS": "1",
    "FLASH__IDENTITY__ISSUER": keycloak + "/realms/flash-sale",
    "FLASH__IDENTITY__KEYCLOAK__BASE_URL": keycloak,
    # S3: moto; its keys stand in for the pod's IAM role (the same default chain).
    "FLASH__OBJECT_STORE__S3__ENDPOINT": "$S3",
    "FLASH__OBJECT_STORE__S3__PATH_STYLE": "true",
    "AWS_ACCESS_KEY_ID": "rehearsal",
    "AWS_SECRET_ACCESS_KEY": "rehearsal",
}
secrets = {
    "FLASH__MYSQL__URL": "mysql://root@127.0.0.1:$MYSQL_PORT/$db",
    "FLASH__REDIS__URL": "redis://127.0.0.1:${STACK_REDIS_PORT:-6379}",
    "FLASH__REDIS__NODES": None,
    "FLASH__KAFKA__EVENT_SIGNING_KEY": "rehearsal-event-signing-key-of-32-characters",
    "FLASH__IDENTITY__KEYCLOAK__CLIENT_SECRET": "${FLASH__IDENTITY__KEYCLOAK__CLIENT_SECRET:-}",
}
tls = {"tls.crt": open("$OUT/tls.crt").read(), "tls.key": open("$OUT/tls.key").read()}
json.dump({"ConfigMap": {"flash-sale-endpoints": endpoints},
           "Secret": {"flash-sale-secrets": secrets, "flash-sale-edge-tls": tls}},
          open(sys.argv[2], "w"))
PY
}
# The buckets the overlays name, as a deployment provisions them before it starts.
grep -ho 'FLASH__OBJECT_STORE__S3__BUCKET: [a-z0-9.-]*' "$OUT"/*.yaml | awk '{print $2}' | sort -u |
  while read -r bucket; do
    curl -fsS -X PUT "$S3/$bucket" >/dev/null || die "could not create bucket $bucket at $S3"
  done
for overlay in "${OVERLAYS[@]}"; do
  say "rehearsing overlays/$overlay"
  write_values "$overlay" "$OUT/$overlay.values.json"
  "$DEPLOY_PYTHON" tests/deploy/rehearse.py --manifests "$OUT/$overlay.yaml" \
    --values "$OUT/$overlay.values.json" --binary "$BIN"
done
# The deployment as it was before the manifests mounted what the api needs: the embedded
# issuer with no signing key. The rehearsal must catch it.
say "rehearsing a broken deployment (embedded issuer, no signing key mounted): must fail"
"$DEPLOY_PYTHON" - "$OUT/eks.yaml" "$OUT/broken.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for d in docs:
    if d["kind"] == "Deployment" and d["metadata"]["name"] == "api":
        d["spec"]["template"]["spec"]["containers"][0].setdefault("env", []).append(
            {"name": "FLASH__IDENTITY__PROVIDER", "value": "embedded"})
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))
PY
"$DEPLOY_PYTHON" tests/deploy/rehearse.py --manifests "$OUT/broken.yaml" \
  --values "$OUT/eks.values.json" --binary "$BIN" --only api \
  --expect-failure "identity.embedded.signing_key"
say "passed"
