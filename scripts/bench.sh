#!/usr/bin/env bash
# elstream's benchmarks (issue 2): installs dependencies, builds release, runs
# the benches and prints one markdown table per area with the machine line.
# Progress goes to stderr, the tables to stdout:
#
#   scripts/bench.sh > bench.md
#
# Extra arguments go to elstream-bench (e.g. `--rounds 5`, or a subcommand:
# `scripts/bench.sh latency`); see `target/release/elstream-bench --help`.
# Takes about two minutes on a 2-core box once built.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CARGO_TERM_COLOR=never
target="${CARGO_TARGET_DIR:-target}"

# The shim's static library first: the Haskell programs link it.
cargo build --release -p elstream-shim -p elstream-bench
"$target/release/elstream-bench" "$@"

# Proxy benches: fan-out throughput vs a loopback ceiling, `elstream run` ratio.
if [ $# -eq 0 ]; then
  cargo build --release -p elstream --example bench_fanout >&2
  "$target/release/examples/bench_fanout" 1000000 3
  cargo build --release -p elstream --example bench_memory_udp >&2 && "$target/release/examples/bench_memory_udp" 60
  # elstream metrics: CPU vs a plain consumer at 120 MB/s, /metrics scrape time (bench 5).
  cargo build --release -p elstream >&2 && "$target/release/elstream-bench" metrics --rounds 3
  # elstream ui: event → page latency, CPU, RSS, bytes/s; large upload vs ThreadScope (bench 6).
  "$target/release/elstream-bench" ui --rounds 3
fi
