#!/usr/bin/env bash
# The demo: a threaded Haskell program streams its eventlog live through the
# shim to `elstream proxy` and the web view (`elstream ui`, open
# http://127.0.0.1:8080 while it runs), and `elstream watch` shows it as it
# happens. Installs what it needs on a fresh Debian machine. Runs about 20
# seconds; ELSTREAM_DEMO_HOLD=SECONDS keeps the page up that long afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -q -p elstream-shim -p elstream
elstream=$PWD/target/release/elstream

work=$(mktemp -d /tmp/elstream-demo.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

echo "== building examples/haskell/Demo.hs with the shim (libelstream.a)"
mkdir -p target/demo
ghc -O1 -threaded -eventlog -rtsopts -v0 -ishim/haskell/src \
    -outputdir target/demo -o target/demo/Demo examples/haskell/Demo.hs \
    target/release/libelstream.a \
    -optl-lgcc_s -optl-lutil -optl-lrt -optl-lpthread -optl-lm -optl-ldl -optl-lc

sock=$work/demo.sock
port=${ELSTREAM_DEMO_PORT:-4242}
echo "== starting the program: streams to unix:$sock, flushing every 200 ms"
target/demo/Demo 60 150 20000 "--stream=unix:$sock,flush=200ms" +RTS -N2 -RTS > "$work/demo.out" &
pids+=($!); demo=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

echo "== elstream proxy: unix:$sock -> tcp://127.0.0.1:$port (try: nc 127.0.0.1 $port > live.eventlog)"
"$elstream" proxy --source "unix:$sock" --listen "tcp://127.0.0.1:$port" 2> "$work/proxy.err" &
pids+=($!)
sleep 0.5

ui_port=${ELSTREAM_DEMO_UI_PORT:-8080}
echo "== elstream ui: the live web view on http://127.0.0.1:$ui_port (capability timeline, GC, heap, spans, control)"
"$elstream" ui --no-discover --listen "127.0.0.1:$ui_port" "unix:$sock" 2> "$work/ui.err" &
pids+=($!)
sleep 1
curl -fsS "http://127.0.0.1:$ui_port/" >/dev/null 2>&1 && echo "   (the page answers)" || echo "   (the page did not answer: see below)"

echo "== elstream ctl: the shim's status"
"$elstream" ctl --to "unix:$sock.ctl" status | grep -E '^(rts|link|classes|flush-mechanism|flush-interval)='

echo "== elstream watch tcp://127.0.0.1:$port  (user events as they come, a summary every 500 ms)"
"$elstream" watch "tcp://127.0.0.1:$port" --every 500ms &
watcher=$!; pids+=($watcher)

sleep 4
echo "== elstream ctl: scheduler events off for a while (classes -s), then back on"
"$elstream" ctl --to "unix:$sock.ctl" "classes -s" >/dev/null
sleep 2
"$elstream" ctl --to "unix:$sock.ctl" "classes +s" >/dev/null

wait "$demo"
echo "== the program finished:"; cat "$work/demo.out" | grep -E '^(user-events|markers)'
wait "$watcher" || true
if [ -n "${ELSTREAM_DEMO_HOLD:-}" ]; then
  echo "== the page stays up for $ELSTREAM_DEMO_HOLD s: http://127.0.0.1:$ui_port"
  sleep "$ELSTREAM_DEMO_HOLD"
fi
[ -s "$work/ui.err" ] && { echo "== elstream ui said:"; cat "$work/ui.err"; } || true
