#!/usr/bin/env bash
# What a release would publish, checked without publishing: the changesets' release plan, a tarball of
# every published package (never the private demo or example), LICENSE, README and dist in each, and
# the types each entry point resolves to under every module resolution, read from the tarball (attw).
# Run by `npm test` after the build; alone: bash scripts/release-dry-run.sh (after pnpm build).
set -euo pipefail
cd "$(dirname "$0")/.."
pnpm_cmd() {
  if command -v pnpm >/dev/null 2>&1 && [ "$(pnpm -v 2>/dev/null)" = "12.4.2" ]; then pnpm "$@"
  else npx -y pnpm@12.4.2 "$@"; fi
}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# the plan `changeset version` would apply (it fails on a malformed changeset)
pnpm_cmd exec changeset status --output "$out/plan.json" >/dev/null
node -e '
  const plan = require(process.argv[1]);
  const lines = plan.releases.filter((r) => r.type !== "none").map((r) => `  ${r.name} ${r.oldVersion} → ${r.newVersion} (${r.type})`);
  console.log(`release plan from ${plan.changesets.length} changeset(s):\n${lines.join("\n") || "  nothing to release"}`);
' "$out/plan.json"

failed=0
# every package without "private": true, as `pnpm run pack` makes them
bash scripts/pack.sh "$out/tarballs" >/dev/null
for tgz in "$out"/tarballs/*.tgz; do
  name=$(basename "$tgz" .tgz)
  list=$(tar -tzf "$tgz")
  for f in package/LICENSE package/README.md package/package.json; do
    grep -qx "$f" <<<"$list" || { echo "✗ $name: $f is not in the tarball"; failed=1; }
  done
  grep -q '^package/dist/' <<<"$list" || { echo "✗ $name: no dist/ in the tarball (not built?)"; failed=1; }
  if pnpm_cmd exec attw "$tgz" --format ascii --quiet >"$out/attw.txt" 2>&1; then
    echo "✓ $name: $(grep -c . <<<"$list") files, types resolve everywhere (attw)"
  else
    echo "✗ $name: attw found type problems"; cat "$out/attw.txt"; failed=1
  fi
done
exit "$failed"
