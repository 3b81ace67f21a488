#!/usr/bin/env bash
# Interrupt the suite and count what it left behind. Runs `engine run specs --json`,
# sends SIGNAL after DELAY seconds (and again SECOND seconds later when given), then
# prints the exit code, how long the engine took to exit after the first signal, the
# summary, and what the scenarios' minted IDs (read from the JSON report) still have in
# Postgres (reference backend tables) and Redis: for scenarios whose teardown finished
# (should be none, but for keys that expire by themselves) and for the others.
# Usage: bash scripts/interrupt.sh DELAY [TERM|INT] [SECOND]
# e.g. BACKEND_ADDR=127.0.0.1:18812 bash scripts/interrupt.sh 12 TERM
set -uo pipefail
cd "$(dirname "$0")/.."
delay="${1:?usage: interrupt.sh DELAY [TERM|INT] [SECOND]}"
signal="${2:-TERM}"
second="${3:-}"
report=target/interrupt-report.json
cargo build -q -p engine -p backend || exit 2
rm -f "$report"
NO_COLOR=1 CI=1 ./target/debug/engine run specs --json "$report" > target/interrupt-run.log 2>&1 &
pid=$!
sleep "$delay"
signalled=$(date +%s%N)
kill -"$signal" "$pid"
if [ -n "$second" ]; then
  sleep "$second"
  kill -"$signal" "$pid"
fi
wait "$pid"
code=$?
took_ms=$(( ($(date +%s%N) - signalled) / 1000000 ))
echo "exit $code, ${took_ms} ms after the first SIG$signal"
grep '^summary:' target/interrupt-run.log
python3 - "$report" <<'EOF'
import json, subprocess, sys

report = json.load(open(sys.argv[1]))
def psql(sql):
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-tAc", sql],
                         capture_output=True, text=True).stdout.strip()
    return int(out or 0)
def keys(pattern):
    found = subprocess.run(["redis-cli", "--scan", "--pattern", pattern],
                           capture_output=True, text=True).stdout.split()
    persistent = [k for k in found
                  if subprocess.run(["redis-cli", "TTL", k], capture_output=True,
                                    text=True).stdout.strip() == "-1"]
    return len(found), len(persistent)
totals = {True: [0, 0, 0, 0], False: [0, 0, 0, 0]}
for scenario in report["scenarios"]:
    finished = all(a["teardown_finished"] for a in scenario["attempts"])
    ids = {str(v) for a in scenario["attempts"] for v in a["ids"].values()}
    if not ids:
        continue
    like = " OR ".join(f"user_id LIKE '{i}%'" for i in ids)
    rows = sum(psql(f"SELECT count(*) FROM agentchat.{t} WHERE {like}")
               for t in ["messages", "threads", "connections", "agent_runs"])
    found = [keys(f"*{i}*") for i in ids]
    t = totals[finished]
    t[0] += 1; t[1] += rows; t[2] += sum(f[0] for f in found); t[3] += sum(f[1] for f in found)
for finished, (n, rows, all_keys, persistent) in totals.items():
    what = "teardown finished" if finished else "teardown NOT finished"
    print(f"{what}: {n} scenario(s); left: {rows} row(s), {all_keys} key(s) "
          f"of which {persistent} without a TTL")
EOF
