#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the report's browser tests (playwright-core drives the
# system binary; browser downloads cannot reach the internet here). Needs root to install.
set -euo pipefail
BIN="${ATOMKIT_CHROMIUM:-/usr/bin/chromium}"
log() { echo "chromium.sh: $*" >&2; }
if [ -x "$BIN" ]; then
  log "$("$BIN" --version 2>/dev/null || echo "$BIN")"
  exit 0
fi
log "installing chromium with apt-get"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2 ||
  { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2; }
[ -x "$BIN" ] || { log "chromium is still missing at $BIN"; exit 1; }
log "$("$BIN" --version 2>/dev/null)"
