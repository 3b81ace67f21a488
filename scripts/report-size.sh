#!/usr/bin/env bash
# Report sizes with the default `--report-frames failed`: the JSON report of
# `engine run specs` and of a failing 100,000-frame flood (bench/report_flood.yaml).
# Extra arguments go to both runs (e.g. `--report-frames all` to compare).
# Usage: bash scripts/report-size.sh [engine run args...]
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p engine -p backend || exit 2
out="target/report-size"
mkdir -p "$out"
for run in suite:specs flood:bench/report_flood.yaml; do
  name="${run%%:*}"
  NO_COLOR=1 ./target/debug/engine run "${run#*:}" --json "$out/$name.json" "$@" \
    > "$out/$name.log" 2>&1
  echo "$name: $(tail -n 1 "$out/$name.log"); JSON report $(stat -c %s "$out/$name.json") bytes ($out/$name.json)"
done
