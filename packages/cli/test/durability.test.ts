import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { hashTree } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mountTmpfs, noTmpfs, type Tmpfs } from "../../core/test/_tmpfs";
import { atomkit, BIN, makeProject } from "./_project";

// Issue #16 from the command line: a trail disk that fills (a real 64 KiB tmpfs under .atomkit), and a
// recover given another lock name while the run it names is still running.

const skipDisk = noTmpfs();

describe.skipIf(skipDisk)("atomkit with a full trail disk (real tmpfs)", () => {
  let dir: string;
  let www: string;
  let disk: Tmpfs;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "atomkit-cli-full-"));
    www = join(dir, "www");
    await mkdir(join(dir, "node_modules/@atomkit"), { recursive: true });
    for (const pkg of ["core", "cli"])
      await symlink(resolve(__dirname, "../..", pkg), join(dir, "node_modules/@atomkit", pkg));
    await mkdir(www);
    await writeFile(join(www, "a"), "a v1");
    await writeFile(join(www, "b"), big("b v1"));
    disk = await mountTmpfs("64k");
    // the trail and its key live on the small disk
    await symlink(disk.dir, join(dir, ".atomkit"));
    await writeFile(join(dir, "atomkit.config.ts"), config(dir, disk.dir));
  });
  afterEach(async () => {
    await disk.unmount();
    await rm(dir, { recursive: true, force: true });
  });

  it("a trail disk filling mid-run: rolled back, exit 9 naming `atomkit recover <id>`; recover finishes it once space is freed", async () => {
    const before = await hashTree(www);
    const r = await atomkit(dir, ["run", "release", "--var", "fill=1"]);
    const id = /run release (\S+)/.exec(r.stdout)?.[1] ?? "";
    expect(r.code, r.stderr).toBe(9);
    expect(r.stdout).toMatch(/✗ b failed-unchanged: the trail could not record the intent/);
    expect(r.stdout).toMatch(/■ rolled-back/);
    expect(r.stderr).toContain("the trail could not record everything");
    expect(r.stderr).toContain(`atomkit recover ${id}`);
    expect(r.stderr).not.toMatch(/unexpected error/);
    expect(await hashTree(www)).toBe(before);

    // the host is not run on again until the trail is finished
    const again = await atomkit(dir, ["run", "release"]);
    expect(again.code).toBe(5);
    expect(again.stderr).toContain(`atomkit recover ${id}`);
    // recover needs to write: while the disk is full it says so, as a trail error
    const full = await atomkit(dir, ["recover", id]);
    expect(full.code).toBe(9);
    expect(full.stderr).toMatch(/the trail's disk is full/);
    expect(full.stderr).not.toMatch(/unexpected error/);

    await rm(join(disk.dir, "filler-run"));
    const rec = await atomkit(dir, ["recover", id]);
    expect(rec.code, rec.stderr).toBe(0);
    expect(rec.stderr).toMatch(new RegExp(`${id} on local: died [a-z ]+ → rolled-back`));
    expect(await hashTree(www)).toBe(before);
    const next = await atomkit(dir, ["run", "release", "--var", "small=1"]);
    expect(next.code, next.stderr).toBe(0);
  });

  it("a disk full before the first run: exit 9 with a clear message, nothing ran, no run left that reads corrupt", async () => {
    const before = await hashTree(www);
    disk.fill();
    // no trail key yet: creating it is the first write
    const first = await atomkit(dir, ["run", "release"]);
    expect(first.code, first.stderr).toBe(9);
    expect(first.stderr).toMatch(/trail key[\s\S]*disk is full/);
    expect(first.stderr).not.toMatch(/unexpected error/);
    expect(await hashTree(www)).toBe(before);

    disk.free();
    const ok = await atomkit(dir, ["run", "release", "--var", "small=1"]);
    expect(ok.code, ok.stderr).toBe(0);
    disk.fill();
    // with a key: the run's first record does not fit
    const second = await atomkit(dir, ["run", "release", "--var", "small=1"]);
    expect(second.code, second.stderr).toBe(9);
    expect(second.stderr).toMatch(/cannot write the trail[\s\S]*the trail's disk is full/);
    expect(second.stderr).not.toMatch(/unexpected error/);
    // the run that never started is no run at all: the trail lists the committed one only
    const t = await atomkit(dir, ["trail", "--json"]);
    expect(
      t.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).status),
    ).toEqual(["committed"]);
  });
});

describe("atomkit recover of a run that is still running", () => {
  let p: Awaited<ReturnType<typeof makeProject>>;
  beforeEach(async () => {
    p = await makeProject();
  });
  afterEach(() => p.cleanup());

  it("is refused under another --lock (exit 5), changing nothing; once the run died, recover finishes it", async () => {
    const before = await hashTree(p.www);
    // a real deploy that stays inside its step until killed
    const child = spawn(process.execPath, [BIN, "run", "release", "--var", "hang=1"], {
      cwd: p.dir,
      env: { ...process.env, NO_COLOR: "1", CI: "true" },
    });
    const exited = new Promise((r) => child.once("exit", r));
    let out = "";
    await new Promise<void>((resolvePromise, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        out += d;
        if (out.includes("▸ page")) resolvePromise();
      });
      child.once("exit", () => reject(new Error(`the run ended early: ${out}`)));
    });
    try {
      const id = /run release (\S+)/.exec(out)?.[1] ?? "";
      for (const args of [
        ["recover", "--lock", "other"],
        ["recover", id, "--lock", "other"],
      ]) {
        const r = await atomkit(p.dir, args);
        expect(r.code, r.stderr).toBe(5);
        expect(r.stderr).toMatch(new RegExp(`run ${id} is still running: it holds lock "deploy"`));
      }
      expect(await readFile(join(p.www, "drain"), "utf8")).toBe("draining");
      child.kill("SIGKILL");
      await exited;
      const rec = await atomkit(p.dir, ["recover", "--lock", "other"]);
      expect(rec.code, rec.stderr).toBe(0);
      expect(rec.stderr).toMatch(/died while applying → rolled-back/);
      expect(await hashTree(p.www)).toBe(before);
    } finally {
      child.kill("SIGKILL");
    }
  });
});

/** A file content of more than a page (tmpfs allocates whole pages). */
function big(text: string): string {
  return `${text}\n${"-".repeat(5000)}`;
}

function config(dir: string, disk: string): string {
  return `
import { closeSync, openSync, writeSync } from "node:fs";
import { atom, defineStep, isNotFound, localHost } from "@atomkit/core";
import { defineConfig } from "@atomkit/cli";
const root = ${JSON.stringify(dir)};
const put = defineStep({
  kind: "test.put",
  params: (p: { path: string; content: string }) => p,
  observe: async (ctx, p) => { try { return (await ctx.host.readFile(p.path)).toString(); } catch (e) { if (isNotFound(e)) return null; throw e; } },
  apply: async (ctx, p) => ctx.host.writeFile(p.path, p.content),
  undo: async (ctx, p, before) => { if (before === null) await ctx.host.rm(p.path, { force: true }); else await ctx.host.writeFile(p.path, before); },
});
// someone else fills the trail's disk while the deploy runs
const fill = defineStep({
  kind: "test.fill",
  params: (p: { path: string }) => p,
  observe: async () => null,
  apply: async (_ctx, p) => {
    const fd = openSync(p.path, "a");
    try { for (const n of [4096, 1]) for (;;) { try { if (writeSync(fd, Buffer.alloc(n)) < n) break; } catch { break; } } } finally { closeSync(fd); }
  },
  undo: async () => {},
});
// states larger than what is left of a trail file's last page
const big = (s: string) => \`\${s}\\n\${"-".repeat(5000)}\`;
export default defineConfig({
  hosts: { local: localHost({ stateDir: \`\${root}/state\` }) },
  atoms: {
    release: (v) => atom("release", { steps: [
      put({ path: \`\${root}/www/a\`, content: v.small ? "a v2" : big("a v2") }, { name: "a" }),
      ...(v.fill ? [fill({ path: ${JSON.stringify(join(disk, "filler-run"))} }, { name: "fill" })] : []),
      ...(v.small ? [] : [put({ path: \`\${root}/www/b\`, content: big("b v2") }, { name: "b" })]),
    ] }),
  },
});
`;
}
