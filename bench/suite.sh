#!/usr/bin/env bash
# Suite wall time (issue 14): runs `engine run specs` ROUNDS times and prints, per run,
# the process's wall time, the runner's time, the longest scenario, the sum of all
# scenarios, the engine's CPU seconds and the ratios (goal: wall <= 1.3x the longest
# scenario). What is left between the wall time and the runner's is the serial part
# (loading specs, `serve`, pre-flight checks, stopping services).
#
#   bash bench/suite.sh                    # debug build, as `engine run specs` is used
#   PROFILE=release bash bench/suite.sh    # release build of the engine and backend
#   ROUNDS=3 bash bench/suite.sh --jobs 8  # extra arguments go to `engine run`
#
# The backend is the suite's `serve` entry on BACKEND_ADDR (reused when it answers);
# scenarios that start their own backend use BACKEND_BIN of the same profile.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${PROFILE:-debug}"
ROUNDS="${ROUNDS:-1}"
OUT="${OUT:-target/bench-suite}"
mkdir -p "$OUT"
if [ "$PROFILE" = release ]; then
  cargo build --release -q -p engine -p backend --bin engine --bin backend
else
  cargo build -q -p engine -p backend --bin engine --bin backend
fi
ENGINE="target/$PROFILE/engine"
export BACKEND_BIN="${BACKEND_BIN:-../target/$PROFILE/backend}"
echo "cores: $(nproc); load average: $(cut -d' ' -f1-3 /proc/loadavg); profile: $PROFILE; BACKEND_ADDR=${BACKEND_ADDR:-127.0.0.1:8787}"

failed=0
for round in $(seq 1 "$ROUNDS"); do
  json="$OUT/run-$round.json"
  rm -f "$json"
  status=0
  NO_COLOR=1 /usr/bin/time -f "%e %U %S" -o "$OUT/run-$round.time" \
    "$ENGINE" run specs --json "$json" "$@" > "$OUT/run-$round.log" 2>&1 || status=$?
  read -r wall user sys < <(tail -n 1 "$OUT/run-$round.time")
  if [ ! -s "$json" ]; then
    echo "run $round: no report (exit $status); see $OUT/run-$round.log"
    failed=1
    continue
  fi
  jq -r --arg wall "$wall" --arg cpu "$(echo "$user + $sys" | bc)" --arg round "$round" '
    def s: . / 1000 | . * 100 | round / 100;
    (.scenarios | map(.duration_ms)) as $d
    | ($d | max) as $longest
    | (.scenarios | max_by(.duration_ms)) as $l
    | "run \($round): wall \($wall) s, runner \(.summary.duration_ms | s) s, serial part \((($wall | tonumber) * 1000 - .summary.duration_ms) | s) s; "
      + "longest scenario \($longest | s) s (\($l.file)), sum \($d | add | s) s over \($d | length) scenarios; "
      + "engine CPU \($cpu) s; "
      + "wall/longest \((($wall | tonumber) * 1000 / $longest) * 100 | round / 100) (goal <= 1.3), "
      + "runner/longest \((.summary.duration_ms / $longest) * 100 | round / 100), sum/wall \(($d | add) / (($wall | tonumber) * 1000) * 100 | round / 100); "
      + "\(.summary.passed) passed, \(.summary.failed) failed, \(.summary.flaky) flaky"' "$json"
  jq -r '.scenarios | sort_by(-.duration_ms) | .[:5][] | "    \(.duration_ms / 10 | round / 100) s  \(.file)"' "$json"
  [ "$status" -eq 0 ] || failed=1
done
exit "$failed"
