// Sums the vitest JSON reports of every package into CI's closing line: "tests: N passed, N failed".
// Exits 1 on any failed test or test file, or when no test ran at all.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

let passed = 0;
let failed = 0;
let skipped = 0;
let reports = 0;
const rows = [];
/** [seconds, "pkg/test/file.test.ts"] of every test file, for the slowest-files list. */
const files = [];
for (const dir of ["packages", "apps", "examples"]) {
  if (!existsSync(dir)) continue;
  for (const pkg of readdirSync(dir).sort()) {
    const file = join(dir, pkg, "test-results.json");
    if (!existsSync(file)) continue;
    const r = JSON.parse(readFileSync(file, "utf8"));
    reports++;
    // a test file that failed without a failed test (it did not load, or a beforeAll/afterAll hook
    // failed or timed out) is a failure too
    const brokenFiles = (r.testResults ?? []).filter(
      (f) => f.status === "failed" && !(f.assertionResults ?? []).some((a) => a.status === "failed"),
    ).length;
    const p = r.numPassedTests;
    const f = r.numFailedTests + brokenFiles;
    const s = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    for (const t of r.testResults ?? []) {
      if (t.startTime && t.endTime)
        files.push([(t.endTime - t.startTime) / 1000, `${dir}/${pkg}/${t.name.split(`/${pkg}/`).pop()}`]);
    }
    rows.push(
      `  ${`${dir}/${pkg}`.padEnd(26)} ${String(p).padStart(4)} passed ${String(f).padStart(3)} failed ${String(s).padStart(3)} skipped`,
    );
    passed += p;
    failed += f;
    skipped += s;
  }
}
console.log(rows.join("\n"));
// where the time goes, on this machine: a file that grows here is the next one to time out on a slow box
files.sort((a, b) => b[0] - a[0]);
console.log("slowest test files:");
for (const [sec, name] of files.slice(0, 8)) console.log(`  ${sec.toFixed(1).padStart(6)} s  ${name}`);
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 || reports === 0 || passed === 0 ? 1 : 0);
