import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { localHost } from "../src/index";
import { keepBackup, restoreBackup } from "../src/kit";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

describe("keepBackup / restoreBackup", () => {
  let root: string;
  let file: string;
  let host: ReturnType<typeof localHost>;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "atomkit-backup-"));
    await mkdir(join(root, "data"));
    file = join(root, "data", "config.json");
    host = localHost({ stateDir: join(root, "state") });
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it("keeps the bytes under <stateDir>/backups/<sha256> and puts them back, with the mode, after a replace", async () => {
    await writeFile(file, "old bytes", { mode: 0o640 });
    const kept = await keepBackup(host, file);
    expect(kept).toEqual({ sha256: sha("old bytes") });
    const backups = join(root, "state", "backups");
    expect(await readFile(join(backups, sha("old bytes")), "utf8")).toBe("old bytes");
    // the metadata step-fs's emptyTrash() reads for retention
    const meta = JSON.parse(await readFile(join(backups, `${sha("old bytes")}.json`), "utf8"));
    expect(meta.path).toBe(file);
    expect(Date.parse(meta.usedAt)).not.toBeNaN();

    await host.writeFile(file, "new bytes", { mode: 0o600 });
    await restoreBackup(host, kept!.sha256, file, { mode: 0o640 });
    expect(await readFile(file, "utf8")).toBe("old bytes");
    expect((await stat(file)).mode & 0o7777).toBe(0o640);
    // nothing left beside the file
    expect(await readdir(join(root, "data"))).toEqual(["config.json"]);
  });

  it("restores a file that was removed, and the same bytes kept twice are stored once", async () => {
    await writeFile(file, "same");
    const a = await keepBackup(host, file);
    const b = await keepBackup(host, file, { copy: true });
    expect(b).toEqual(a);
    expect((await readdir(join(root, "state", "backups"))).sort()).toEqual([
      sha("same"),
      `${sha("same")}.json`,
    ]);
    await rm(file);
    await restoreBackup(host, a!.sha256, file);
    expect(await readFile(file, "utf8")).toBe("same");
  });

  it("returns null for a missing path and refuses a directory", async () => {
    expect(await keepBackup(host, join(root, "data", "nothing"))).toBeNull();
    await expect(keepBackup(host, join(root, "data"))).rejects.toMatchObject({
      code: "ATOM_STEP_FAILED",
      found: "a directory",
    });
  });

  it("copy: true keeps the bytes although the file is then written in place", async () => {
    await writeFile(file, "before");
    const kept = await keepBackup(host, file, { copy: true });
    await writeFile(file, "written in place"); // same inode: a hard-linked backup would change too
    await restoreBackup(host, kept!.sha256, file);
    expect(await readFile(file, "utf8")).toBe("before");
  });

  it("refuses, changing nothing, a damaged or missing backup and an id that is not a sha256", async () => {
    await writeFile(file, "old");
    const kept = await keepBackup(host, file);
    await host.writeFile(file, "new");
    const backup = join(root, "state", "backups", kept!.sha256);
    await chmod(backup, 0o600);
    await writeFile(backup, "tampered");
    await expect(restoreBackup(host, kept!.sha256, file)).rejects.toMatchObject({
      message: expect.stringContaining("damaged"),
      hint: expect.stringContaining("by hand"),
    });
    await rm(backup);
    await expect(restoreBackup(host, kept!.sha256, file)).rejects.toThrow(/missing/);
    for (const forged of ["../../data/config.json", "", sha("x").toUpperCase()]) {
      await expect(restoreBackup(host, forged, file)).rejects.toThrow(/not a backup id/);
    }
    expect(await readFile(file, "utf8")).toBe("new");
    expect(await readdir(join(root, "data"))).toEqual(["config.json"]);
  });
});
