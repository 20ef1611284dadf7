import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { hashTree } from "@atomkit/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { alive, killProcessesIn } from "./_forge";
import { kindsProject } from "./_kinds-project";
import { atomkit, type Cli } from "./_project";
import { atomkitTty, fileLeaks, filesUnder, type Leak, leaksIn } from "./_secrets";

// Issue #16: a secret never reaches the trail, the terminal or a file a step leaves on the host. Each
// shape of secret goes through every command (run committing, run failing, a run killed and recovered,
// undo, plan, status, trail), each renderer (TTY, plain, --json), and every sink is searched for it in
// every form it could be quoted in. Two secrets per shape: one written in the deploy file (a secret
// param), one given as `--var` (feeding secret params: never recorded, asked for again by undo).

const hex = (n: number) => randomBytes(n).toString("hex");
const today = () => new Date().toISOString().slice(5, 10).replace("-", ""); // MMDD: inside every run id

const SHAPES: Record<string, () => { direct: string; viaVar: string }> = {
  "long random": () => ({ direct: `k3y-${hex(16)}`, viaVar: `v4r-${hex(16)}` }),
  // the year and the day: inside every run id and timestamp, which must stay intact
  numeric: () => ({ direct: String(new Date().getUTCFullYear()), viaVar: today() }),
  "with quotes": () => ({ direct: `it's "x"`, viaVar: `o'neil "q" \\ end` }),
  short: () => ({ direct: "ab1", viaVar: "zq7" }),
  "base64 with +/=": () => ({ direct: `Q2Fm+${hex(3)}/ZQ==`, viaVar: `V2Fy+${hex(3)}/aw=` }),
};

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

/** The deploy file: a secret param of every sort the kinds have, plus a var that feeds secret params. */
function deployFile(dir: string, direct: string): string {
  const deploy = join(dir, "deploy");
  return `
import { atom, defineStep, isNotFound, localHost } from "@atomkit/core";
import { defineAtom, defineConfig } from "@atomkit/cli";
import { writeFile } from "@atomkit/step-fs";
import { startProcess, stopProcess } from "@atomkit/step-process";

const deploy = ${JSON.stringify(deploy)};
const DIRECT = ${JSON.stringify(direct)};
const session = \`\${deploy}/session\`;

// a project kind: its secret param is needed by undo; its url (not a secret path) quotes the secret too
const login = defineStep({
  kind: "project.login",
  // refusals that quote what they refuse: the url holds the token, the preflight names it
  params: (p: { user: string; token: string; url: string }) => {
    if (!p.url.startsWith("https://")) throw Object.assign(new Error(\`expected an https url, found \${p.url}\`), { path: "url" });
    return p;
  },
  preflight: (p) => {
    if (p.user === "nobody") throw new Error(\`the auth server refused \${p.user} with token \${p.token}\`);
  },
  secret: ["token"],
  describe: (p) => \`log in to \${p.url} as \${p.user}\`,
  observe: async (ctx) => {
    try { return (await ctx.host.readFile(session)).toString(); } catch (e) { if (isNotFound(e)) return null; throw e; }
  },
  apply: async (ctx, p) => {
    ctx.log(\`logging in at \${p.url} with token \${p.token}\`);
    await ctx.host.writeFile(session, \`\${p.user} logged in\`);
  },
  undo: async (ctx, p, before) => {
    if (p.token !== DIRECT) throw new Error(\`undo needs the token to log out, got \${p.token}\`);
    if (before === null) await ctx.host.rm(session, { force: true }); else await ctx.host.writeFile(session, before);
  },
});

// the last step: a health check that fails (or hangs, to be killed) quoting the var's secret
const check = defineStep({
  kind: "project.check",
  params: (p: { fail: boolean; hang: boolean; token: string }) => p,
  preflight: (p) => {
    if (p.fail && p.hang) throw new Error(\`cannot both fail and hang with token "\${p.token}"\`);
  },
  secret: ["token"],
  describe: () => "health check",
  observe: async () => null,
  apply: async (ctx, p) => {
    ctx.log("checking");
    if (p.hang) await new Promise((r) => ctx.signal.addEventListener("abort", r));
    if (p.fail) throw new Error(\`GET /health?token=\${encodeURIComponent(p.token)} answered 500: bad token "\${p.token}"\`);
  },
  undo: async () => {},
});

export default defineConfig({
  hosts: { local: localHost({ stateDir: ${JSON.stringify(join(dir, "state"))} }) },
  roots: [deploy],
  atoms: {
    sec: defineAtom({
      vars: {
        token: { description: "API token" },
        fail: { default: "0", values: ["0", "1"] },
        hang: { default: "0", values: ["0", "1"] },
        user: { default: "deploy" },
        scheme: { default: "https" },
      },
      atom: (v) => atom("sec", {
        steps: [
          writeFile({ path: \`\${deploy}/config.env\`, content: \`TOKEN=\${DIRECT}\\nVAR=\${v.token}\\n\`, mode: 0o600 }, { name: "config" }),
          stopProcess({ pidFile: \`\${deploy}/run/legacy.pid\`, secretEnv: { TOKEN: v.token } }, { name: "stop-legacy" }),
          startProcess(
            { command: ["sleep", "600"], cwd: deploy, pidFile: \`\${deploy}/run/app.pid\`, env: { APP_TOKEN: DIRECT, MODE: "prod" } },
            { name: "start-app", secret: ["env.APP_TOKEN"] },
          ),
          login({ user: v.user, token: DIRECT, url: \`\${v.scheme}://deploy:\${DIRECT}@auth.example/login\` }, { name: "login" }),
          check({ fail: v.fail === "1", hang: v.hang === "1", token: v.token }, { name: "check" }),
        ],
      }),
    }),
    // an atom whose build fails quoting its declared secret var
    vault: defineAtom({
      vars: {
        key: { secret: true },
        // a schema whose refusal quotes the value it refuses
        key2: {
          secret: true,
          default: "ok",
          schema: { "~standard": { version: 1, vendor: "test", validate: (v: unknown) => (v === "ok" ? { value: v } : { issues: [{ message: \`"\${v}" is not a vault key\` }] }) } },
        },
      },
      atom: (v) => {
        throw new Error(\`the vault refused key "\${v.key}"\`);
      },
    }),
  },
});
`;
}

/** A process the deploy did not start, holding the var's secret in its environment. */
async function startLegacy(deploy: string, token: string): Promise<number> {
  const child = spawn("sleep", ["600"], {
    cwd: deploy,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", PWD: deploy, TOKEN: token },
    detached: true,
    stdio: "ignore",
  });
  child.unref();
  const pid = child.pid!;
  await writeFile(join(deploy, "run/legacy.pid"), `${pid}\n`);
  return pid;
}

async function environOf(pidFile: string): Promise<Record<string, string>> {
  const pid = Number((await readFile(pidFile, "utf8")).trim());
  expect(await alive(pid), `pid ${pid} of ${pidFile}`).toBe(true);
  const raw = await readFile(`/proc/${pid}/environ`, "utf8");
  return Object.fromEntries(
    raw
      .split("\0")
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
}

const runIdOf = (r: Cli) =>
  /"runId":"([^"]+)"/.exec(r.stdout)?.[1] ?? /(?:run|undo) sec (\S+)/.exec(r.stdout)?.[1] ?? "";

describe("secrets never reach the trail, the output or the host's files", () => {
  for (const [shape, make] of Object.entries(SHAPES)) {
    it(`${shape}: every command, renderer and sink — 0 occurrences`, { timeout: 300_000 }, async () => {
      const { direct, viaVar } = make();
      const secrets = [direct, viaVar];
      const p = await kindsProject("atomkit-sec-", (dir) => deployFile(dir, direct));
      cleanup = async () => {
        await killProcessesIn(p.dir);
        await p.cleanup();
      };
      const deploy = join(p.dir, "deploy");
      await mkdir(join(deploy, "run"), { recursive: true });
      await writeFile(join(deploy, "config.env"), "TOKEN=placeholder\n", { mode: 0o600 });
      await startLegacy(deploy, viaVar);
      const token = ["--var", `token=${viaVar}`];
      const outputs: Array<{ cmd: string; r: Cli }> = [];
      const cli = async (args: string[], expected: number, opts?: Parameters<typeof atomkit>[2]) => {
        const r = await atomkit(p.dir, args, opts);
        outputs.push({ cmd: args.join(" "), r });
        if (expected >= 0)
          expect(r.code, `atomkit ${args.join(" ")}\n${r.stdout}\n${r.stderr}`).toBe(expected);
        return r;
      };
      const legacyToken = async () => (await environOf(join(deploy, "run/legacy.pid"))).TOKEN;
      const atRest = await hashTree(deploy, { ignore: (rel) => rel.startsWith("run") });

      // plan: read-only, both renderers
      await cli(["plan", "sec", ...token], 0);
      await cli(["plan", "sec", ...token, "--json"], 0);

      const hostFiles = () =>
        filesUnder(
          p.dir,
          (rel) => rel === "node_modules" || rel === "atomkit.config.ts" || rel === "deploy/config.env",
        );
      const leaks: Leak[] = [];

      // run committing (plain), then what the trail and status show of it
      const committed = runIdOf(await cli(["run", "sec", ...token], 0));
      expect((await environOf(join(deploy, "run/app.pid"))).APP_TOKEN).toBe(direct);
      // the files a committed deploy leaves (the app's launch record among them), before undo removes them
      const live = await hostFiles();
      expect(live.some((f) => f.endsWith("app.pid.launch.json"))).toBe(true);
      leaks.push(...(await fileLeaks(live, secrets)));
      for (const args of [
        ["trail"],
        ["trail", "--json"],
        ["trail", committed],
        ["trail", committed, "--json"],
        ["status"],
        ["status", "--json"],
        ["status", ...token, "--history"],
      ])
        await cli(args, -1);

      // the var was recorded as secret: undo without it is refused, and starts nothing with "***"
      const runRecord = JSON.parse(
        (await readFile(join(p.dir, ".atomkit/trails", `${committed}.jsonl`), "utf8")).split("\n")[0]!,
      );
      expect(runRecord.meta).toMatchObject({ vars: { fail: "0", hang: "0" }, secretVars: ["token"] });
      expect(runRecord.meta.vars).not.toHaveProperty("token");
      const stopped = await hashTree(deploy);
      const refused = await cli(["undo", committed], 2);
      expect(refused.stderr).toMatch(/made with the secret var\(s\) token, which the trail never holds/);
      expect(await hashTree(deploy)).toBe(stopped);

      // undo with it (plain): the legacy process is back with its real secret
      await cli(["undo", committed, ...token], 0);
      expect(await legacyToken()).toBe(viaVar);
      expect(await hashTree(deploy)).not.toBe(stopped);

      // run committing (--json) and undo (--json); list
      const second = runIdOf(await cli(["run", "sec", ...token, "--json"], 0));
      await cli(["undo", second, ...token, "--json"], 0);
      expect(await legacyToken()).toBe(viaVar);
      await cli(["list"], 0);

      // runs failing and rolled back: the live TTY tree, and --json
      const tty = await atomkitTty(p.dir, ["run", "sec", ...token, "--var", "fail=1"]);
      outputs.push({ cmd: "run sec --var fail=1 (tty)", r: tty });
      expect(tty.code, tty.stdout).toBe(3);
      expect(tty.stdout).toMatch(/rolled-back/);
      expect(tty.stdout).toContain("bad token"); // the error is shown, its secret masked
      expect(await legacyToken()).toBe(viaVar);
      await cli(["run", "sec", ...token, "--var", "fail=1", "--json"], 3);
      expect(await legacyToken()).toBe(viaVar);

      // a run killed (SIGKILL) in its last step, then recover: without the var refused, with it done
      let killed = false;
      const dead = await cli(["run", "sec", ...token, "--var", "hang=1", "--json"], -1, {
        onStdout: (text, kill) => {
          if (!killed && /"step":"check"[^\n]*"type":"step:log"/.test(text)) {
            killed = true;
            kill("SIGKILL");
          }
        },
      });
      expect(dead.signal).toBe("SIGKILL");
      const deadId = runIdOf(dead);
      leaks.push(...(await fileLeaks(await hostFiles(), secrets))); // what a crash leaves
      const noVar = await cli(["recover"], 2);
      expect(noVar.stderr).toMatch(/secret var\(s\) token/);
      const rec = await cli(["recover", ...token], 0);
      expect(rec.stderr).toContain(`${deadId} on local: died while applying → rolled-back`);
      expect(await legacyToken()).toBe(viaVar);
      await cli(["trail"], 0);
      await cli(["status", ...token, "--json"], 0);

      // every step undone: the deploy is as before the first run (pid files and logs aside)
      expect(await hashTree(deploy, { ignore: (rel) => rel.startsWith("run") })).toBe(atRest);
      expect(await readFile(join(deploy, "config.env"), "utf8")).toBe("TOKEN=placeholder\n");

      // run ids and timestamps are structure, never masked: every record carries its file's run id
      const trails = join(p.dir, ".atomkit/trails");
      for (const f of await readdir(trails)) {
        const id = f.replace(/\.jsonl$/, "");
        for (const line of (await readFile(join(trails, f), "utf8")).trim().split("\n")) {
          const r = JSON.parse(line);
          expect(r.runId, `${f}: ${line.slice(0, 200)}`).toBe(id);
          expect(r.at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
          if (r.undoOf) expect(r.undoOf).toMatch(/^\d{8}T\d{6}\d{3}Z-[0-9a-f]{6}$/);
        }
      }

      // the sinks: every stream of every command, every file the project and the steps left
      for (const { cmd, r } of outputs) {
        leaks.push(...leaksIn(`stdout of \`${cmd}\``, r.stdout, secrets));
        leaks.push(...leaksIn(`stderr of \`${cmd}\``, r.stderr, secrets));
      }
      const files = await hostFiles();
      expect(files.some((f) => f.includes(".atomkit/trails/"))).toBe(true);
      expect(files.some((f) => f.endsWith("legacy.pid.launch.json"))).toBe(true);
      leaks.push(...(await fileLeaks(files, secrets)));
      expect(leaks).toEqual([]);
      // and the search finds a secret where one is: the deploy file, the restarted process's environment
      const legacy = (await readFile(join(deploy, "run/legacy.pid"), "utf8")).trim();
      expect(await fileLeaks([join(p.dir, "atomkit.config.ts")], [direct])).not.toEqual([]);
      expect(await fileLeaks([`/proc/${legacy}/environ`], [viaVar])).not.toEqual([]);
    });
  }
});

describe("refusals before anything runs quote no secret", () => {
  for (const [shape, make] of Object.entries(SHAPES)) {
    it(`${shape}: invalid params, a preflight refusal, an atom that cannot be built`, {
      timeout: 120_000,
    }, async () => {
      const { direct, viaVar } = make();
      const p = await kindsProject("atomkit-sec-", (dir) => deployFile(dir, direct));
      cleanup = p.cleanup;
      await mkdir(join(p.dir, "deploy/run"), { recursive: true });
      const token = ["--var", `token=${viaVar}`];
      const leaks: Leak[] = [];
      for (const [args, message] of [
        [
          ["run", "sec", ...token, "--var", "user=nobody"],
          /the auth server refused nobody with token \*\*\*/,
        ],
        [
          ["run", "sec", ...token, "--var", "user=nobody", "--json"],
          /the auth server refused nobody with token \*\*\*/,
        ],
        [["plan", "sec", ...token, "--var", "user=nobody"], /the auth server refused nobody/],
        [
          ["run", "sec", ...token, "--var", "scheme=http"],
          /expected an https url, found http:\/\/deploy:\*\*\*@auth/,
        ],
        [
          ["run", "sec", ...token, "--var", "fail=1", "--var", "hang=1"],
          /cannot both fail and hang with token "\*\*\*"/,
        ],
        [["run", "vault", "--var", `key=${viaVar}`], /the vault refused key "\*\*\*"/],
        [["plan", "vault", "--var", `key=${direct}`, "--json"], /the vault refused key/],
        [
          ["run", "vault", "--var", `key=${direct}`, "--var", `key2=${viaVar}`],
          /var "key2": "\*\*\*" is not a vault key/,
        ],
      ] as const) {
        const r = await atomkit(p.dir, [...args]);
        expect(r.code, `${args.join(" ")}\n${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(message);
        leaks.push(...leaksIn(`stdout of \`${args.join(" ")}\``, r.stdout, [direct, viaVar]));
        leaks.push(...leaksIn(`stderr of \`${args.join(" ")}\``, r.stderr, [direct, viaVar]));
      }
      expect(leaks).toEqual([]);
      expect(existsSync(join(p.dir, ".atomkit/trails"))).toBe(false); // nothing ran
    });
  }
});
