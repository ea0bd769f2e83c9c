#!/usr/bin/env bash
# The README's library example is examples/cluster.c verbatim (CI builds and
# runs that file: test/examples.sh). Fails with a diff when they differ.
# Usage: readme.sh README.md examples/cluster.c
set -euo pipefail
readme=$1 example=$2
block=$(awk '
  /^## / { in_lib = ($0 == "## Library") }
  in_lib && !inside && /^```c$/ { inside = 1; found = 1; next }
  inside && /^```$/ { exit }
  inside { print }
  END { if (!found) exit 1 }' "$readme") || { echo "no \`\`\`c block under \"## Library\" in $readme"; exit 1; }
if ! diff -u --label "$example" --label "$readme (## Library)" "$example" <(printf '%s\n' "$block"); then
  echo "the README's library example differs from $example: copy the file into the README"
  exit 1
fi
echo "README library example == $example ($(wc -l <"$example") lines)"
