#!/usr/bin/env bash
# Fuzzes the request parsers and token handling for a bounded time: installs cargo-fuzz
# when missing (idempotent, instant when present), builds every target in fuzz/ with the
# nightly toolchain, runs each for FUZZ_SECONDS, and prints per target the executions and
# whether a crash was found. Exits non-zero when a target crashed or did not run.
#
#   FUZZ_SECONDS=60        time per target (libFuzzer -max_total_time)
#   FUZZ_TARGETS="a b"     only these targets (default: all of `cargo fuzz list`)
#   FUZZ_JOBS=1            cargo build jobs (CARGO_BUILD_JOBS)
#   FUZZ_ARGS="..."        extra libFuzzer flags, e.g. "-max_len=8192"
#
# Builds and runs at the lowest CPU priority, in fuzz/target (never the main target/).
# Inputs found along the way go to fuzz/corpus-gen/<target> (ignored by git); the seeds
# in fuzz/corpus/<target> are only read. A crash leaves its input in fuzz/artifacts/<target>/;
# replay it with: cargo +nightly fuzz run <target> <artifact>
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SAY_AS=fuzz

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
export CARGO_BUILD_JOBS=${FUZZ_JOBS:-${CARGO_BUILD_JOBS:-1}}
export CARGO_TARGET_DIR="$ROOT/fuzz/target"
# The token targets talk to a stub provider on 127.0.0.1 only.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
NICE=(nice -n 19)

# --- tools ---------------------------------------------------------------------------
need_build_tools # librdkafka (a dependency of the library) builds with CMake and C/C++
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  say "installing the nightly toolchain (cargo-fuzz needs it for sanitizer flags)"
  rustup toolchain install nightly --profile minimal >&2 \
    || die "no nightly toolchain and it could not be installed"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz"
  "${NICE[@]}" cargo install cargo-fuzz --locked >&2
fi

# --- build ---------------------------------------------------------------------------
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a TARGETS <<<"$FUZZ_TARGETS"
else
  mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi
[ ${#TARGETS[@]} -gt 0 ] || die "no fuzz targets"

say "building ${#TARGETS[@]} targets (nightly, release + debug assertions, ASan, $CARGO_BUILD_JOBS job(s))"
build_start=$(date +%s)
if [ -n "${FUZZ_TARGETS:-}" ]; then
  for target in "${TARGETS[@]}"; do
    "${NICE[@]}" cargo +nightly fuzz build "$target" >&2 || die "build of $target failed"
  done
else
  "${NICE[@]}" cargo +nightly fuzz build >&2 || die "build failed"
fi
build_secs=$(( $(date +%s) - build_start ))
say "build took ${build_secs}s"

# --- run -----------------------------------------------------------------------------
LOGS="$ROOT/fuzz/logs"
mkdir -p "$LOGS"
declare -A EXECS RESULT ARTIFACT SECS
failed=0
run_start=$(date +%s)
for target in "${TARGETS[@]}"; do
  work="$ROOT/fuzz/corpus-gen/$target"
  seeds="$ROOT/fuzz/corpus/$target"
  mkdir -p "$work" "$ROOT/fuzz/artifacts/$target"
  corpora=("$work")
  [ -d "$seeds" ] && corpora+=("$seeds")
  log="$LOGS/$target.log"
  say "running $target for ${FUZZ_SECONDS}s (log: ${log#"$ROOT"/})"
  started=$(date +%s)
  set +e
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  "${NICE[@]}" cargo +nightly fuzz run "$target" "${corpora[@]}" -- \
    -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -timeout=30 -rss_limit_mb=2048 \
    ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  set -e
  SECS[$target]=$(( $(date +%s) - started ))
  EXECS[$target]=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  [ -n "${EXECS[$target]}" ] || EXECS[$target]="?"
  ARTIFACT[$target]=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
  if [ "$rc" -eq 0 ] && [ -z "${ARTIFACT[$target]}" ]; then
    RESULT[$target]="ok"
  elif [ -n "${ARTIFACT[$target]}" ]; then
    RESULT[$target]="CRASH"
    failed=1
    # The panic or sanitizer report, for the summary.
    grep -m1 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" >&2 || true
  else
    RESULT[$target]="FAILED (exit $rc, see log)"
    failed=1
  fi
done
run_secs=$(( $(date +%s) - run_start ))

# --- report --------------------------------------------------------------------------
printf '\n%-16s %14s %8s  %s\n' target executions seconds result
for target in "${TARGETS[@]}"; do
  line="${RESULT[$target]}"
  [ -n "${ARTIFACT[$target]}" ] && line+=": ${ARTIFACT[$target]#"$ROOT"/}"
  printf '%-16s %14s %8s  %s\n' "$target" "${EXECS[$target]}" "${SECS[$target]}" "$line"
done
printf '\nbuild %ss, run %ss (FUZZ_SECONDS=%s per target)\n' "$build_secs" "$run_secs" "$FUZZ_SECONDS"
if [ "$failed" -ne 0 ]; then
  say "crashes found: replay with cargo +nightly fuzz run <target> <artifact>"
  exit 1
fi
