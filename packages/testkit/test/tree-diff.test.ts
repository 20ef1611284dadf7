import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { diffTrees, hashTree, snapshotTree } from "../src/index";
import { contractReport } from "./_child-vitest";

describe("snapshotTree / diffTrees", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "atomkit-tree-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("names every added, removed and changed path (content, mode, link target, type)", async () => {
    await mkdir(join(dir, "www"));
    await writeFile(join(dir, "www/index.html"), "old");
    await writeFile(join(dir, "www/old"), "x");
    await writeFile(join(dir, "www/mode"), "x", { mode: 0o644 });
    await symlink("releases/1", join(dir, "current"));
    await writeFile(join(dir, "swap"), "file");
    await mkdir(join(dir, ".state"));
    const before = await snapshotTree(dir, { ignore: (p) => p.startsWith(".state") });

    await writeFile(join(dir, "www/index.html"), "new");
    await rm(join(dir, "www/old"));
    await writeFile(join(dir, "www/new"), "y");
    await import("node:fs/promises").then((fs) => fs.chmod(join(dir, "www/mode"), 0o600));
    await rm(join(dir, "current"));
    await symlink("releases/2", join(dir, "current"));
    await rm(join(dir, "swap"));
    await mkdir(join(dir, "swap"));
    await writeFile(join(dir, ".state/lock"), "ignored");
    const after = await snapshotTree(dir, { ignore: (p) => p.startsWith(".state") });

    expect(diffTrees(before, after)).toEqual([
      "~ current (target releases/1 → releases/2)",
      "~ swap (file → directory)",
      "~ www/index.html (content)",
      "~ www/mode (mode 644 → 600)",
      "+ www/new",
      "- www/old",
    ]);
    expect(diffTrees(after, await snapshotTree(dir, { ignore: (p) => p.startsWith(".state") }))).toEqual([]);
    // hashTree keeps working on the same tree, with the same ignore
    expect(await hashTree(dir, { ignore: (p) => p.startsWith(".state") })).toMatch(/^[0-9a-f]{64}$/);
  });

  it("hashTree's ignore keeps a state dir inside the tree out of the hash (the README's fixture)", async () => {
    const state = (p: string) => p === ".state" || p.startsWith(".state/");
    await writeFile(join(dir, "motd"), "hello");
    await mkdir(join(dir, ".state"));
    const [ignored, whole] = [await hashTree(dir, { ignore: state }), await hashTree(dir)];
    await writeFile(join(dir, ".state/lock"), "a run's lock");
    expect(await hashTree(dir, { ignore: state })).toBe(ignored);
    expect(await hashTree(dir)).not.toBe(whole);
    await writeFile(join(dir, "motd"), "changed");
    expect(await hashTree(dir, { ignore: state })).not.toBe(ignored);
  });

  it("a missing root has no entries; created, every path is added", async () => {
    const gone = join(dir, "nothing");
    const empty = await snapshotTree(gone);
    expect(empty.entries).toEqual({});
    await mkdir(gone);
    expect(diffTrees(empty, await snapshotTree(gone))).toEqual(["+ . (directory)"]);
  });
});

describe("the step contract on a kind whose undo leaves the tree different", () => {
  it("fails naming the paths that differ, not two hashes", async () => {
    const tests = await contractReport("broken-kind");
    const undo = tests.find((t) => t.title.startsWith("undo from trail states"));
    expect(undo?.status).toBe("failed");
    const message = undo?.failureMessages.join("\n") ?? "";
    expect(message).toContain("undo (from trail states, fresh instance) must restore before");
    expect(message).toContain("~ www/index.html (content)");
    expect(message).toContain("+ www/new");
    expect(message).toContain("- www/old");
    expect(message).not.toMatch(/[0-9a-f]{64}/);
  });
});
