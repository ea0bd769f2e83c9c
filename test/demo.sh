#!/usr/bin/env bash
# The main job on the embedded default image: build fleetbox, boot one VM
# (building the "mini" image on first use), run a command in it over SSH, tear
# it down. It runs inside a private network namespace so it never touches the
# host's interfaces; the store is private too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/deps.sh
[ -d build ] || meson setup build
ninja -C build
export FLEETBOX_HOME=${FLEETBOX_HOME:-/tmp/fleetbox-demo}
# The image is built (first run) or found in the user's image cache
# (FLEETBOX_CACHE, else ~/.cache/fleetbox) before we leave the host network:
# building it fetches the kernel package with apt. The fresh store inside the
# namespace then boots it with no way out.
build/src/client/fleetbox image prepare mini
exec unshare -n -- bash -c '
  set -euo pipefail
  ip link set lo up
  fb=build/src/client/fleetbox
  trap "$fb rm -f demo >/dev/null 2>&1 || true" EXIT
  $fb up demo
  $fb ssh demo -- uname -a
  $fb ls
'
