#!/usr/bin/env bash
# Make headless Chromium available for the HTML report's browser test
# (engine/tests/html_report.rs) and scripts/html-report.sh: uses what is on PATH, else
# installs Debian's `chromium` package.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
echo "browser: Chromium not found; installing Debian's chromium"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null || { echo "browser: chromium did not install" >&2; exit 1; }
echo "browser: $(chromium --version 2>/dev/null)"
