#!/usr/bin/env bash
# Installs everything and runs every test, lint and type check: the README's test command and CI's.
# Starts a real sshd (several ports), a real dockerd and a private PostgreSQL cluster for the provider
# and store tests (needs root; installs them with apt-get when missing), and stops on exit only the ones it started (ATOMKIT_KEEP_SERVICES=1:
# none). Ends with one line "tests: N passed, N failed" summed over packages.
set -uo pipefail
cd "$(dirname "$0")/.."
export TURBO_TELEMETRY_DISABLED=1 NO_COLOR=1 FORCE_COLOR=0 VITE_CONFIG_NATIVE_IGNORE_WARNING=true
# native addons must build against the local Node headers: there is no network for node-gyp downloads
export npm_config_nodedir="${npm_config_nodedir:-/usr}"
export ATOMKIT_TESTBED_DIR="${ATOMKIT_TESTBED_DIR:-/tmp/atomkit-testbed}"
SSH_PORTS=(2222 2223 2224 2225)

pnpm_cmd() {
  if command -v pnpm >/dev/null 2>&1 && [ "$(pnpm -v 2>/dev/null)" = "12.4.2" ]; then pnpm "$@"
  else npx -y pnpm@12.4.2 "$@"; fi
}

failed=0
started_at=$SECONDS
step() { echo; echo "== $*"; }

step "install"
pnpm_cmd install --frozen-lockfile || { echo "install failed"; exit 1; }

services_started=0
if [ "$(id -u)" = 0 ]; then
  step "test services: sshd on 127.0.0.1:${SSH_PORTS[*]}, dockerd, postgres, chromium"
  # stop on exit only what this run started: services already up belong to someone else (a developer's
  # testbed, another checkout's run going on at the same time) and must outlive this run
  started_ports=()
  for p in "${SSH_PORTS[@]}"; do
    bash scripts/testbed/sshd.sh status "$p" 2>/dev/null | grep -q running || started_ports+=("$p")
  done
  # any dockerd process counts as up (a loaded box may answer `docker info` slowly): when in doubt, leave it
  dockerd_was_up=0
  { pgrep -x dockerd >/dev/null 2>&1 || timeout 60 docker info >/dev/null 2>&1; } && dockerd_was_up=1
  postgres_was_up=0
  bash scripts/testbed/postgres.sh status 2>/dev/null | grep -q running && postgres_was_up=1
  bash scripts/testbed/sshd.sh start "${SSH_PORTS[@]}" >/dev/null || { echo "sshd failed to start"; failed=1; }
  bash scripts/testbed/dockerd.sh start >/dev/null || { echo "dockerd failed to start"; failed=1; }
  bash scripts/testbed/postgres.sh start >/dev/null || { echo "postgres failed to start"; failed=1; }
  # the report's browser tests drive Debian's Chromium (nothing to start, only to install once)
  bash scripts/testbed/chromium.sh || { echo "chromium failed to install"; failed=1; }
  services_started=1
  stop_services() {
    [ -n "${ATOMKIT_KEEP_SERVICES:-}" ] && return 0
    [ "${#started_ports[@]}" -gt 0 ] && bash scripts/testbed/sshd.sh stop "${started_ports[@]}" >/dev/null 2>&1
    [ "$dockerd_was_up" = 1 ] || bash scripts/testbed/dockerd.sh stop >/dev/null 2>&1
    [ "$postgres_was_up" = 1 ] || bash scripts/testbed/postgres.sh stop >/dev/null 2>&1
    return 0
  }
  trap stop_services EXIT
else
  echo "!! not root: no sshd/dockerd/postgres started; the SSH, Docker and PostgreSQL suites will skip (they fail under CI=true)"
fi

rm -f packages/*/test-results.json apps/*/test-results.json examples/*/test-results.json
step "build, type check, test"
# every package's suite at once (turbo's default): they mostly wait on sshd, dockerd and child processes,
# so even on 2 cores this beats fewer at a time (measured beside 2 CPU hogs: 368 s for the tests at the
# default, 429 s with --concurrency=3); every wait in them is on a condition, so the load slows them only
pnpm_cmd exec turbo run build typecheck test --continue --output-logs=errors-only || failed=1
# test output is wanted in full: re-run nothing, just show the per-package logs turbo kept
step "lint (biome) and package checks (publint)"
pnpm_cmd exec biome check . --diagnostic-level=error || failed=1
pnpm_cmd exec turbo run publint --output-logs=errors-only || failed=1
step "release dry run: changeset plan, a tarball of every published package, LICENSE, attw"
bash scripts/release-dry-run.sh || failed=1

step "summary (wall time $(((SECONDS - started_at) / 60))m$(((SECONDS - started_at) % 60))s)"
node scripts/test-summary.mjs || failed=1
exit "$failed"
