#!/usr/bin/env bash
# Re-makes the root README's picture (docs/report-fleet.png) from a real run: the 8-host fleet of
# packages/cli/test/report-fleet.test.ts over the test sshd, one host failing, rollback-all, opened in
# Chromium. Run it when the report's look changes: npm run screenshot:report
set -euo pipefail
cd "$(dirname "$0")/.."
export TURBO_TELEMETRY_DISABLED=1 npm_config_nodedir="${npm_config_nodedir:-/usr}"
pnpm_cmd() {
  if command -v pnpm >/dev/null 2>&1 && [ "$(pnpm -v 2>/dev/null)" = "12.4.2" ]; then pnpm "$@"
  else npx -y pnpm@12.4.2 "$@"; fi
}
bash scripts/testbed/sshd.sh start 2222 2223 2224 2225 >/dev/null
bash scripts/testbed/chromium.sh
pnpm_cmd exec turbo run build --filter=@atomkit/cli... --output-logs=errors-only >/dev/null
cd packages/cli
ATOMKIT_REPORT_PICTURE="$(cd ../.. && pwd)/docs/report-fleet.png" pnpm_cmd exec vitest run test/report-fleet.test.ts -t "8 hosts"
echo "docs/report-fleet.png updated"
