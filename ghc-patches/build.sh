#!/usr/bin/env bash
# Build a patched GHC 9.0.2 RTS from the installed Debian `ghc` package:
# fetch the 9.0.2 source (cached), apply ghc-patches/9.0.2/*.patch, compile
# only the RTS C files the patches change, and assemble a private GHC libdir
# whose libHSrts_<way>.a carry the patched objects. Use it with
#     ghc -B<out>/lib ...      (or <out>/bin/ghc ...)
#
# Environment:
#   GHC_PATCHED_DIR    output directory (default: <repo>/target/ghc-patched)
#   GHC_SRC_CACHE      where the Debian source package is kept
#                      (default: $GHC_PATCHED_DIR/source)
#   GHC_SRC_TARBALL    use this ghc_9.0.2.orig.tar.xz instead of apt-get source
#   GHC_PATCHED_WAYS   RTS ways to patch (default: "thr_l"; also: l thr v)
#   GHC                the ghc to build with (default: ghc)
#   GHC_PATCHES_UPTO   apply only the patches numbered up to this (e.g. 6:
#                      an RTS without patch 7's GHC 10.0 trace flags)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${GHC_PATCHED_DIR:-$repo/target/ghc-patched}
cache=${GHC_SRC_CACHE:-$out/source}
ways=${GHC_PATCHED_WAYS:-thr_l}
ghc=${GHC:-ghc}
version=9.0.2

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v "$ghc" >/dev/null || die "no ghc (apt-get install ghc)"
have=$("$ghc" --numeric-version)
[ "$have" = "$version" ] || die "installed ghc is $have, the patches are for $version"
libdir=$("$ghc" --print-libdir)
[ -f "$libdir/settings" ] || die "no settings file in ghc libdir $libdir"

start=$(date +%s)
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)

# --- 1. source ---------------------------------------------------------------
tarball=${GHC_SRC_TARBALL:-}
if [ -z "$tarball" ]; then
    tarball=$(ls "$cache"/ghc_"$version".orig.tar.xz 2>/dev/null || true)
fi
if [ -z "$tarball" ]; then
    as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        log "adding a deb-src entry for bookworm main"
        printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n' |
            as_root tee /etc/apt/sources.list.d/deb-src.sources >/dev/null
        as_root apt-get update -qq
    fi
    log "fetching the ghc source package into $cache"
    (cd "$cache" && apt-get source --download-only -qq ghc) ||
        { as_root apt-get update -qq && (cd "$cache" && apt-get source --download-only -qq ghc); }
    tarball=$cache/ghc_"$version".orig.tar.xz
fi
[ -f "$tarball" ] || die "missing $tarball"
log "source: $tarball"

src=$out/src
rm -rf "$src"
mkdir -p "$src"
# Only what the RTS C files need: rts/, includes/ and utils/fs (fs.h).
tar -xJf "$tarball" -C "$src" --strip-components=1 \
    "ghc-$version/rts" "ghc-$version/includes" "ghc-$version/utils/fs"

# --- 2. patches --------------------------------------------------------------
patches=()
for p in "$here/$version"/*.patch; do
    n=$(basename "$p" | sed -E 's/^0*([0-9]+)-.*/\1/')
    [ -n "${GHC_PATCHES_UPTO:-}" ] && [ "$n" -gt "$GHC_PATCHES_UPTO" ] && continue
    patches+=("$p")
done
[ -e "${patches[0]:-}" ] || die "no patches in $here/$version"
for p in "${patches[@]}"; do
    log "applying $(basename "$p")"
    if command -v patch >/dev/null; then
        patch -d "$src" -p1 --batch --forward --quiet <"$p" || die "$(basename "$p") does not apply"
    else
        git -C "$src" apply -p1 "$p" || die "$(basename "$p") does not apply"
    fi
done
changed_c=$(sed -n 's|^+++ b/\(rts/.*\.c\)$|\1|p' "${patches[@]}" | sort -u)
changed_h=$(sed -n 's|^+++ b/includes/\(.*\.h\)$|\1|p' "${patches[@]}" | sort -u)
log "changed RTS C files: $(echo $changed_c)"

# --- 3. compile the changed files, per way -----------------------------------
# The flags of rts/ghc.mk for these files (Debian builds without DTrace, with
# split sections, non-PIC static archives). The generated headers
# (ghcautoconf.h, ghcplatform.h, ghcversion.h, DerivedConstants.h) come from
# the installed libdir; all other headers from the patched source.
way_defs() {
    case $1 in
        thr_l) echo "-optc-DTHREADED_RTS -optc-DTRACING" ;;
        l) echo "-optc-DTRACING" ;;
        thr) echo "-optc-DTHREADED_RTS" ;;
        v) echo "" ;;
        *) die "unsupported way $1 (thr_l l thr v)" ;;
    esac
}
objs=$out/obj
rm -rf "$objs"
for way in $ways; do
    suffix=${way}_o
    [ "$way" = v ] && suffix=o
    mkdir -p "$objs/$way"
    for f in $changed_c; do
        o=$objs/$way/$(basename "$f" .c).$suffix
        rtsway=rts_$way
        [ "$way" = v ] && rtsway=rts_v
        # shellcheck disable=SC2046
        "$ghc" -c -O2 -optc-O2 -optc-Wall \
            -optc-ffunction-sections -optc-fdata-sections \
            -optc-fno-strict-aliasing -optc-fno-common \
            -optc-DCOMPILING_RTS -optc-DFS_NAMESPACE=rts \
            $(way_defs "$way") \
            "-optc-DRtsWay=\"$rtsway\"" "-optc-DProjectVersion=\"$version\"" \
            -I"$src/includes" -I"$src/rts" -I"$src/utils/fs" -I"$libdir/include" \
            "$src/$f" -o "$o"
        log "compiled $f ($way)"
    done
done

# --- 4. private libdir -------------------------------------------------------
lib=$out/lib
rm -rf "$lib"
mkdir -p "$lib" "$lib/rts"
for e in "$libdir"/*; do
    name=$(basename "$e")
    case $name in
        rts | include | package.conf.d) ;;
        *) ln -s "$e" "$lib/$name" ;;
    esac
done
for e in "$libdir"/rts/*; do ln -s "$e" "$lib/rts/$(basename "$e")"; done
for way in $ways; do
    a=libHSrts_$way.a
    [ "$way" = v ] && a=libHSrts.a
    rm "$lib/rts/$a"
    cp "$libdir/rts/$a" "$lib/rts/$a"
    # ar r replaces the members of the same name (they are unique).
    ar r "$lib/rts/$a" "$objs/$way"/*
    log "patched $lib/rts/$a"
done
cp -r "$libdir/include" "$lib/include"
for h in $changed_h; do cp "$src/includes/$h" "$lib/include/$h"; done
mkdir -p "$lib/package.conf.d"
cp "$libdir"/package.conf.d/*.conf "$lib/package.conf.d/"
rtsconf=$(ls "$lib"/package.conf.d/rts*.conf)
sed -i -e "s|^library-dirs:.*|library-dirs:    $lib/rts|" \
    -e "s|^include-dirs:.*|include-dirs:    $lib/include|" "$rtsconf"
ghcpkg=$(command -v "ghc-pkg-$version" || command -v ghc-pkg) || die "no ghc-pkg"
"$ghcpkg" --package-db="$lib/package.conf.d" recache

mkdir -p "$out/bin"
printf '#!/bin/sh\n# GHC %s with the patched RTS (ghc-patches/build.sh)\nexec %s -B%s "$@"\n' \
    "$version" "$(command -v "$ghc")" "$lib" >"$out/bin/ghc"
chmod +x "$out/bin/ghc"

# --- 5. check ----------------------------------------------------------------
[ "$("$out/bin/ghc" --print-libdir)" = "$lib" ] || die "ghc -B$lib is not taken"
for way in $ways; do
    a=$lib/rts/libHSrts_$way.a
    [ "$way" = v ] && a=$lib/rts/libHSrts.a
    nm "$a" 2>/dev/null | grep ' T rts_eventLogStreamingApiVersion$' >/dev/null ||
        die "rts_eventLogStreamingApiVersion missing from $a"
done

cat <<EOF
Patched GHC $version RTS (ways: $ways) built in $(($(date +%s) - start)) s:
  libdir  $lib
  header  $lib/include/rts/EventLogWriter.h
Use it:
  ghc -B$lib -threaded -eventlog ...   (or $out/bin/ghc ...)
  # e.g. +RTS -l --eventlog-flush-interval=0.5 --eventlog-buffer-size=64k
EOF
