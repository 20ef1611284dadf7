import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  atom,
  defineStep,
  fileTrail,
  type Host,
  HostError,
  ParamsError,
  run,
  undoRun,
  validateParams,
} from "@atomkit/core";
import { describeStepContract, HOSTILE_STRINGS } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type StopProcessState, startProcess, steps, stopProcess } from "../src/index";
import {
  alive,
  allText,
  bind,
  freePort,
  get,
  getJson,
  growingBudget,
  healthy,
  pidsWith,
  reachableBy,
  type Sandbox,
  sandbox,
  waitFor,
} from "./helpers";

const failAfter = defineStep({
  kind: "test.fail",
  params: (p: null) => p,
  observe: async () => null,
  apply: async () => {
    throw new Error("injected failure after the stop");
  },
  undo: async () => {},
});

const PATH = process.env.PATH ?? "/usr/bin:/bin";

/** What a restore must bring back: the launch and its health, not the evidence (pid, start time, record). */
function restorable(s: StopProcessState) {
  if (!s.running) return s;
  return { running: true, launch: s.launch, healthy: s.healthy };
}

describeStepContract({
  name: "process.stop (real processes on localHost)",
  idempotent: true,
  async setup() {
    const sb = await sandbox();
    const port = await freePort();
    const pidFile = join(sb.dir, "app.pid");
    await sb.spawnServer({ port, pidFile, flags: ["--version=old"], env: { PATH, FOO: "bar baz" } });
    // breakApply: the signal is delivered, then the link to the host drops before apply can report it
    let broken = false;
    const host: Host = {
      ...sb.host,
      exec: async (argv, options) => {
        const result = await sb.host.exec(argv, options);
        if (broken && argv[0] === "kill") {
          broken = false;
          const pid = Math.abs(Number(argv.at(-1)));
          await waitFor(async () => !(await alive(pid)));
          throw new Error("the SSH link dropped after the signal was sent");
        }
        return result;
      },
    };
    const step = () => stopProcess({ pidFile, graceMs: 2_000, env: ["FOO", "UNSET"], health: healthy(port) });
    return {
      host,
      step,
      snapshot: async () => ({
        state: restorable(await (await bind(step(), sb.host)).observe()),
        version: (await get(port, "/version"))?.body ?? null,
        env: await getJson(port, "/env?name=FOO"),
      }),
      breakApply: () => {
        broken = true;
      },
      cleanup: sb.cleanup,
    };
  },
});

describe("process.stop", () => {
  let sb: Sandbox;
  let port: number;
  let pidFile: string;
  beforeEach(async () => {
    sb = await sandbox();
    port = await freePort();
    pidFile = join(sb.dir, "app.pid");
  });
  afterEach(async () => {
    await sb.cleanup();
  });

  it("a process that ignores SIGTERM gets SIGKILL after graceMs", async () => {
    // the server shows it got SIGTERM (and ignored it) only if it ran within the grace: grown until it did
    const { result, logs, pid, graceMs } = await growingBudget(
      300,
      async (graceMs) => {
        const pid = await sb.spawnServer({ port, pidFile, flags: ["--ignore-term"] });
        const logs: string[] = [];
        const result = await run(atom("stop", { steps: [stopProcess({ pidFile, graceMs })] }), {
          host: sb.host,
          lock: false,
          onEvent: (e) => {
            if (e.type === "step:log") logs.push(e.message);
          },
        });
        return { result, logs, pid, graceMs };
      },
      async () => (await readFile(join(sb.dir, "server.log"), "utf8")).includes("ignoring SIGTERM"),
    );
    expect(result.status, result.error?.message).toBe("committed");
    expect(await alive(pid)).toBe(false);
    expect(await readFile(join(sb.dir, "server.log"), "utf8")).toContain("ignoring SIGTERM");
    expect(logs.join("\n")).toMatch(new RegExp(`${graceMs} ms after SIGTERM: sending SIGKILL`));
    expect(existsSync(pidFile)).toBe(false);
  });

  it("a stale pid file naming a dead pid: nothing runs, nothing to stop", async () => {
    const child = spawn("true");
    await new Promise((r) => child.once("exit", r));
    await writeFile(pidFile, `${child.pid}\n`);
    const result = await run(atom("stop", { steps: [stopProcess({ pidFile })] }), {
      host: sb.host,
      lock: false,
    });
    expect(result.status).toBe("committed");
    expect(result.steps[0]).toMatchObject({ changed: false, before: { running: false } });
  });

  it("a stale pid file naming a reused pid (a live process started after the file) is never signalled", async () => {
    const bystander = await sb.spawnBystander();
    await writeFile(pidFile, `${bystander}\n`);
    const anHourAgo = new Date(Date.now() - 3_600_000);
    await utimes(pidFile, anHourAgo, anHourAgo);
    const result = await run(atom("stop", { steps: [stopProcess({ pidFile, graceMs: 100 })] }), {
      host: sb.host,
      lock: false,
    });
    expect(result.status).toBe("committed");
    expect(result.steps[0]?.changed).toBe(false);
    expect(await alive(bystander)).toBe(true);
  });

  it("apply refuses when the pid now names a process other than the one observed", async () => {
    const pid = await sb.spawnServer({ port, pidFile });
    const s = await bind(stopProcess({ pidFile, graceMs: 100 }), sb.host);
    const before = (await s.observe()) as Extract<StopProcessState, { running: true }>;
    // as if the observed process had exited and its pid been given to this one
    await expect(s.apply({ ...before, startTime: before.startTime - 1 })).rejects.toThrow(
      /changed between observe and apply/,
    );
    expect(await alive(pid)).toBe(true);
  });

  it("match: stops the one parent of all matching processes (and its workers), undo restarts it", async () => {
    const pid = await sb.spawnServer({ port, flags: ["--workers=2"] });
    await waitFor(async () => (await pidsWith(sb.tag)).length === 3);
    const step = stopProcess({ match: `--tag=${sb.tag}`, graceMs: 2_000, health: healthy(port) });
    const s = await bind(step, sb.host);
    const before = await s.observe();
    expect(before).toMatchObject({ running: true, pid });
    await s.apply(before);
    // the workers were in its process group: they went with it
    expect(await waitFor(async () => (await pidsWith(sb.tag)).length === 0)).toBe(true);
    const after = await s.observe();
    expect(after).toEqual({ running: false });
    await s.undo(before, after);
    const back = await s.observe();
    expect(s.same(back, before)).toBe(true);
    expect((await get(port, "/health"))?.status).toBe(200);
    expect(await waitFor(async () => (await pidsWith(sb.tag)).length === 3)).toBe(true);
  });

  it("match: two unrelated matching processes is an error, and neither is touched", async () => {
    const a = await sb.spawnServer({ port });
    const b = await sb.spawnBystander();
    const result = await run(atom("stop", { steps: [stopProcess({ match: sb.tag })] }), {
      host: sb.host,
      lock: false,
    });
    expect(result.status).toBe("rolled-back");
    expect(result.error?.message).toContain("2 unrelated processes match");
    expect(await alive(a)).toBe(true);
    expect(await alive(b)).toBe(true);
  });

  it('env "keep" + secretEnv: undo restores the whole environment; the secret never reaches trail or errors', async () => {
    const secret = "tok-3f9a1c-very-secret";
    await sb.spawnServer({
      port,
      pidFile,
      env: { PATH, FOO: "bar baz", QUOTED: `it's "x" $(y)`, TOKEN: secret },
    });
    const trailDir = join(sb.dir, "trails");
    const step = stopProcess({
      pidFile,
      graceMs: 2_000,
      env: "keep",
      secretEnv: { TOKEN: secret },
      health: healthy(port),
    });
    const result = await run(atom("env", { steps: [step, failAfter(null)] }), {
      host: sb.host,
      lock: false,
      trail: fileTrail({ dir: trailDir }),
      backoffMs: 1,
    });
    expect(result.status, result.error?.message).toBe("rolled-back");
    expect(result.steps[0]).toMatchObject({ status: "undone", verified: true });
    expect(result.steps[0]?.before).toMatchObject({
      launch: {
        env: { PATH, FOO: "bar baz", QUOTED: `it's "x" $(y)` },
        secretEnv: ["TOKEN"],
        clearEnv: true,
      },
    });
    expect(await getJson(port, "/env?name=TOKEN")).toBe(secret);
    expect(await getJson(port, "/env?name=QUOTED")).toBe(`it's "x" $(y)`);
    // env -i: nothing of the deploying process's environment leaked into the restarted one
    expect(await getJson(port, "/env?name=HOME")).toBeNull();
    expect(await allText(trailDir)).not.toContain(secret);
    expect(JSON.stringify(result)).not.toContain(secret);
  });

  it('env "keep" refuses to stop a process whose secret-looking variables it could not restore', async () => {
    const secret = "pw-0123456789-abcdef";
    const pid = await sb.spawnServer({ port, pidFile, env: { PATH, DB_PASSWORD: secret } });
    const result = await run(atom("env", { steps: [stopProcess({ pidFile, env: "keep" })] }), {
      host: sb.host,
      lock: false,
    });
    expect(result.status).toBe("rolled-back");
    expect(result.steps[0]?.status).toBe("failed-unchanged");
    expect(result.error?.message).toContain("DB_PASSWORD");
    expect(JSON.stringify(result)).not.toContain(secret);
    expect(await alive(pid)).toBe(true);
  });

  it("refuses to stop a process whose command line holds a secret (undo would restart it with ***)", async () => {
    const secret = "argv-secret-0123456789";
    const pid = await sb.spawnServer({ port, pidFile, flags: [`--password=${secret}`] });
    const result = await run(
      atom("masked", { steps: [stopProcess({ pidFile, secretEnv: { UNUSED_SECRET: secret } })] }),
      { host: sb.host, lock: false },
    );
    expect(result.status).toBe("rolled-back");
    expect(result.steps[0]?.status).toBe("failed-unchanged");
    expect(result.error?.message).toContain("holds a secret value");
    expect(await alive(pid)).toBe(true);
  });

  it("without the secretEnv value (recover/undo in a new process) undo fails loudly and starts nothing", async () => {
    await sb.spawnServer({ port, pidFile, env: { PATH, TOKEN: "tok-0123456789" } });
    const s = await bind(
      stopProcess({ pidFile, graceMs: 2_000, secretEnv: { TOKEN: "tok-0123456789" } }),
      sb.host,
    );
    const before = await s.observe();
    await s.apply(before);
    const after = await s.observe();
    // the params as the trail holds them: the secret path is gone
    const fresh = await bind(stopProcess({ pidFile, graceMs: 2_000 }), sb.host);
    const fromTrail = { ...fresh.params, secretEnvNames: ["TOKEN"] };
    await expect(stopProcess.definition.undo(fresh.ctx, fromTrail, before, after)).rejects.toThrow(
      /value of secret variable TOKEN is not available/,
    );
    expect(await pidsWith(sb.tag)).toEqual([]);
  });

  it("undo restarts the process as its own user (not as the deploying root)", async () => {
    // the server runs as nobody: from a copy in the sandbox (the checkout may sit in a directory only
    // root can enter, e.g. a mktemp -d folder), with a node nobody can run
    const app = await reachableBy(65534, sb);
    await sb.spawnServer({ port, pidFile, uid: 65534, gid: 65534, argv: app.server(port), cwd: app.dir });
    expect(await getJson(port, "/uid")).toEqual([65534, 65534]);
    const step = stopProcess({ pidFile, graceMs: 2_000, health: healthy(port) });
    const result = await run(atom("uid", { steps: [step, failAfter(null)] }), {
      host: sb.host,
      lock: false,
      backoffMs: 1,
    });
    expect(result.status, result.error?.message).toBe("rolled-back");
    expect(result.steps[0]).toMatchObject({
      status: "undone",
      verified: true,
      before: { launch: { uid: 65534 } },
    });
    expect(await getJson(port, "/uid")).toEqual([65534, 65534]);
  });

  it("commands, cwd and log paths with spaces, quotes and shell syntax are restored literally", async () => {
    const cwd = join(sb.dir, HOSTILE_STRINGS.filter((s) => s && !s.includes("/")).join(" "));
    await mkdir(cwd);
    const log = join(cwd, `it's "the" $(log).log`);
    const hostilePid = join(cwd, "pid `file` $x.pid");
    await sb.spawnServer({
      port,
      pidFile: hostilePid,
      cwd,
      log,
      argv: [...sb.server(port), ...HOSTILE_STRINGS],
    });
    const step = stopProcess({ pidFile: hostilePid, graceMs: 2_000, health: healthy(port) });
    const s = await bind(step, sb.host);
    const before = await s.observe();
    expect(before).toMatchObject({ launch: { cwd, dir: cwd }, output: { stdout: log, stderr: log } });
    await s.apply(before);
    const after = await s.observe();
    await s.undo(before, after);
    expect(await getJson(port, "/argv")).toEqual([`--port=${port}`, `--tag=${sb.tag}`, ...HOSTILE_STRINGS]);
    expect(await getJson(port, "/cwd")).toBe(cwd);
    expect((await readFile(log, "utf8")).match(/listening on/g)?.length).toBe(2);
    expect(existsSync("/tmp/atomkit-pwned")).toBe(false);
    expect(s.same(await s.observe(), before)).toBe(true);
  });

  it("undo after the run: another process in its place (drift) is left alone, no second copy started", async () => {
    await sb.spawnServer({ port, pidFile, flags: ["--version=1"] });
    const trail = fileTrail({ dir: join(sb.dir, "trails") });
    const result = await run(atom("drift", { steps: [stopProcess({ pidFile, graceMs: 2_000 })] }), {
      host: sb.host,
      lock: false,
      trail,
    });
    expect(result.status).toBe("committed");
    const other = await sb.spawnServer({ port, pidFile, flags: ["--version=other"] });
    const err = await undoRun(trail, result.runId, { host: sb.host, lock: false, steps, backoffMs: 1 }).catch(
      (e: unknown) => e,
    );
    expect(err, String(err)).toMatchObject({ code: "ATOM_DRIFT" });
    expect(await pidsWith(sb.tag)).toEqual([other]);
  });

  it("a process that changed directory after it started is refused, before it is stopped, unless restart.cwd says where it starts", async () => {
    await mkdir(join(sb.dir, "public"));
    const pid = await sb.spawnServer({ port, pidFile, flags: ["--chdir=public"] });
    await waitFor(async () => (await getJson(port, "/cwd")) === join(sb.dir, "public"));
    const refused = await run(atom("chdir", { steps: [stopProcess({ pidFile, graceMs: 2_000 })] }), {
      host: sb.host,
      lock: false,
    });
    expect(refused.status).toBe("rolled-back");
    expect(refused.steps[0]?.status).toBe("failed-unchanged");
    expect(refused.error?.message).toMatch(/changed directory after it started[\s\S]*restart: \{ cwd \}/);
    expect(await alive(pid)).toBe(true);
    // told where it starts, undo restarts it from there (and it changes into public/ again itself)
    const step = stopProcess({ pidFile, graceMs: 2_000, restart: { cwd: sb.dir }, health: healthy(port) });
    const result = await run(atom("chdir", { steps: [step, failAfter(null)] }), {
      host: sb.host,
      lock: false,
      backoffMs: 1,
    });
    expect(result.status, result.error?.message).toBe("rolled-back");
    expect(result.steps[0]).toMatchObject({ status: "undone", verified: true });
    expect(await waitFor(async () => (await getJson(port, "/cwd")) === join(sb.dir, "public"))).toBe(true);
  });

  it("a process started without PWD (not by a shell): where it started is unknown, so it is refused", async () => {
    const pid = await sb.spawnServer({ port, pidFile, noPwd: true });
    const refused = await run(atom("nopwd", { steps: [stopProcess({ pidFile, graceMs: 2_000 })] }), {
      host: sb.host,
      lock: false,
    });
    expect(refused.steps[0]?.status).toBe("failed-unchanged");
    expect(refused.error?.message).toContain("nothing tells where it was started");
    expect(await alive(pid)).toBe(true);
  });

  it("a process started by process.start is restarted from its launch record, even after it changed directory", async () => {
    await mkdir(join(sb.dir, "public"));
    const started = await run(
      atom("start", {
        steps: [
          startProcess({
            command: sb.server(port, "--chdir=public"),
            cwd: sb.dir,
            env: { APP_MODE: "blue green" },
            pidFile,
            health: healthy(port),
          }),
        ],
      }),
      { host: sb.host, lock: false },
    );
    expect(started.status, started.error?.message).toBe("committed");
    await waitFor(async () => (await getJson(port, "/cwd")) === join(sb.dir, "public"));
    const result = await run(
      atom("stop", {
        steps: [stopProcess({ pidFile, graceMs: 2_000, health: healthy(port) }), failAfter(null)],
      }),
      { host: sb.host, lock: false, backoffMs: 1 },
    );
    expect(result.status, result.error?.message).toBe("rolled-back");
    expect(result.steps[0]).toMatchObject({
      status: "undone",
      verified: true,
      before: { recorded: true, launch: { dir: sb.dir, env: { APP_MODE: "blue green" } } },
    });
    expect(await getJson(port, "/env?name=APP_MODE")).toBe("blue green");
  });

  it('env "keep" is the default: the restarted process gets back every variable it had', async () => {
    await sb.spawnServer({ port, pidFile, env: { PATH, APP_PORT: String(port), MODE: "a b 'c'" } });
    const result = await run(
      atom("keep", {
        steps: [stopProcess({ pidFile, graceMs: 2_000, health: healthy(port) }), failAfter(null)],
      }),
      { host: sb.host, lock: false, backoffMs: 1 },
    );
    expect(result.status, result.error?.message).toBe("rolled-back");
    expect(await getJson(port, "/env?name=APP_PORT")).toBe(String(port));
    expect(await getJson(port, "/env?name=MODE")).toBe("a b 'c'");
  });

  it("a pid file that holds no pid is a HostError naming the file", async () => {
    await writeFile(pidFile, "not a pid\n");
    const s = await bind(stopProcess({ pidFile }), sb.host);
    const error = await s.observe().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(HostError);
    expect(error).toMatchObject({ reason: "OTHER", code: "ATOM_HOST", found: '"not a pid"' });
    expect((error as Error).message).toContain(`pid file ${pidFile} does not hold a pid`);
  });

  it("reports every invalid field at once, nested ones by their full path", async () => {
    const r = await validateParams(
      stopProcess({
        pidFile: "app.pid",
        graceMs: -1,
        env: ["OK", "not ok"],
        restart: { cwd: "rel", comand: ["x"] },
        health: { tcp: { port: 0 } },
      } as never),
    );
    expect(r.issues?.map((i) => i.path)).toEqual([
      "pidFile",
      "graceMs",
      "env.1",
      "health.tcp.port",
      "restart.cwd",
      "restart.comand",
    ]);
    expect(r.issues?.[1]?.message).toBe(
      "expected a whole number of milliseconds from 0 to 86400000, found -1",
    );
    expect(r.issues?.[5]?.message).toMatch(/did you mean "command"\?/);
    // a secret value of the wrong type is shown by its type only
    const secret = await validateParams(stopProcess({ pidFile, secretEnv: { TOKEN: 424242 } } as never));
    expect(secret.issues?.[0]?.message).toBe("expected a string, found a number");
  });

  it("refuses bad input before anything runs, naming the field", async () => {
    const cases: Array<[unknown, string]> = [
      [{}, "pidFile"],
      [{ pidFile, match: "x" }, "match"],
      [{ pidFile: "app.pid" }, "pidFile"],
      [{ match: "(" }, "match"],
      [{ pidFile, signal: "SIGFOO" }, "signal"],
      [{ pidFile, graceMs: -1 }, "graceMs"],
      [{ pidFile, env: "all" }, "env"],
      [{ pidFile, env: ["OK", "not ok"] }, "env.1"],
      [{ pidFile, secretEnv: { TOKEN: 42 } }, "secretEnv.TOKEN"],
      [{ pidFile, health: { logLine: "ready" } }, "logFile"],
      [{ pidFile, graceMS: 10 }, "graceMS"],
    ];
    for (const [params, path] of cases) {
      const r = await validateParams(stopProcess(params as never));
      expect(r.issues?.[0]?.path, JSON.stringify(params)).toBe(path);
    }
    const pid = await sb.spawnServer({ port, pidFile });
    await expect(
      run(atom("bad", { steps: [stopProcess({ pidFile, signal: "NOPE" })] }), { host: sb.host, lock: false }),
    ).rejects.toBeInstanceOf(ParamsError);
    expect(await alive(pid)).toBe(true);
  });
});
