import { spawn } from "node:child_process";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashTree } from "../../testkit/src/tree";
import { fileTrail, localHost, recover } from "../src/index";
import { tempDir } from "./_helpers";
// @ts-expect-error: a plain .mjs fixture shared with the child process
import { kinds } from "./fixtures/crash-kinds.mjs";

// Crash tests with real processes: a child deploys real files with the file trail and SIGKILLs itself
// at a chosen checkpoint (inside apply, between steps, inside undo, inside a trail write). recover must
// then leave the tree byte for byte as before the run, or as after it when the run had committed.

const CHILD = join(__dirname, "fixtures/crash-child.mjs");
let base: { dir: string; cleanup: () => Promise<void> };

async function freshTree(root: string) {
  await mkdir(join(root, "releases/1"), { recursive: true });
  await writeFile(join(root, "releases/1/RELEASE"), "1");
  await writeFile(join(root, "config"), "config v1");
  await writeFile(join(root, "current"), "releases/1");
  await writeFile(join(root, "drain"), "serving");
}

/** Every child still running: killed by afterAll, so a test that timed out leaves none behind. */
const children = new Set<ReturnType<typeof spawn>>();
/** Set by afterAll: kill points of a test that timed out start no more children. */
let stopping = false;

/**
 * Runs the deploy in a child process and waits for it to end: no time limit of its own (a loaded box
 * only makes it slower; a child that truly hangs is the test's timeout to report, and afterAll kills it).
 */
function deploy(
  root: string,
  trailDir: string,
  stateDir: string,
  killAt: number,
  failing: boolean,
  runId: string,
): Promise<{ killed: boolean; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [CHILD, root, trailDir, stateDir, String(killAt), failing ? "1" : "0", runId],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    children.add(child);
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d;
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d;
    });
    child.on("error", reject);
    child.on("close", (_code, signal) => {
      children.delete(child);
      resolve({ killed: signal === "SIGKILL", out, err });
    });
  });
}

/**
 * Runs `task(i)` for i = 1..n, `width` at a time: each kill point has its own tree, trail and state,
 * so they are independent, and a child spends much of its life starting node and in fsync, not on CPU.
 */
async function eachKillPoint(n: number, task: (i: number) => Promise<void>): Promise<void> {
  const width = Math.min(4, availableParallelism() + 1);
  let next = 1;
  let failure: { error: unknown } | undefined;
  // a failed kill point stops the others from starting (no children left running after the test)
  const lane = async () => {
    while (next <= n && !failure && !stopping) {
      const i = next++;
      await task(i).catch((error: unknown) => {
        failure ??= { error };
      });
    }
  };
  await Promise.all(Array.from({ length: width }, lane));
  if (failure) throw failure.error;
}

let beforeHash: string;
const afterHash: Record<string, string> = {};
const total: Record<string, number> = {};

beforeAll(async () => {
  base = await tempDir("atomkit-crash-");
  // reference runs without a kill: the tree before, the tree after a commit, and how many checkpoints each has
  for (const failing of [false, true]) {
    const root = join(base.dir, `ref-${failing}`);
    await freshTree(root);
    beforeHash = await hashTree(root);
    const r = await deploy(
      root,
      join(base.dir, `ref-trail-${failing}`),
      join(base.dir, `ref-state-${failing}`),
      0,
      failing,
      `ref-${failing}`,
    );
    expect(r.killed, r.err).toBe(false);
    const out = JSON.parse(r.out) as { status: string; checkpoints: number };
    expect(out.status).toBe(failing ? "rolled-back" : "committed");
    afterHash[String(failing)] = await hashTree(root);
    total[String(failing)] = out.checkpoints;
  }
});
afterAll(async () => {
  stopping = true;
  for (const child of children) child.kill("SIGKILL");
  await base.cleanup();
});

describe("crash recovery with real processes (SIGKILL)", () => {
  it("the reference runs have enough kill points (≥ 50 together)", () => {
    expect(afterHash.false).not.toBe(beforeHash);
    expect(afterHash.true).toBe(beforeHash);
    expect(total.false! + total.true!).toBeGreaterThanOrEqual(50);
  });

  for (const failing of [false, true]) {
    it(
      `recover restores the tree exactly after a kill at every checkpoint of a ${failing ? "failing" : "committing"} run`,
      async () => {
        const outcomes: Record<string, number> = {};
        await eachKillPoint(total[String(failing)]!, async (killAt) => {
          const root = join(base.dir, `run-${failing}-${killAt}`);
          const trailDir = join(base.dir, `trail-${failing}-${killAt}`);
          const stateDir = join(base.dir, `state-${failing}-${killAt}`);
          await freshTree(root);
          const runId = `crash-${failing ? "f" : "c"}-${killAt}`;
          const r = await deploy(root, trailDir, stateDir, killAt, failing, runId);
          expect(r.killed, `kill point ${killAt}: ${r.out} ${r.err}`).toBe(true);

          const trail = fileTrail({ dir: trailDir });
          const unfinished = (await trail.listRuns()).filter((x) => x.status === "unfinished");
          // killed before the first durable record: there is nothing to recover and nothing was changed
          if (!unfinished.length) {
            expect(await trail.readRun(runId)).toEqual([]);
            expect(await hashTree(root)).toBe(beforeHash);
            outcomes["no trail"] = (outcomes["no trail"] ?? 0) + 1;
            return;
          }
          const [result] = await recover(trail, {
            host: localHost({ stateDir }),
            steps: kinds,
            backoffMs: 0,
          });
          expect(result, `kill point ${killAt}`).toBeDefined();
          const key = `${result!.found} → ${result!.status}`;
          outcomes[key] = (outcomes[key] ?? 0) + 1;
          const expected = result!.status === "committed" ? afterHash.false : beforeHash;
          expect(result!.status, `kill point ${killAt}: ${result!.error?.message}`).not.toBe(
            "rollback-failed",
          );
          expect(await hashTree(root), `kill point ${killAt} (${key})`).toBe(expected);
          // the trail now ends with the recovered outcome, and a torn line did not break reading it
          expect((await trail.listRuns()).map((x) => x.status)).toEqual([result!.status]);
          // the dead run's lock did not stay behind
          expect(await readdir(join(stateDir, "locks")).catch(() => [])).toEqual([]);
        });
        // the kill points reached every kind of death
        expect(Object.keys(outcomes).length).toBeGreaterThanOrEqual(failing ? 2 : 3);
        console.log(`crash outcomes (${failing ? "failing" : "committing"} run):`, outcomes);
        // each kill point waits for a real child process: bound the test by those waits (a loaded box
        // takes minutes), not by the shared per-test budget
      },
      20 * 60_000,
    );
  }

  it("a torn last line is dropped on read and cut before recover appends", async () => {
    const dir = join(base.dir, "torn");
    await mkdir(dir, { recursive: true });
    const trail = fileTrail({ dir });
    await trail.append("r1", [
      {
        t: "run",
        v: 2,
        runId: "r1",
        atom: "a",
        host: "local",
        mode: "run",
        at: new Date().toISOString(),
        pid: 1,
        machine: "m",
        steps: [],
      },
    ]);
    await trail.close?.();
    await writeFile(
      join(dir, "r1.jsonl"),
      `${await readFile(join(dir, "r1.jsonl"), "utf8")}{"t":"step","runId":"r1","st`,
    );
    expect(await fileTrail({ dir }).readRun("r1")).toHaveLength(1);
    const again = fileTrail({ dir });
    await again.append(
      "r1",
      [{ t: "end", runId: "r1", status: "rolled-back", at: new Date().toISOString() }],
      { sync: true },
    );
    const text = await readFile(join(dir, "r1.jsonl"), "utf8");
    expect(
      text
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).t),
    ).toEqual(["run", "end"]);
    // a corrupt line in the middle is not a crash artefact: it is reported, not skipped
    await writeFile(join(dir, "r2.jsonl"), 'garbage\n{"t":"end"}\n');
    await expect(fileTrail({ dir }).readRun("r2")).rejects.toThrow(/corrupt at line 1/);
  });
});
