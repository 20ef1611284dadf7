import { lstat, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { atom, type Host, run } from "@atomkit/core";
import { describeStepContract, hashTree } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type MakeDirState, makeDir } from "../src/index";
import { asRemote, bound, flaky, type Sandbox, sandbox } from "./_helpers";

for (const mode of ["local", "remote"] as const) {
  const hostFor = (h: Host) => (mode === "remote" ? asRemote(h) : h);
  describeStepContract({
    name: `fs.mkdir: recursive (${mode})`,
    idempotent: true,
    async setup() {
      const s = await sandbox();
      await mkdir(s.app);
      // the second of three mkdirs lands, then the connection drops: a/b exist, c does not
      const f = flaky(hostFor(s.host), "mkdir", "after", 1);
      return {
        host: f.host,
        step: () => makeDir({ path: join(s.app, "a b", "it's", "c $(x)"), mode: 0o750 }),
        snapshot: () => hashTree(s.app),
        breakApply: f.arm,
        cleanup: s.cleanup,
      };
    },
  });
}

describe("fs.mkdir: ugly paths", () => {
  let s: Sandbox;
  beforeEach(async () => {
    s = await sandbox();
    await mkdir(s.app);
  });
  afterEach(() => s.cleanup());

  it("sets the mode exactly despite the umask, and leaves existing directories alone", async () => {
    const st = await bound<MakeDirState>(makeDir, s.host, { path: join(s.app, "x", "y"), mode: "0777" });
    const before = await st.observe();
    expect(before).toEqual({ type: "missing", missing: [join(s.app, "x"), join(s.app, "x", "y")] });
    await st.apply(before);
    expect((await lstat(join(s.app, "x", "y"))).mode & 0o777).toBe(0o777);
    expect((await lstat(s.app)).mode & 0o777).not.toBe(0o777);
  });

  it("undo refuses to remove a directory someone filled, and removes the rest once emptied", async () => {
    const st = await bound<MakeDirState>(makeDir, s.host, { path: join(s.app, "x", "y") });
    const before = await st.observe();
    await st.apply(before);
    const after = await st.observe();
    await writeFile(join(s.app, "x", "y", "data"), "keep me");
    await expect(st.undo(before, after)).rejects.toThrow(/is not empty/);
    expect(await lstat(join(s.app, "x", "y", "data"))).toBeTruthy();
  });

  it("undo never removes a file that lands in the directory while it is being removed", async () => {
    const dir = join(s.app, "x");
    const late = join(dir, "late");
    // a writer that puts its file there right after anyone looks into the directory: a removal
    // that checks emptiness, then deletes, loses it; rmdir(2) checks and removes in one step
    let arrived = false;
    const racy: Host = {
      ...s.host,
      async readdir(path) {
        const entries = await s.host.readdir(path);
        if (path === dir && !arrived) {
          arrived = true;
          await writeFile(late, "someone's file");
        }
        return entries;
      },
    };
    const st = await bound<MakeDirState>(makeDir, racy, { path: dir });
    const before = await st.observe();
    await st.apply(before);
    await st.undo(before, await st.observe()).catch(() => {});
    if (arrived) expect(await lstat(late)).toBeTruthy();
  });

  it("refuses a file in the way, and a missing parent without recursive", async () => {
    await writeFile(join(s.app, "file"), "x");
    const picture = await hashTree(s.app);
    for (const [params, text] of [
      [{ path: join(s.app, "file") }, "not a directory"],
      [{ path: join(s.app, "p", "q"), recursive: false }, "does not exist"],
    ] as const) {
      const r = await run(atom("refuse", { steps: [makeDir(params)] }), { host: s.host, lock: false });
      expect(r.steps[0]?.status).toBe("failed-unchanged");
      expect(r.error?.message).toContain(text);
    }
    expect(await hashTree(s.app)).toBe(picture);
  });
});
