import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { atom, DriftError, type Host, memoryTrail, run, undoRun } from "@atomkit/core";
import { describeStepContract, hashTree } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { emptyTrash, type RemoveState, removePath, steps } from "../src/index";
import { asRemote, bound, flaky, HOSTILE_STRINGS, type Sandbox, sandbox, segmentSafe } from "./_helpers";

/** A directory full of hostile names, a file and a symlink beside it. */
async function victimFixture(s: Sandbox) {
  const dir = join(s.app, "old stuff $(x)");
  await mkdir(dir, { recursive: true });
  for (const name of HOSTILE_STRINGS.filter(segmentSafe)) await writeFile(join(dir, name), name);
  await writeFile(join(s.app, "file"), "content");
  await symlink("old stuff $(x)", join(s.app, "link"));
  return dir;
}

for (const mode of ["local", "remote"] as const) {
  const hostFor = (h: Host) => (mode === "remote" ? asRemote(h) : h);
  for (const what of ["directory", "file", "symlink"] as const) {
    describeStepContract({
      name: `fs.remove: a ${what} (${mode})`,
      idempotent: true,
      async setup() {
        const s = await sandbox();
        const dir = await victimFixture(s);
        const path = { directory: dir, file: join(s.app, "file"), symlink: join(s.app, "link") }[what];
        const f = flaky(hostFor(s.host), "rename", "after");
        return {
          host: f.host,
          step: () => removePath({ path }),
          snapshot: () => hashTree(s.app),
          breakApply: f.arm,
          cleanup: s.cleanup,
        };
      },
    });
  }
}

describe("fs.remove: trash, undo later, cleanup", () => {
  let s: Sandbox;
  beforeEach(async () => {
    s = await sandbox();
  });
  afterEach(() => s.cleanup());

  it("moves into <stateDir>/trash/<runId>/ and `undo <runId>` (a new run id) brings it back", async () => {
    const dir = await victimFixture(s);
    const picture = await hashTree(s.app);
    const trail = memoryTrail();
    const r = await run(atom("rm", { steps: [removePath({ path: dir })] }), {
      host: s.host,
      trail,
      lock: false,
    });
    expect(r.status).toBe("committed");
    expect(existsSync(dir)).toBe(false);
    const after = r.steps[0]?.after as RemoveState & { trash: string };
    expect(after.type).toBe("missing");
    expect(after.trash.startsWith(join(s.root, "state", "trash", r.runId))).toBe(true);
    expect(await readFile(join(after.trash, "it's"), "utf8")).toBe("it's");
    const undone = await undoRun(trail, r.runId, { host: s.host, steps, lock: false });
    expect(undone.status).toBe("rolled-back");
    expect(await hashTree(s.app)).toBe(picture);
  });

  it("reports drift when something new appeared at the path, and never overwrites it", async () => {
    await victimFixture(s);
    const trail = memoryTrail();
    const r = await run(atom("rm", { steps: [removePath({ path: join(s.app, "file") })] }), {
      host: s.host,
      trail,
      lock: false,
    });
    await writeFile(join(s.app, "file"), "someone else's");
    await expect(undoRun(trail, r.runId, { host: s.host, steps, lock: false })).rejects.toBeInstanceOf(
      DriftError,
    );
    const forced = await undoRun(trail, r.runId, { host: s.host, steps, lock: false, force: true });
    expect(forced.status).toBe("rollback-failed");
    expect(forced.error?.message).toContain("something else is at");
    expect(await readFile(join(s.app, "file"), "utf8")).toBe("someone else's");
  });

  it("emptyTrash removes old runs' trash; undo then fails clearly instead of guessing", async () => {
    await victimFixture(s);
    const st = await bound<RemoveState>(
      removePath,
      s.host,
      { path: join(s.app, "file") },
      "20200101T000000Z-abcdef",
    );
    const before = await st.observe();
    await st.apply(before);
    const after = await st.observe();
    // run ids carry their time; the default retention is 7 days back from `now`
    const kept = await emptyTrash(s.host, { now: Date.UTC(2020, 0, 5) });
    expect(kept.removed).toEqual([]);
    const { removed } = await emptyTrash(s.host, { now: Date.UTC(2020, 0, 9) });
    expect(removed).toContain(join(s.root, "state", "trash", "20200101T000000Z-abcdef"));
    expect(await st.observe()).toEqual({ type: "missing", trash: null });
    await expect(st.undo(before, after)).rejects.toThrow(/no longer in the trash/);
    expect(await readdir(join(s.root, "state", "trash", ".index")).catch(() => [])).toEqual([]);
  });

  it("refuses a trash on another filesystem with a hint, before moving anything", async (t) => {
    const shm = await mkdtemp("/dev/shm/atomkit-trash-").catch(() => null);
    if (!shm) return t.skip("no /dev/shm to put the trash on another filesystem");
    try {
      await victimFixture(s);
      const picture = await hashTree(s.app);
      const r = await run(atom("exdev", { steps: [removePath({ path: join(s.app, "file"), trash: shm })] }), {
        host: s.host,
        lock: false,
      });
      expect(r.steps[0]?.status).toBe("failed-unchanged");
      expect(r.error?.message).toContain("different filesystems");
      expect(r.error?.hint).toContain("trash");
      expect(await hashTree(s.app)).toBe(picture);
    } finally {
      await rm(shm, { recursive: true, force: true, maxRetries: 10 });
    }
  });

  it("refuses to remove the trash itself, or a directory holding it", async () => {
    await mkdir(join(s.root, "state", "trash"), { recursive: true });
    const picture = await hashTree(s.root);
    for (const path of [join(s.root, "state"), join(s.root, "state", "trash")]) {
      const r = await run(atom("self", { steps: [removePath({ path })] }), { host: s.host, lock: false });
      expect(r.steps[0]?.status).toBe("failed-unchanged");
      expect(r.error?.message).toContain("contains the trash itself");
    }
    expect(await hashTree(s.root)).toBe(picture);
  });
});
