#!/usr/bin/env bash
# Installs what `cargo build` needs beyond the Rust toolchain (idempotent, instant when
# present). The Makefile runs it before every target that compiles.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SAY_AS=build need_build_tools
