import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const PACKAGES = resolve(__dirname, "../..");

/**
 * A project for reports: a real file step kind whose apply can fail with a given message (hostile text
 * reaches the trail as a real error) and whose undo can be made to fail (a rollback-failed run).
 * `release` writes VERSION then the page (its step name and content come from vars); `stuck` fails its
 * second step and cannot undo its first.
 */
export async function reportProject() {
  const dir = await mkdtemp(join(tmpdir(), "atomkit-report-"));
  await mkdir(join(dir, "node_modules/@atomkit"), { recursive: true });
  for (const pkg of ["core", "cli"])
    await symlink(join(PACKAGES, pkg), join(dir, "node_modules/@atomkit", pkg));
  const www = join(dir, "www");
  await mkdir(www);
  await writeFile(
    join(dir, "atomkit.config.ts"),
    `
import { atom, defineStep, isNotFound, localHost } from "@atomkit/core";
import { defineConfig } from "@atomkit/cli";

const note = defineStep({
  kind: "report.note",
  params: (p: { path: string; content: string; fail?: string; undoFails?: boolean }) => p,
  describe: (p) => \`write \${p.path}: \${p.content.slice(0, 80)}\`,
  observe: async (ctx, p) => {
    try { return (await ctx.host.readFile(p.path)).toString(); } catch (e) { if (isNotFound(e)) return null; throw e; }
  },
  apply: async (ctx, p) => {
    await ctx.host.writeFile(p.path, p.content);
    if (p.fail) throw new Error(p.fail);
  },
  undo: async (ctx, p, before) => {
    if (p.undoFails) throw new Error(\`cannot restore \${p.path}: the disk is read-only\`);
    if (before === null) await ctx.host.rm(p.path, { force: true });
    else await ctx.host.writeFile(p.path, before);
  },
});

const www = ${JSON.stringify(www)};
export default defineConfig({
  hosts: { web: localHost({ name: "web", stateDir: ${JSON.stringify(join(dir, "state"))} }) },
  atoms: {
    release: (v) => atom("release", {
      steps: [
        note({ path: \`\${www}/VERSION\`, content: v.v ?? "1" }, { name: "version" }),
        note(
          { path: \`\${www}/index.html\`, content: v.content ?? \`v\${v.v ?? "1"}\`, ...(v.fail ? { fail: v.fail } : {}) },
          { name: v.stepName ?? "page" },
        ),
      ],
    }),
    stuck: () => atom("stuck", {
      steps: [
        note({ path: \`\${www}/lock\`, content: "locked", undoFails: true }, { name: "lock" }),
        note({ path: \`\${www}/index.html\`, content: "v9", fail: "health check failed: GET / answered 500" }, { name: "page" }),
      ],
    }),
  },
});
`,
  );
  return { dir, www, cleanup: () => rm(dir, { recursive: true, force: true, maxRetries: 10 }) };
}
