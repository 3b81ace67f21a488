#!/usr/bin/env bash
# Prove the suite stable: run `engine run specs` N times in a row (default 20), each run
# in parallel (the suite's `jobs`), and count the runs that failed. Services come up as
# in any run (`serve` in specs/engine.yaml); start the backend first to reuse one
# instance for every run. Usage: bash scripts/stability.sh [N] [engine run args...]
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
shift || true
cargo build -q -p engine -p backend || exit 2
passed=0
failed=0
for i in $(seq 1 "$runs"); do
  started=$(date +%s%N)
  if NO_COLOR=1 ./target/debug/engine run specs "$@" > "target/stability-run-$i.log" 2>&1; then
    passed=$((passed + 1)); verdict=ok
  else
    failed=$((failed + 1)); verdict=FAIL
  fi
  took_ms=$(( ($(date +%s%N) - started) / 1000000 ))
  echo "run $i: $verdict — $(tail -n 1 "target/stability-run-$i.log") — ${took_ms} ms (log: target/stability-run-$i.log)"
done
echo "stability: $passed of $runs runs passed, $failed failed"
[ "$failed" -eq 0 ]
