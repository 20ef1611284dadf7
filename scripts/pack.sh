#!/usr/bin/env bash
# A tarball of every package a release publishes, into $1 (default: ./packed). `pnpm -r pack` packs every
# workspace project, private ones too (the demo, the example kind, the website): pnpm 12 has no flag to
# skip them, so the projects are selected by name from the workspace list, those without "private": true.
# Run after the build: pnpm build && pnpm run pack [dir]
set -euo pipefail
cd "$(dirname "$0")/.."
pnpm_cmd() {
  if command -v pnpm >/dev/null 2>&1 && [ "$(pnpm -v 2>/dev/null)" = "12.4.2" ]; then pnpm "$@"
  else npx -y pnpm@12.4.2 "$@"; fi
}
dest=$(mkdir -p "${1:-packed}" && cd "${1:-packed}" && pwd)
mapfile -t filters < <(pnpm_cmd ls -r --depth -1 --json | node -e '
  let text = "";
  process.stdin.on("data", (d) => (text += d)).on("end", () => {
    for (const p of JSON.parse(text)) if (p.private !== true && p.name) console.log(`--filter=${p.name}`);
  });
')
if [ "${#filters[@]}" -eq 0 ]; then echo "no public package in the workspace" >&2; exit 1; fi
pnpm_cmd -r "${filters[@]}" pack --pack-destination "$dest" >/dev/null
ls "$dest"/*.tgz
