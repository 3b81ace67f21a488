#!/usr/bin/env bash
# User-space instructions per WebSocket round trip: `engine load` against the peers
# bench's hand-written tokio-tungstenite client (bench/peers/src/client.rs), same
# workload (CONNECTIONS connections, each ROUNDS JSON round trips with the peers echo
# server), both counted by valgrind's callgrind in this run. Wall-clock figures on a
# shared 2-core machine move by ±5% from one run to the next; instruction counts move
# by well under 1%, so this is the yardstick for the engine's own work per round trip.
#
# Each client runs twice, with ROUNDS and 2 × ROUNDS round trips per connection; the
# difference over CONNECTIONS × ROUNDS is the cost of one more round trip, with start-up,
# connecting and closing left out. Prints both figures and their ratio, and the engine's
# figure for the same round trips written with templates (templated_round_trips.yaml).
#
#   bash bench/instructions.sh                  # CONNECTIONS=100 ROUNDS=100
#
# valgrind is installed with apt-get where missing. Needs no database.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS="${CONNECTIONS:-100}"
ROUNDS="${ROUNDS:-100}"
OUT="${OUT:-target/bench-instructions}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

if ! command -v valgrind > /dev/null; then
  echo "installing valgrind"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y -q valgrind > "$OUT/apt.log" 2>&1 || { tail -20 "$OUT/apt.log"; exit 1; }
fi

cargo build --release -q -p engine --bin engine
cargo build --release -q -p peers

# shellcheck source=peers/start-echo.sh
source bench/peers/start-echo.sh "$OUT"

# instructions NAME COMMAND...: the instructions callgrind counted in the whole process.
instructions() {
  local name=$1
  shift
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.callgrind" "$@" \
    > "$OUT/$name.out" 2> "$OUT/$name.err" || { echo "$name failed:"; tail -20 "$OUT/$name.err"; exit 1; }
  grep -o 'Collected : [0-9]*' "$OUT/$name.err" | awk '{print $3}'
}

per_round_trip() {
  echo $(( ($2 - $1) / (CONNECTIONS * ROUNDS) ))
}

twice=$((2 * ROUNDS))
hand_once=$(instructions handwritten-1 target/release/peers-client "$ECHO_URL" "$CONNECTIONS" "$ROUNDS")
hand_twice=$(instructions handwritten-2 target/release/peers-client "$ECHO_URL" "$CONNECTIONS" "$twice")
# engine_load NAME SPEC ROUNDS: the instructions of `engine load SPEC`.
engine_load() {
  CI=1 ROUNDS=$3 instructions "$1" target/release/engine load "$2" --no-serve \
    --vus "$CONNECTIONS" --iterations "$CONNECTIONS"
}
engine_once=$(engine_load engine-1 bench/peers/echo_round_trips.yaml "$ROUNDS")
engine_twice=$(engine_load engine-2 bench/peers/echo_round_trips.yaml "$twice")
# The same round trips with templates in both steps, as real specs write them.
templated_once=$(engine_load templated-1 bench/peers/templated_round_trips.yaml "$ROUNDS")
templated_twice=$(engine_load templated-2 bench/peers/templated_round_trips.yaml "$twice")

hand=$(per_round_trip "$hand_once" "$hand_twice")
engine=$(per_round_trip "$engine_once" "$engine_twice")
templated=$(per_round_trip "$templated_once" "$templated_twice")
echo "$CONNECTIONS connections; instructions per round trip (user space, callgrind):"
echo "  hand-written tokio-tungstenite  $hand"
echo "  engine load                     $engine"
python3 -c "print(f'  engine / hand-written           {$engine / $hand:.2f}x')"
echo "  engine load, templated steps    $templated"
echo "(callgrind files in $OUT: callgrind_annotate shows where they go)"
