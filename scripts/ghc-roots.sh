#!/usr/bin/env bash
# The GHC matrix: Debian trixie (GHC 9.6.6) and sid (GHC 9.10.3) roots built
# with debootstrap, reused when present. Programs are compiled and run inside a
# root with chroot; the repository and /tmp are bind-mounted at the same paths,
# so a test's paths mean the same inside and out.
#
#   scripts/ghc-roots.sh ensure [trixie|sid ...]   build (once) and mount
#   scripts/ghc-roots.sh path SUITE                 print the root's directory
#   scripts/ghc-roots.sh umount                     undo the bind mounts
#
# Roots live in $ELSTREAM_ROOTS (default /var/lib/elstream/roots), outside any
# clone, so every clone on the machine shares them. Needs root (debootstrap,
# mount, chroot). The traps are in ../shared/ghc-rts-notes.md: sid's expired
# Release file, sid's uninstallable libghc-ghc-events-dev, and the final
# `apt-get -f install`.
set -euo pipefail
ROOTS=${ELSTREAM_ROOTS:-/var/lib/elstream/roots}
REPO=$(cd "$(dirname "$0")/.." && pwd)

mirror() {
  # The mirror this machine's apt already uses.
  local m
  m=$(grep -rhoE '^(URIs:|deb) +[^ ]*debian[^ ]*' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
    grep -v security | awk '{print $2}' | head -1 || true)
  [ -n "$m" ] && [[ "$m" != http* ]] && m=""
  echo "${m:-http://deb.debian.org/debian}"
}

apt_opts() { [ "$1" = sid ] && echo "-o Acquire::Check-Valid-Until=false" || true; }

packages() {
  # sid's ghc-events library cannot be installed (notes); the host's judges.
  if [ "$1" = sid ]; then echo ghc,socat; else echo ghc,libghc-ghc-events-dev,socat; fi
}

mounted() { mountpoint -q "$1"; }

bind() {
  local src=$1 dst=$2
  mkdir -p "$dst"
  mounted "$dst" || mount --bind "$src" "$dst"
}

do_mount() {
  local dir=$1
  bind /proc "$dir/proc"
  bind /dev "$dir/dev"
  bind /tmp "$dir/tmp"
  bind "$REPO" "$dir$REPO"
}

build() {
  local suite=$1 dir=$ROOTS/$1
  if [ -x "$dir/usr/bin/ghc" ] && [ -f "$dir/.elstream-ready" ]; then
    return 0
  fi
  command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  local m
  m=$(mirror)
  echo "ghc-roots: building the $suite root in $dir (about 2-4 minutes, 1.6 GB)" >&2
  mkdir -p "$ROOTS"
  # debootstrap ends with an error from a dependency it does not pull in; the
  # root is finished below with apt-get -f install.
  if [ ! -x "$dir/usr/bin/apt-get" ]; then
    rm -rf "$dir"
    debootstrap --variant=minbase --include="$(packages "$suite")" "$suite" "$dir" "$m" \
      >"$ROOTS/$suite.debootstrap.log" 2>&1 || true
  fi
  [ -x "$dir/usr/bin/apt-get" ] || {
    echo "ghc-roots: debootstrap of $suite failed; see $ROOTS/$suite.debootstrap.log" >&2
    tail -20 "$ROOTS/$suite.debootstrap.log" >&2
    exit 1
  }
  echo "deb $m $suite main" >"$dir/etc/apt/sources.list"
  do_mount "$dir"
  # shellcheck disable=SC2046
  chroot "$dir" apt-get $(apt_opts "$suite") update -qq >/dev/null
  # shellcheck disable=SC2046
  DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get $(apt_opts "$suite") -f install -y -qq >/dev/null
  # shellcheck disable=SC2046
  DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get $(apt_opts "$suite") install -y -qq \
    $(packages "$suite" | tr , ' ') >/dev/null
  chroot "$dir" ghc --numeric-version >/dev/null || {
    echo "ghc-roots: ghc does not run in the $suite root" >&2
    exit 1
  }
  touch "$dir/.elstream-ready"
}

cmd=${1:-ensure}
shift || true
case "$cmd" in
ensure)
  suites=("$@")
  [ ${#suites[@]} -eq 0 ] && suites=(trixie sid)
  for s in "${suites[@]}"; do
    build "$s"
    do_mount "$ROOTS/$s"
    # metrics tests (metrics/tests/*.rs): a real Prometheus, trixie's 2.53 (it has
    # the OTLP receiver), run inside the trixie root with chroot. Added to roots
    # built before it was needed, too.
    if [ "$s" = trixie ] && [ ! -x "$ROOTS/$s/usr/bin/prometheus" ]; then
      DEBIAN_FRONTEND=noninteractive chroot "$ROOTS/$s" apt-get install -y -qq --no-install-recommends \
        prometheus >/dev/null
    fi
    echo "ghc-roots: $s: GHC $(chroot "$ROOTS/$s" ghc --numeric-version) in $ROOTS/$s" >&2
  done
  ;;
path) echo "$ROOTS/$1" ;;
umount)
  for d in "$ROOTS"/*/; do
    for m in "$d${REPO#/}" "$d/tmp" "$d/dev" "$d/proc"; do
      mounted "$m" && umount -l "$m" || true
    done
  done
  ;;
*)
  echo "usage: $0 ensure [trixie|sid ...] | path SUITE | umount" >&2
  exit 2
  ;;
esac
