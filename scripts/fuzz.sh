#!/usr/bin/env bash
# Fuzz the spec loader and checker with N inputs (default 1,000,000) from the generators
# in engine/tests/fuzz_loader.rs: random YAML, spec-shaped documents, odd values and
# edits of the real specs, random and edited suite configs, and deep nesting in every
# YAML form. Deep nesting builds documents of up to megabytes, about five times the
# cost of the others, so it gets 1/25 of N and the six others share the rest.
#
#   scripts/fuzz.sh [N]                          # dev profile: what CI's binary is built with
#   PROFILE=release scripts/fuzz.sh 1000000      # about 30 minutes on 2 busy cores
#
# Generators run in parallel on 2 MiB test threads (the runtime's worker stack size).
# Each input is written to $ENGINE_FUZZ_LOG/<generator>.yaml before it is tried, so one
# that aborts the process (a stack overflow cannot be caught) is left there. Prints each
# generator's count and the total; exits non-zero on any panic or abort.
set -euo pipefail
cd "$(dirname "$0")/.."

total=${1:-1000000}
deep=$(( total / 25 ))
others=$(grep -c '^fn fuzz_' engine/tests/fuzz_loader.rs)
others=$(( others - 1 ))
each=$(( (total - deep + others - 1) / others ))
log_dir=${ENGINE_FUZZ_LOG:-$(mktemp -d -t engine-fuzz.XXXXXX)}
mkdir -p "$log_dir"
profile=()
[ "${PROFILE:-dev}" = release ] && profile=(--release)

echo "fuzzing $((deep + each * others)) inputs: deep nesting $deep, $others others x $each; inputs in $log_dir"
cargo test "${profile[@]}" -p engine --test fuzz_loader --no-run
started=$(date +%s)
run() { # cases output-file test-filter...
  local cases=$1 out=$2
  shift 2
  ENGINE_FUZZ_CASES=$cases ENGINE_FUZZ_LOG=$log_dir \
    cargo test "${profile[@]}" -p engine --test fuzz_loader -- "$@" --nocapture >"$out" 2>&1
}
run "$deep" "$log_dir/deep.txt" fuzz_deep_nesting --exact --test-threads 1 &
deep_pid=$!
status=0
run "$each" "$log_dir/others.txt" fuzz_ --skip fuzz_deep_nesting --test-threads "${THREADS:-2}" || status=$?
wait "$deep_pid" || status=$?

cat "$log_dir/deep.txt" "$log_dir/others.txt" >"$log_dir/output.txt"
grep -o 'fuzz [a-z_]*: [0-9]* inputs.*' "$log_dir/output.txt" || true
inputs=$(grep -o 'fuzz [a-z_]*: [0-9]* inputs' "$log_dir/output.txt" | awk '{ sum += $3 } END { print sum + 0 }')
panics=$(grep -c 'a panic after\|overflowed its stack\|SIGABRT' "$log_dir/output.txt" || true)
echo "total: ${inputs} inputs, ${panics} panics or aborts, $(( $(date +%s) - started ))s (exit status $status)"
if [ "$status" -ne 0 ]; then
  tail -40 "$log_dir/output.txt"
  echo "the last input of each generator is in $log_dir"
fi
exit "$status"
