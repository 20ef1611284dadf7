import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { onTestFinished } from "vitest";

export const BIN = resolve(__dirname, "../dist/bin.js");
const PACKAGES = resolve(__dirname, "../..");

/**
 * A temp project as a user has it: a deploy file and node_modules/@atomkit/* (linked to this
 * workspace's packages). The deploy file defines a real file step kind inline.
 */
export async function makeProject(extraConfig = "", links: string[] = []) {
  const dir = await mkdtemp(join(tmpdir(), "atomkit-cli-"));
  await mkdir(join(dir, "node_modules/@atomkit"), { recursive: true });
  for (const pkg of ["core", "cli", ...links])
    await symlink(join(PACKAGES, pkg), join(dir, "node_modules/@atomkit", pkg));
  await mkdir(join(dir, "www"));
  await writeFile(
    join(dir, "atomkit.config.ts"),
    `
import { atom, defineStep, isNotFound, localHost } from "@atomkit/core";
import { defineConfig } from "@atomkit/cli";

const write = defineStep({
  kind: "project.write",
  params: (p: { path: string; content: string; fail?: boolean; hang?: boolean; stubborn?: boolean }) => {
    if (!p.path.startsWith("/")) throw Object.assign(new Error("must be an absolute path"), { path: "path" });
    return p;
  },
  describe: (p) => \`write \${p.path}\`,
  observe: async (ctx, p) => {
    try { return (await ctx.host.readFile(p.path)).toString(); } catch (e) { if (isNotFound(e)) return null; throw e; }
  },
  plan: async (_ctx, p) => p.content,
  apply: async (ctx, p) => {
    await ctx.host.writeFile(p.path, p.content);
    if (p.hang) await new Promise((r) => { const t = setTimeout(r, 60_000); ctx.signal.addEventListener("abort", () => { clearTimeout(t); r(undefined); }); });
    if (p.stubborn) await new Promise((r) => setTimeout(r, 60_000)); // ignores its abort signal
    if (p.fail) throw new Error("health check failed: GET / answered 500");
  },
  undo: async (ctx, p, before) => {
    if (before === null) await ctx.host.rm(p.path, { force: true });
    else await ctx.host.writeFile(p.path, before);
  },
});

// a step whose undo needs a secret param, which the trail never holds (like process.stop's secretEnv)
const login = defineStep({
  kind: "project.login",
  params: (p: { user: string; token: string }) => p,
  secret: ["token"],
  observe: async (ctx) => {
    try { return (await ctx.host.readFile(\`\${www}/session\`)).toString(); } catch (e) { if (isNotFound(e)) return null; throw e; }
  },
  apply: async (ctx, p) => ctx.host.writeFile(\`\${www}/session\`, \`\${p.user} logged in\`),
  undo: async (ctx, p, before) => {
    if (p.token !== "tok-" + "s3cr3t-value") throw new Error("undo needs the token to log out");
    if (before === null) await ctx.host.rm(\`\${www}/session\`, { force: true }); else await ctx.host.writeFile(\`\${www}/session\`, before);
  },
});

const www = ${JSON.stringify(join(dir, "www"))};
export default defineConfig({
  hosts: { local: localHost({ stateDir: ${JSON.stringify(join(dir, "state"))} }) },
  atoms: {
    session: atom("session", { steps: [login({ user: "deploy", token: "tok-s3cr3t-value" }, { name: "login" })] }),
    strict: (vars) => {
      if (!vars.v) throw new Error("needs --var v");
      return atom("strict", { steps: [write({ path: \`\${www}/strict\`, content: vars.v }, { name: "strict" })] });
    },
    release: (vars) => atom("release", {
      pre: [write({ path: \`\${www}/drain\`, content: "draining" }, { name: "drain" })],
      steps: [
        write({ path: \`\${www}/index.html\`, content: \`v\${vars.v ?? "1"}\`, fail: vars.fail === "1", hang: vars.hang === "1", stubborn: vars.stubborn === "1" }, { name: "page" }),
        write({ path: vars.badpath ?? \`\${www}/VERSION\`, content: vars.v ?? "1" }, { name: "version" }),
      ],
    }),
  },
  ${extraConfig}
});
`,
  );
  return {
    dir,
    www: join(dir, "www"),
    // retried: a CLI child of a test that timed out may still be writing here for a moment
    cleanup: () => rm(dir, { recursive: true, force: true, maxRetries: 10 }),
  };
}

/** An empty project directory with `node_modules/@atomkit/<pkg>` linked to this workspace's packages. */
export async function linkedDir(prefix: string, packages: readonly string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await mkdir(join(dir, "node_modules/@atomkit"), { recursive: true });
  for (const pkg of packages) await symlink(join(PACKAGES, pkg), join(dir, "node_modules/@atomkit", pkg));
  return dir;
}

export interface Cli {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function atomkit(
  cwd: string,
  args: string[],
  opts: {
    onStdout?: (text: string, kill: (s: NodeJS.Signals) => void) => void;
    env?: Record<string, string>;
    onStderr?: (text: string, kill: (s: NodeJS.Signals) => void) => void;
  } = {},
): Promise<Cli> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: "1", CI: "true", ...opts.env },
    });
    // a run left hanging by a failed or timed-out test must not outlive it (nor write into its dir)
    onTestFinished(() => {
      child.kill("SIGKILL");
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
      opts.onStdout?.(stdout, (s) => child.kill(s));
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
      opts.onStderr?.(stderr, (s) => child.kill(s));
    });
    child.on("close", (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
  });
}

/** Resolves once `check()` holds, polling: for a step's change to land before the test interrupts it. */
export async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 20));
}
