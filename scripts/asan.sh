#!/usr/bin/env bash
# AddressSanitizer + LeakSanitizer, end to end: builds the shim's staticlib
# (Rust and its C glue, csrc/rts_glue.c) instrumented with ASan (nightly),
# links the real Demo program (examples/haskell/Demo.hs) with it and with the
# ASan runtime that matches rustc's instrumentation, streams to two consumers
# (one from the start, one joining mid-run), sends control commands through
# the control socket, and checks every stream with ghc-events. Fails when ASan
# or LSan reports anything, or a stream does not parse.
# Output: target/asan/ (asan.log.* = sanitizer reports, *.eventlog = streams).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
triple=x86_64-unknown-linux-gnu
out=$root/target/asan
mkdir -p "$out"
rm -f "$out"/asan.log.* "$out"/*.eventlog

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "asan.sh: needs the nightly toolchain (-Zsanitizer): rustup toolchain install nightly --profile minimal" >&2
  exit 1
fi
sysroot=$(rustc +nightly --print sysroot)
asan_rt=$sysroot/lib/rustlib/$triple/lib/librustc-nightly_rt.asan.a
[ -f "$asan_rt" ] || { echo "asan.sh: $asan_rt missing" >&2; exit 1; }

echo "asan.sh: building libelstream.a with -Zsanitizer=address"
# --target keeps RUSTFLAGS off build scripts; std itself is not instrumented
# (no -Zbuild-std) but its heap use goes through ASan's malloc all the same.
CARGO_TARGET_DIR=$out/cargo \
  RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes" \
  CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" \
  cargo +nightly rustc -q -p elstream-shim --release --target $triple --lib --crate-type staticlib
lib=$out/cargo/$triple/release/libelstream.a

echo "asan.sh: linking examples/haskell/Demo.hs"
ghc -v0 -O1 -threaded -eventlog -rtsopts -ishim/haskell/src \
  -outputdir "$out/hs" -o "$out/Demo" examples/haskell/Demo.hs "$lib" \
  -optl-Wl,--whole-archive -optl"$asan_rt" -optl-Wl,--no-whole-archive \
  -optl-lgcc_s -optl-lutil -optl-lrt -optl-lpthread -optl-lm -optl-ldl -optl-lc

elstream=$root/target/release/elstream
[ -x "$elstream" ] || cargo build -q --release -p elstream

sock=$out/demo.sock
rm -f "$sock" "$sock.ctl"
# GHC allocates its heap with mmap, not malloc, so ASan only sees the RTS's
# and our malloc use. No suppressions: anything reported fails the run.
export ASAN_OPTIONS="detect_leaks=1:log_path=$out/asan.log:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1"
echo "asan.sh: running Demo under ASan"
"$out/Demo" 60 30 20000 "--stream=unix:$sock" --wait-consumers=1 +RTS -N2 -RTS >"$out/demo.out" &
demo=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { echo "asan.sh: no socket $sock" >&2; kill $demo; exit 1; }
socat -u "UNIX-CONNECT:$sock" "CREATE:$out/full.eventlog" &
c1=$!
sleep 1
for cmd in status sync flush "classes -s" "flush-interval 50ms" "classes +s" \
  "ring-size 8M" "sticky asan-run" "snapshot ../escape" "bogus"; do
  "$elstream" ctl --to "unix:$sock.ctl" "$cmd" >>"$out/ctl.out" 2>&1 || true
done
socat -u "UNIX-CONNECT:$sock" "CREATE:$out/joiner.eventlog" &
c2=$!
rc=0
wait $demo || rc=$?
wait $c1 || true
wait $c2 || true

fail=0
[ "$rc" -eq 0 ] || { echo "asan.sh: Demo exited $rc" >&2; fail=1; }
for f in "$out"/full.eventlog "$out"/joiner.eventlog; do
  if ghc-events show "$f" >/dev/null 2>"$out/check.err"; then
    echo "asan.sh: $(basename "$f"): $(stat -c %s "$f") bytes, parses with ghc-events"
  else
    echo "asan.sh: $(basename "$f") does not parse: $(head -3 "$out/check.err")" >&2
    fail=1
  fi
done
if ls "$out"/asan.log.* >/dev/null 2>&1; then
  echo "asan.sh: sanitizer reports:" >&2
  cat "$out"/asan.log.* >&2
  fail=1
else
  echo "asan.sh: no ASan/LSan reports"
fi
grep -c . "$out/ctl.out" >/dev/null && echo "asan.sh: control replies: $(tr '\n' ' ' <"$out/ctl.out" | cut -c1-300)"
exit $fail
