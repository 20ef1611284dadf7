import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export interface ChildTest {
  title: string;
  status: string;
  failureMessages: string[];
}

/**
 * Runs one `test/fixtures/<name>.contract.ts` in a child vitest and returns its tests: those suites fail
 * on purpose, so the report is the point, not the exit code.
 */
export async function contractReport(name: string): Promise<ChildTest[]> {
  const dir = await mkdtemp(join(tmpdir(), "atomkit-child-vitest-"));
  const out = join(dir, "results.json");
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("VITEST")));
  const vitest = join(process.cwd(), "node_modules/vitest/vitest.mjs");
  const args = ["run", "--config", "test/fixtures/contracts.vitest.config.ts", "--reporter=json"];
  await promisify(execFile)(process.execPath, [vitest, ...args, `--outputFile=${out}`, name], {
    env,
    cwd: process.cwd(),
  }).catch(() => {});
  try {
    const report = JSON.parse(await readFile(out, "utf8")) as {
      testResults: { assertionResults: ChildTest[] }[];
    };
    return report.testResults.flatMap((f) => f.assertionResults);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
