import { existsSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { atom, fileTrail, run } from "../src/index";
import { model, tempDir, testHost } from "./_helpers";

// The trail key is created on the first write. Once runs are sealed with it, a missing key file is a
// lost (or removed) key, not a new project: minting a new one would turn every earlier run — a crashed
// one too — into an unreadable file that no longer blocks a deploy or can be recovered.
describe("the trail key file", () => {
  it("is created for a new trail, and never replaced once runs are sealed with it", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const m = model();
      const trails = join(dir, ".atomkit/trails");
      const host = testHost(dir);
      const first = await run(atom("a", { steps: [m.kind({ id: "a" }, { name: "a" })] }), {
        host,
        trail: fileTrail({ dir: trails }),
      });
      expect(first.status).toBe("committed");
      expect(existsSync(join(dir, ".atomkit/trail.key"))).toBe(true);

      await rm(join(dir, ".atomkit/trail.key"));
      const e = await run(atom("a", { steps: [m.kind({ id: "b" }, { name: "b" })] }), {
        host,
        trail: fileTrail({ dir: trails }),
      }).catch((x: unknown) => x as Error & { code?: string });
      expect(e).toMatchObject({ code: "ATOM_TRAIL_INVALID" });
      expect((e as Error).message).toMatch(/no trail key at .*trail.key, but the trail .* holds 1 run/);
      expect(existsSync(join(dir, ".atomkit/trail.key"))).toBe(false);
      expect(m.world.get("b")).toBeUndefined(); // nothing ran
      expect(await readdir(trails)).toEqual([`${first.runId}.jsonl`]);
    } finally {
      await cleanup();
    }
  });
});
