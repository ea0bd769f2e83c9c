#!/usr/bin/env bash
# Runs the libFuzzer targets of test/fuzz, each for SECONDS (default 40),
# from its committed corpus, and prints one line per target with the
# executions it made. A crash fails the run and leaves its input under
# $FUZZ_BUILD_DIR/fuzz-artifacts/. CI (test/all.sh) runs it bounded; run it
# longer by hand, e.g.  nice bash test/fuzz/run.sh 600  or for one target
#   bash test/fuzz/run.sh 600 tar_extract
# Builds $FUZZ_BUILD_DIR (default build-fuzz) with clang, ASan and UBSan.
# Skipped (exit 0) when clang is not installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-40}
shift || true
dir=${FUZZ_BUILD_DIR:-build-fuzz}
if ! command -v clang >/dev/null; then
  echo "fuzz: clang not installed; skipped"
  exit 0
fi
if [ ! -d "$dir" ]; then
  CC=clang meson setup "$dir" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debugoptimized >/dev/null
fi
targets=("$@")
if ((${#targets[@]} == 0)); then
  for src in test/fuzz/fuzz_*.c; do
    t=${src#test/fuzz/fuzz_}
    targets+=("${t%.c}")
  done
fi
exes=()
for t in "${targets[@]}"; do exes+=("test/fuzz/fuzz_$t"); done
ninja -C "$dir" "${exes[@]}" >/dev/null
mkdir -p "$dir/fuzz-artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rc=0
total=0
for t in "${targets[@]}"; do
  work=$(mktemp -d "/tmp/fb-fuzz-$t-XXXXXX")
  log="$dir/fuzz-artifacts/$t.log"
  # New inputs go to the scratch dir first; the committed corpus is read-only.
  if "$dir/test/fuzz/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
      -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$dir/fuzz-artifacts/$t-" \
      "$work" "test/fuzz/corpus/$t" >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    rc=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  found=$(ls "$work" | wc -l)
  total=$((total + ${execs:-0}))
  echo "fuzz $t: ${execs:-0} executions in ${secs} s, coverage ${cov:-0}, ${found} new inputs, $status"
  if [ "$status" != ok ]; then
    grep -E "ERROR|SUMMARY|Test unit written|==[0-9]+==" "$log" | head -20 || true
  fi
  rm -rf "$work"
done
echo "fuzz: ${#targets[@]} target(s), $total executions"
exit $rc
