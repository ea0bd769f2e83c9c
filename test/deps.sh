#!/usr/bin/env bash
# Installs what fleetbox needs to build and test, from Debian's archive only.
# Idempotent and non-interactive; used by the README commands and by .ci/run.
set -euo pipefail
pkgs=(
  build-essential meson ninja-build pkg-config
  libuv1-dev libjansson-dev libssh2-1-dev libarchive-dev libcurl4-openssl-dev
  libmnl-dev libnftables-dev libssl-dev libblkid-dev libext2fs-dev comerr-dev
  qemu-system-x86 qemu-utils e2fsprogs busybox-static dropbear-bin cpio
  fdisk
  iproute2 nftables socat valgrind util-linux procps kmod openssh-client python3
  sudo passwd mmdebstrap
  clang libclang-rt-14-dev
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
