#!/usr/bin/env bash
# Sets up and runs every test suite (unit, integration, net, vm) under
# ASan+UBSan, then the holder under valgrind and the chaos storms on a plain
# build (under ASan they would not fit CI's budget: ~5.5 instead of ~4 min),
# then the examples against an installed libfleetbox (test/examples.sh),
# then each fuzz target for FUZZ_SECONDS (default 40; test/fuzz/README.md). Needs root:
# net and vm tests create private network namespaces. Ends with one line
# "tests: N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/deps.sh
dir=${BUILD_DIR:-build-asan}
plain=${PLAIN_BUILD_DIR:-build}
[ -d "$dir" ] || meson setup "$dir" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
[ -d "$plain" ] || meson setup "$plain" -Dwerror=true
ninja -C "$dir"
ninja -C "$plain"
rc=0
meson test -C "$dir" --setup=asan --print-errorlogs --num-processes 2 --no-suite chaos "$@" || rc=$?
# The holder under valgrind needs a build without sanitizers; chaos counts
# leftovers of kill storms (bounded, printed: see test/chaos/chaos.c).
meson test -C "$plain" --suite valgrind --suite chaos --print-errorlogs || rc=$?
# The examples built against an installed libfleetbox (a temporary prefix)
# and run in a private network namespace; one result line per check.
EXAMPLES_LOG=$plain/meson-logs/examples.json FLEETBOX_CACHE=$(realpath -m "$dir")/test-image-cache \
  bash test/examples.sh || rc=$?
# Fuzzing, bounded (FUZZ_SECONDS per target; skipped without clang).
bash test/fuzz/run.sh "${FUZZ_SECONDS:-40}" || rc=$?
python3 - "$dir/meson-logs/testlog-asan.json" "$plain/meson-logs/testlog.json" \
  "$plain/meson-logs/examples.json" <<'PY'
import json, os, sys
n = {"OK": 0, "FAIL": 0, "SKIP": 0}
for path in sys.argv[1:]:
    if not os.path.exists(path):  # examples.sh failed before its log: rc says so
        continue
    for line in open(path):
        r = json.loads(line).get("result", "FAIL")
        key = "OK" if r in ("OK", "EXPECTEDFAIL") else "SKIP" if r == "SKIP" else "FAIL"
        n[key] += 1
print(f"tests: {n['OK']} passed, {n['FAIL']} failed, {n['SKIP']} skipped")
PY
exit $rc
