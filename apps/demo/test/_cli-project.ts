import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort, PATIENCE_MS } from "@atomkit/testkit";
import { onTestFinished } from "vitest";
import { buildRelease } from "../src/app";

// A deploy project as a user has it: a deploy file using the published kinds (node_modules/@atomkit/*
// linked to this workspace's packages), release tarballs in dist/, driven through the built `atomkit`.

const PACKAGES = resolve(__dirname, "../../../packages");
const DEMO = resolve(__dirname, "..");
export const BIN = join(PACKAGES, "cli/dist/bin.js");

/**
 * Runs a node script to its end and collects its output, however long a loaded box takes (a hang is the
 * test's timeout to report); inside a test the child is killed when the test ends, so none outlives it.
 */
export function runNode(
  script: string,
  args: string[],
  o: { cwd?: string; env?: Record<string, string | undefined> } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [script, ...args], {
      cwd: o.cwd,
      env: { ...process.env, ...o.env },
    });
    try {
      onTestFinished(() => {
        child.kill("SIGKILL");
      });
    } catch {
      // called from a hook (beforeAll), where there is no test to end with: the hook waits for it
    }
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
    });
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

/** The built `atomkit` in `cwd`, as a user runs it (plain output, CI mode). */
export function runCli(cwd: string, args: string[], env: Record<string, string> = {}) {
  return runNode(BIN, args, { cwd, env: { NO_COLOR: "1", CI: "true", ...env } });
}

export interface SshTarget {
  port: number;
  host: string;
  user: string;
  key: string;
  knownHosts: string;
}

export interface Project {
  dir: string;
  hosts: Array<{ key: string; base: string; port: number }>;
  /** GET on a host's app; null when nothing answers. */
  get: (hostIndex: number, path?: string) => Promise<string | null>;
  atomkit: (
    args: string[],
    env?: Record<string, string>,
  ) => Promise<{ code: number | null; stdout: string; stderr: string }>;
  cleanup: () => Promise<void>;
}

/**
 * `count` hosts: local hosts (one machine, a directory each), or SSH hosts spread over the testbed's
 * sshd ports. Each host has its own app port and base directory as per-host vars of the deploy file.
 */
export async function makeCliProject(o: { ssh?: SshTarget[]; count: number }): Promise<Project> {
  const dir = await mkdtemp(join(tmpdir(), "atomkit-e2e-"));
  await mkdir(join(dir, "node_modules/@atomkit"), { recursive: true });
  for (const pkg of ["core", "cli", "step-fs", "step-process", "step-symlink", "step-ssh"])
    await symlink(join(PACKAGES, pkg), join(dir, "node_modules/@atomkit", pkg));
  for (const [v, broken] of [
    ["v1", false],
    ["v2", false],
    ["v3", true],
  ] as const)
    await buildRelease(join(dir, "dist"), v, { broken });
  const hosts: Project["hosts"] = [];
  for (let i = 0; i < o.count; i++)
    hosts.push({ key: `h${i}`, base: join(dir, "hosts", `h${i}`), port: await freePort() });
  const hostEntries = hosts
    .map((h, i) => {
      const ssh = o.ssh?.[i % o.ssh.length];
      const host = ssh
        ? `() => sshHost({ name: ${JSON.stringify(`${h.key}@${ssh.host}:${ssh.port}`)}, host: ${JSON.stringify(ssh.host)}, port: ${ssh.port}, username: ${JSON.stringify(ssh.user)}, privateKey: readFileSync(${JSON.stringify(ssh.key)}), knownHosts: ${JSON.stringify(ssh.knownHosts)}, stateDir: ${JSON.stringify(join(h.base, ".state"))} })`
        : `localHost({ name: ${JSON.stringify(h.key)}, stateDir: ${JSON.stringify(join(h.base, ".state"))} })`;
      return `    ${h.key}: { host: ${host}, vars: { base: ${JSON.stringify(h.base)}, port: "${h.port}" } },`;
    })
    .join("\n");
  await writeFile(
    join(dir, "atomkit.config.ts"),
    `import { readFileSync } from "node:fs";
import { atom, localHost } from "@atomkit/core";
import { defineAtom, defineConfig } from "@atomkit/cli";
import { untar } from "@atomkit/step-fs";
import { startProcess } from "@atomkit/step-process";
import { sshHost } from "@atomkit/step-ssh";
import { swapSymlink } from "@atomkit/step-symlink";
import { releaseAtom, setupAtom } from ${JSON.stringify(join(DEMO, "src/release.ts"))};

const release = (o: { version: string; base: string; port: string; token: string }) =>
  releaseAtom({
    base: o.base,
    version: o.version,
    tarball: \`dist/app-\${o.version}.tar.gz\`,
    port: Number(o.port),
    env: { GREETING: \`hi from \${o.version}\` },
    // v3 is broken on purpose (its health answers 500); the others get time on a busy machine
    healthTimeoutMs: o.version === "v3" ? 3_000 : ${PATIENCE_MS},
    secretEnv: { TOKEN: o.token },
  });

export default defineConfig({
  hosts: {
${hostEntries}
  },
  roots: [${JSON.stringify(join(dir, "hosts"))}],
  atoms: {
    setup: defineAtom({ vars: { base: {}, port: {} }, atom: ({ base }) => setupAtom(base) }),
    release: defineAtom({
      description: "the release of DESIGN.md: upload, unpack, stop, link, start",
      vars: {
        version: { values: ["v1", "v2", "v3"], description: "the release to deploy" },
        base: {},
        port: {},
        token: { secret: true, env: "APP_TOKEN", description: "the app's API token" },
      },
      atom: (v) => release(v as { version: string; base: string; port: string; token: string }),
    }),
    // the old release's process is not stopped first: start must refuse to call it deployed
    nostop: defineAtom({
      vars: { version: {}, base: {}, port: {} },
      atom: ({ version, base, port }) =>
        atom("nostop", {
          steps: [
            untar({ archive: \`dist/app-\${version}.tar.gz\`, path: \`\${base}/releases/\${version}\` }, { name: "unpack" }),
            swapSymlink({ link: \`\${base}/current\`, target: \`\${base}/releases/\${version}\` }, { name: "link" }),
            startProcess(
              {
                command: [process.execPath, "server.cjs", port!, \`\${base}/drain\`],
                cwd: \`\${base}/current\`,
                pidFile: \`\${base}/app.pid\`,
                logFile: \`\${base}/app.log\`,
                health: { http: { port: Number(port), path: "/health" }, timeoutMs: ${PATIENCE_MS}, intervalMs: 100 },
              },
              { name: "start" },
            ),
          ],
        }),
    }),
  },
});
`,
  );
  const atomkit: Project["atomkit"] = (args, env = {}) => runCli(dir, args, env);
  return {
    dir,
    hosts,
    atomkit,
    async get(i, path = "/") {
      try {
        const r = await fetch(`http://127.0.0.1:${hosts[i]!.port}${path}`, {
          signal: AbortSignal.timeout(30_000),
        });
        return await r.text();
      } catch {
        return null;
      }
    },
    async cleanup() {
      // stop every app this project started (by pid file), then remove it
      for (const h of hosts) {
        const pid = Number((await readFile(join(h.base, "app.pid"), "utf8").catch(() => "")).trim());
        if (pid > 0) {
          try {
            process.kill(-pid, "SIGKILL");
          } catch {
            try {
              process.kill(pid, "SIGKILL");
            } catch {}
          }
        }
      }
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
}
