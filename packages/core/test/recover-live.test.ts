import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PATIENCE_MS } from "../../testkit/src/patience";
import { defineStep, fileTrail, isNotFound, localHost, recover } from "../src/index";
import { tempDir } from "./_helpers";

// Issue #16: recover must never roll back a run whose process still runs, whatever lock name it is
// given: it checks the run's recorded lease (or, for a run without a lock, its pid) and takes the lock
// the run recorded.

const KEY = "recover-live-test-passphrase";
const DIST = join(__dirname, "../dist/index.js");

const put = defineStep({
  kind: "test.put",
  params: (p: { path: string; content: string; hang?: boolean }) => p,
  observe: async (ctx, p) => {
    try {
      return (await ctx.host.readFile(p.path)).toString("utf8");
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  },
  apply: async () => {
    throw new Error("only the child process applies");
  },
  undo: async (ctx, p, before) => {
    if (before === null) await ctx.host.rm(p.path, { force: true });
    else await ctx.host.writeFile(p.path, before);
  },
});

let dir: string;
let cleanup: () => Promise<void>;
let child: ChildProcess | undefined;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir("atomkit-live-"));
});
afterEach(async () => {
  child?.kill("SIGKILL");
  await cleanup();
});

/** A real deploying process: applies a, then b, and stays inside b's apply until killed. */
async function liveRun(root: string, stateDir: string, trailDir: string, lock: "deploy" | false) {
  const script = `
    import { atom, defineStep, fileTrail, localHost, run } from ${JSON.stringify(DIST)};
    const put = defineStep({ kind: "test.put", params: (p) => p,
      observe: async (ctx, p) => { try { return (await ctx.host.readFile(p.path)).toString(); } catch { return null; } },
      apply: async (ctx, p) => { await ctx.host.writeFile(p.path, p.content); if (p.hang) await new Promise(() => setInterval(() => {}, 1000)); },
      undo: async () => {} });
    const root = ${JSON.stringify(root)};
    await run(atom("rel", { steps: [put({ path: root + "/a", content: "v2" }, { name: "a" }),
      put({ path: root + "/b", content: "v2", hang: true }, { name: "b" })] }),
      { host: localHost({ stateDir: ${JSON.stringify(stateDir)} }), trail: fileTrail({ dir: ${JSON.stringify(trailDir)}, key: ${JSON.stringify(KEY)} }),
        runId: "live", lock: ${lock === false ? "false" : `{ name: "${lock}" }`} });
  `;
  child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: "inherit" });
  const exited = new Promise<void>((resolve) => child!.once("exit", () => resolve()));
  const end = Date.now() + PATIENCE_MS;
  while (!existsSync(join(root, "b"))) {
    if (Date.now() > end || child.exitCode !== null) throw new Error("the deploying process did not start");
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    kill: async () => {
      child!.kill("SIGKILL");
      await exited;
    },
  };
}

const read = (path: string) => readFile(path, "utf8").catch(() => null);

describe("recover of a run whose process still runs", () => {
  it("is refused under any lock name while the run's lease is fresh; once it died, recover uses the recorded lock", async () => {
    const root = join(dir, "tree");
    const stateDir = join(dir, "state");
    const trailDir = join(dir, "trails");
    await mkdir(root);
    const live = await liveRun(root, stateDir, trailDir, "deploy");
    const trail = fileTrail({ dir: trailDir, key: KEY });
    const host = localHost({ stateDir });
    for (const runId of [undefined, "live"]) {
      const err = await recover(trail, {
        host,
        steps: [put],
        lock: { name: "other" },
        ...(runId ? { runId } : {}),
      }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "ATOM_LOCKED" });
      expect(String((err as Error).message)).toMatch(/run live is still running: it holds lock "deploy"/);
    }
    // nothing was rolled back under the live run, and no lock "other" was taken
    expect([await read(join(root, "a")), await read(join(root, "b"))]).toEqual(["v2", "v2"]);
    expect(await readdir(join(stateDir, "locks"))).toEqual(["deploy.lock"]);

    await live.kill();
    // someone holds "other" now: a recover that took the lock it was given would be refused
    const other = await host.lock("other", { owner: "someone else" });
    try {
      const [done] = await recover(trail, { host, steps: [put], lock: { name: "other" }, backoffMs: 0 });
      expect(done).toMatchObject({ runId: "live", found: "died-while-applying", status: "rolled-back" });
      expect([await read(join(root, "a")), await read(join(root, "b"))]).toEqual([null, null]);
      expect(await readdir(join(stateDir, "locks"))).toEqual(["other.lock"]);
    } finally {
      await other.release();
    }
  });

  it("a run without a lock is refused while its pid lives on this machine", async () => {
    const root = join(dir, "tree");
    const stateDir = join(dir, "state");
    const trailDir = join(dir, "trails");
    await mkdir(root);
    const live = await liveRun(root, stateDir, trailDir, false);
    const trail = fileTrail({ dir: trailDir, key: KEY });
    const host = localHost({ stateDir });
    const err = await recover(trail, { host, steps: [put], lock: false }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ATOM_LOCKED" });
    expect(String((err as Error).message)).toMatch(/may still be running: pid \d+ lives on this machine/);
    expect([await read(join(root, "a")), await read(join(root, "b"))]).toEqual(["v2", "v2"]);
    await live.kill();
    const [done] = await recover(trail, { host, steps: [put], lock: false, backoffMs: 0 });
    expect(done?.status).toBe("rolled-back");
    expect([await read(join(root, "a")), await read(join(root, "b"))]).toEqual([null, null]);
  });
});
