#!/usr/bin/env bash
# `engine load` against its peers, in one run, on one machine: the same workload
# (CONNECTIONS connections at once, each ROUNDS JSON round trips with an echo server,
# closed loop: send, wait for the echo, send again) driven by
#   - a hand-written tokio-tungstenite client (bench/peers/src/client.rs),
#   - `engine load bench/peers/echo_round_trips.yaml`,
#   - Artillery (pinned, its ws engine; bench/peers/artillery.yml; open model: the
#     CONNECTIONS virtual users arrive within one second),
#   - Python `websockets` (bench/peers/client.py; PYTHON=0 leaves it out),
# against a minimal tokio-tungstenite echo server (bench/peers/src/echo.rs). Prints per
# client: round trips per second (msg/s), round-trip latency p50/p99, peak RSS and CPU
# seconds of the client process (from /usr/bin/time -v: its maximum resident set size,
# user + system time), the echo server's CPU seconds meanwhile, and the ratios.
#
#   bash bench/peers.sh                         # CONNECTIONS=1000 ROUNDS=100
#   CONNECTIONS=200 ROUNDS=50 bash bench/peers.sh
#   REPEAT=1 bash bench/peers.sh                # each client once (default: 5 times,
#                                               # interleaved; medians are shown)
#
# Artillery is installed from the npm registry into TOOLS where missing (and Node 22,
# which it needs, by scripts/node.sh when the machine's node is older); Python `websockets` from
# PyPI likewise. Needs no database.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS="${CONNECTIONS:-1000}"
ROUNDS="${ROUNDS:-100}"
PYTHON="${PYTHON:-1}"
REPEAT="${REPEAT:-5}"
OUT="${OUT:-target/bench-peers}"
TOOLS="${TOOLS:-target/bench-peers/tools}"
ARTILLERY_VERSION=2.0.34
WEBSOCKETS_VERSION=15.0.1
mkdir -p "$OUT" "$TOOLS"
OUT="$(cd "$OUT" && pwd)"
TOOLS="$(cd "$TOOLS" && pwd)"

# Two builds, each as it would be alone (one build would unify their features).
cargo build --release -q -p engine --bin engine
cargo build --release -q -p peers
ENGINE=target/release/engine

# Artillery 2.0.34 needs Node >= 22.18: the machine's node if it is that recent, else
# the one scripts/node.sh installs.
NODE_BIN="$(bash scripts/node.sh 22.18)"
NODE="${NODE_BIN:+$NODE_BIN/}node"
ARTILLERY="$TOOLS/node_modules/artillery/bin/run"
installed() { grep -q "\"version\": \"$2\"" "$TOOLS/node_modules/$1/package.json" 2>/dev/null; }
WANTED=()
installed artillery "$ARTILLERY_VERSION" || WANTED+=("artillery@$ARTILLERY_VERSION")
if [ ${#WANTED[@]} -gt 0 ]; then
  echo "installing ${WANTED[*]} into $TOOLS"
  [ -f "$TOOLS/package.json" ] || echo '{"private": true}' > "$TOOLS/package.json"
  (cd "$TOOLS" && npm install --no-audit --no-fund --ignore-scripts --save-exact "${WANTED[@]}" > "$OUT/npm-install.log" 2>&1) \
    || { tail -20 "$OUT/npm-install.log"; exit 1; }
fi
if [ "$PYTHON" = 1 ] && ! PYTHONPATH="$TOOLS/python" python3 -c 'import websockets' 2>/dev/null; then
  echo "installing websockets==$WEBSOCKETS_VERSION into $TOOLS/python"
  python3 -m pip install -q --target "$TOOLS/python" "websockets==$WEBSOCKETS_VERSION" > "$OUT/pip-install.log" 2>&1 \
    || { tail -20 "$OUT/pip-install.log"; exit 1; }
fi

# A descriptor per connection, in the clients and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# shellcheck source=peers/start-echo.sh
source bench/peers/start-echo.sh "$OUT"
export CONNECTIONS ROUNDS
echo "echo server $ECHO_URL; $CONNECTIONS connections x $ROUNDS round trips; cores: $(nproc); $(uptime | sed 's/.*load average/load average/')"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run NAME COMMAND...: the client under /usr/bin/time -v, its stdout in NAME.out, the
# echo server's CPU ticks meanwhile in NAME.server.
run() {
  local name=$1
  shift
  local before
  before=$(cpu_ticks $ECHO)
  /usr/bin/time -v -o "$OUT/$name.time" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err" \
    || { echo "$name failed:"; tail -20 "$OUT/$name.err"; exit 1; }
  echo $(( $(cpu_ticks $ECHO) - before )) > "$OUT/$name.server"
}

sed "s/count: 100\$/count: $ROUNDS/" bench/peers/artillery.yml > "$OUT/artillery.yml"
cp bench/peers/artillery_round_trip.cjs "$OUT/"
# Each client REPEAT times, interleaved, so that a burst of other work on the machine
# falls on every client alike; the table shows each figure's median over the runs.
for r in $(seq 1 "$REPEAT"); do
  run "handwritten-$r" target/release/peers-client "$ECHO_URL" "$CONNECTIONS" "$ROUNDS"
  CI=1 run "engine-$r" "$ENGINE" load bench/peers/echo_round_trips.yaml --no-serve \
    --vus "$CONNECTIONS" --iterations "$CONNECTIONS" --json "$OUT/engine-$r.json"
  ARTILLERY_DISABLE_TELEMETRY=true run "artillery-$r" "$NODE" "$ARTILLERY" run --output "$OUT/artillery-$r.json" "$OUT/artillery.yml"
  if [ "$PYTHON" = 1 ]; then
    PYTHONPATH="$TOOLS/python" run "python-$r" python3 bench/peers/client.py "$ECHO_URL" "$CONNECTIONS" "$ROUNDS"
  fi
done

python3 - "$OUT" "$CONNECTIONS" "$ROUNDS" "$(getconf CLK_TCK)" "$PYTHON" "$REPEAT" <<'PY'
import json, re, statistics, sys
out, connections, rounds, tck, python, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1", int(sys.argv[6])
expected = connections * rounds

def process(name):
    text = open(f"{out}/{name}.time").read()
    field = lambda label: float(re.search(re.escape(label) + r": ([\d.]+)", text).group(1))
    return {
        "rss_mb": field("Maximum resident set size (kbytes)") / 1024,
        "cpu_s": field("User time (seconds)") + field("System time (seconds)"),
        "server_cpu_s": int(open(f"{out}/{name}.server").read()) / tck,
    }

def last_json(name):
    return json.loads(open(f"{out}/{name}.out").read().strip().splitlines()[-1])

def handwritten(name):
    h = last_json(name)
    return dict(msg_s=h["msg_per_s"], p50=h["p50_ms"], p99=h["p99_ms"], done=h["round_trips"], failures=h["failures"])

def engine(name):
    e = json.load(open(f"{out}/{name}.json"))
    return dict(msg_s=e["frames"]["sent"] / e["duration_s"], p50=e["event_latency"]["p50_ms"],
                p99=e["event_latency"]["p99_ms"], done=e["event_latency"]["count"], failures=e["failures"]["count"])

def artillery(name):
    a = json.load(open(f"{out}/{name}.json"))["aggregate"]
    round_trip = a["summaries"].get("round_trip_ms", {})
    # Its own span: from the first metric to the last (the Node start-up is not counted).
    span_s = (a["lastMetricAt"] - a["firstMetricAt"]) / 1000
    return dict(msg_s=round_trip.get("count", 0) / span_s if span_s > 0 else 0.0,
                p50=round_trip.get("median", 0.0), p99=round_trip.get("p99", 0.0),
                done=round_trip.get("count", 0), failures=a["counters"].get("vusers.failed", 0))

clients = {
    "hand-written tokio-tungstenite": ("handwritten", handwritten),
    "engine load": ("engine", engine),
    "Artillery (ws engine)": ("artillery", artillery),
}
if python:
    clients["Python websockets"] = ("python", handwritten)

rows, runs = {}, {}
for label, (name, read) in clients.items():
    runs[label] = [dict(**read(f"{name}-{r}"), **process(f"{name}-{r}")) for r in range(1, repeat + 1)]
    rows[label] = {k: statistics.median(run[k] for run in runs[label]) for k in runs[label][0]}
    rows[label]["rss_mb"] = max(run["rss_mb"] for run in runs[label])

print()
print(f"median of {repeat} run(s) each (peak RSS: the highest)")
print(f"{'client':32}{'msg/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'peak RSS MB':>13}{'CPU s':>8}{'echo CPU s':>12}{'round trips':>13}{'failed':>8}")
for name, r in rows.items():
    print(f"{name:32}{r['msg_s']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['rss_mb']:>13.1f}{r['cpu_s']:>8.2f}{r['server_cpu_s']:>12.2f}{r['done']:>13.0f}{r['failures']:>8.0f}")
eng, hw, art = rows["engine load"], rows["hand-written tokio-tungstenite"], rows["Artillery (ws engine)"]
print()
each = lambda rs: ", ".join("%.0f" % run["msg_s"] for run in rs)
print("msg/s of each run: " + "; ".join(f"{n}: {each(rs)}" for n, rs in runs.items()))
print(f"engine / hand-written: msg/s {eng['msg_s']/hw['msg_s']:.2f}x (goal >= 0.95x), p99 {eng['p99']/hw['p99']:.2f}x (goal <= 1.2x)")
print(f"engine / Artillery:    msg/s {eng['msg_s']/art['msg_s']:.2f}x (goal >= 2.5x), peak RSS {eng['rss_mb']/art['rss_mb']:.2f}x (goal <= 0.20x)")
print(f"hand-written / Artillery: msg/s {hw['msg_s']/art['msg_s']:.2f}x (the limit this machine shows from the peer's side)")
# The same ratios round by round (each client's run beside the others of its round): how
# far apart they are is how much one comparison on this machine can be trusted.
def per_round(a, b, key):
    ratios = [x[key] / y[key] for x, y in zip(runs[a], runs[b]) if y[key]]
    return ", ".join(f"{r:.2f}" for r in ratios) + (f" (median {statistics.median(ratios):.2f})" if ratios else "")
print(f"per round, engine / hand-written: msg/s {per_round('engine load', 'hand-written tokio-tungstenite', 'msg_s')}; "
      f"p99 {per_round('engine load', 'hand-written tokio-tungstenite', 'p99')}")
print(f"per round, engine / Artillery:    msg/s {per_round('engine load', 'Artillery (ws engine)', 'msg_s')}")
incomplete = [n for n, rs in runs.items() if any(run["done"] != expected or run["failures"] for run in rs)]
if incomplete:
    print(f"NOT COMPARABLE: {', '.join(incomplete)} did not complete all {expected} round trips in every run")
    sys.exit(1)
PY
echo "results and logs in $OUT/"
