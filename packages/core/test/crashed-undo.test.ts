import { spawnSync } from "node:child_process";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashTree } from "../../testkit/src/tree";
import { atom, fileTrail, localHost, recover, run } from "../src/index";
import { tempDir } from "./_helpers";
// @ts-expect-error: plain .mjs fixtures shared with the child process
import { kinds, releaseAtom } from "./fixtures/crash-kinds.mjs";

// Issue #16: an `undo` whose process is SIGKILLed half-way is an unfinished run like any other. recover
// finishes it from the undo run's own trail and lock — no --break-stale — and the tree ends byte for
// byte as before the undone run, at every point the undo can die.

const CHILD = join(__dirname, "fixtures/undo-child.mjs");
let base: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  base = await tempDir("atomkit-undo-crash-");
});
afterAll(() => base.cleanup());

async function freshTree(root: string) {
  await mkdir(join(root, "releases/1"), { recursive: true });
  await writeFile(join(root, "releases/1/RELEASE"), "1");
  await writeFile(join(root, "config"), "config v1");
  await writeFile(join(root, "current"), "releases/1");
  await writeFile(join(root, "drain"), "serving");
}

/** A committed release in a fresh tree, then an undo of it in a child process that dies at `killAt`. */
async function deployThenUndo(name: string, killAt: number) {
  const root = join(base.dir, `${name}-tree`);
  const trailDir = join(base.dir, `${name}-trail`);
  const stateDir = join(base.dir, `${name}-state`);
  await freshTree(root);
  const before = await hashTree(root);
  const trail = fileTrail({ dir: trailDir });
  const committed = await run(releaseAtom(atom, root, false), {
    host: localHost({ stateDir }),
    trail,
    backoffMs: 0,
  });
  expect(committed.status).toBe("committed");
  const after = await hashTree(root);
  const child = spawnSync(process.execPath, [CHILD, trailDir, stateDir, String(killAt), committed.runId], {
    encoding: "utf8",
  });
  return { root, trailDir, stateDir, trail, before, after, runId: committed.runId, child };
}

describe("an undo killed half-way (SIGKILL, real processes)", () => {
  it(
    "recover finishes it without --break-stale at every kill point: rolled back, verified, lock released",
    async () => {
      const ref = await deployThenUndo("ref", 0);
      expect(ref.child.signal, ref.child.stderr).toBe(null);
      const out = JSON.parse(ref.child.stdout) as { status: string; checkpoints: number };
      expect(out.status).toBe("rolled-back");
      expect(await hashTree(ref.root)).toBe(ref.before);
      expect(out.checkpoints).toBeGreaterThanOrEqual(20);

      const outcomes: Record<string, number> = {};
      for (let killAt = 1; killAt <= out.checkpoints; killAt++) {
        const d = await deployThenUndo(`k${killAt}`, killAt);
        expect(d.child.signal, `kill point ${killAt}: ${d.child.stdout} ${d.child.stderr}`).toBe("SIGKILL");
        const undoRuns = (await d.trail.listRuns()).filter(
          (r) => r.mode === "undo" || r.status === "corrupt",
        );
        const unfinished = undoRuns.filter((r) => r.status === "unfinished");
        if (!unfinished.length) {
          // killed while writing the undo run's first record: the undo had not acted yet
          expect(await hashTree(d.root), `kill point ${killAt}`).toBe(d.after);
          outcomes["before the undo started"] = (outcomes["before the undo started"] ?? 0) + 1;
          continue;
        }
        // the dead undo's lease is still on disk: recover must take it over as the run's own, unasked
        expect(await readdir(join(d.stateDir, "locks"))).toEqual(["deploy.lock"]);
        const [result] = await recover(d.trail, {
          host: localHost({ stateDir: d.stateDir }),
          steps: kinds,
          backoffMs: 0,
        });
        expect(result?.runId).toBe(unfinished[0]!.runId);
        expect(result?.found, `kill point ${killAt}`).toBe("died-while-undoing");
        expect(result?.status, `kill point ${killAt}: ${result?.error?.message}`).toBe("rolled-back");
        expect(await hashTree(d.root), `kill point ${killAt}`).toBe(d.before);
        expect(await readdir(join(d.stateDir, "locks"))).toEqual([]);
        // the original run now reads as undone: nothing left unfinished, and it is not undone twice
        const runs = await d.trail.listRuns();
        expect(runs.filter((r) => r.status === "unfinished")).toEqual([]);
        expect(runs.find((r) => r.runId === result?.runId)).toMatchObject({
          undoOf: d.runId,
          status: "rolled-back",
          recovered: true,
        });
        outcomes.recovered = (outcomes.recovered ?? 0) + 1;
      }
      expect(outcomes.recovered).toBeGreaterThanOrEqual(out.checkpoints - 2);
      console.log(`undo kill points (${out.checkpoints}):`, outcomes);
    },
    10 * 60_000,
  );
});
