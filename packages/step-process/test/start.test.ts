import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  atom,
  defineStep,
  fileTrail,
  ParamsError,
  type RunEvent,
  run,
  undoRun,
  validateParams,
} from "@atomkit/core";
import { describeStepContract, HOSTILE_STRINGS } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type StartProcessState, startProcess, steps } from "../src/index";
import {
  alive,
  allText,
  bind,
  freePort,
  get,
  getJson,
  growingBudget,
  healthy,
  killTagged,
  NODE,
  PATIENCE_MS,
  pidsWith,
  type Sandbox,
  sandbox,
  waitFor,
} from "./helpers";

/** Fails after the step under test, so the engine rolls it back. */
const failAfter = defineStep({
  kind: "test.fail",
  params: (p: null) => p,
  observe: async () => null,
  apply: async () => {
    throw new Error("injected failure after the start");
  },
  undo: async () => {},
});

describeStepContract({
  name: "process.start (real processes on localHost)",
  idempotent: true,
  async setup() {
    const sb = await sandbox();
    const port = await freePort();
    const pidFile = join(sb.dir, "app.pid");
    const broken = join(sb.dir, "broken");
    return {
      host: sb.host,
      step: () =>
        startProcess({
          command: sb.server(port, `--unhealthy-if=${broken}`),
          cwd: sb.dir,
          pidFile,
          // generous when it should pass (a loaded CI box), short when it is sure to fail
          health: { ...healthy(port), timeoutMs: existsSync(broken) ? 1_000 : PATIENCE_MS },
          graceMs: 2_000,
        }),
      snapshot: async () => ({
        pidFile: existsSync(pidFile),
        answers: (await get(port, "/health")) !== null,
        processes: (await pidsWith(sb.tag)).length,
      }),
      // real partial failure: the process starts, then never passes its health check
      breakApply: () => writeFile(broken, ""),
      cleanup: sb.cleanup,
    };
  },
});

/** Stops the process a state names (by pid), and waits until it is gone. */
async function stopAll(state: StartProcessState) {
  if (!state.running) return;
  process.kill(state.pid, "SIGKILL");
  await waitFor(async () => !(await alive(state.pid)));
}

describe("process.start", () => {
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
  const once = (step: ReturnType<typeof startProcess>, onEvent?: (e: RunEvent) => void) =>
    run(atom("start", { steps: [step] }), { host: sb.host, lock: false, backoffMs: 1, onEvent });

  for (const withHealth of [true, false]) {
    it(`a process that crashes at once fails the step and leaves nothing (${withHealth ? "with" : "without"} health)`, async () => {
      const result = await once(
        startProcess({
          command: sb.server(port, "--crash"),
          cwd: sb.dir,
          pidFile,
          // without health: it must stay up this long, far longer than node takes to start and crash
          // on a loaded box (a crash ends the wait at once, so this costs nothing)
          ...(withHealth ? { health: healthy(port) } : { minUptimeMs: PATIENCE_MS }),
        }),
      );
      expect(result.status).toBe("rolled-back");
      expect(result.steps[0]?.status).toBe("failed-unchanged");
      expect(result.error?.message).toMatch(/exited (before it became healthy|right after it started)/);
      expect(result.error?.message).toContain("crashing at once, as asked");
      expect(existsSync(pidFile)).toBe(false);
      expect(await pidsWith(sb.tag)).toEqual([]);
    });
  }

  it("never healthy: times out, check sees the process left running, rollback stops exactly it", async () => {
    // the error quotes the last answer: a budget long enough for the server to have answered once
    const { result, events, ms } = await growingBudget(
      800,
      async (ms) => {
        const events: RunEvent[] = [];
        const result = await once(
          startProcess({
            command: sb.server(port, "--unhealthy"),
            cwd: sb.dir,
            pidFile,
            health: { http: { port, path: "/health" }, timeoutMs: ms, intervalMs: 50 },
            graceMs: 2_000,
          }),
          (e) => events.push(e),
        );
        return { result, events, ms };
      },
      ({ result }) => /HTTP \d{3}/.test(result.error?.message ?? ""),
    );
    expect(result.status).toBe("rolled-back");
    expect(events.find((e) => e.type === "step:failed")).toMatchObject({ status: "failed-changed" });
    expect(result.steps[0]).toMatchObject({ status: "undone", verified: true });
    expect(result.error?.message).toContain(`did not become healthy within ${ms} ms`);
    expect(result.error?.message).toContain("HTTP 503");
    expect(await pidsWith(sb.tag)).toEqual([]);
    expect(existsSync(pidFile)).toBe(false);
  });

  it("a step timeout while waiting for health is rolled back the same way", async () => {
    // the timeout must fall in the health wait, after the process started: grown until it does
    const { result } = await growingBudget(
      700,
      async (ms) => {
        const logs: string[] = [];
        const result = await run(
          atom("start", {
            steps: [
              startProcess(
                {
                  command: sb.server(port, "--unhealthy"),
                  cwd: sb.dir,
                  pidFile,
                  health: { http: { port, path: "/health" }, timeoutMs: 60 * ms, intervalMs: 50 },
                  graceMs: 2_000,
                },
                { timeoutMs: ms },
              ),
            ],
          }),
          {
            host: sb.host,
            lock: false,
            backoffMs: 1,
            onEvent: (e) => {
              if (e.type === "step:log") logs.push(e.message);
            },
          },
        );
        return { result, started: logs.some((l) => /^started pid/.test(l)) };
      },
      async ({ started }) => {
        // aborted while still launching: whatever it left is cleared before the longer attempt
        if (!started) await killTagged(sb.tag);
        return started;
      },
    );
    expect(result.status).toBe("rolled-back");
    expect(result.error?.code).toBe("ATOM_TIMEOUT");
    expect(result.steps[0]).toMatchObject({ status: "undone", verified: true });
    expect(await pidsWith(sb.tag)).toEqual([]);
  });

  it("a stale pid file naming a dead pid is replaced", async () => {
    const child = spawn("true");
    const deadPid = child.pid!;
    await new Promise((r) => child.once("exit", r));
    await writeFile(pidFile, `${deadPid}\n`);
    const step = startProcess({ command: sb.server(port), cwd: sb.dir, pidFile, health: healthy(port) });
    expect(await (await bind(step, sb.host)).observe()).toEqual({ running: false });
    const result = await once(step);
    expect(result.status, result.error?.message).toBe("committed");
    const pid = Number(await readFile(pidFile, "utf8"));
    expect(pid).not.toBe(deadPid);
    expect(await alive(pid)).toBe(true);
    expect((await get(port, "/health"))?.status).toBe(200);
  });

  it("a stale pid file naming a reused pid (a live process started after the file) is never touched", async () => {
    const bystander = await sb.spawnBystander();
    await writeFile(pidFile, `${bystander}\n`);
    const anHourAgo = new Date(Date.now() - 3_600_000);
    await utimes(pidFile, anHourAgo, anHourAgo);
    const logs: string[] = [];
    const s = await bind(
      startProcess({ command: sb.server(port), cwd: sb.dir, pidFile, health: healthy(port), graceMs: 2_000 }),
      sb.host,
      (m) => logs.push(m),
    );
    const before = await s.observe();
    expect(before).toEqual({ running: false });
    expect(logs.join("\n")).toContain("a reused pid");
    await s.apply(before);
    const after = await s.observe();
    expect(after).toMatchObject({ running: true });
    expect((after as { pid: number }).pid).not.toBe(bystander);
    await s.undo(before, after);
    expect(await s.observe()).toEqual({ running: false });
    expect(await alive(bystander)).toBe(true);
  });

  it("undo stops only the launch it started: another process in the pid file is never signalled", async () => {
    const s = await bind(
      startProcess({ command: sb.server(port), cwd: sb.dir, pidFile, graceMs: 100 }),
      sb.host,
    );
    const before = await s.observe();
    await s.apply(before);
    const after = await s.observe();
    expect(after).toMatchObject({ running: true, recorded: true, launch: { dir: sb.dir } });
    // the pid file now names a bystander (someone reused the file): its launch is not ours
    const bystander = await sb.spawnBystander();
    await stopAll(after);
    await writeFile(pidFile, `${bystander}\n`);
    await expect(s.undo(before, after)).rejects.toThrow(/another launch runs from the pid file/);
    expect(await alive(bystander)).toBe(true);
  });

  it("undo stops the launch it started under whatever pid it runs now (a later rollback restarted it)", async () => {
    const step = () =>
      startProcess({ command: sb.server(port), cwd: sb.dir, pidFile, health: healthy(port) });
    const s = await bind(step(), sb.host);
    const before = await s.observe();
    await s.apply(before);
    const after = await s.observe();
    const first = (after as { pid: number }).pid;
    // the same launch started again (as a rolled-back later deploy's undo of process.stop does)
    await stopAll(after);
    await s.apply({ running: false });
    const now = await s.observe();
    expect((now as { pid: number }).pid).not.toBe(first);
    expect(s.same(now, after)).toBe(true);
    await s.undo(before, after);
    expect(await pidsWith(sb.tag)).toEqual([]);
    expect(s.same(await s.observe(), before)).toBe(true);
  });

  it("refuses to start over another launch; does nothing when this very launch runs", async () => {
    // a process Atomkit did not start, even with the same command: its launch is unknown
    const other = await sb.spawnServer({ port, pidFile });
    const foreign = await once(
      startProcess({ command: sb.server(port), cwd: sb.dir, pidFile, health: healthy(port) }),
    );
    expect(foreign.status).toBe("rolled-back");
    expect(foreign.steps[0]?.status).toBe("failed-unchanged");
    expect(foreign.error?.message).toContain("names a running process of another launch");
    expect(foreign.error?.message).toContain("not started by Atomkit");
    expect(await alive(other)).toBe(true);
    process.kill(other, "SIGKILL");
    await waitFor(async () => !(await alive(other)));

    const params = { command: sb.server(port), cwd: sb.dir, pidFile, health: healthy(port) };
    const first = await once(startProcess(params));
    expect(first.status).toBe("committed");
    const pid = (first.steps[0]!.after as { pid: number }).pid;
    const again = await once(startProcess(params));
    expect(again.status).toBe("committed");
    expect(again.steps[0]?.changed).toBe(false);
    expect(await pidsWith(sb.tag)).toEqual([pid]);
    // the same command from another directory (another release) is another launch
    const elsewhere = join(sb.dir, "release-2");
    await mkdir(elsewhere);
    const moved = await once(startProcess({ ...params, cwd: elsewhere }));
    expect(moved.status).toBe("rolled-back");
    expect(moved.error?.message).toMatch(/another launch[\s\S]*directory/);
    expect(await pidsWith(sb.tag)).toEqual([pid]);
  });

  it("commands, env values and paths with spaces, quotes and shell syntax reach the process literally", async () => {
    const name = HOSTILE_STRINGS.filter((s) => s && !s.includes("/")).join(" ");
    const cwd = join(sb.dir, name);
    await mkdir(cwd);
    const hostilePid = join(cwd, `it's "app" $(x).pid`);
    const hostileLog = join(cwd, "log `x` $y; z.log");
    const env = { HOSTILE: HOSTILE_STRINGS.join("|") };
    const step = startProcess({
      command: [...sb.server(port), ...HOSTILE_STRINGS],
      cwd,
      env,
      pidFile: hostilePid,
      logFile: hostileLog,
      health: healthy(port),
      graceMs: 2_000,
    });
    const result = await once(step);
    expect(result.status, result.error?.message).toBe("committed");
    expect(await getJson(port, "/argv")).toEqual([`--port=${port}`, `--tag=${sb.tag}`, ...HOSTILE_STRINGS]);
    expect(await getJson(port, "/cwd")).toBe(cwd);
    expect(await getJson(port, "/env?name=HOSTILE")).toBe(env.HOSTILE);
    expect(await readFile(hostileLog, "utf8")).toContain(`listening on ${port}`);
    expect(Number(await readFile(hostilePid, "utf8"))).toBe((result.steps[0]!.after as { pid: number }).pid);
    expect(existsSync("/tmp/atomkit-pwned")).toBe(false);
    const s = await bind(step, sb.host);
    await s.undo(result.steps[0]?.before as StartProcessState, result.steps[0]?.after as StartProcessState);
    expect(await pidsWith(sb.tag)).toEqual([]);
    expect(existsSync(hostilePid)).toBe(false);
  });

  it("health by http (both forms of expect), tcp, exec and logLine", async () => {
    const probe = `require("net").connect(Number(process.argv[1]), "127.0.0.1").on("connect", () => process.exit(0)).on("error", () => process.exit(1))`;
    const checks = [
      // the older form: expect a number, body beside it
      { http: { port, path: "/health", expect: 200, body: "ok" } },
      { http: { port, path: "/health", expect: { status: [204, "2xx" as const], body: "ok" } } },
      { tcp: { port } },
      { exec: [NODE, "-e", probe, String(port)] },
      { logLine: `listening on ${port}$` },
    ];
    for (const check of checks) {
      const step = startProcess({
        command: sb.server(port, "--delay=150"),
        cwd: sb.dir,
        pidFile,
        health: { ...check, timeoutMs: PATIENCE_MS, intervalMs: 25 },
        graceMs: 2_000,
      });
      const result = await once(step);
      expect(result.status, `${Object.keys(check)[0]}: ${result.error?.message}`).toBe("committed");
      // healthy means it answers now, without any extra wait
      expect((await get(port, "/health"))?.status).toBe(200);
      const s = await bind(step, sb.host);
      await s.undo(result.steps[0]?.before as StartProcessState, result.steps[0]?.after as StartProcessState);
    }
  });

  it("logLine counts only output written after this start", async () => {
    const log = join(sb.dir, "app.log");
    await writeFile(log, `server: listening on ${port}\n`);
    const result = await once(
      startProcess({
        command: sb.server(port, "--crash"),
        cwd: sb.dir,
        pidFile,
        logFile: log,
        // the crash ends the wait: all the time a loaded box needs to start node and crash
        health: { logLine: `listening on ${port}`, timeoutMs: PATIENCE_MS, intervalMs: 25 },
      }),
    );
    expect(result.status).toBe("rolled-back");
    expect(result.error?.message).toContain("exited before it became healthy");
  });

  it("an env secret reaches the process but never the trail, the events or the errors", async () => {
    const secret = "s3cr3t-token-0123456789";
    const trailDir = join(sb.dir, "trails");
    const events: RunEvent[] = [];
    // long enough for the server to have printed its first line, which the error quotes
    const result = await growingBudget(
      600,
      (ms) =>
        run(
          atom("secret", {
            steps: [
              startProcess(
                {
                  command: sb.server(port, "--print-env=TOKEN", "--unhealthy"),
                  cwd: sb.dir,
                  env: { TOKEN: secret },
                  pidFile,
                  health: { http: { port, path: "/health" }, timeoutMs: ms, intervalMs: 25 },
                  graceMs: 2_000,
                },
                { secret: ["env.TOKEN"] },
              ),
            ],
          }),
          {
            host: sb.host,
            lock: false,
            trail: fileTrail({ dir: trailDir }),
            onEvent: (e) => events.push(e),
          },
        ),
      (r) => (r.error?.message ?? "").includes("TOKEN="),
    );
    expect(result.status).toBe("rolled-back");
    // the careless server printed it to its log, which the error quotes: masked there too
    expect(await readFile(join(sb.dir, "app.log"), "utf8")).toContain(secret);
    expect(result.error?.message).toContain("TOKEN=***");
    const errorText = JSON.stringify([result.error?.message, (result.error?.cause as Error)?.message]);
    expect(errorText).not.toContain(secret);
    expect(await allText(trailDir)).not.toContain(secret);
    expect(JSON.stringify(events)).not.toContain(secret);

    const ok = await run(
      atom("secret-ok", {
        steps: [
          startProcess(
            { command: sb.server(port), cwd: sb.dir, env: { TOKEN: secret }, pidFile, health: healthy(port) },
            { secret: ["env.TOKEN"] },
          ),
          failAfter(null),
        ],
      }),
      { host: sb.host, lock: false, trail: fileTrail({ dir: trailDir }), backoffMs: 1 },
    );
    expect(ok.status).toBe("rolled-back");
    expect(ok.steps[0]).toMatchObject({ status: "undone", verified: true });
    expect(await allText(trailDir)).not.toContain(secret);
  });

  it("undo after the run: the same launch restarted by hand is the same state; another launch is drift", async () => {
    const trail = fileTrail({ dir: join(sb.dir, "trails") });
    const step = startProcess({ command: sb.server(port), cwd: sb.dir, pidFile, health: healthy(port) });
    const result = await run(atom("drift", { steps: [step] }), { host: sb.host, lock: false, trail });
    expect(result.status).toBe("committed");
    const started = (result.steps[0]!.after as { pid: number }).pid;
    // someone restarts the service by hand with other flags: another launch
    process.kill(started, "SIGKILL");
    await waitFor(async () => !(await alive(started)));
    const replacement = await sb.spawnServer({ port, pidFile, flags: ["--version=hand"] });
    await expect(
      undoRun(trail, result.runId, { host: sb.host, lock: false, steps, backoffMs: 1 }),
    ).rejects.toMatchObject({ code: "ATOM_DRIFT", step: "process.start" });
    expect(await alive(replacement)).toBe(true);
    // the same command, directory and user restarted by hand serves the same: undo stops it, verified
    process.kill(replacement, "SIGKILL");
    await waitFor(async () => !(await alive(replacement)));
    const same = await sb.spawnServer({ port, pidFile });
    const undone = await undoRun(trail, result.runId, { host: sb.host, lock: false, steps, backoffMs: 1 });
    expect(undone.status, undone.error?.message).toBe("rolled-back");
    expect(await alive(same)).toBe(false);
  });

  it("health.http: the older expect: 200 and body are read as expect: { status, body }", async () => {
    const old = await bind(
      startProcess({ command: ["node"], pidFile, health: { http: { port, expect: 200, body: "ok" } } }),
      sb.host,
    );
    expect(old.params.health).toEqual({
      http: { port, path: "/", hostname: "127.0.0.1", expect: { status: 200, body: "ok" } },
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const r = await validateParams(
      startProcess({
        command: ["node"],
        pidFile,
        health: { http: { port, expect: { body: "a" }, body: "b" } },
      }),
    );
    expect(r.issues?.map((i) => [i.path, i.message])).toEqual([
      ["health.http.body", "expected the body text once, in expect.body; found it in body too"],
    ]);
  });

  it("reports every invalid field at once: a relative pidFile and cwd, a mistyped health.htp", async () => {
    const r = await validateParams(
      startProcess({
        command: ["node"],
        pidFile: "run/app.pid",
        cwd: "srv/app",
        health: { htp: { port } },
      } as never),
    );
    expect(r.issues?.map((i) => [i.path, i.message])).toEqual([
      ["cwd", 'expected an absolute path on the host, found "srv/app"'],
      ["pidFile", 'expected an absolute path on the host, found "run/app.pid"'],
      [
        "health.htp",
        'unknown param "htp"; did you mean "http"? (known: http, tcp, exec, logLine, timeoutMs, intervalMs)',
      ],
    ]);
    expect(r.issues?.every((i) => i.step === "process.start" && i.kind === "process.start")).toBe(true);
  });

  it("refuses bad input before anything runs, naming the field", async () => {
    const cases: Array<[unknown, string]> = [
      [{ command: "node server.js", pidFile }, "command"],
      [{ command: [], pidFile }, "command"],
      [{ command: ["node"], pidFile: "app.pid" }, "pidFile"],
      [{ command: ["node"], pidFile, cwd: "relative" }, "cwd"],
      [{ command: ["node"], pidFile, pidfile: pidFile }, "pidfile"],
      [{ command: ["node"], pidFile, env: { "A-B": "x" } }, "env.A-B"],
      [{ command: ["node"], pidFile, stopSignal: "SIGNOPE" }, "stopSignal"],
      [{ command: ["node"], pidFile, health: { tcp: { port }, http: { port } } }, "health"],
      [{ command: ["node"], pidFile, health: { http: { port, path: "/a b" } } }, "health.http.path"],
      [{ command: ["node"], pidFile, health: { http: { port: 70_000 } } }, "health.http.port"],
      [{ command: ["node"], pidFile, health: { logLine: "(" } }, "health.logLine"],
      [{ command: ["node"], pidFile, health: { exec: "true" } }, "health.exec"],
    ];
    for (const [params, path] of cases) {
      const r = await validateParams(startProcess(params as never));
      expect(r.issues?.[0]?.path, JSON.stringify(params)).toBe(path);
    }
    await expect(
      run(atom("bad", { steps: [startProcess({ command: sb.server(port), pidFile: "relative.pid" })] }), {
        host: sb.host,
        lock: false,
      }),
    ).rejects.toBeInstanceOf(ParamsError);
    expect(await pidsWith(sb.tag)).toEqual([]);
  });
});
