import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashTree } from "../../testkit/src/tree";
import {
  atom,
  defineStep,
  fileTrail,
  isNotFound,
  localHost,
  recover,
  run,
  type TrailRecord,
} from "../src/index";
import { tempDir } from "./_helpers";
import { mountTmpfs, noTmpfs, type Tmpfs } from "./_tmpfs";

// Issue #16, with a real full disk (a 64 KiB tmpfs): the trail's disk fills under a run, and a lease is
// created on a full disk. Nothing may be torn or lost, and the host must be left recoverable.

const KEY = "full-disk-test-passphrase";
const at = () => new Date().toISOString();
/** A file content of more than a page (tmpfs allocates whole pages). */
const page = (text: string) => `${text}\n${"-".repeat(5000)}`;

/** A real file change: content of one file (null = absent); undo puts the recorded content back. */
const applied: string[] = [];
const put = defineStep({
  kind: "test.put",
  params: (p: { path: string; content: string }) => p,
  observe: async (ctx, p) => {
    try {
      return (await ctx.host.readFile(p.path)).toString("utf8");
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  },
  apply: async (ctx, p) => {
    applied.push(p.path);
    await ctx.host.writeFile(p.path, p.content);
  },
  undo: async (ctx, p, before) => {
    if (before === null) await ctx.host.rm(p.path, { force: true });
    else await ctx.host.writeFile(p.path, before);
  },
});

const skip = noTmpfs();
let disk: Tmpfs;
let work: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  if (!skip) work = await tempDir("atomkit-full-work-");
});
afterAll(() => work?.cleanup());
// a disk of its own for every test: what one test leaves must not fill the next one's
beforeEach(async () => {
  applied.length = 0;
  if (!skip) disk = await mountTmpfs("64k");
});
afterEach(() => disk?.unmount());

function runRecord(runId: string): TrailRecord {
  return {
    t: "run",
    v: 2,
    runId,
    atom: "a",
    host: "local",
    mode: "run",
    at: at(),
    pid: 1,
    machine: "m",
    steps: [],
  };
}
function stepRecord(
  runId: string,
  step: string,
  status: "applying" | "applied" | "failed-unchanged",
  before?: string,
) {
  return {
    t: "step",
    runId,
    step,
    status,
    at: at(),
    ...(before !== undefined ? { before } : {}),
  } as TrailRecord;
}
const shape = (records: readonly TrailRecord[]) =>
  records.map((r) => (r.t === "step" ? `${r.step}:${r.status}` : r.t));

describe.skipIf(skip)("a full trail disk (real tmpfs)", () => {
  it("an append that only partly fits fails whole: no torn line, earlier buffered records kept, the chain intact", async () => {
    const dir = join(disk.dir, "trails-append");
    const file = join(dir, "r1.jsonl");
    const trail = fileTrail({ dir, key: KEY });
    await trail.append("r1", [runRecord("r1")], { sync: true });
    await trail.append("r1", [stepRecord("r1", "a", "applying")], { sync: true });
    await trail.append("r1", [stepRecord("r1", "a", "applied")]); // buffered: goes out with the next sync
    const size = (await readFile(file)).length;
    disk.fill();
    // bigger than what is left of the file's last page: the first part is written, then ENOSPC
    const big = stepRecord("r1", "b", "applying", "y".repeat(20_000));
    const err = await trail.append("r1", [big], { sync: true }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ATOM_TRAIL_INVALID", found: "ENOSPC" });
    expect(String((err as Error).message)).toMatch(/disk is full/);
    // the file is exactly as before the failed append: no part of a record in the middle
    expect((await readFile(file)).length).toBe(size);
    expect(shape(await fileTrail({ dir, key: KEY }).readRun("r1"))).toEqual(["run", "a:applying"]);

    disk.free();
    await trail.append("r1", [stepRecord("r1", "b", "failed-unchanged")], { sync: true });
    const text = await readFile(file, "utf8");
    expect(text.endsWith("\n")).toBe(true);
    for (const line of text.trimEnd().split("\n")) expect(() => JSON.parse(line)).not.toThrow();
    // a new reader verifies every record's seal: the buffered record was not lost, and the one whose
    // append failed (its caller was told) is not written behind its back
    expect(shape(await fileTrail({ dir, key: KEY }).readRun("r1"))).toEqual([
      "run",
      "a:applying",
      "a:applied",
      "b:failed-unchanged",
    ]);
  });

  it("a run whose trail disk fills mid-run stops before the next apply, rolls back and says so; recover finishes the trail", async () => {
    const root = join(work.dir, "tree-mid-run");
    await mkdir(root, { recursive: true });
    await writeFile(join(root, "a"), page("a v1"));
    const before = await hashTree(root);
    const dir = join(disk.dir, "trails-run");
    const stateDir = join(work.dir, "state-mid-run");
    const trail = fileTrail({ dir, key: KEY });
    // states bigger than what is left of the trail file's last page: the next record cannot squeeze in
    const steps = ["a", "b", "c"].map((n) =>
      put({ path: join(root, n), content: page(`${n} v2`) }, { name: n }),
    );
    const result = await run(atom("rel", { steps }), {
      host: localHost({ stateDir }),
      trail,
      backoffMs: 0,
      onEvent: (e) => {
        if (e.type === "step:applied" && e.step === "a") disk.fill(); // someone else fills the disk
      },
    });
    expect(result.status, result.error?.message).toBe("rolled-back");
    expect(result.trailError).toMatchObject({ code: "ATOM_TRAIL_INVALID" });
    expect(result.trailError?.message).toMatch(/disk is full/);
    // b's intent could not be recorded, so b never acted, and a was undone and verified
    expect(applied).toEqual([join(root, "a")]);
    expect(result.steps.map((s) => [s.name, s.status])).toEqual([
      ["a", "undone"],
      ["b", "failed-unchanged"],
      ["c", "pending"],
    ]);
    const why = result.steps[1]?.error;
    expect(why?.message).toMatch(/trail could not record the intent, so apply was not started: cannot write/);
    // one error, said once: the trail error's own details are the step error's, not repeated inside it
    expect(why?.message.match(/\[atomkit\]|expected:|fix:/g)).toEqual(["[atomkit]", "expected:", "fix:"]);
    expect(why?.hint).toMatch(/disk is full/);
    expect(await hashTree(root)).toBe(before);

    // the trail on disk lacks the outcome: a new process sees an unfinished run, and recover (which
    // must write) fails with the same clear trail error while the disk is still full
    const later = fileTrail({ dir, key: KEY });
    expect((await later.listRuns()).map((r) => [r.runId, r.status])).toEqual([[result.runId, "unfinished"]]);
    await expect(
      recover(later, { host: localHost({ stateDir }), steps: [put], backoffMs: 0 }),
    ).rejects.toMatchObject({
      code: "ATOM_TRAIL_INVALID",
    });
    disk.free();
    const [done] = await recover(later, { host: localHost({ stateDir }), steps: [put], backoffMs: 0 });
    expect(done?.status, done?.error?.message).toBe("rolled-back");
    expect(await hashTree(root)).toBe(before);
    expect((await fileTrail({ dir, key: KEY }).listRuns()).map((r) => r.status)).toEqual(["rolled-back"]);
    // the host is free for the next run
    expect(await readdir(join(stateDir, "locks"))).toEqual([]);
    const next = await run(atom("rel", { steps }), { host: localHost({ stateDir }), trail: later });
    expect(next.status).toBe("committed");
  });

  it("a run whose end record does not fit commits, says so, and recover keeps the commit", async () => {
    const root = join(work.dir, "tree-end");
    await mkdir(root, { recursive: true });
    const dir = join(disk.dir, "trails-end");
    const stateDir = join(work.dir, "state-end");
    const trail = fileTrail({ dir, key: KEY });
    const steps = ["a", "b"].map((n) => put({ path: join(root, n), content: page(`${n} v2`) }, { name: n }));
    const result = await run(atom("rel", { steps }), {
      host: localHost({ stateDir }),
      trail,
      onEvent: (e) => {
        if (e.type === "step:applied" && e.step === "b") disk.fill();
      },
    });
    expect(result.status).toBe("committed");
    expect(result.trailError?.message).toMatch(/disk is full/);
    const after = await hashTree(root);
    disk.free();
    const later = fileTrail({ dir, key: KEY });
    const [done] = await recover(later, { host: localHost({ stateDir }), steps: [put] });
    expect(done).toMatchObject({ found: "died-before-commit", status: "committed" });
    expect(await hashTree(root)).toBe(after);
  });
});

describe.skipIf(skip)("a trail that cannot start on a full disk (real tmpfs)", () => {
  it("creating the trail key fails as a trail error naming the key file, and nothing runs", async () => {
    const dir = join(disk.dir, "trails");
    disk.fill();
    const root = join(work.dir, "tree-key");
    await mkdir(root, { recursive: true });
    const steps = [put({ path: join(root, "a"), content: "v2" }, { name: "a" })];
    const trail = fileTrail({ dir }); // the key file beside the trail dir is created on the first write
    const err = await run(atom("rel", { steps }), {
      host: localHost({ stateDir: join(work.dir, "s-key") }),
      trail,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ATOM_TRAIL_INVALID", found: "ENOSPC" });
    expect(String((err as Error).message)).toContain(join(disk.dir, "trail.key"));
    expect((err as { hint?: string }).hint).toMatch(/disk is full/);
    expect(applied).toEqual([]);
    expect(await readdir(disk.dir)).not.toContain("trail.key");
  });

  it("a run whose first record does not fit leaves no file behind (no run, no corrupt entry)", async () => {
    const dir = join(disk.dir, "trails");
    const trail = fileTrail({ dir, key: KEY });
    const root = join(work.dir, "tree-first");
    await mkdir(root, { recursive: true });
    const steps = [put({ path: join(root, "a"), content: "v2" }, { name: "a" })];
    const host = localHost({ stateDir: join(work.dir, "s-first") });
    await mkdir(dir);
    disk.fill();
    await expect(run(atom("rel", { steps }), { host, trail })).rejects.toMatchObject({
      code: "ATOM_TRAIL_INVALID",
      found: "ENOSPC",
    });
    expect(applied).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
    expect(await trail.listRuns()).toEqual([]);
    disk.free();
    expect((await run(atom("rel", { steps }), { host, trail })).status).toBe("committed");
    expect((await trail.listRuns()).map((r) => r.status)).toEqual(["committed"]);
  });
});

describe.skipIf(skip)("a lease created on a full disk (real tmpfs)", () => {
  it("leaves no lock file, empty or partial, and the next run takes the lock at once", async () => {
    const stateDir = join(disk.dir, "state-lease");
    const locks = join(stateDir, "locks");
    await mkdir(locks, { recursive: true });
    const host = localHost({ stateDir });
    disk.fill();
    const err = await host.lock("deploy", { owner: "first" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ATOM_HOST", reason: "ENOSPC" });
    expect(await readdir(locks)).toEqual([]);
    // a run fails the same way before acting, and leaves nothing behind either
    const root = join(work.dir, "tree-lease");
    await mkdir(root, { recursive: true });
    const steps = [put({ path: join(root, "a"), content: "v2" }, { name: "a" })];
    await expect(run(atom("rel", { steps }), { host })).rejects.toMatchObject({ reason: "ENOSPC" });
    expect(applied).toEqual([]);
    expect(await readdir(locks)).toEqual([]);

    disk.free();
    // an empty lease left behind would refuse this run (EEXIST while its grace lasts)
    const ok = await run(atom("rel", { steps }), { host });
    expect(ok.status).toBe("committed");
    expect(await readdir(locks)).toEqual([]);
  });
});
