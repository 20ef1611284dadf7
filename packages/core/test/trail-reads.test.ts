import { spawnSync } from "node:child_process";
import { copyFile, mkdir, open, readdir, readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  atom,
  defineStep,
  fileTrail,
  isNotFound,
  localHost,
  recover,
  run,
  type TrailStore,
} from "../src/index";
import { tempDir } from "./_helpers";

// Issue #16: what the trail reads back. One bad file is listed as corrupt and blocks nobody else; a file
// is a run of the name it has only if its records say so; a huge line is refused after a bounded read.

const KEY = "trail-reads-test-passphrase";
const DIST = join(__dirname, "../dist/index.js");

const put = defineStep({
  kind: "test.put",
  params: (p: { path: string; content: string; die?: boolean }) => p,
  observe: async (ctx, p) => {
    try {
      return (await ctx.host.readFile(p.path)).toString("utf8");
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  },
  apply: async (ctx, p) => ctx.host.writeFile(p.path, p.content),
  undo: async (ctx, p, before) => {
    if (before === null) await ctx.host.rm(p.path, { force: true });
    else await ctx.host.writeFile(p.path, before);
  },
});

let dir: string;
let cleanup: () => Promise<void>;
let trailDir: string;
let trail: TrailStore;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir("atomkit-reads-"));
  trailDir = join(dir, "trails");
  trail = fileTrail({ dir: trailDir, key: KEY });
});
afterEach(async () => {
  await trail.close?.();
  await cleanup();
});

const release = (root: string, content: string) =>
  atom("rel", {
    steps: ["a", "b"].map((n) => put({ path: join(root, n), content }, { name: n })),
  });

/** Drops a committed run's end record: its process "died" after its last step. */
async function unfinish(runId: string): Promise<void> {
  const file = join(trailDir, `${runId}.jsonl`);
  const lines = (await readFile(file, "utf8")).trimEnd().split("\n");
  await writeFile(file, `${lines.slice(0, -1).join("\n")}\n`);
}

describe("trail reads", () => {
  it("one corrupt line in an old trail file blocks neither listRuns, nor a run on any host, nor recover of other runs", async () => {
    const root = join(dir, "tree");
    await mkdir(root);
    const host = localHost({ stateDir: join(dir, "state") });
    const old = await run(release(root, "v1"), { host, trail });
    const dead = await run(release(root, "v2"), {
      host: localHost({ name: "web2", stateDir: join(dir, "s2") }),
      trail,
    });
    await unfinish(dead.runId);
    // a line in the middle of the old run's file is damaged (a disk error, a bad edit)
    const file = join(trailDir, `${old.runId}.jsonl`);
    const lines = (await readFile(file, "utf8")).split("\n");
    lines[1] = lines[1]!.slice(0, 20);
    await writeFile(file, lines.join("\n"));

    const runs = await trail.listRuns();
    expect(runs.map((r) => [r.runId, r.status])).toEqual(
      expect.arrayContaining([
        [old.runId, "corrupt"],
        [dead.runId, "unfinished"],
      ]),
    );
    expect(runs.find((r) => r.runId === old.runId)?.problem).toMatch(/corrupt at line 2/);
    // runs on any host go on (the unfinished run blocks only its own host, web2)
    const next = await run(release(root, "v3"), { host, trail });
    expect(next.status).toBe("committed");
    // and recover finishes the other run, leaving the corrupt one alone
    const results = await recover(trail, {
      host: (name) => localHost({ name, stateDir: join(dir, name === "web2" ? "s2" : "state") }),
      steps: [put],
    });
    expect(results.map((r) => [r.runId, r.found, r.status])).toEqual([
      [dead.runId, "died-before-commit", "committed"],
    ]);
    expect((await trail.listRuns()).find((r) => r.runId === old.runId)?.status).toBe("corrupt");
  });

  it("a trail file copied to another name is not a run of that name", async () => {
    const root = join(dir, "tree");
    await mkdir(root);
    const host = localHost({ stateDir: join(dir, "state") });
    const r = await run(release(root, "v1"), { host, trail });
    await unfinish(r.runId);
    await copyFile(join(trailDir, `${r.runId}.jsonl`), join(trailDir, "copied-run.jsonl"));
    const runs = await trail.listRuns();
    expect(runs.map((x) => [x.runId, x.status])).toEqual(
      expect.arrayContaining([
        [r.runId, "unfinished"],
        ["copied-run", "corrupt"],
      ]),
    );
    expect(runs).toHaveLength(2);
    expect(runs.find((x) => x.runId === "copied-run")?.problem).toMatch(/copied or renamed/);
    await expect(recover(trail, { host, steps: [put], runId: "copied-run" })).rejects.toMatchObject({
      code: "ATOM_TRAIL_CORRUPT",
    });
    // recovering every unfinished run acts once, on the real one
    const results = await recover(trail, { host, steps: [put] });
    expect(results.map((x) => x.runId)).toEqual([r.runId]);
  });

  it("a half-applied run whose trail file was cut to 0 bytes is listed corrupt; its stale lease keeps the host blocked", async () => {
    const root = join(dir, "tree");
    await mkdir(root);
    const stateDir = join(dir, "state");
    // a real process takes the lock, applies step a, and is killed inside step b's apply
    const script = `
      import { atom, defineStep, fileTrail, localHost, run } from ${JSON.stringify(DIST)};
      const put = defineStep({ kind: "test.put", params: (p) => p, observe: async () => null,
        apply: async (ctx, p) => { await ctx.host.writeFile(p.path, p.content); if (p.die) process.kill(process.pid, "SIGKILL"); },
        undo: async () => {} });
      const root = ${JSON.stringify(root)};
      await run(atom("rel", { steps: [put({ path: root + "/a", content: "v2" }, { name: "a" }),
        put({ path: root + "/b", content: "v2", die: true }, { name: "b" })] }),
        { host: localHost({ stateDir: ${JSON.stringify(stateDir)} }), trail: fileTrail({ dir: ${JSON.stringify(trailDir)}, key: ${JSON.stringify(KEY)} }), runId: "half-applied" });
    `;
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    expect(child.signal, child.stderr).toBe("SIGKILL");
    await truncate(join(trailDir, "half-applied.jsonl"), 0);

    const [listed] = await trail.listRuns();
    expect(listed).toMatchObject({
      runId: "half-applied",
      status: "corrupt",
      problem: "the trail file is empty",
    });
    // the host is not taken over: the dead run's lease stays until someone decides
    const host = localHost({ stateDir });
    const err = await run(release(root, "v3"), { host, trail }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ATOM_LOCKED", stale: true });
    expect(String((err as Error).message)).toContain("run half-applied of atom rel");
    expect(await readFile(join(root, "a"), "utf8")).toBe("v2"); // nothing acted
    await expect(recover(trail, { host, steps: [put], runId: "half-applied" })).rejects.toMatchObject({
      code: "ATOM_RUN_NOT_FOUND",
    });
    expect(await recover(trail, { host, steps: [put] })).toEqual([]);
    expect(await readdir(join(stateDir, "locks"))).toEqual(["deploy.lock"]);
  });

  it("a 300 MB line costs neither seconds nor memory on every listRuns: it is refused after a bounded read", async () => {
    const root = join(dir, "tree");
    await mkdir(root);
    await run(release(root, "v1"), { host: localHost({ stateDir: join(dir, "state") }), trail });
    // a sparse file: one line of 300 MB (zero bytes, no newline) after a plausible start
    const file = join(trailDir, "huge.jsonl");
    const fh = await open(file, "w");
    await fh.write('{"t":"run","v":2,"runId":"huge","note":"');
    await fh.truncate(300 * 1024 * 1024);
    await fh.close();
    for (let round = 0; round < 3; round++) {
      globalThis.gc?.();
      const rss = process.memoryUsage().rss;
      const started = Date.now();
      const runs = await trail.listRuns();
      const ms = Date.now() - started;
      const grew = process.memoryUsage().rss - rss;
      if (round === 2)
        console.log(`listRuns over a 300 MB line: ${ms} ms, rss +${Math.round(grew / 1e6)} MB`);
      expect(runs.map((r) => r.status).sort()).toEqual(["committed", "corrupt"]);
      expect(runs.find((r) => r.runId === "huge")?.problem).toMatch(/longer than/);
      // reading the whole line takes 600 MB or more (a buffer and its string); the bound is a few MiB.
      // Memory, not time, is asserted: a stopwatch fails on a loaded machine (the time is printed above)
      expect(grew, `rss grew by ${Math.round(grew / 1e6)} MB`).toBeLessThan(150 * 1024 * 1024);
    }
  });
});
