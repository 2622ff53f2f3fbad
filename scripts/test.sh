#!/usr/bin/env bash
# Runs every test: installs dependencies, builds the workspace (release: the
# tests link real GHC programs with target/release/libelstream.a), then tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CARGO_TERM_COLOR=never
cargo build --release --workspace --all-targets
# The RTS patches: apply to Debian's 9.0.2 source, build, and test natively.
bash ghc-patches/test.sh
cargo test --release --workspace --no-fail-fast -- --test-threads=2
# Short fuzz, 20 s per target (scripts/fuzz.sh; needs nightly, which install-deps installs; fails loudly, never skips).
bash scripts/fuzz.sh 20
