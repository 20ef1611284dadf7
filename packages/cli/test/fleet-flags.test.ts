import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { atomkit } from "./_project";

// Issue #16: bad fleet flags through the built binary are invalid input (exit 2) naming the flag and
// what was given, before any host, trail or lock is touched.

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "atomkit-cli-flags-"));
  await mkdir(join(dir, "node_modules/@atomkit"), { recursive: true });
  for (const pkg of ["core", "cli"])
    await symlink(resolve(__dirname, "../..", pkg), join(dir, "node_modules/@atomkit", pkg));
  for (const h of ["a", "b"]) await mkdir(join(dir, h));
  await writeFile(
    join(dir, "atomkit.config.ts"),
    `
import { atom, defineStep, localHost } from "@atomkit/core";
import { defineConfig } from "@atomkit/cli";
const root = ${JSON.stringify(dir)};
const page = defineStep({
  kind: "flags.page",
  params: (p: null) => p,
  observe: async (ctx) => (await ctx.host.stat(\`\${root}/\${ctx.host.name}/index.html\`)) !== null,
  apply: async (ctx) => ctx.host.writeFile(\`\${root}/\${ctx.host.name}/index.html\`, "v1"),
  undo: async (ctx) => ctx.host.rm(\`\${root}/\${ctx.host.name}/index.html\`, { force: true }),
});
const host = (name: string) => localHost({ name, stateDir: \`\${root}/state-\${name}\` });
export default defineConfig({
  hosts: { a: host("a"), b: host("b") },
  atoms: { release: atom("release", { steps: [page(null, { name: "page" })] }) },
});
`,
  );
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const cases: Array<[string[], string, string]> = [
  [["run", "release", "--max-failures", "abc"], "--max-failures", '"abc"'],
  [["run", "release", "--concurrency", "abc"], "--concurrency", '"abc"'],
  [["run", "release", "--concurrency", "0"], "--concurrency", '"0"'],
  [["run", "release", "--on-failure", "bogus"], "--on-failure", '"bogus"'],
  [["run", "release", "--batch", "0"], "--batch", '"0"'],
  [["run", "release", "--batch", "abc"], "--batch", '"abc"'],
  [["run", "release", "--batch", "1,0%"], "--batch", '"1,0%"'],
  [["rollback", "release", "--steps", "x"], "--steps", '"x"'],
  [["undo", "some-run", "--concurrency", "0"], "--concurrency", '"0"'],
  [["recover", "--batch", "0"], "--batch", '"0"'],
];

describe("bad fleet flags (the built binary)", () => {
  for (const [args, flag, found] of cases) {
    it(`${args.join(" ")}: exit 2 naming ${flag}, nothing run`, async () => {
      const r = await atomkit(dir, args);
      expect(r.code, r.stderr).toBe(2);
      // the first line says which flag is wrong; the details say what was given
      expect(r.stderr.trim().split("\n")[0]).toBe(`✗ [atomkit] invalid ${flag}`);
      expect(r.stderr).toContain(`found:    ${found}`);
      expect(r.stderr).toMatch(/expected: .+/);
      expect(r.stderr).not.toMatch(/unexpected error/);
      // nothing ran: no trail, no lock, no change on any host
      expect((await readdir(dir)).sort()).toEqual(["a", "atomkit.config.ts", "b", "node_modules"]);
      expect([...(await readdir(join(dir, "a"))), ...(await readdir(join(dir, "b")))]).toEqual([]);
    });
  }
});
