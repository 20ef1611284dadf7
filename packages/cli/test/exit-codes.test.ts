import { copyFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EXIT } from "../src/exit-codes";
import { atomkit, makeProject } from "./_project";

// A trail that cannot be read as the run asked for is a trail problem (exit 9), not invalid input
// (exit 2): the user typed a run id that is there, and its file is what is wrong.

let p: Awaited<ReturnType<typeof makeProject>>;
beforeEach(async () => {
  p = await makeProject();
});
afterEach(() => p.cleanup());

const trails = () => join(p.dir, ".atomkit/trails");
const runIdOf = (text: string) => /run release (\S+)/.exec(text)?.[1] ?? "";

describe("exit codes of a corrupt trail", () => {
  it("a run file copied to another run id: undo exits 9 (trail), nothing acts", async () => {
    const r = await atomkit(p.dir, ["run", "release", "--var", "v=2"]);
    expect(r.code, r.stderr).toBe(0);
    const copy = "20260101T000000000Z-abcdef";
    await copyFile(join(trails(), `${runIdOf(r.stdout)}.jsonl`), join(trails(), `${copy}.jsonl`));
    const u = await atomkit(p.dir, ["undo", copy]);
    expect(u.stderr).toMatch(/cannot be read as that run/);
    expect(u.code, u.stderr).toBe(EXIT.trail);
    expect(await readFile(join(p.www, "index.html"), "utf8")).toBe("v2");
  });

  it("a run file with a line that is not JSON (not the torn last one): exit 9", async () => {
    const r = await atomkit(p.dir, ["run", "release", "--var", "v=2"]);
    const file = join(trails(), `${runIdOf(r.stdout)}.jsonl`);
    const lines = (await readFile(file, "utf8")).split("\n");
    lines[1] = "{ not json";
    await writeFile(file, lines.join("\n"));
    const u = await atomkit(p.dir, ["undo", runIdOf(r.stdout)]);
    expect(u.stderr).toMatch(/corrupt/);
    expect(u.code, u.stderr).toBe(EXIT.trail);
  });

  it("a run id that is not in the trail stays invalid input: exit 2", async () => {
    const u = await atomkit(p.dir, ["undo", "20260101T000000000Z-abcdef"]);
    expect(u.code, u.stderr).toBe(EXIT.invalid);
  });
});
