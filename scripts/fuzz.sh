#!/usr/bin/env bash
# Fuzz the spec loader and checker with N inputs (default 1,000,000), spread evenly over
# the generators in engine/tests/fuzz_loader.rs (random YAML, spec-shaped documents, deep
# nesting, odd values and edits of the real specs, random and edited suite configs).
#
#   scripts/fuzz.sh [N]            # dev profile: the one CI's binary is built with
#   PROFILE=release scripts/fuzz.sh 1000000
#   THREADS=2 scripts/fuzz.sh ...  # generators run in parallel, on 2 MiB stacks
#
# Each input is written to $ENGINE_FUZZ_LOG/<generator>.yaml before it is tried, so one
# that aborts the process (a stack overflow cannot be caught) is left there. Prints each
# generator's count and the total; exits non-zero on any panic or abort.
set -euo pipefail
cd "$(dirname "$0")/.."

total=${1:-1000000}
generators=$(grep -c '^fn fuzz_' engine/tests/fuzz_loader.rs)
per=$(( (total + generators - 1) / generators ))
log_dir=${ENGINE_FUZZ_LOG:-$(mktemp -d -t engine-fuzz.XXXXXX)}
mkdir -p "$log_dir"
profile=()
[ "${PROFILE:-dev}" = release ] && profile=(--release)
output="$log_dir/output.txt"

echo "fuzzing $((per * generators)) inputs ($generators generators x $per), inputs in $log_dir"
started=$(date +%s)
status=0
ENGINE_FUZZ_CASES=$per ENGINE_FUZZ_LOG=$log_dir \
  cargo test "${profile[@]}" -p engine --test fuzz_loader -- fuzz_ --nocapture \
    --test-threads "${THREADS:-2}" >"$output" 2>&1 || status=$?

grep '^fuzz ' "$output" || true
inputs=$(awk '/^fuzz [a-z_]+: [0-9]+ inputs/ { sum += $3 } END { print sum + 0 }' "$output")
panics=$(grep -c 'a panic after' "$output" || true)
echo "total: ${inputs:-0} inputs, ${panics} panics, $(( $(date +%s) - started ))s (exit status $status)"
if [ "$status" -ne 0 ]; then
  tail -40 "$output"
  echo "the last input of each generator is in $log_dir"
fi
exit "$status"
