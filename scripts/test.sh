#!/usr/bin/env bash
# Runs every test: installs dependencies, builds the workspace (release: the
# tests link real GHC programs with target/release/libelstream.a), then tests
# on the host's GHC 9.0.2, then the GHC-facing tests again on each Debian
# root's GHC (scripts/ghc-roots.sh: trixie 9.6.6, sid 9.10.3; ELSTREAM_GHC
# selects it in testkit), then a short fuzz. Every step runs even when an
# earlier one failed; a summary line per GHC ends the output and the exit code
# says whether anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CARGO_TERM_COLOR=never
cargo build --release --workspace --all-targets
# Lints (Cargo.toml's [workspace.lints]: unsafe needs a SAFETY line, nothing
# newer than rust-version), warnings as errors.
t0=$SECONDS; rc_clippy=0
cargo fmt --all --check || rc_clippy=$?
cargo clippy --release --workspace --all-targets -- -D warnings || rc_clippy=$?
clippy_s=$((SECONDS - t0))

# The GHC-facing tests the matrix repeats per GHC: whatever builds and runs a
# Haskell program, and the format tests on the logs our own programs write
# with it (own_logs, truncation). Format unit, corpus, header and judge tests
# do not depend on the compiler and run once on the host; shim's `patched` is
# the patched 9.0.2 RTS.
MATRIX=(
  "-p elstream-format --test own_logs --test truncation"
  "-p elstream-shim --test complete --test control --test faults --test shared --test sink --test stream"
  "-p elstream --test run --test shim --test sinks --test faults --test relay --test sessions"
  "-p testkit --test ghc --test build --test binding --test examples"
  # The web view on this GHC's Demo (labels, heap census) and -hT log; about
  # 25 s (browser) + 7 s (files) per GHC measured here. access.rs is not GHC-facing.
  "-p elstream-monitor --test browser --test files"
)
# A hung test (a program that never exits and a read that never ends) must
# fail the run, not hold CI: each cargo test gets a hard limit (the host's
# whole run; each of a matrix GHC's three, which take 1-3 min when healthy).
HOST_LIMIT=${ELSTREAM_HOST_LIMIT:-45m}
MATRIX_LIMIT=${ELSTREAM_MATRIX_LIMIT:-12m}
LIMIT=$HOST_LIMIT
LOGS=target/test-logs
mkdir -p "$LOGS"
summary=()
failed=0

# Runs "$@" under the limit, output to the terminal and appended to LOG; its
# status is the command's (pipefail; 124 when the limit killed it).
run_logged() {
  local log=$1
  shift
  timeout --kill-after=30s "$LIMIT" "$@" 2>&1 | tee -a "$log"
}

# worst RC NEW: a hang (124) outranks a failure.
worst() { if [ "$1" -eq 124 ] || [ "$2" -eq 0 ]; then echo "$1"; else echo "$2"; fi; }

# "N passed, M failed" from cargo's `test result:` lines in LOG.
counts() {
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
       END { printf "%d passed, %d failed", p, f }' "$1"
}

step() {
  # step LABEL LOG RC SECONDS
  local verdict=ok
  [ "$3" -eq 0 ] || { verdict=FAILED; [ "$3" -eq 124 ] && verdict="FAILED (hit the $LIMIT limit: hung)"; failed=1; }
  summary+=("$(printf '%-31s %-7s %s, %4d s' "$1" "$verdict" "$(counts "$2")" "$4")")
}

summary+=("$(printf '%-28s %-8s %4d s' "fmt + clippy -D warnings" "$([ $rc_clippy -eq 0 ] && echo ok || echo FAILED)" "$clippy_s")")
[ $rc_clippy -eq 0 ] || failed=1

# The RTS patches: apply to Debian's 9.0.2 source, build, and test natively.
t0=$SECONDS; rc=0
bash ghc-patches/test.sh || rc=$?
[ $rc -eq 0 ] || failed=1
summary+=("$(printf '%-31s %-7s %4d s' "ghc-patches" "$([ $rc -eq 0 ] && echo ok || echo FAILED)" $((SECONDS - t0)))")

host="GHC $(ghc --numeric-version) (host)"
log=$LOGS/host.log; : >"$log"
t0=$SECONDS; rc=0
run_logged "$log" cargo test --release --workspace --no-fail-fast -- --test-threads=2 || rc=$?
step "$host: every test" "$log" $rc $((SECONDS - t0))
# Tests on the third-party corpus (../shared/corpus) that could not run say so.
skipped_dir=${CARGO_TARGET_DIR:-target}/corpus-skipped
n=0; [ -d "$skipped_dir" ] && n=$(find "$skipped_dir" -type f | wc -l)
[ "$n" -eq 0 ] || summary+=("SKIPPED: $n corpus tests (../shared/corpus missing): see $skipped_dir/")

# Builds the roots on a fresh machine, reuses them otherwise; mounts this clone.
bash scripts/ghc-roots.sh ensure
LIMIT=$MATRIX_LIMIT
for suite in trixie sid; do
  ver=$(chroot "$(bash scripts/ghc-roots.sh path $suite)" ghc --numeric-version)
  log=$LOGS/$suite.log; : >"$log"
  t0=$SECONDS; rc=0
  for sel in "${MATRIX[@]}"; do
    r=0
    # shellcheck disable=SC2086
    ELSTREAM_GHC=$suite run_logged "$log" cargo test --release $sel --no-fail-fast -- --test-threads=2 || r=$?
    rc=$(worst "$rc" "$r")
  done
  step "GHC $ver ($suite): GHC tests" "$log" $rc $((SECONDS - t0))
done

# Short fuzz, 20 s per target (scripts/fuzz.sh; needs nightly, which install-deps installs; fails loudly, never skips).
t0=$SECONDS; rc=0
bash scripts/fuzz.sh 20 || rc=$?
[ $rc -eq 0 ] || failed=1
summary+=("$(printf '%-31s %-7s %4d s' "fuzz" "$([ $rc -eq 0 ] && echo ok || echo FAILED)" $((SECONDS - t0)))")

echo
echo "== test summary (logs in $LOGS/) =="
printf '%s\n' "${summary[@]}"
exit $failed
