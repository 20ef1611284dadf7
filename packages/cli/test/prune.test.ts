import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { atomkit, makeProject } from "./_project";

// `atomkit trail prune` and the deploy file's `retain`, on a real project: what is forgotten, and that
// status and rollback work the same afterwards.

let p: Awaited<ReturnType<typeof makeProject>>;
const files = async () => (await readdir(join(p.dir, ".atomkit/trails"))).filter((f) => f.endsWith(".jsonl"));
afterEach(() => p.cleanup());

describe("atomkit trail prune", () => {
  beforeEach(async () => {
    p = await makeProject();
  });

  it("forgets rolled-back runs, keeps every live release; rollback works the same afterwards", async () => {
    for (const args of [
      ["--var", "v=1"],
      ["--var", "v=2"],
      ["--var", "v=3", "--var", "fail=1"],
      ["--var", "v=4"],
    ]) {
      await atomkit(p.dir, ["run", "release", ...args]);
    }
    expect(await files()).toHaveLength(4);
    const dry = await atomkit(p.dir, ["trail", "prune", "--keep", "0", "--dry-run"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(
      /^would remove \S+\nwould remove 1; kept 3 run\(s\), of which 3 live release\(s\)/,
    );
    expect(await files()).toHaveLength(4);
    const r = await atomkit(p.dir, ["trail", "prune", "--keep", "0"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^removed 1; kept 3/);
    expect(await files()).toHaveLength(3);
    const back = await atomkit(p.dir, ["rollback", "release"]);
    expect(back.code, back.stderr).toBe(0);
    expect(await atomkit(p.dir, ["status"]).then((s) => s.stdout)).toMatch(/release\s+v=2/);
  });

  it("refuses bad values with exit 2 before removing anything", async () => {
    await atomkit(p.dir, ["run", "release", "--var", "v=3", "--var", "fail=1"]);
    for (const args of [[], ["--keep", "-1"], ["--keep", "many"], ["--older-than", "3 weeks"]]) {
      const r = await atomkit(p.dir, ["trail", "prune", ...args]);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(/--keep|--older-than/);
    }
    expect(await files()).toHaveLength(1);
  });
});

describe("retain in the deploy file", () => {
  beforeEach(async () => {
    p = await makeProject("retain: { keep: 1 },");
  });

  it("prunes after each run, quietly unless it removed something", async () => {
    await atomkit(p.dir, ["run", "release", "--var", "v=1"]);
    const failed = await atomkit(p.dir, ["run", "release", "--var", "v=2", "--var", "fail=1"]);
    expect(failed.code).toBe(3);
    expect(failed.stderr).not.toMatch(/retain/); // the rolled-back run is the newest: kept
    const next = await atomkit(p.dir, ["run", "release", "--var", "v=3"]);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/trail: retain removed 1 old run/);
    expect(await files()).toHaveLength(2);
  });
});
