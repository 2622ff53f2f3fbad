#!/usr/bin/env bash
# Proves the ghc-patches on this machine: builds the patched RTS (build.sh,
# skipped when already built), links test/Load.hs + test/driver.c against it,
# runs it under -N2 with busy Haskell threads and checks the eventlogs with
# ghc-events (test/Check.hs) and the testkit checker (block sizes):
#   - rts_flushEventLog from a foreign thread writes out a quiet capability
#   - so does GHC 9.2's public flushEventLog(NULL) (patch 6's backport)
#   - rts_setTraceFlag switches classes off and on (TRACE_cap consistent)
#   - GHC 10.0's getTraceFlag/setTraceFlag (patch 7's backport) do too
#   - rts_resyncEventLog re-posts the start-up state at once
#   - --eventlog-flush-interval flushes with no call at all
#   - --eventlog-buffer-size makes the capability blocks small
# and reports the flush pause, patched API vs. the stock-9.0.2 hidden-symbol
# stop-the-world flush (same load, same byte-counting writer).
# Exits non-zero if a check fails. Env: as build.sh (GHC_PATCHED_DIR ...).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${GHC_PATCHED_DIR:-$repo/target/ghc-patched}
ghc=${GHC:-ghc}
t=$(date +%s)

if [ ! -x "$out/bin/ghc" ] || [ -n "$(find "$here/9.0.2" -newer "$out/bin/ghc" -name '*.patch')" ]; then
    "$here/build.sh"
fi
out=$(cd "$out" && pwd)
work=$out/test
rm -rf "$work"
mkdir -p "$work"

log() { printf 'test.sh: %s\n' "$*" >&2; }
quiet_ghc() { "$@" >"$work/ghc.log" 2>&1 || { cat "$work/ghc.log"; exit 1; }; }

log "building the load against the patched RTS, the same against the stock RTS, and the checkers"
quiet_ghc "$out/bin/ghc" -O1 -threaded -eventlog -rtsopts -outputdir "$work/build-patched" \
    "$here/test/Load.hs" "$here/test/driver.c" -o "$work/load-patched"
quiet_ghc "$ghc" -O1 -threaded -eventlog -rtsopts -optc-DSTOCK -outputdir "$work/build-stock" \
    "$here/test/Load.hs" "$here/test/driver.c" -o "$work/load-stock"
quiet_ghc "$ghc" -O0 -outputdir "$work/build-check" "$here/test/Check.hs" -o "$work/check"
have_testkit=0
if [ -f "$repo/testkit/haskell/EventlogCheck.hs" ]; then
    quiet_ghc "$ghc" -O0 -outputdir "$work/build-elc" "$repo/testkit/haskell/EventlogCheck.hs" \
        -o "$work/eventlog-check"
    have_testkit=1
fi

run() { # dir mode rts-flags...
    local d=$work/$1 m=$2 bin=$3
    shift 3
    mkdir -p "$d"
    "$bin" "$m" "$d" "$d/run.eventlog" +RTS -N2 "$@" -RTS
}

echo "== 1. flush / class switches / resync (patched, +RTS -N2 -l) =="
run test test "$work/load-patched" -l "-ol$work/test/run.eventlog"
"$work/check" "$work/test"

echo "== 1b. GHC 9.2's public flushEventLog(NULL) and NullEventLogWriter (backported) =="
run api92 api92 "$work/load-patched" -l "-ol$work/api92/run.eventlog"
"$work/check" api92 "$work/api92"

echo "== 1c. GHC 10.0's getTraceFlag/setTraceFlag (backported, patch 7) =="
quiet_ghc "$out/bin/ghc" -O1 -threaded -eventlog -rtsopts -no-hs-main -outputdir "$work/build-flags10" \
    "$here/test/flags10.c" -o "$work/flags10"
"$work/flags10" +RTS -l "-ol$work/flags10.eventlog" -RTS

echo "== 2. --eventlog-flush-interval=0.1, no calls =="
run quiet quiet "$work/load-patched" -l --eventlog-flush-interval=0.1 "-ol$work/quiet/run.eventlog"
"$work/check" quiet "$work/quiet"

if [ $have_testkit = 1 ]; then
    echo "== 3. --eventlog-buffer-size=16k =="
    run small quiet "$work/load-patched" -l --eventlog-buffer-size=16k "-ol$work/small/run.eventlog"
    run big quiet "$work/load-patched" -l "-ol$work/big/run.eventlog"
    blocks() { # file -> "blocks bytes"
        local f=$1
        echo "$("$work/eventlog-check" "$f" | awk '$1=="frames"{print $3}') $(stat -c %s "$f")"
    }
    read -r sb ss <<<"$(blocks "$work/small/run.eventlog")"
    read -r bb bs <<<"$(blocks "$work/big/run.eventlog")"
    echo "16k buffers: $sb blocks in $ss bytes; default 2m buffers: $bb blocks in $bs bytes"
    # Every capability block is at most 16 KiB: at least size/16k blocks.
    if [ "$sb" -ge $((ss / 16384)) ] && [ "$sb" -gt $((bb * 4)) ]; then
        echo "ok   --eventlog-buffer-size: blocks are small"
    else
        echo "FAIL --eventlog-buffer-size: too few blocks"
        exit 1
    fi
else
    echo "== 3. skipped: testkit/haskell/EventlogCheck.hs not found =="
fi

echo "== 4. flush pause: patched rts_flushEventLog vs stock 9.0.2 hidden-symbol flush =="
echo "   (-N2, 2 busy threads on cap 0, byte-counting writer, 500 flushes 2 ms apart; us)"
run bench-patched bench "$work/load-patched"
run bench-stock bench "$work/load-stock"
for k in patched stock; do
    read -r _ n mn med p99 mx <<<"$(grep '^flush_count_us' "$work/bench-$k/facts")"
    printf '   %-8s n=%s min %s median %s p99 %s max %s\n' "$k" "$n" "$mn" "$med" "$p99" "$mx"
done
echo "== all ghc-patches tests passed in $(($(date +%s) - t)) s =="
