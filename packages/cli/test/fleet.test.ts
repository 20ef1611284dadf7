import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { atomkit } from "./_project";

// A fleet from the command line: three hosts (local hosts with their own state and files, standing in
// for machines), one of which fails its health check.
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "atomkit-cli-fleet-"));
  await mkdir(join(dir, "node_modules/@atomkit"), { recursive: true });
  for (const pkg of ["core", "cli"])
    await symlink(resolve(__dirname, "../..", pkg), join(dir, "node_modules/@atomkit", pkg));
  for (const h of ["a", "b", "c"]) await mkdir(join(dir, h));
  await writeFile(
    join(dir, "atomkit.config.ts"),
    `
import { atom, defineStep, isNotFound, localHost } from "@atomkit/core";
import { defineConfig } from "@atomkit/cli";
const root = ${JSON.stringify(dir)};
const page = defineStep({
  kind: "fleet.page",
  params: (p: { content: string; failOn?: string }) => p,
  observe: async (ctx) => {
    try { return (await ctx.host.readFile(\`\${root}/\${ctx.host.name}/index.html\`)).toString(); }
    catch (e) { if (isNotFound(e)) return null; throw e; }
  },
  apply: async (ctx, p) => {
    await ctx.host.writeFile(\`\${root}/\${ctx.host.name}/index.html\`, p.content);
    if (p.failOn === ctx.host.name) throw new Error(\`health check failed on \${ctx.host.name}\`);
  },
  undo: async (ctx, _p, before) => {
    const f = \`\${root}/\${ctx.host.name}/index.html\`;
    if (before === null) await ctx.host.rm(f, { force: true }); else await ctx.host.writeFile(f, before);
  },
});
const host = (name: string) => localHost({ name, stateDir: \`\${root}/state-\${name}\` });
export default defineConfig({
  hosts: { a: host("a"), b: host("b"), c: host("c") },
  atoms: { release: (v) => atom("release", { steps: [page({ content: v.v ?? "v1", ...(v.failOn ? { failOn: v.failOn } : {}) }, { name: "page" })] }) },
});
`,
  );
});
afterEach(() => rm(dir, { recursive: true, force: true, maxRetries: 10 }));

const pages = () =>
  Promise.all(["a", "b", "c"].map((h) => readFile(join(dir, h, "index.html"), "utf8").catch(() => null)));

describe("atomkit run on a fleet", () => {
  it("commits host by host in canary batches", async () => {
    const r = await atomkit(dir, ["run", "release", "--batch", "1,100%"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/batch 1: a\n[\s\S]*batch 2: b, c/);
    expect(r.stderr).toMatch(/fleet \S+ committed \(0 failed\)/);
    expect(await pages()).toEqual(["v1", "v1", "v1"]);
  });

  it("one host failing rolls back every host under rollback-all (exit 3); later batches never run", async () => {
    await atomkit(dir, ["run", "release"]);
    const r = await atomkit(dir, [
      "run",
      "release",
      "--var",
      "v=v2",
      "--var",
      "failOn=b",
      "--batch",
      "1",
      "--on-failure",
      "rollback-all",
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /fleet \S+ rolled-back \(1 failed\)\n\s+a\s+rolled-back\n\s+b\s+rolled-back\n\s+c\s+not-run/,
    );
    expect(r.stderr).toMatch(/health check failed on b/);
    expect(await pages()).toEqual(["v1", "v1", "v1"]);
  });

  it("--max-failures lets the fleet go on: the failed host rolled back, the others committed", async () => {
    await atomkit(dir, ["run", "release"]);
    const r = await atomkit(dir, [
      "run",
      "release",
      "--var",
      "v=v2",
      "--var",
      "failOn=b",
      "--batch",
      "1",
      "--max-failures",
      "1",
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/fleet \S+ partial \(1 failed\)/);
    expect(await pages()).toEqual(["v2", "v1", "v2"]);
  });

  it(
    "a fleet is one run: undo <fleetId> and rollback act on every host in one command, verified, exit 0",
    async () => {
      expect((await atomkit(dir, ["run", "release", "--var", "v=v1"])).code).toBe(0);
      const v2 = await atomkit(dir, ["run", "release", "--var", "v=v2"]);
      expect(v2.code, v2.stderr).toBe(0);
      const fleetId = /fleet (\S+) committed/.exec(v2.stderr)![1]!;
      expect(v2.stderr).toContain(`atomkit undo ${fleetId}`);
      const trail = await atomkit(dir, ["trail", fleetId]);
      expect(trail.stdout).toMatch(/fleet run of release on 3 host\(s\)/);
      const failing = await atomkit(dir, ["run", "release", "--var", "v=v3", "--var", "failOn=c"]);
      expect(failing.code).toBe(3);
      expect(await pages()).toEqual(["v2", "v2", "v2"]);
      // the failed v3 fleet is net zero: undoing the v2 fleet run is no drift
      const undo = await atomkit(dir, ["undo", fleetId]);
      expect(undo.code, undo.stderr).toBe(0);
      expect(undo.stderr).toMatch(/undo \S+ rolled-back \(0 failed\)/);
      expect(await pages()).toEqual(["v1", "v1", "v1"]);
      // forward again, and back with one rollback
      expect((await atomkit(dir, ["run", "release", "--var", "v=v4"])).code).toBe(0);
      const back = await atomkit(dir, ["rollback", "release", "--concurrency", "2"]);
      expect(back.code, back.stderr).toBe(0);
      expect(await pages()).toEqual(["v1", "v1", "v1"]);
      const none = await atomkit(dir, ["rollback", "release"]);
      expect(none.code).toBe(2);
      expect(none.stderr).toContain("nothing earlier to go back to");
    },
    5 * 60_000,
  );
});
