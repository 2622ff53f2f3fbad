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
# Nightly (minimal profile) for scripts/fuzz.sh, which test.sh runs: cargo-fuzz needs it.
rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
