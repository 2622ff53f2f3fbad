#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/*.rs), or the TARGETs named,
# for SECONDS each (default 30), one after the other, and prints
# target | execs | crashes.   Usage: scripts/fuzz.sh [SECONDS [TARGET...]]
# Needs a nightly toolchain; installs cargo-fuzz if missing. Exits non-zero
# when a target crashed (the input is kept in fuzz/artifacts/TARGET/).
# The committed seeds (fuzz/corpus/TARGET) are only read; inputs found during
# the run go to $FUZZ_WORK (default target/fuzz-work/TARGET), kept between runs.
# Built without AddressSanitizer by default (FUZZ_SANITIZER=none): the fuzzed
# crate (format/) has no unsafe code, so ASan finds nothing there, and its
# shadow-memory work makes e.g. the udp target ~100x slower. Set
# FUZZ_SANITIZER=address to fuzz with it anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS [TARGET...]]" >&2; exit 2; }
shift || true

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is not installed (cargo-fuzz needs it)." >&2
  echo "fuzz.sh: install it with: rustup toolchain install nightly --profile minimal" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  cargo +nightly install cargo-fuzz --locked
fi

san=${FUZZ_SANITIZER:-none}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}/fuzz-$san
work=${FUZZ_WORK:-$PWD/target/fuzz-work}
targets=${*:-$(cd fuzz/fuzz_targets && ls *.rs | sed 's/\.rs$//')}
export CARGO_TERM_COLOR=never
cargo +nightly fuzz build -s "$san" --target-dir "$target_dir"

status=0
rows=()
for t in $targets; do
  mkdir -p "$work/$t" "fuzz/artifacts/$t"
  before=$(ls "fuzz/artifacts/$t" | wc -l)
  log="$work/$t.log"
  echo "fuzz.sh: $t for ${secs}s (log: $log)"
  # First corpus dir receives new inputs; the committed seeds stay untouched.
  rc=0
  cargo +nightly fuzz run -s "$san" --target-dir "$target_dir" "$t" "$work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(( $(ls "fuzz/artifacts/$t" | wc -l) - before ))
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes="? (exit $rc)"; fi
  if [ "$rc" -ne 0 ]; then
    status=1
    echo "fuzz.sh: $t FAILED; tail of $log:" >&2
    tail -40 "$log" >&2
  fi
  rows+=("$t|${execs:-?}|$crashes")
done

printf '\n%-10s | %12s | %s\n' target execs crashes
printf -- '-----------+--------------+--------\n'
for r in "${rows[@]}"; do
  IFS='|' read -r t e c <<<"$r"
  printf '%-10s | %12s | %s\n' "$t" "$e" "$c"
done
exit $status
