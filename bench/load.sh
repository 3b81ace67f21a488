#!/usr/bin/env bash
# Load-mode bench, in one run, against a private release backend on the real Postgres
# and Redis:
#  1. throughput: bench/ping_round_trip.yaml driven by `engine load`
#     and by the hand-written tokio-tungstenite client (engine/examples/
#     handwritten_load.rs) at the same concurrency; prints iterations/s and event
#     latency p99 for both and the ratio (goal: engine >= 0.9x);
#  2. scale: specs/load/idle_connections_stay_open.yaml ramped to CONNECTIONS idle
#     connections from one engine process; prints the peak, failures, and the engine's
#     memory per idle connection (RSS before the VUs start vs. with all open; goal
#     <= 50 KiB), measured by the engine and cross-checked here from /proc.
#
#   bash bench/load.sh                       # VUS=50 RUN_SECONDS=20 ROUNDS=2 CONNECTIONS=10000
#   VUS=100 RUN_SECONDS=30 CONNECTIONS=2000 bash bench/load.sh
# Needs Postgres and Redis as in specs/engine.yaml (DATABASE_URL, REDIS_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
VUS="${VUS:-50}"
RUN_SECONDS="${RUN_SECONDS:-20}"
ROUNDS="${ROUNDS:-2}"
CONNECTIONS="${CONNECTIONS:-10000}"
RAMP="${RAMP:-20s}"
PORT="${PORT:-18788}"
OUT="${OUT:-target/bench-load}"
mkdir -p "$OUT"

cargo build --release -q -p engine -p backend --bin engine --bin backend --example handwritten_load
ENGINE=target/release/engine
HANDWRITTEN=target/release/examples/handwritten_load

# Both processes need a descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "open-files limit: soft $(ulimit -Sn), hard $(ulimit -Hn); cores: $(nproc)"

# A private backend: the shared one on 8787 keeps serving others. Its rate limit and
# idle timeout stay at their defaults; its Postgres pool is widened for 10k connects.
export WS_URL="ws://127.0.0.1:$PORT"
BIND="127.0.0.1:$PORT" RUST_LOG="${RUST_LOG:-warn}" DB_MAX_CONNECTIONS="${DB_MAX_CONNECTIONS:-20}" \
  IDLE_TIMEOUT_MS=120000 target/release/backend > "$OUT/backend.log" 2>&1 &
BACKEND=$!
trap 'kill -TERM $BACKEND 2>/dev/null; wait $BACKEND 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || { echo "backend did not start; see $OUT/backend.log"; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

echo
echo "== 1. throughput: $VUS VUs for ${RUN_SECONDS}s, ping scenario, $ROUNDS alternating round(s) =="
TICKS=$(getconf CLK_TCK)
for ROUND in $(seq 1 "$ROUNDS"); do
  BACKEND_CPU0=$(cpu_ticks $BACKEND)
  CI=1 /usr/bin/time -f "%e %U %S" -o "$OUT/engine-$ROUND.time" "$ENGINE" load bench/ping_round_trip.yaml --no-serve \
    --vus "$VUS" --duration "${RUN_SECONDS}s" --json "$OUT/engine-$ROUND.json" --plot "$OUT/engine-$ROUND.svg" \
    > "$OUT/engine-$ROUND.txt" 2>&1 || { cat "$OUT/engine-$ROUND.txt"; exit 1; }
  BACKEND_CPU1=$(cpu_ticks $BACKEND)
  /usr/bin/time -f "%e %U %S" -o "$OUT/handwritten-$ROUND.time" "$HANDWRITTEN" "$WS_URL/ws" "$VUS" "$RUN_SECONDS" \
    > "$OUT/handwritten-$ROUND.json" 2> "$OUT/handwritten-$ROUND.err"
  BACKEND_CPU2=$(cpu_ticks $BACKEND)
  echo "$BACKEND_CPU0 $BACKEND_CPU1 $BACKEND_CPU2" > "$OUT/backend-cpu-$ROUND.ticks"
done
python3 - "$OUT" "$ROUNDS" "$TICKS" <<'PY'
import json, sys
out, rounds, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def cpu(name):
    wall, user, system = map(float, open(f"{out}/{name}.time").read().split()[-3:])
    return (user + system) / wall * 100
print(f"{'':18}{'iterations/s':>14}{'frames/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'failures':>10}{'client CPU':>12}{'backend CPU':>13}")
total_e = total_h = 0.0
for r in range(1, rounds + 1):
    e = json.load(open(f"{out}/engine-{r}.json"))
    h = json.loads(open(f"{out}/handwritten-{r}.json").read().strip().splitlines()[-1])
    c0, c1, c2 = map(int, open(f"{out}/backend-cpu-{r}.ticks").read().split())
    frames_e = e["frames"]["sent_rate"] + e["frames"]["received_rate"]
    print(f"{'engine load #'+str(r):18}{e['iterations']['rate']:>14.1f}{frames_e:>12.0f}{e['event_latency']['p50_ms']:>10.2f}{e['event_latency']['p99_ms']:>10.2f}{e['failures']['count']:>10}{cpu(f'engine-{r}'):>11.0f}%{(c1-c0)/tck/e['duration_s']*100:>12.0f}%")
    print(f"{'hand-written #'+str(r):18}{h['iterations_per_s']:>14.1f}{h['frames_per_s']:>12.0f}{h['latency_p50_ms']:>10.2f}{h['latency_p99_ms']:>10.2f}{h['failures']:>10}{cpu(f'handwritten-{r}'):>11.0f}%{(c2-c1)/tck/h['duration_s']*100:>12.0f}%")
    print(f"  round {r} ratio engine/hand-written: throughput {e['iterations']['rate']/h['iterations_per_s']:.2f}x, p99 {e['event_latency']['p99_ms']/max(h['latency_p99_ms'],1e-9):.2f}x")
    total_e += e["iterations"]["rate"]; total_h += h["iterations_per_s"]
print(f"ratio over {rounds} round(s): throughput {total_e/total_h:.2f}x (engine {total_e/rounds:.1f}/s, hand-written {total_h/rounds:.1f}/s)")
PY
print_load() { uptime | sed 's/.*load average/machine load average/'; }
print_load

echo
echo "== 2. scale: $CONNECTIONS idle connections from one engine process (ramp $RAMP, hold 40s) =="
IDLE_HOLD=40s CI=1 "$ENGINE" load specs/load/idle_connections_stay_open.yaml --no-serve \
  --stage "$RAMP:$CONNECTIONS" --stage "20s:$CONNECTIONS" \
  --json "$OUT/idle.json" --plot "$OUT/idle.svg" > "$OUT/idle.txt" 2>&1 &
LOAD=$!
# Sample the engine's RSS and connection count from outside while it runs.
PEAK_RSS=0; PEAK_CONNS=0
while kill -0 $LOAD 2>/dev/null; do
  RSS=$(awk '/VmRSS/ {print $2}' /proc/$LOAD/status 2>/dev/null || echo 0)
  CONNS=$(ls /proc/$LOAD/fd 2>/dev/null | wc -l)
  [ "${CONNS:-0}" -gt "$PEAK_CONNS" ] && { PEAK_CONNS=$CONNS; PEAK_RSS=$RSS; }
  sleep 1
done
wait $LOAD && STATUS=0 || STATUS=$?
tail -25 "$OUT/idle.txt"
python3 - "$OUT" "$PEAK_RSS" "$PEAK_CONNS" "$STATUS" <<'PY'
import json, sys
out, peak_rss, peak_fds, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
r = json.load(open(f"{out}/idle.json"))
m = r["memory"]
print(f"peak open connections (engine): {r['connections']['peak_open']}, opened {r['connections']['opened']}, failed iterations {r['failures']['count']} {r['failures']['by_kind']}, exit {status}")
print(f"engine RSS: {m['rss_start_kib']} KiB before VUs, {m['rss_at_peak_open_kib']} KiB with {m['peak_open_connections']} open "
      f"-> {m['kib_per_open_connection']:.1f} KiB per idle connection (goal <= 50)")
if peak_fds > 0:
    print(f"from /proc: {peak_fds} descriptors open at peak, RSS {peak_rss} KiB -> {(peak_rss - m['rss_start_kib']) / peak_fds:.1f} KiB per descriptor")
print(f"connect time p50 {r['connect_time']['p50_ms']:.1f} ms, p99 {r['connect_time']['p99_ms']:.1f} ms, max {r['connect_time']['max_ms']:.1f} ms")
PY
echo "results, plots and logs in $OUT/"
