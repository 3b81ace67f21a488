#!/usr/bin/env bash
# Everything CI checks, on a fresh Debian machine or a developer's:
#   1. Postgres (127.0.0.1:5432, trust, database `test`) and Redis (127.0.0.1:6379)
#      answer; where they don't, install (apt-get) and start them; headless Chromium
#      (the HTML report's browser test) is installed where missing.
#   2. formatting, clippy and the API docs (no broken links);
#   3. the Rust tests (engine and reference backend, against the real services);
#   4. `engine check specs/` and `engine run specs/` against the reference backend;
#   5. the protocol examples (Socket.IO, GraphQL over WebSocket) against their Node
#      servers, installed from the npm registry (Node 20+ where missing: scripts/node.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
bash scripts/browser.sh

export CARGO_TERM_COLOR=never
# A clean build gains nothing from incremental artifacts (1.5 GB of the 4.7 GB debug
# target); a developer re-running can set CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads 4
./target/debug/engine check specs
./target/debug/engine run specs
NODE_BIN="$(bash scripts/node.sh)"
[ -z "$NODE_BIN" ] || export PATH="$NODE_BIN:$PATH"
bash scripts/example-socket-io.sh
bash scripts/example-graphql.sh
