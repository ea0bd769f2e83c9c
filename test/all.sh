#!/usr/bin/env bash
# Sets up and runs every test suite (unit, integration, net, vm) under
# ASan+UBSan. Needs root: net and vm tests create private network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/deps.sh
dir=${BUILD_DIR:-build-asan}
if [ ! -d "$dir" ]; then
  meson setup "$dir" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
fi
ninja -C "$dir"
meson test -C "$dir" --setup=asan --print-errorlogs --num-processes 2 "$@"
# The holder under valgrind needs a build without sanitizers.
plain=${PLAIN_BUILD_DIR:-build}
[ -d "$plain" ] || meson setup "$plain" -Dwerror=true
ninja -C "$plain"
meson test -C "$plain" --suite valgrind --print-errorlogs
