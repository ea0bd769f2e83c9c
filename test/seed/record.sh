#!/usr/bin/env bash
# record.sh - what real cloud-init makes of our network-config.
#
# Builds a small chroot per Debian suite from the archive (mmdebstrap
# --variant=apt --include=cloud-init; nothing is installed on the host), runs
# `cloud-init devel net-convert` on the network-config our seed renderer
# writes for a fixed member (`seed_test --network-config`) with each renderer
# (eni, netplan, networkd; sysconfig as RHEL would), and copies the outputs
# to test/seed/recorded/<suite>/<renderer>/; checks the member's user-data
# with `cloud-init schema` (the verdict in <suite>/user-data-schema). The unit test "seed" checks that
# the committed input is what the renderer writes today and that every
# recorded output has a real default route.
#
# Usage: test/seed/record.sh BUILD_DIR [SUITE...]   (root; default: bookworm trixie)
# The chroots stay in $FB_RECORD_CACHE (default /var/tmp/fleetbox-record) for
# the next run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: $0 BUILD_DIR [SUITE...]}
shift
suites=("$@")
((${#suites[@]})) || suites=(bookworm trixie)
cache=${FB_RECORD_CACHE:-/var/tmp/fleetbox-record}
out=$here/recorded
mirror=http://deb.debian.org/debian
mkdir -p "$cache" "$out"
"$build/test/vm/seed_test" --network-config > "$out/net.yaml.tmp"
mv "$out/net.yaml.tmp" "$out/net.yaml"
"$build/test/vm/seed_test" --user-data > "$out/user-data.tmp"
mv "$out/user-data.tmp" "$out/user-data"

chroot_for() { # SUITE -> prints the chroot dir, building it once
  local dir=$cache/$1
  if [ ! -x "$dir/usr/bin/cloud-init" ]; then
    rm -rf "$dir.tmp"
    mmdebstrap --quiet --variant=apt --include=cloud-init "$1" "$dir.tmp" "$mirror" >&2
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  fi
  # networkd's files are chowned to systemd-network, which a chroot
  # without systemd lacks.
  chroot "$dir" sh -c 'getent passwd systemd-network >/dev/null ||
    { groupadd -r systemd-network && useradd -r -g systemd-network systemd-network; }' >&2
  echo "$dir"
}

for suite in "${suites[@]}"; do
  dir=$(chroot_for "$suite")
  cp "$out/net.yaml" "$dir/tmp/net.yaml"
  rm -rf "${out:?}/$suite.tmp"
  mkdir -p "$out/$suite.tmp"
  cp "$out/user-data" "$dir/tmp/user-data"
  chroot "$dir" cloud-init --version > "$out/$suite.tmp/cloud-init-version" 2>&1
  # The user-data must pass cloud-init's own schema (25.x reports a boot
  # with schema errors as degraded).
  chroot "$dir" cloud-init schema -c /tmp/user-data > "$out/$suite.tmp/user-data-schema" 2>&1
  for r in eni netplan networkd sysconfig; do
    distro=debian
    [ "$r" = sysconfig ] && distro=rhel
    rm -rf "$dir/tmp/out"
    chroot "$dir" cloud-init devel net-convert -p /tmp/net.yaml -k yaml -d /tmp/out \
      -D "$distro" -O "$r" > "$out/$suite.tmp/$r.log" 2>&1
    cp -a "$dir/tmp/out" "$out/$suite.tmp/$r"
    rm "$out/$suite.tmp/$r.log"
  done
  rm -rf "${out:?}/$suite"
  mv "$out/$suite.tmp" "$out/$suite"
  echo "$suite: $(cat "$out/$suite/cloud-init-version")"
done
