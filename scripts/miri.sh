#!/usr/bin/env bash
# Runs unit tests under Miri (undefined-behaviour checker, nightly):
# the shim's ring (ours is safe code over the ringbuf crate, whose unsafe code
# Miri then checks as we use it, threads included) and, with `all`, every unit
# test of the format crate (~5 minutes on a shared 2-core box).
#   Usage: scripts/miri.sh [all]
# Installs the miri and rust-src components of nightly when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "miri.sh: the nightly toolchain is not installed: rustup toolchain install nightly --profile minimal" >&2
  exit 1
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  rustup component add --toolchain nightly miri rust-src
fi
# Own target dir: Miri builds are not reusable by normal builds.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo +nightly miri test -p elstream-shim --lib ring
if [ "${1:-}" = all ]; then
  # The 65536-entry state-cache test takes far too long under Miri.
  cargo +nightly miri test -p elstream-format --lib -- --skip big_state_is_cut_into_blocks_and_bounded
fi
