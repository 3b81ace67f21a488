#!/usr/bin/env bash
# The Socket.IO example suite (examples/socket.io): installs the pinned Node server
# (`npm ci` from package-lock.json), builds the engine, and runs the suite; the suite's
# `serve:` starts the server (node server.js) and stops it after the run. Needs Node 20+
# and Postgres (PG_PORT, default 5432; database `test`).
# Usage: bash scripts/example-socket-io.sh [engine run args...]
set -uo pipefail
cd "$(dirname "$0")/.."
command -v npm > /dev/null || { echo "npm is needed for the socket.io example" >&2; exit 2; }
(cd examples/socket.io && npm ci --no-audit --no-fund --loglevel=error) || exit 2
cargo build -q -p engine || exit 2
exec ./target/debug/engine run examples/socket.io "$@"
