// fs.write and fs.upload on a full filesystem: a tiny tmpfs mounted for the test (needs root). Undo
// must not need free space: the backup is hard-linked back into place, never copied.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, mkdtemp, open, readFile, rm, writeFile as writeLocal } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AnyStepKind, atom, fileTrail, type Host, localHost, run, undoRun } from "@atomkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uploadFile, writeFile } from "../src/index";

const isRoot = process.getuid?.() === 0;
const inCi = process.env.CI === "true";

describe("fs.write / fs.upload on a full disk (tmpfs)", () => {
  if (!isRoot && !inCi) {
    console.warn(
      "\n!!! SKIPPED: the full-disk tests need root to mount a tmpfs (CI=true makes this a failure)\n",
    );
    it.skip("needs root to mount a tmpfs", () => {});
    return;
  }

  let base: string;
  let disk: string;
  let mounted = false;
  beforeAll(async () => {
    if (!isRoot) throw new Error("the full-disk tests need root to mount a tmpfs (CI=true: not skipped)");
    base = await mkdtemp(join(tmpdir(), "atomkit-full-"));
    disk = join(base, "disk");
    await mkdir(disk);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", disk]);
    mounted = true;
  });
  afterAll(async () => {
    if (mounted) execFileSync("umount", [disk]);
    if (base) await rm(base, { recursive: true, force: true, maxRetries: 10 });
  });

  /** Fills the filesystem of `dir` to the last byte; returns the filler's path. */
  async function fill(dir: string): Promise<string> {
    const path = join(dir, "filler");
    const fh = await open(path, "w");
    const chunk = Buffer.alloc(4096, 1);
    try {
      for (;;) await fh.write(chunk);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
    } finally {
      await fh.close();
    }
    for (;;) {
      try {
        await writeLocal(join(dir, `crumb-${randomBytes(4).toString("hex")}`), "x");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOSPC") return path;
        throw error;
      }
    }
  }

  const cases: Array<[string, AnyStepKind, (path: string, v2: Buffer, src: string) => unknown]> = [
    [
      "fs.write",
      writeFile,
      (path, v2) => ({ path, content: v2.toString("base64"), encoding: "base64", mode: 0o600 }),
    ],
    ["fs.upload", uploadFile, (path, _v2, src) => ({ path, source: src, mode: 0o600 })],
  ];
  for (const [name, kind, params] of cases) {
    it(`${name}: a write on the full disk is refused; undo of the earlier write restores byte-exact`, async () => {
      const work = join(disk, name);
      await mkdir(join(work, "app"), { recursive: true });
      try {
        await writeThenUndoOnFullDisk(work, name, kind, params);
      } finally {
        await rm(work, { recursive: true, force: true, maxRetries: 10 }); // frees the disk for the next case
      }
    });
  }

  it("backups on another filesystem than the file are copied, both ways (ln fails with EXDEV)", async () => {
    const work = join(disk, "exdev");
    await mkdir(work, { recursive: true });
    try {
      const host = localHost({ stateDir: join(base, "state-elsewhere") }); // not on the tmpfs
      const path = join(work, "app.conf");
      await writeLocal(path, "v1\n");
      await chmod(path, 0o640);
      const trail = fileTrail({ dir: join(base, "trails-exdev") });
      const first = await run(atom("config", { steps: [writeFile({ path, content: "v2\n" })] }), {
        host,
        trail,
        lock: false,
      });
      expect(first.status).toBe("committed");
      const undone = await undoRun(trail, first.runId, { host, lock: false, steps: [writeFile] });
      expect(undone.steps[0]).toMatchObject({ status: "undone", verified: true });
      expect(await readFile(path, "utf8")).toBe("v1\n");
      expect((await lstat(path)).mode & 0o7777).toBe(0o640);
    } finally {
      await rm(work, { recursive: true, force: true, maxRetries: 10 });
    }
  });

  async function writeThenUndoOnFullDisk(
    work: string,
    name: string,
    kind: AnyStepKind,
    params: (path: string, v2: Buffer, src: string) => unknown,
  ) {
    const host: Host = localHost({ stateDir: join(work, "state") });
    const trail = fileTrail({ dir: join(base, `trails-${name}`) });
    const path = join(work, "app", "config.bin");
    const v1 = randomBytes(150 * 1024);
    const v2 = randomBytes(150 * 1024);
    const v3 = randomBytes(150 * 1024);
    await writeLocal(path, v1);
    await chmod(path, 0o640);
    const src2 = join(base, `${name}-v2`);
    const src3 = join(base, `${name}-v3`);
    await writeLocal(src2, v2);
    await writeLocal(src3, v3);

    const first = await run(atom("config", { steps: [kind(params(path, v2, src2))] }), {
      host,
      trail,
      lock: false,
    });
    expect(first.status).toBe("committed");
    expect(Buffer.compare(await readFile(path), v2)).toBe(0);

    const filler = await fill(work);
    const refused = await run(atom("config", { steps: [kind(params(path, v3, src3))] }), {
      host,
      trail,
      lock: false,
    });
    expect(refused.status).toBe("rolled-back");
    expect(refused.error?.message).toMatch(/ENOSPC|no space/i);
    expect(Buffer.compare(await readFile(path), v2)).toBe(0);

    const undone = await undoRun(trail, first.runId, { host, lock: false, steps: [kind] });
    expect(undone.error).toBeUndefined();
    expect(undone.status).toBe("rolled-back");
    expect(undone.steps[0]).toMatchObject({ status: "undone", verified: true });
    expect(Buffer.compare(await readFile(path), v1)).toBe(0);
    expect((await lstat(path)).mode & 0o7777).toBe(0o640);
    expect((await lstat(filler)).size).toBeGreaterThan(0); // the disk stayed full throughout
  }
});
