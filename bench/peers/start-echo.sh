# Sourced by the benches that drive the peers echo server (bench/peers.sh,
# bench/instructions.sh): starts target/release/peers-echo on a free port, waits (5 s at
# most) for the address it prints, exports it as ECHO_URL, sets ECHO to its pid and stops
# it when the calling script exits. $1: the folder for its address and log.
echo_dir="$1"
rm -f "$echo_dir/echo.url" # a previous run's address must not be read as this one's
target/release/peers-echo 127.0.0.1:0 > "$echo_dir/echo.url" 2> "$echo_dir/echo.log" &
ECHO=$!
trap 'kill -TERM $ECHO 2>/dev/null; wait $ECHO 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ -s "$echo_dir/echo.url" ] && break
  sleep 0.05
done
[ -s "$echo_dir/echo.url" ] || { echo "the echo server did not start; see $echo_dir/echo.log"; exit 1; }
export ECHO_URL
ECHO_URL="$(head -1 "$echo_dir/echo.url")"
