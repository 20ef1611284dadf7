// Shared by the step-process tests: a sandbox per test (temp dir, a unique tag in every command line it
// starts, so cleanup finds and kills each process by pid even when a test fails half-way).
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Host, localHost, type Step, type StepContext, validateParams } from "@atomkit/core";
import { PATIENCE_MS, stepContext } from "@atomkit/testkit";

export const SERVER = fileURLToPath(new URL("./fixtures/server.mjs", import.meta.url));
export const NODE = process.execPath;

// ports from this package's own range: suites of other packages run at the same time
export { freePort, growingBudget, PATIENCE_MS } from "@atomkit/testkit";

/** A health check that should pass: all the time a loaded box may need (it costs nothing when healthy). */
export const healthy = (port: number, path = "/health") => ({
  http: { port, path },
  timeoutMs: PATIENCE_MS,
  intervalMs: 25,
});

/** GET over loopback; `null` when nothing answers. */
export function get(port: number, path: string): Promise<{ status: number; body: string } | null> {
  return new Promise((resolve) => {
    // refused at once when nothing listens; the timeout only cuts a server that accepted and hangs
    const req = request({ host: "127.0.0.1", port, path, timeout: 30_000 }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => {
        body += d.toString("utf8");
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", () => resolve(null));
    req.on("timeout", () => {
      req.destroy();
      resolve(null);
    });
    req.end();
  });
}

export async function getJson(port: number, path: string): Promise<unknown> {
  const r = await get(port, path);
  return r ? JSON.parse(r.body) : undefined;
}

/** Live (not zombie) pid. */
export async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Polls until `check` holds (true) or `ms` passed (false): long by default, as only a hang waits it out. */
export async function waitFor(check: () => Promise<boolean>, ms = PATIENCE_MS): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

/** Pids of live processes whose command line contains `text`. */
export async function pidsWith(text: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = await readFile(`/proc/${name}/cmdline`, "utf8");
      if (cmdline.includes(text) && (await alive(Number(name)))) out.push(Number(name));
    } catch {}
  }
  return out;
}

export interface Sandbox {
  dir: string;
  /** In every command line started here: cleanup kills whatever carries it. */
  tag: string;
  host: Host;
  /** Server args with the tag. */
  server: (port: number, ...flags: string[]) => string[];
  /** Starts the test server the way an init script would: detached, own session, pid file, log file. */
  spawnServer: (o: {
    port: number;
    flags?: string[];
    pidFile?: string;
    log?: string;
    cwd?: string;
    env?: Record<string, string>;
    uid?: number;
    gid?: number;
    argv?: string[];
    /** Start it without PWD, as a supervisor that does not go through a shell would. */
    noPwd?: boolean;
  }) => Promise<number>;
  /** A live process that is not ours (a stand-in for whatever got a recycled pid). */
  spawnBystander: () => Promise<number>;
  cleanup: () => Promise<void>;
}

export async function sandbox(prefix = "atomkit-process-"): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const tag = `atomkit-test-${randomBytes(6).toString("hex")}`;
  const host = localHost({ stateDir: join(dir, ".state") });
  const server = (port: number, ...flags: string[]) => [
    NODE,
    SERVER,
    `--port=${port}`,
    `--tag=${tag}`,
    ...flags,
  ];
  return {
    dir,
    tag,
    host,
    server,
    async spawnServer(o) {
      const log = o.log ?? join(dir, "server.log");
      const fd = openSync(log, "a");
      const argv = o.argv ?? server(o.port, ...(o.flags ?? []));
      const cwd = o.cwd ?? dir;
      const child = spawn(argv[0]!, argv.slice(1), {
        cwd,
        detached: true,
        stdio: ["ignore", fd, fd],
        // PWD as a shell sets it when an init script `cd`s and starts the service: where it was started
        env: {
          ...(o.noPwd ? {} : { PWD: cwd }),
          ...(o.env ?? { PATH: process.env.PATH ?? "/usr/bin:/bin" }),
        },
        ...(o.uid !== undefined ? { uid: o.uid } : {}),
        ...(o.gid !== undefined ? { gid: o.gid } : {}),
      });
      closeSync(fd);
      let exited = false;
      child.once("exit", () => {
        exited = true;
      });
      child.unref();
      const pid = child.pid!;
      if (o.pidFile) await writeFile(o.pidFile, `${pid}\n`);
      // up, or dead: a server that exited will never answer, so stop waiting at once
      const up = await waitFor(async () => exited || (await get(o.port, "/health")) !== null);
      if (!up || exited) {
        const why = exited ? "exited" : `did not answer within ${PATIENCE_MS} ms`;
        throw new Error(
          `test server on port ${o.port} ${why}: ${await readFile(log, "utf8").catch(() => "")}`,
        );
      }
      return pid;
    },
    async spawnBystander() {
      const child = spawn(NODE, ["-e", "setInterval(() => {}, 1e6)", "--", `--tag=${tag}`, "bystander"], {
        detached: true,
        stdio: "ignore",
      });
      child.unref();
      await waitFor(async () => (await readFile(`/proc/${child.pid}/cmdline`, "utf8")).includes(tag));
      return child.pid!;
    },
    async cleanup() {
      // by tag, never by a remembered pid: a pid that exited may belong to someone else by now. Killed
      // first and waited for, so a test that timed out mid-start leaves no process writing into `dir`
      await killTagged(tag);
      await rm(dir, { recursive: true, force: true, maxRetries: 10 });
    },
  };
}

/**
 * The server fixture as user `uid` can run it, for a test that starts it as another user: the checkout
 * may sit where only root can enter (a `mktemp -d` folder is 0700), so the script is copied into the
 * sandbox (opened to others), and so is node when `uid` cannot run the one running the tests.
 */
export async function reachableBy(
  uid: number,
  sb: Sandbox,
): Promise<{ dir: string; server: (port: number, ...flags: string[]) => string[] }> {
  const as = { uid, gid: uid };
  const dir = join(sb.dir, `as-${uid}`);
  await mkdir(dir);
  await chmod(sb.dir, 0o755);
  await chmod(dir, 0o755);
  const script = join(dir, "server.mjs");
  await copyFile(SERVER, script);
  await chmod(script, 0o644);
  const can = (argv: string[]) => spawnSync(argv[0]!, argv.slice(1), { ...as, stdio: "ignore" }).status === 0;
  if (!can(["/bin/sh", "-c", 'test -r "$1"', "sh", script])) {
    throw new Error(
      `uid ${uid} cannot read ${script}: a parent of the temp dir is closed to it; point TMPDIR at a directory others can enter`,
    );
  }
  let node = NODE;
  if (!can([node, "-e", "0"])) {
    node = join(dir, "node");
    await copyFile(NODE, node);
    await chmod(node, 0o755);
  }
  return {
    dir,
    server: (port, ...flags) => [node, script, `--port=${port}`, `--tag=${sb.tag}`, ...flags],
  };
}

/** SIGKILLs every process carrying `tag` and waits until none is left. */
export async function killTagged(tag: string): Promise<void> {
  for (const end = Date.now() + PATIENCE_MS; Date.now() < end; ) {
    const pids = await pidsWith(tag);
    if (!pids.length) return;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Calls a step's kind functions directly, with validated params (as the contract suite does). */
export async function bind<P, S>(step: Step<P, S>, host: Host, log: (m: string) => void = () => {}) {
  const validated = await validateParams(step as Step);
  if (validated.issues) throw new Error(`params invalid: ${JSON.stringify(validated.issues)}`);
  const p = validated.value as P;
  const ctx: StepContext = stepContext({ host: host, log: log, runId: "test", step: step.name });
  const d = step.definition;
  return {
    params: p,
    ctx,
    observe: () => d.observe(ctx, p),
    apply: (before: S) => d.apply(ctx, p, before),
    undo: (before: S, after: S) => d.undo(ctx, p, before, after),
    same: (a: S, b: S) => d.same!(a, b),
  };
}

/** All text under a directory, for "the secret is not in any file" checks. */
export async function allText(dir: string): Promise<string> {
  let out = "";
  for (const name of await readdir(dir, { recursive: true })) {
    try {
      out += await readFile(join(dir, name), "utf8");
    } catch {}
  }
  return out;
}
