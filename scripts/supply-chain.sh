#!/usr/bin/env bash
# Supply-chain checks of the locked dependencies (idempotent; seconds once set up).
#
#   Rust  cargo-deny with deny.toml: licenses, bans, sources and advisories of Cargo.lock.
#         The advisories come from a pinned snapshot of the RustSec advisory database,
#         unpacked once per machine; nothing is fetched but crates from crates.io.
#   npm   web/ and tests/oidc-provider/: the lock files' sources, integrity hashes,
#         licenses and install scripts (supply-chain/npm-lock-check.mjs, offline), and
#         `npm audit` where the registry's audit endpoint answers.
#
# The first run installs the pinned cargo-deny with `cargo install` (several minutes on
# two cores) into the per-machine cache, unless that version is already on PATH.
#
# A check that cannot run here (no advisory snapshot, npm audit endpoint refused) is a
# warning, printed again at the end; SUPPLY_CHAIN_STRICT=1 makes it an error.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh
SAY_AS=supply-chain

CARGO_DENY_VERSION=0.20.2
STRICT=${SUPPLY_CHAIN_STRICT:-0}
NPM_DIRS=(web tests/oidc-provider)

# Where cargo-deny keeps the default database (db-urls and db-path unset in deny.toml):
# $CARGO_HOME/advisory-dbs/<last URL segment>-<hash of the URL>, fixed for this version.
ADB_DIR=${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/advisory-db-3157b0e258782691
ADB_ARCHIVE_NAME=rustsec-advisory-db.tar.gz
# The archive's sha256, pinned in the repository: a snapshot is used only if it is the
# one this commit was checked against.
ADB_SHA256=$(cut -d' ' -f1 supply-chain/$ADB_ARCHIVE_NAME.sha256)
ADB_STAMP=.flash-sale-snapshot.sha256

warnings=()
failures=()
not_run() {
  if [ "$STRICT" = 1 ]; then
    failures+=("$*")
  else
    warnings+=("$*")
  fi
  say "WARNING: $*"
}

ensure_cargo_deny() {
  local root=$CACHE_DIR/tools/cargo-deny-$CARGO_DENY_VERSION
  export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
  if [ "$(cargo-deny --version 2>/dev/null)" = "cargo-deny $CARGO_DENY_VERSION" ]; then
    return
  fi
  export PATH="$root/bin:$PATH"
  [ -x "$root/bin/cargo-deny" ] && return
  say "installing cargo-deny $CARGO_DENY_VERSION (cargo install; several minutes, once per machine)"
  nice -n 19 cargo install --locked --quiet --root "$root" cargo-deny --version "$CARGO_DENY_VERSION"
}

# The pinned snapshot archive: named by FLASH_SALE_ADVISORY_DB, else in supply-chain/,
# else in the shared folder beside the repository. An archive with another hash is
# skipped with a warning.
find_advisory_archive() {
  local c got
  ADB_ARCHIVE=""
  for c in "${FLASH_SALE_ADVISORY_DB:-}" "$ROOT/supply-chain/$ADB_ARCHIVE_NAME" \
    "$ROOT/../shared/supply-chain/$ADB_ARCHIVE_NAME"; do
    if [ -z "$c" ] || [ ! -f "$c" ]; then continue; fi
    got=$(sha256sum "$c" | cut -d' ' -f1)
    if [ "$got" = "$ADB_SHA256" ]; then
      ADB_ARCHIVE=$c
      return
    fi
    not_run "$c has sha256 $got, not the pinned $ADB_SHA256 (a new snapshot goes with a new pin): skipped"
  done
}

# Unpacks the snapshot into cargo-deny's database directory as a one-commit git
# repository dated like the snapshot (cargo-deny reads the age from git), unless it is
# there already. A database that cargo-deny fetched itself is used as it is. Sets
# ADB_SOURCE to where the database came from, empty when there is none. (Not called as
# a condition, so that set -e holds inside.)
prepare_advisory_db() {
  local tmp repo commit date
  ADB_SOURCE=""
  if [ -d "$ADB_DIR/.git" ] && [ ! -f "$ADB_DIR/$ADB_STAMP" ]; then
    ADB_SOURCE="fetched by cargo-deny"
    return
  fi
  if [ -f "$ADB_DIR/$ADB_STAMP" ] && [ "$(cat "$ADB_DIR/$ADB_STAMP")" = "$ADB_SHA256" ]; then
    ADB_SOURCE="pinned snapshot, unpacked before"
    return
  fi
  find_advisory_archive
  if [ -z "$ADB_ARCHIVE" ]; then
    if [ -f "$ADB_DIR/$ADB_STAMP" ]; then
      not_run "the pinned advisory snapshot was not found; using the older one unpacked in $ADB_DIR"
      ADB_SOURCE="older snapshot, unpacked before"
    fi
    return
  fi
  say "unpacking the advisory snapshot $ADB_ARCHIVE into $ADB_DIR"
  mkdir -p "$(dirname "$ADB_DIR")"
  rm -rf "$ADB_DIR".tmp.* # left by an interrupted run
  tmp=$(mktemp -d "$ADB_DIR.tmp.XXXXXX")
  tar -xzf "$ADB_ARCHIVE" -C "$tmp"
  read -r repo commit date <"$tmp/SNAPSHOT"
  (
    cd "$tmp"
    export GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date
    git init -q -b main .
    git add -A
    git -c user.name=flash-sale -c user.email=flash-sale@localhost -c commit.gpgsign=false \
      commit -q --no-verify -m "$repo $commit"
  )
  # cargo-deny takes the newer of the commit date and .git/HEAD's modification time.
  touch -d "$date" "$tmp/.git/HEAD"
  echo "$ADB_SHA256" >"$tmp/$ADB_STAMP"
  rm -rf "$ADB_DIR"
  mv "$tmp" "$ADB_DIR"
  ADB_SOURCE="pinned snapshot from $ADB_ARCHIVE"
}

# Age of the database in days, from the same dates cargo-deny reads.
advisory_db_age() {
  local commit head
  commit=$(git -C "$ADB_DIR" show -s --format=%ct HEAD)
  head=$(stat -c %Y "$ADB_DIR/.git/HEAD")
  [ -f "$ADB_DIR/.git/FETCH_HEAD" ] && head=$(stat -c %Y "$ADB_DIR/.git/FETCH_HEAD")
  [ "$head" -gt "$commit" ] && commit=$head
  echo $((($(date +%s) - commit) / 86400))
}

check_rust() {
  local age checks=(bans licenses sources) json rc=0 summary=0
  ensure_cargo_deny
  prepare_advisory_db
  if [ -n "$ADB_SOURCE" ]; then
    age=$(advisory_db_age)
    say "advisory database: $ADB_SOURCE; $(git -C "$ADB_DIR" log -1 --format=%s), $age days old"
    if [ "$age" -gt 90 ]; then
      say "WARNING: the advisory database is $age days old; refresh it (supply-chain/README.md)"
      warnings+=("advisory database $age days old")
    fi
    checks+=(advisories)
  else
    not_run "no RustSec advisory snapshot ($ADB_ARCHIVE_NAME, see supply-chain/README.md): Rust advisories NOT checked"
  fi
  # Every locked crate's sources (for the license files) from crates.io, so that
  # cargo-deny can run with --frozen (--locked --offline): no database fetch, and the
  # yanked check reads the index entries that cargo keeps.
  nice -n 19 cargo fetch --locked --quiet
  # One run in JSON, summarised: duplicate versions are warnings (deny.toml) that, with
  # their inclusion graphs, would bury the rest. Anything else found is shown by a second
  # run in cargo-deny's own format, duplicates left out.
  say "cargo deny --frozen check ${checks[*]}"
  json=$(cargo deny --frozen --format json check "${checks[@]}" 2>&1) || rc=$?
  node supply-chain/cargo-deny-summary.mjs <<<"$json" || summary=$?
  if [ "$rc" -ne 0 ] || [ "$summary" -ne 0 ]; then
    cargo deny --frozen check --allow duplicate "${checks[@]}" || true
  fi
  if [ "$rc" -ne 0 ]; then
    failures+=("cargo deny check ${checks[*]}")
  fi
}

ensure_node() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && return
  apt_install nodejs npm
}

# npm audit of one directory's lock file, with the flags that follow DIR. Fails when the
# registry's audit endpoint gives no report; a finding at the level asked for is recorded
# as a failure.
npm_audit() {
  local dir=$1 out rc=0
  shift
  out=$(cd "$dir" && npm audit --package-lock-only --json --fetch-retries=0 "$@" 2>/dev/null) || rc=$?
  grep -q '"auditReportVersion"' <<<"$out" || return 1
  if [ "$rc" -ne 0 ]; then
    (cd "$dir" && npm audit --package-lock-only --fetch-retries=0 "$@" >&2) || true
    failures+=("npm audit $* ($dir)")
  fi
}

check_npm() {
  local dir
  say "npm lock files: sources, integrity, licenses, install scripts"
  if ! NPM_REGISTRY=$(npm config get registry) node supply-chain/npm-lock-check.mjs "${NPM_DIRS[@]}"; then
    failures+=("npm lock file check")
  fi
  for dir in "${NPM_DIRS[@]}"; do
    # package.json and package-lock.json agree (what `npm ci` would refuse).
    if ! (cd "$dir" && npm ls --all --package-lock-only >/dev/null); then
      failures+=("npm ls ($dir): package.json and package-lock.json disagree")
    fi
    # What ships or runs in tests: high and critical advisories fail. Build and browser
    # test tools (devDependencies) run only on developer and CI machines: critical ones
    # (such as malware) fail.
    say "npm audit ($dir): --omit=dev --audit-level=high, then all --audit-level=critical"
    if ! npm_audit "$dir" --omit=dev --audit-level=high ||
      ! npm_audit "$dir" --audit-level=critical; then
      not_run "npm audit ($dir): the registry's audit endpoint gave no report: npm advisories NOT checked"
    fi
  done
}

ensure_node
check_rust
check_npm

for w in ${warnings[@]+"${warnings[@]}"}; do say "warning: $w"; done
if [ ${#failures[@]} -gt 0 ]; then
  for f in "${failures[@]}"; do say "FAILED: $f"; done
  exit 1
fi
say "supply-chain checks passed"
