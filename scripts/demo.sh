#!/usr/bin/env bash
# The README's demo command: install, build what the demo needs, run it (extra args go to the demo,
# e.g. `npm run demo -- --fail-at link`).
set -euo pipefail
cd "$(dirname "$0")/.."
export TURBO_TELEMETRY_DISABLED=1 npm_config_nodedir="${npm_config_nodedir:-/usr}"
pnpm_cmd() {
  if command -v pnpm >/dev/null 2>&1 && [ "$(pnpm -v 2>/dev/null)" = "12.4.2" ]; then pnpm "$@"
  else npx -y pnpm@12.4.2 "$@"; fi
}
pnpm_cmd install --frozen-lockfile --reporter=silent
pnpm_cmd exec turbo run build --filter=@atomkit/demo... --output-logs=errors-only >/dev/null
exec node apps/demo/dist/index.js "$@"
