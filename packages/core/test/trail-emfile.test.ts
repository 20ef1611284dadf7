import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./_helpers";

// A controller out of file descriptors (a fleet of hundreds under `ulimit -n`): each host's first
// trail append fails with EMFILE. It must leave nothing behind: no descriptor held, and no empty run
// file (which every later command would list as a corrupt run).
const CHILD = join(__dirname, "fixtures/trail-emfile-child.mjs");

function child(dir: string, free: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    // the limit is the child's own (ulimit in its shell): the test process keeps its descriptors
    const c = spawn(
      "bash",
      ["-c", 'ulimit -n 64 && exec "$0" "$@"', process.execPath, CHILD, dir, String(free)],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    c.stdout.on("data", (d: Buffer) => {
      out += d;
    });
    c.stderr.on("data", (d: Buffer) => {
      err += d;
    });
    c.on("error", reject);
    c.on("close", (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child exited ${code}: ${err}`)),
    );
  });
}

describe("file trail out of file descriptors", () => {
  let base: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    base = await tempDir();
  });
  afterAll(async () => {
    await base.cleanup();
  });

  it.each([0, 1])(
    "with %i descriptor(s) free, a new run's append fails EMFILE, holds no descriptor and leaves no file",
    async (free) => {
      const r = await child(join(base.dir, `trail-${free}`), free);
      expect(r.error).toBe("EMFILE");
      expect(r.after).toBe(r.before);
      expect(r.files).toEqual(["r0.jsonl"]);
      // and once descriptors are back, the run starts afresh
      expect(r.ids).toEqual(["r0", "r1"]);
      expect(r.r1).toEqual(["run"]);
    },
  );
});
