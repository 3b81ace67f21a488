#!/usr/bin/env bash
# The HTML report at the suite's size: runs `engine run specs --html` (default
# `--report-frames failed`), prints the page's size, then opens it N times in headless
# Chromium and prints the times its own marks give (load event, drawn, painted) with
# their median and maximum. Targets: under 5 MB, painted under 2 s.
# Usage: bash scripts/html-report.sh [RUNS] [engine run args...]
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
shift || true
bash scripts/browser.sh || exit 2
cargo build -q -p engine -p backend --example open_report || exit 2
out="target/html-report"
mkdir -p "$out"
NO_COLOR=1 ./target/debug/engine run specs --html "$out/suite.html" "$@" > "$out/suite.log" 2>&1
echo "suite: $(tail -n 1 "$out/suite.log"); HTML report $(stat -c %s "$out/suite.html") bytes ($out/suite.html)"
./target/debug/examples/open_report "$out/suite.html" "$runs" "$out/suite.png"
