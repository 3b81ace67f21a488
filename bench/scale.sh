#!/usr/bin/env bash
# Scale (issue 14): as many concurrent idle WebSocket connections from one engine
# process as this machine allows, against SERVERS processes of a minimal echo server
# (bench/scale/echo_server.rs) sharing one port: each process, the engine's too, may
# hold at most its open-files limit (20,000 here), so the servers split the load.
# Prints the count reached, the engine's RSS per connection (before the VUs start vs.
# with all open; goal <= 20 KiB) and the servers' figures.
#
#   bash bench/scale.sh         # CONNECTIONS=19500 SERVERS=2 RAMP=60 HOLD=20 (seconds)
#   CONNECTIONS=5000 bash bench/scale.sh
#   LOCAL_IPS= bash bench/scale.sh    # all from one source address (default: 4)
# Linux gives connect() the ports of one parity of net.ipv4.ip_local_port_range first
# (14,116 of the default range) and searches the others slowly: past about 14,000
# connections from one source address to one server, connects take seconds and the
# ramp falls behind. So the connections come from 4 loopback addresses (--local-ips).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS="${CONNECTIONS:-19500}"
SERVERS="${SERVERS:-2}"
RAMP="${RAMP:-60}"
HOLD="${HOLD:-20}"
LOCAL_IPS="${LOCAL_IPS-127.0.0.1-127.0.0.4}"
OUT="${OUT:-target/bench-scale}"
mkdir -p "$OUT"

# BUILD=0 runs the binaries already built.
[ "${BUILD:-1}" = 0 ] || cargo build --release -q -p engine -p scale-bench --bins
ENGINE=target/release/engine
ECHO=target/release/scale-echo-server

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "open-files limit per process: $(ulimit -Sn) (hard $(ulimit -Hn)); ephemeral ports: $(tr '\t' - < /proc/sys/net/ipv4/ip_local_port_range); somaxconn: $(cat /proc/sys/net/core/somaxconn); cores: $(nproc)"

# The first server picks a free port; the others share it (SO_REUSEPORT).
SERVER_PIDS=()
stop_servers() { for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop_servers EXIT
start_server() {
  "$ECHO" "$1" > "$OUT/echo-$2.url" 2> "$OUT/echo-$2.err" &
  SERVER_PIDS+=($!)
  for _ in $(seq 1 100); do [ -s "$OUT/echo-$2.url" ] && return; sleep 0.05; done
  echo "echo server $2 did not start; see $OUT/echo-$2.err"; exit 1
}
start_server 127.0.0.1:0 1
URL=$(head -1 "$OUT/echo-1.url")
for i in $(seq 2 "$SERVERS"); do start_server "${URL#ws://}" "$i"; done
echo "echo servers: $SERVERS process(es) on $URL"

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
sockets() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
SERVER_START=()
for pid in "${SERVER_PIDS[@]}"; do SERVER_START+=("$(sockets "$pid"):$(rss_kib "$pid")"); done

# Each VU holds its connection past the end of the ramp, so all are open at once.
IDLE_HOLD="$((RAMP + HOLD))s"
EXTRA=()
[ -n "$LOCAL_IPS" ] && EXTRA=(--local-ips "$LOCAL_IPS")
echo "== $CONNECTIONS idle connections from one engine process: ramp ${RAMP}s, each held ${IDLE_HOLD} =="
ECHO_URL="$URL" IDLE_HOLD="$IDLE_HOLD" CI=1 "$ENGINE" load bench/scale/idle_connections.yaml --no-serve \
  --stage "${RAMP}s:$CONNECTIONS" --stage "${HOLD}s:$CONNECTIONS" "${EXTRA[@]}" \
  --json "$OUT/idle.json" > "$OUT/idle.txt" 2>&1 &
LOAD=$!
# Sample both sides from outside at the moment the most connections are open.
PEAK_FDS=0; PEAK_RSS=0; SERVER_PEAK=""
while kill -0 $LOAD 2>/dev/null; do
  FDS=$(sockets $LOAD)
  if [ "${FDS:-0}" -gt "$PEAK_FDS" ]; then
    PEAK_FDS=$FDS; PEAK_RSS=$(rss_kib $LOAD); SERVER_PEAK=""
    for pid in "${SERVER_PIDS[@]}"; do SERVER_PEAK+="$(sockets "$pid"):$(rss_kib "$pid") "; done
  fi
  sleep 1
done
wait $LOAD && STATUS=0 || STATUS=$?
tail -20 "$OUT/idle.txt"
python3 - "$OUT" "$STATUS" "$PEAK_FDS" "$PEAK_RSS" "${SERVER_START[*]}" "$SERVER_PEAK" <<'PY'
import json, sys
out, status, peak_fds, peak_rss = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
started = [tuple(map(int, s.split(":"))) for s in sys.argv[5].split()]
servers = [tuple(map(int, s.split(":"))) for s in sys.argv[6].split()]
r = json.load(open(f"{out}/idle.json"))
m = r["memory"]
peak = r["connections"]["peak_open"]
per = m["kib_per_open_connection"]
print(f"connections reached: {peak} open at once from one engine process (opened {r['connections']['opened']}, "
      f"failed iterations {r['failures']['count']} {r['failures']['by_kind']}, exit {status})")
print(f"engine RSS: {m['rss_start_kib'] / 1024:.1f} MB before the VUs, {m['rss_at_peak_open_kib'] / 1024:.1f} MB with "
      f"{m['peak_open_connections']} open -> {per:.1f} KiB per idle connection (goal <= 20 KiB: {'met' if per <= 20 else 'NOT met'})")
if peak_fds:
    print(f"  from /proc: {peak_fds} descriptors, RSS {peak_rss / 1024:.1f} MB -> {(peak_rss - m['rss_start_kib']) / peak_fds:.1f} KiB per descriptor")
total_conns = total_grown = 0
for i, ((fds, rss), (fds0, rss0)) in enumerate(zip(servers, started), 1):
    conns = max(fds - fds0, 0)  # descriptors beyond those it started with
    total_conns += conns; total_grown += rss - rss0
    print(f"echo server {i}: {conns} connections, RSS {rss0 / 1024:.1f} MB -> {rss / 1024:.1f} MB")
if total_conns:
    print(f"echo servers: {total_conns} connections, {total_grown / total_conns:.1f} KiB per connection")
print(f"connect time p50 {r['connect_time']['p50_ms']:.1f} ms, p99 {r['connect_time']['p99_ms']:.1f} ms, max {r['connect_time']['max_ms']:.1f} ms")
PY
echo "results and logs in $OUT/"
