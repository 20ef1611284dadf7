import { mkdir, readdir, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { atom, type Host, memoryTrail, run, undoRun } from "@atomkit/core";
import { describeStepContract, hashTree } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type PruneState, pruneReleases, steps } from "../src/index";
import { asRemote, bound, flaky, type Sandbox, sandbox } from "./_helpers";

async function releases(s: Sandbox, names: string[], current: string) {
  for (const name of names) {
    await mkdir(join(s.app, "releases", name), { recursive: true });
    await writeFile(join(s.app, "releases", name, "VERSION"), name);
  }
  await mkdir(join(s.app, "releases", ".r7.atomkit-1234"), { recursive: true }); // a temp dir: never touched
  await writeFile(join(s.app, "releases", "notes.txt"), "not a release");
  await symlink(`releases/${current}`, join(s.app, "current"));
}

const ls = async (s: Sandbox) => (await readdir(join(s.app, "releases"))).sort();

for (const mode of ["local", "remote"] as const) {
  const hostFor = (h: Host) => (mode === "remote" ? asRemote(h) : h);
  describeStepContract({
    name: `fs.prune (${mode})`,
    idempotent: true,
    async setup() {
      const s = await sandbox();
      await releases(s, ["1", "2", "3", "9", "10", "11"], "3");
      // the second move fails before it happens: one release is in the trash, the others are not
      const f = flaky(hostFor(s.host), "rename", "before", 1);
      return {
        host: f.host,
        step: () =>
          pruneReleases({
            dir: join(s.app, "releases"),
            keep: 2,
            current: join(s.app, "current"),
            protect: ["1"],
          }),
        snapshot: () => hashTree(s.app),
        breakApply: f.arm,
        cleanup: s.cleanup,
      };
    },
  });
}

describe("fs.prune: what is kept", () => {
  let s: Sandbox;
  beforeEach(async () => {
    s = await sandbox();
  });
  afterEach(() => s.cleanup());

  it("keeps the newest N (natural order), current and protected; moves the rest to the trash", async () => {
    await releases(s, ["1", "2", "3", "9", "10", "11"], "3");
    const st = await bound<PruneState>(pruneReleases, s.host, {
      dir: join(s.app, "releases"),
      keep: 2,
      current: join(s.app, "current"),
      protect: [join(s.app, "releases", "1")],
    });
    const before = await st.observe();
    expect(before).toEqual({ releases: ["1", "2", "3", "9", "10", "11"], pruned: {} });
    await st.apply(before);
    const after = await st.observe();
    expect(after.releases).toEqual(["1", "3", "10", "11"]);
    expect(Object.keys(after.pruned)).toEqual(["2", "9"]);
    expect(await ls(s)).toEqual([".r7.atomkit-1234", "1", "10", "11", "3", "notes.txt"]);
    await st.undo(before, after);
    expect(await st.observe()).toEqual(before);
  });

  it("protects the live release even when `current` reaches it through another symlink", async () => {
    await releases(s, ["1", "2", "3"], "1");
    await symlink(join(s.app, "releases"), join(s.app, "releases-alias"));
    await writeFile(join(s.app, "x"), "");
    const live = join(s.app, "live");
    await symlink("releases-alias/1", live);
    const st = await bound<PruneState>(pruneReleases, s.host, {
      dir: join(s.app, "releases"),
      keep: 1,
      current: live,
    });
    await st.apply(await st.observe());
    expect((await st.observe()).releases).toEqual(["1", "3"]);
  });

  it("orders by mtime when asked", async () => {
    await releases(s, ["a", "b", "c"], "c");
    await utimes(join(s.app, "releases", "a"), new Date(3_000_000), new Date(3_000_000));
    await utimes(join(s.app, "releases", "b"), new Date(1_000_000), new Date(1_000_000));
    await utimes(join(s.app, "releases", "c"), new Date(2_000_000), new Date(2_000_000));
    const st = await bound<PruneState>(pruneReleases, s.host, {
      dir: join(s.app, "releases"),
      keep: 1,
      order: "mtime",
    });
    await st.apply(await st.observe());
    expect((await st.observe()).releases).toEqual(["a"]);
  });

  it("two prunes, undone later in reverse by `undo <runId>`, restore everything", async () => {
    await releases(s, ["1", "2", "3", "4", "5"], "5");
    const picture = await hashTree(s.app);
    const trail = memoryTrail();
    const step = (keep: number) =>
      pruneReleases({ dir: join(s.app, "releases"), keep, current: join(s.app, "current") });
    const first = await run(atom("p1", { steps: [step(4)] }), { host: s.host, trail, lock: false });
    const second = await run(atom("p2", { steps: [step(2)] }), { host: s.host, trail, lock: false });
    expect((await ls(s)).filter((n) => /^\d$/.test(n))).toEqual(["4", "5"]);
    expect((second.steps[0]!.before as unknown as PruneState).pruned).toEqual(
      (first.steps[0]!.after as unknown as PruneState).pruned,
    );
    expect((await undoRun(trail, second.runId, { host: s.host, steps, lock: false })).status).toBe(
      "rolled-back",
    );
    expect((await undoRun(trail, first.runId, { host: s.host, steps, lock: false })).status).toBe(
      "rolled-back",
    );
    expect(await hashTree(s.app)).toBe(picture);
  });

  it("refuses a `current` that is not a symlink, and bad params", async () => {
    await releases(s, ["1", "2", "3"], "3");
    await writeFile(join(s.app, "not-a-link"), "");
    const picture = await hashTree(s.app);
    const r = await run(
      atom("bad", {
        steps: [pruneReleases({ dir: join(s.app, "releases"), keep: 1, current: join(s.app, "not-a-link") })],
      }),
      { host: s.host, lock: false },
    );
    expect(r.error?.message).toContain("is not a symlink");
    expect(await hashTree(s.app)).toBe(picture);
    for (const [params, field] of [
      [{ dir: join(s.app, "releases"), keep: 0 }, "keep"],
      [{ dir: join(s.app, "releases"), keep: 1, protect: ["a/b"] }, "protect.0"],
      [{ dir: join(s.app, "releases"), keep: 1, protect: ["/elsewhere/1"] }, "protect.0"],
      [{ dir: join(s.app, "releases"), keep: 1, order: "size" }, "order"],
      [{ dir: "releases", keep: 1 }, "dir"],
    ] as const) {
      await expect(
        run(atom("bad", { steps: [pruneReleases(params as never)] }), { host: s.host, lock: false }),
      ).rejects.toMatchObject({
        issues: [{ path: field }],
      });
    }
  });
});
