#!/usr/bin/env bash
# Runtime figures (issue 10) against in-process WebSocket servers: a 100k-frame backlog
# taken by one `count`, five parallel 100k floods beside a 1 s deadline on a silent
# server, the close handshake as the server sees it, and how soon a runaway template is
# stopped. Each line prints the figure and whether it meets its target.
#
#   bash bench/runtime.sh                 # release build (bench profile)
#   PROFILE=dev bash bench/runtime.sh     # reuse the debug build (slower figures)
#   ROUNDS=5 CLOSES=50 bash bench/runtime.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${PROFILE:-bench}"
exec cargo bench -q -p engine --bench runtime_fairness --profile "$PROFILE"
