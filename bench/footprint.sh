#!/usr/bin/env bash
# Footprint of an engine process (issue 14), whole processes timed over several runs:
#  - baseline: `engine --version` (the binary mapped and its arguments parsed, no work);
#  - fixed cost: `engine check` of one small spec, and `engine run` of a one-step spec
#    that needs no service (the async runtime, the shared clients, one scenario);
#  - `engine check specs/`: every spec of the suite.
# Time from hyperfine (mean ± σ over RUNS runs after warm-up), peak RSS from
# /usr/bin/time (the kernel's high-water mark, VmHWM), the highest over RUNS runs.
# Goals: fixed cost <= 20 MB; `engine check specs/` < 60 ms and <= 30 MB.
#
#   bash bench/footprint.sh               # RUNS=20
#   RUNS=50 bash bench/footprint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-20}"
OUT="${OUT:-target/bench-footprint}"
mkdir -p "$OUT"

if ! command -v hyperfine >/dev/null; then
  echo "hyperfine is missing: installing it from the crate registry"
  # Pinned: hyperfine 2 needs a newer rustc than this workspace's toolchain.
  cargo install hyperfine --version 1.20.0 --locked
fi
cargo build --release -q -p engine --bin engine
ENGINE="$PWD/target/release/engine"

# A spec that needs nothing: one `sleep` step, with a suite config of its own.
SPEC_DIR="$OUT/one"
mkdir -p "$SPEC_DIR"
printf 'name: one small spec\nsteps:\n  - sleep: 1ms\n' > "$SPEC_DIR/one.yaml"
printf 'events:\n  type_field: type\n' > "$SPEC_DIR/engine.yaml"
SPECS=$(find specs -name '*.yaml' ! -name engine.yaml | wc -l)

# name|command, in the order printed.
CASES=(
  "engine --version|$ENGINE --version"
  "engine check (1 spec)|$ENGINE check $SPEC_DIR/one.yaml"
  "engine run (1 spec)|$ENGINE run $SPEC_DIR/one.yaml --no-serve"
  "engine check specs/ ($SPECS files)|$ENGINE check specs"
)

peak_kib() { # the highest VmHWM over RUNS runs of a command
  local peak=0 kib
  for _ in $(seq 1 "$RUNS"); do
    kib=$(CI=1 /usr/bin/time -f %M bash -c "exec $1 >/dev/null 2>&1" 2>&1 | tail -1)
    [ "$kib" -gt "$peak" ] && peak=$kib
  done
  echo "$peak"
}

for i in "${!CASES[@]}"; do
  command="${CASES[$i]#*|}"
  CI=1 hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$OUT/time-$i.json" "$command" >/dev/null 2>"$OUT/hyperfine-$i.err" \
    || { cat "$OUT/hyperfine-$i.err"; exit 1; }
  peak_kib "$command" > "$OUT/rss-$i.kib"
done

python3 - "$OUT" "${#CASES[@]}" "${CASES[@]}" <<'PY'
import json, sys
out, n, cases = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = []
for i in range(n):
    name = cases[i].split("|", 1)[0]
    r = json.load(open(f"{out}/time-{i}.json"))["results"][0]
    kib = int(open(f"{out}/rss-{i}.kib").read())
    rows.append((name, r["mean"] * 1000, r["stddev"] * 1000 if r["stddev"] else 0.0, kib / 1024))
base = rows[0]
print(f"{'':32}{'time ms':>10}{'± ms':>8}{'peak RSS MB':>13}{'RSS x --version':>17}")
for name, ms, sd, mb in rows:
    print(f"{name:32}{ms:>10.1f}{sd:>8.1f}{mb:>13.1f}{mb / base[3]:>16.1f}x")
fixed = max(rows[1][3], rows[2][3])
check = rows[3]
def verdict(ok):
    return "met" if ok else "NOT met"
print(f"goal: fixed cost <= 20 MB: {fixed:.1f} MB (the larger of check and run of one spec) -> {verdict(fixed <= 20)}")
print(f"goal: check specs/ < 60 ms: {check[1]:.1f} ms -> {verdict(check[1] < 60)}")
print(f"goal: check specs/ <= 30 MB: {check[3]:.1f} MB -> {verdict(check[3] <= 30)}")
PY
