// A state means content, not identity: after a later run was rolled back (verified), undo of an earlier
// committed run must find no drift and restore its before-state, from the trail alone.
import { mkdir, readdir, readFile, writeFile as writeLocal } from "node:fs/promises";
import { join } from "node:path";
import { atom, defineStep, fileTrail, type RunResult, run, type Step, undoRun } from "@atomkit/core";
import { hashTree } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeDir, pruneReleases, removePath, steps, untar, uploadFile, writeFile } from "../src/index";
import { type Sandbox, sandbox } from "./_helpers";
import { rawTar } from "./_tar";

const boom = defineStep({
  kind: "test.boom",
  params: (p: null) => p,
  observe: async () => null,
  apply: async () => {
    throw new Error("injected: a later step fails");
  },
  undo: async () => {},
});

describe("undo of a committed run after a later run was rolled back", () => {
  let s: Sandbox;
  beforeEach(async () => {
    s = await sandbox();
    await mkdir(join(s.app, "releases"), { recursive: true });
  });
  afterEach(() => s.cleanup());

  /** Runs A (committed), then B (+ a failing step: rolled back, verified), then undoes A. */
  async function scenario(a: Step[], b: Step[]): Promise<{ picture: string; undone: RunResult }> {
    const trail = fileTrail({ dir: join(s.root, "trails") });
    const picture = await hashTree(s.app);
    const first = await run(atom("a", { steps: a }), { host: s.host, trail, lock: false });
    expect(first.status).toBe("committed");
    const second = await run(atom("b", { steps: [...b, boom(null)] }), { host: s.host, trail, lock: false });
    expect(second.error?.message).toContain("injected");
    expect(second.status).toBe("rolled-back");
    expect(second.steps.filter((x) => x.kind !== "test.boom").every((x) => x.verified)).toBe(true);
    const undone = await undoRun(trail, first.runId, { host: s.host, lock: false, steps: [...steps, boom] });
    expect(undone.error).toBeUndefined();
    expect(undone.status).toBe("rolled-back");
    expect(undone.steps.every((x) => x.status === "undone" && x.verified)).toBe(true);
    return { picture, undone };
  }

  it("fs.write: v1→v2 committed, v2→v3 rolled back, undo restores v1", async () => {
    const path = join(s.app, "app.conf");
    await writeLocal(path, "v1\n");
    const { picture } = await scenario(
      [writeFile({ path, content: "v2\n" })],
      [writeFile({ path, content: "v3\n", mode: 0o600 })],
    );
    expect(await readFile(path, "utf8")).toBe("v1\n");
    expect(await hashTree(s.app)).toBe(picture);
  });

  it("fs.upload: v1→v2 committed, v2→v3 rolled back, undo restores v1", async () => {
    const path = join(s.app, "app.bin");
    await writeLocal(path, "v1");
    for (const v of ["v2", "v3"]) await writeLocal(join(s.root, v), v);
    const { picture } = await scenario(
      [uploadFile({ source: join(s.root, "v2"), path })],
      [uploadFile({ source: join(s.root, "v3"), path })],
    );
    expect(await hashTree(s.app)).toBe(picture);
  });

  it("fs.untar: release extracted, removed and put back by a rolled-back run, undo removes it", async () => {
    const archive = join(s.root, "r2.tar");
    await writeLocal(archive, rawTar([{ path: "f", body: "2" }]));
    const path = join(s.app, "releases", "2");
    const { picture } = await scenario(
      [untar({ archive, path })],
      [removePath({ path })], // moved to the trash, then renamed back: the same release
    );
    expect(await readdir(join(s.app, "releases"))).toEqual([]);
    expect(await hashTree(s.app)).toBe(picture);
  });

  it("fs.mkdir: directories made, a rolled-back run wrote into them, undo removes them", async () => {
    const path = join(s.app, "shared", "logs");
    const { picture } = await scenario(
      [makeDir({ path })],
      [writeFile({ path: join(path, "x.log"), content: "x" })],
    );
    expect(await hashTree(s.app)).toBe(picture);
  });

  it("fs.remove: removed, recreated and removed again by a rolled-back run, undo restores it", async () => {
    const path = join(s.app, "old.conf");
    await writeLocal(path, "old\n");
    const { picture } = await scenario(
      [removePath({ path })],
      [writeFile({ path, content: "new\n" }), removePath({ path }, { name: "remove again" })],
    );
    expect(await readFile(path, "utf8")).toBe("old\n");
    expect(await hashTree(s.app)).toBe(picture);
  });

  it("fs.prune: pruned, a rolled-back run pruned more, undo brings the first ones back", async () => {
    const dir = join(s.app, "releases");
    for (const r of ["1", "2", "3", "4"]) {
      await mkdir(join(dir, r));
      await writeLocal(join(dir, r, "v"), r);
    }
    const { picture } = await scenario(
      [pruneReleases({ dir, keep: 2 })],
      [makeDir({ path: join(dir, "5") }), pruneReleases({ dir, keep: 2 })],
    );
    expect((await readdir(dir)).sort()).toEqual(["1", "2", "3", "4"]);
    expect(await hashTree(s.app)).toBe(picture);
  });
});
