#!/usr/bin/env bash
# Installs what elstream's build, demo and tests need on a fresh Debian 12 machine:
# GHC 9.0.2, the ghc-events library (the reference parser the tests judge with), socat.
# Rust comes from rustup (the machine's toolchain). Safe to run again.
set -euo pipefail
need=()
command -v ghc >/dev/null || need+=(ghc)
ghc-pkg list --simple-output ghc-events 2>/dev/null | grep -q ghc-events || need+=(libghc-ghc-events-dev)
command -v socat >/dev/null || need+=(socat)
command -v cc >/dev/null || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "install-deps: cargo not found; install Rust with rustup" >&2; exit 1; }
# test.sh checks formatting and lints: rustfmt and clippy on the stable toolchain.
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
# Nightly (minimal profile) for scripts/fuzz.sh, which test.sh runs: cargo-fuzz needs it.
rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal

# --- GHC matrix and judges (testkit): debootstrap builds the trixie/sid roots
# (scripts/ghc-roots.sh); ghc-events' validator comes with
# libghc-ghc-events-dev above; ThreadScope runs under Xvfb, ImageMagick's
# `import` takes the screenshot and tesseract reads its status line.
judges=()
command -v debootstrap >/dev/null || judges+=(debootstrap)
command -v Xvfb >/dev/null || judges+=(xvfb)
command -v threadscope >/dev/null || judges+=(threadscope)
command -v tesseract >/dev/null || judges+=(tesseract-ocr)
command -v import >/dev/null || judges+=(imagemagick)
if [ ${#judges[@]} -gt 0 ]; then
  echo "install-deps: installing ${judges[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${judges[@]}" >/dev/null
fi

# --- metrics (issue 13): the metrics tests run a real Prometheus, Debian trixie's 2.53,
# inside the trixie root (scripts/ghc-roots.sh builds the root once, mounts /tmp and
# this clone into it, and installs the `prometheus` package there).
bash "$(dirname "$0")/ghc-roots.sh" ensure trixie

# --- elstream ui (issue 12): the browser tests drive Debian's Chromium through chromedriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "install-deps: installing chromium chromium-driver (elstream ui browser tests)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
