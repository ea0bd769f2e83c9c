#!/usr/bin/env bash
# The examples (examples/) built and run as a user builds and runs them:
# libfleetbox installed into a temporary prefix (meson setup --prefix, meson
# install), the examples built against that prefix with pkg-config only (never
# the source tree's headers), -Wall -Wextra -Werror, with make (shared and
# static libfleetbox) and with meson, then run as root inside a private
# network namespace with a private FLEETBOX_HOME under /tmp and the mini image.
# Also checks the installed layout: harnesses run without LD_LIBRARY_PATH,
# the static one needs no libfleetbox.so, libfleetbox.a exports only fb_*, and
# nothing is left after the harnesses exit (members, holders, links, tables).
#
# Needs root. Prints one line per check and "examples: N passed, N failed";
# with EXAMPLES_LOG=FILE also one JSON line per check (test/all.sh counts them).
# FLEETBOX_CACHE: the image cache (default: $EXAMPLES_BUILD_DIR/image-cache;
# test/all.sh passes the vm suite's). EXAMPLES_BUILD_DIR: default build-examples.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=${EXAMPLES_BUILD_DIR:-build-examples}
case $build in /*) ;; *) build=$src/$build ;; esac
prefix=$build/prefix
libdir=$prefix/lib
export FLEETBOX_CACHE=${FLEETBOX_CACHE:-$build/image-cache}
work=$(mktemp -d /tmp/fb-examples-XXXXXX)
export FLEETBOX_HOME=$work/home
unset FLEETBOX_HELPER LD_LIBRARY_PATH  # the installed holder, the installed layout
trap 'rm -rf "$work"' EXIT
results=$work/results
: >"$results"
if [ -n "${EXAMPLES_LOG:-}" ]; then
  mkdir -p "$(dirname "$EXAMPLES_LOG")" && : >"$EXAMPLES_LOG"
fi

# check NAME CMD...: runs CMD, its output into $work/NAME.log, records the result.
check() {
  local name=$1
  shift
  if "$@" >"$work/$name.log" 2>&1; then
    echo "ok: $name"
    # what the harnesses printed, for whoever reads CI logs
    [[ $name != run-* ]] || sed 's/^/    /' "$work/$name.log"
    echo "OK $name" >>"$results"
  else
    echo "FAIL: $name (last lines of its output:)"
    tail -n 25 "$work/$name.log" | sed 's/^/    /'
    echo "FAIL $name" >>"$results"
  fi
}

install_prefix() {
  [ -f "$build/build.ninja" ] ||
    meson setup "$build" --prefix="$prefix" --libdir=lib -Dtests=false -Dwerror=true
  ninja -C "$build"
  rm -rf "$prefix"
  meson install -C "$build" --no-rebuild --quiet
}

export PKG_CONFIG_PATH=$libdir/pkgconfig
pkgconfig_file() {
  pkg-config --exists --print-errors fleetbox
  # Only the installed headers: nothing of the source tree leaks into a build.
  local cflags
  cflags=$(pkg-config --cflags fleetbox)
  echo "cflags: $cflags"
  [[ $cflags == *"-I$prefix/include"* && $cflags != *"$src"* ]]
  pkg-config --static --libs fleetbox
}

build_make() {
  rm -rf "$work/make" && cp -r examples "$work/make"
  make -C "$work/make" CFLAGS="-std=c11 -pedantic -O2 -g -Wall -Wextra -Werror" \
    all cluster-static
}

build_meson() {
  meson setup "$work/meson" examples -Dwerror=true
  ninja -C "$work/meson"
}

layout() {
  # The shared harness finds libfleetbox through its rpath ...
  readelf -d "$work/make/cluster" | grep -F "RUNPATH" | grep -F "$libdir"
  ldd "$work/make/cluster" | grep -F "libfleetbox.so.0 => $libdir/"
  # ... the static one does not need it at all ...
  ! readelf -d "$work/make/cluster-static" | grep -F libfleetbox
  # ... and libfleetbox.a defines nothing global but the public API.
  local other
  other=$(nm -g --defined-only "$libdir/libfleetbox.a" | awk 'NF == 3 && $3 !~ /^fb_/')
  [ -z "$other" ] || { echo "libfleetbox.a exports: $other"; return 1; }
  # The holder the library starts is the installed binary.
  strings "$libdir/libfleetbox.so.0" | grep -Fx "$prefix/bin/fleetbox"
}

check install install_prefix
check pkgconfig pkgconfig_file
check build-make build_make
check build-meson build_meson
check layout layout

# The mini image, with the host's network (a first build downloads the Debian
# kernel package with apt); everything after this runs without a route out.
check image-prepare "$prefix/bin/fleetbox" image prepare mini

# The runs, inside a private network namespace (bridges, taps and VMs never
# touch the host's interfaces). Each harness runs in its own scratch dir.
run_all() {
  ip link set lo up
  local t
  for t in make/cluster make/cluster-static meson/async; do
    mkdir -p "$work/run-${t##*/}"
    (cd "$work/run-${t##*/}" && check "run-${t##*/}" timeout -s KILL 300 "$work/$t")
  done
  check run-meson-test meson test -C "$work/meson" --print-errorlogs
  check nothing-left leftovers
}

# Nothing of the runs may outlive them: members (all ephemeral), sockets,
# holders and VMMs, links, nftables tables. Teardown after a harness's exit is
# asynchronous, so this looks for up to 10 s.
leftovers() {
  local i
  for ((i = 0; i < 100; i++)); do
    leftovers_once >"$work/leftovers.txt" 2>&1 && return 0
    sleep 0.1
  done
  cat "$work/leftovers.txt"
  return 1
}

leftovers_once() {
  local left pid
  left=$("$prefix/bin/fleetbox" ls -q)
  [ -z "$left" ] || { echo "members left: $left"; return 1; }
  left=$(ls -A "$FLEETBOX_HOME/run" 2>/dev/null | grep -v '\.lock$' || true)
  [ -z "$left" ] || { echo "in $FLEETBOX_HOME/run: $left"; return 1; }
  for pid in $(pgrep -f -- "$prefix/bin/fleetbox|$FLEETBOX_HOME" || true); do
    # an exited orphan stays a zombie until PID 1 reaps it: not a leftover
    [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = Z ] && continue
    [ -e "/proc/$pid" ] || continue
    echo "process left: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
    return 1
  done
  left=$(ip -o link | grep -v ': lo:' || true)
  [ -z "$left" ] || { echo "links left: $left"; return 1; }
  left=$(nft list tables)
  [ -z "$left" ] || { echo "nftables left: $left"; return 1; }
}

export -f check run_all leftovers leftovers_once
export src prefix work results
if grep -q '^OK image-prepare' "$results"; then
  unshare -n bash -c run_all
fi

pass=$(grep -c '^OK' "$results" || true)
fail=$(grep -c '^FAIL' "$results" || true)
if [ -n "${EXAMPLES_LOG:-}" ]; then
  awk '{ printf "{\"name\": \"examples-%s\", \"result\": \"%s\"}\n", $2, $1 == "OK" ? "OK" : "FAIL" }' \
    "$results" >"$EXAMPLES_LOG"
fi
echo "examples: $pass passed, $fail failed"
[ "$fail" = 0 ]
