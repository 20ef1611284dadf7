// What one `atomkit` command costs before it does anything: node's own start (`node -e ''`), then
// `--version`, `plan` of the small local deploy `atomkit init --local` writes, `run` of a no-op atom
// (deploy file, trail, lock, one unchanged step, fsync) and, when the test bed's sshd is up, `plan` of
// one SSH host. Interleaved rounds, medians of wall time and of the child's CPU (user+sys, from bash's
// `times`); the overhead is over node's own start, the target ≤ 150 ms for --version and plan.
// Then what each module costs to load on its own (a fresh node per import), to see where the ms go.
// ATOMKIT_BENCH_ROUNDS (default 15). Run: pnpm --filter @atomkit/cli bench
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);
const BIN = resolve(import.meta.dirname, "../dist/bin.js");
const PACKAGES = resolve(import.meta.dirname, "../..");
const ROUNDS = Number(process.env.ATOMKIT_BENCH_ROUNDS ?? 15);
const TARGET_MS = 150;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Wall ms and the child's CPU ms (bash's `times`: the user and sys of its finished children). */
async function timed(args, cwd, env = {}) {
  const t0 = performance.now();
  const { stderr } = await exec(
    "bash",
    [
      "-c",
      'e=$(mktemp); "$@" >/dev/null 2>"$e" || { cat "$e" >&2; rm -f "$e"; exit 1; }; rm -f "$e"; times >&2',
      "_",
      ...args,
    ],
    { cwd, env: { ...process.env, ...env } },
  );
  const wall = performance.now() - t0;
  const lines = stderr.trim().split("\n");
  const s = (t) => {
    const m = /(\d+)m([\d.]+)s/.exec(t);
    return m ? (Number(m[1]) * 60 + Number(m[2])) * 1000 : Number.NaN;
  };
  const [user, sys] = lines[lines.length - 1].trim().split(/\s+/);
  return { wall, cpu: s(user) + s(sys) };
}

// a project as a user has it: node_modules/@atomkit/* (this workspace's packages), `atomkit init --local`
const dir = await mkdtemp(join(tmpdir(), "atomkit-startup-"));
await mkdir(join(dir, "node_modules/@atomkit"), { recursive: true });
for (const pkg of ["core", "cli", "step-fs", "step-process", "step-symlink", "step-ssh"])
  await symlink(join(PACKAGES, pkg), join(dir, "node_modules/@atomkit", pkg));
await exec(process.execPath, [BIN, "init", "--local"], { cwd: dir });
await mkdir(join(dir, "kept"));
await writeFile(
  join(dir, "noop.config.ts"),
  `import { resolve } from "node:path";
import { atom, localHost } from "@atomkit/core";
import { defineConfig } from "@atomkit/cli";
import { makeDir } from "@atomkit/step-fs";

export default defineConfig({
  hosts: { local: localHost({ stateDir: resolve(".atomkit/host") }) },
  // one step that finds its directory there already: the run is all start-up, trail and lock
  atoms: { noop: atom("noop", { steps: [makeDir({ path: resolve("kept") }, { name: "kept" })] }) },
});
`,
);
const ssh = sshEnv();
if (ssh) {
  await writeFile(
    join(dir, "ssh.config.ts"),
    `import { atom } from "@atomkit/core";
import { defineConfig } from "@atomkit/cli";
import { makeDir } from "@atomkit/step-fs";
import { sshHost } from "@atomkit/step-ssh";

export default defineConfig({
  hosts: {
    web: () => sshHost({ name: "web", host: ${JSON.stringify(ssh.ATOMKIT_SSH_HOST)}, port: ${Number(ssh.ATOMKIT_SSH_PORT)},
      username: ${JSON.stringify(ssh.ATOMKIT_SSH_USER)}, privateKeyPath: ${JSON.stringify(ssh.ATOMKIT_SSH_KEY)},
      knownHosts: ${JSON.stringify(ssh.ATOMKIT_SSH_KNOWN_HOSTS)} }),
  },
  atoms: { noop: atom("noop", { steps: [makeDir({ path: "/tmp" }, { name: "tmp" })] }) },
});
`,
  );
}

const cases = [
  ["node -e ''", [process.execPath, "-e", ""]],
  ["atomkit --version", [process.execPath, BIN, "--version"]],
  ["atomkit plan (local, 7 steps)", [process.execPath, BIN, "plan", "release", "--var", "version=1"]],
  ["atomkit run (no-op, 1 step)", [process.execPath, BIN, "run", "noop", "--config", "noop.config.ts"]],
  ...(ssh
    ? [["atomkit plan (1 ssh host)", [process.execPath, BIN, "plan", "noop", "--config", "ssh.config.ts"]]]
    : []),
];

// the CLI's own dependencies, found as the CLI finds them
const own = (name) => JSON.stringify(import.meta.resolve(name));
const modules = [
  ["@atomkit/core", "import('@atomkit/core')"],
  ["jiti (CJS build)", `require(${JSON.stringify(createRequire(BIN).resolve("jiti"))})`],
  ["jiti (ESM wrapper)", `import(${own("jiti")})`],
  ["@atomkit/cli (index)", "import('@atomkit/cli')"],
  ["@atomkit/step-fs", "import('@atomkit/step-fs')"],
  ["@atomkit/step-process", "import('@atomkit/step-process')"],
  ["@atomkit/step-symlink", "import('@atomkit/step-symlink')"],
  ["@atomkit/step-ssh (ssh2)", "import('@atomkit/step-ssh')"],
  ["log-update", `import(${own("log-update")})`],
];

try {
  // first runs: jiti compiles the deploy files into its cache, the trail key is made
  for (const [, args] of cases) await timed(args, dir);
  const wall = cases.map(() => []);
  const cpu = cases.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, [, args]] of cases.entries()) {
      const t = await timed(args, dir);
      wall[i].push(t.wall);
      cpu[i].push(t.cpu);
    }
  }
  const base = median(wall[0]);
  const baseCpu = median(cpu[0]);
  console.log(`start-up of one command, ${ROUNDS} interleaved rounds, medians (wall, and CPU of the child)`);
  for (const [i, [name]] of cases.entries()) {
    const w = median(wall[i]);
    const c = median(cpu[i]);
    const over = w - base;
    const gated = /--version|plan \(local/.test(name);
    const mark = i === 0 ? "" : `   +${over.toFixed(0).padStart(4)} ms over node`;
    const verdict = gated ? ` (target ≤ ${TARGET_MS}) ${over <= TARGET_MS ? "OK" : "OVER"}` : "";
    console.log(
      `${name.padEnd(30)} ${w.toFixed(0).padStart(5)} ms  cpu ${c.toFixed(0).padStart(4)} ms (+${(c - baseCpu).toFixed(0)})${mark}${verdict}`,
    );
  }
  // where the ms go: each module alone in a fresh node, minus node's own start
  const loads = modules.map(() => []);
  for (let r = 0; r < Math.max(3, Math.ceil(ROUNDS / 3)); r++) {
    for (const [i, [, expr]] of modules.entries()) {
      // CPU, not wall: on a loaded machine the wall time is mostly waiting for a core
      const code = `const t0 = process.cpuUsage(); Promise.resolve(${expr}).then(() => { const d = process.cpuUsage(t0); console.log((d.user + d.system) / 1000) })`;
      const { stdout } = await exec(process.execPath, ["-e", code], { cwd: dir });
      loads[i].push(Number(stdout.trim()));
    }
  }
  console.log("loading one module alone (CPU ms, median; what a command pays when it needs it):");
  console.log(modules.map(([name], i) => `${name} ${median(loads[i]).toFixed(0)}`).join(" · "));
} finally {
  await rm(dir, { recursive: true, force: true });
}

function sshEnv() {
  const file = join(process.env.ATOMKIT_TESTBED_DIR ?? "/tmp/atomkit-testbed", "sshd.env");
  if (!existsSync(file)) return undefined;
  const env = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^(\w+)=(.*)$/.exec(line);
    if (m) env[m[1]] = m[2].replace(/^"|"$/g, "");
  }
  return env.ATOMKIT_SSH_PORT ? env : undefined;
}
