// Shared by the step-process tests: a sandbox per test (temp dir, a unique tag in every command line it
// starts, so cleanup finds and kills each process by pid even when a test fails half-way).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Host, localHost, type Step, type StepContext, validateParams } from "@atomkit/core";

export const SERVER = fileURLToPath(new URL("./fixtures/server.mjs", import.meta.url));
export const NODE = process.execPath;

// ports from this package's own range: suites of other packages run at the same time
export { freePort } from "@atomkit/testkit";

/** GET over loopback; `null` when nothing answers. */
export function get(port: number, path: string): Promise<{ status: number; body: string } | null> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path, timeout: 2_000 }, (res) => {
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

export async function waitFor(check: () => Promise<boolean>, ms = 5_000): Promise<boolean> {
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
      child.unref();
      const pid = child.pid!;
      if (o.pidFile) await writeFile(o.pidFile, `${pid}\n`);
      const up = await waitFor(async () => (await get(o.port, "/health")) !== null);
      if (!up) throw new Error(`test server on port ${o.port} did not start; see ${log}`);
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
      // by tag, never by a remembered pid: a pid that exited may belong to someone else by now
      for (const pid of await pidsWith(tag)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Calls a step's kind functions directly, with validated params (as the contract suite does). */
export async function bind<P, S>(step: Step<P, S>, host: Host, log: (m: string) => void = () => {}) {
  const validated = await validateParams(step as Step);
  if (validated.issues) throw new Error(`params invalid: ${JSON.stringify(validated.issues)}`);
  const p = validated.value as P;
  const ctx: StepContext = {
    host,
    signal: new AbortController().signal,
    log,
    runId: "test",
    step: step.name,
  };
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
