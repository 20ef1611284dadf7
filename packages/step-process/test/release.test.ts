// The seed release of DESIGN.md on the local host, end to end with real processes:
// stop old → swap `current` → start new → new never healthy → old process back, healthy, verified.
import { spawn } from "node:child_process";
import { copyFile, mkdir, readFile, readlink, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { atom, defineStep, fileTrail, type Host, recover, rollback, run, undoRun } from "@atomkit/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startProcess, steps, stopProcess } from "../src/index";
import {
  allText,
  freePort,
  get,
  getJson,
  NODE,
  PATIENCE_MS,
  pidsWith,
  type Sandbox,
  SERVER,
  sandbox,
  waitFor,
} from "./helpers";

/** Swaps a symlink by renaming a temporary link over it (rename(2) is atomic; unlink + symlink is not). */
const swap = async (host: Host, link: string, target: string) => {
  const tmp = `${link}.tmp-${process.pid}`;
  await host.symlink(target, tmp);
  await host.rename(tmp, link);
};
const swapLink = defineStep({
  kind: "test.symlink-swap",
  params: (p: { link: string; target: string }) => p,
  describe: (p) => `link ${p.link} → ${p.target}`,
  observe: async (ctx, p) => ({ target: await ctx.host.readlink(p.link) }),
  apply: (ctx, p) => swap(ctx.host, p.link, p.target),
  undo: (ctx, p, before) => swap(ctx.host, p.link, before.target),
});

describe("the seed release on the local host", () => {
  let sb: Sandbox;
  let port: number;
  let current: string;
  let pidFile: string;
  let logFile: string;
  /** The one command line both releases run; what `current` points at decides which code it is. */
  let command: string[];
  const secret = "release-token-0123456789";

  beforeEach(async () => {
    sb = await sandbox("atomkit-release-");
    port = await freePort();
    for (const [release, broken] of [
      ["1", false],
      ["2", true],
      ["3", false],
    ] as const) {
      const dir = join(sb.dir, "releases", release);
      await mkdir(dir, { recursive: true });
      await copyFile(SERVER, join(dir, "server.mjs"));
      await writeFile(join(dir, "VERSION"), release);
      // release 2 ships broken: its health endpoint fails
      if (broken) await writeFile(join(dir, "BROKEN"), "");
    }
    current = join(sb.dir, "current");
    await symlink(join(sb.dir, "releases", "1"), current);
    pidFile = join(sb.dir, "app.pid");
    logFile = join(sb.dir, "app.log");
    command = [NODE, "server.mjs", `--port=${port}`, `--tag=${sb.tag}`, "--unhealthy-if=BROKEN"];
    // release 1 runs, started by whatever started it (an init script): cwd through `current`
    await sb.spawnServer({
      port,
      pidFile,
      cwd: current,
      log: logFile,
      argv: command,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TOKEN: secret },
    });
    expect((await get(port, "/version"))?.body).toBe("1");
  });
  afterEach(async () => {
    await sb.cleanup();
  });

  const health = (timeoutMs: number) => ({ http: { port, path: "/health" }, timeoutMs, intervalMs: 50 });
  const release = (to: string) =>
    atom("release", {
      steps: [
        stopProcess(
          { pidFile, graceMs: 3_000, env: "keep", secretEnv: { TOKEN: secret }, health: health(PATIENCE_MS) },
          { name: "stop old" },
        ),
        swapLink({ link: current, target: join(sb.dir, "releases", to) }, { name: "swap current" }),
        startProcess(
          {
            command,
            cwd: current,
            env: { TOKEN: secret },
            pidFile,
            logFile,
            // release 2 never passes: keep that wait short; a healthy one gets time on a loaded box
            health: health(to === "2" ? 1_500 : PATIENCE_MS),
            graceMs: 3_000,
          },
          { name: "start new", secret: ["env.TOKEN"] },
        ),
      ],
    });

  it("a new release that never becomes healthy: rolled back, the old process back and healthy, verified", async () => {
    const trailDir = join(sb.dir, "trails");
    const result = await run(release("2"), {
      host: sb.host,
      trail: fileTrail({ dir: trailDir }),
      lock: false,
      backoffMs: 1,
    });
    expect(result.status, result.error?.message).toBe("rolled-back");
    expect(result.reason?.message).toContain("did not become healthy");
    expect(result.steps.map((s) => [s.name, s.status, s.verified])).toEqual([
      ["stop old", "undone", true],
      ["swap current", "undone", true],
      ["start new", "undone", true],
    ]);
    // the old process: release 1's code, through the same command line, healthy, with its secret back
    expect(await readlink(current)).toBe(join(sb.dir, "releases", "1"));
    expect((await get(port, "/version"))?.body).toBe("1");
    expect((await get(port, "/health"))?.status).toBe(200);
    expect(await getJson(port, "/cwd")).toBe(join(sb.dir, "releases", "1"));
    expect(await getJson(port, "/env?name=TOKEN")).toBe(secret);
    const pid = Number(await readFile(pidFile, "utf8"));
    expect(await pidsWith(sb.tag)).toEqual([pid]);
    expect(await allText(trailDir)).not.toContain(secret);

    // and a healthy release commits: release 3 runs, the old process is gone
    const ok = await run(release("3"), { host: sb.host, lock: false });
    expect(ok.status, ok.error?.message).toBe("committed");
    expect((await get(port, "/version"))?.body).toBe("3");
    expect(await pidsWith(sb.tag)).toEqual([Number(await readFile(pidFile, "utf8"))]);
  });

  it("the deploying process dies half-way (SIGKILL): recover in a new process puts the old one back", async () => {
    const trailDir = join(sb.dir, "trails");
    const cfg = {
      stateDir: join(sb.dir, ".state"),
      trailDir,
      stop: { pidFile, graceMs: 3_000, env: "keep", health: health(PATIENCE_MS) },
      swap: { link: current, target: join(sb.dir, "releases", "2") },
      // a long health timeout: the child is still waiting when it is killed
      start: { command, cwd: current, pidFile, logFile, health: health(10 * PATIENCE_MS), graceMs: 3_000 },
    };
    // without secretEnv: its values never reach the trail, so a new process could not restore TOKEN
    const old = Number(await readFile(pidFile, "utf8"));
    process.kill(old, "SIGKILL");
    await waitFor(async () => (await get(port, "/health")) === null);
    await sb.spawnServer({
      port,
      pidFile,
      cwd: current,
      log: logFile,
      argv: command,
      env: { PATH: "/usr/bin:/bin" },
    });

    const child = spawn(
      NODE,
      [fileURLToPath(new URL("./fixtures/release-child.mjs", import.meta.url)), JSON.stringify(cfg)],
      {
        stdio: "ignore",
      },
    );
    try {
      // wait until release 2's process runs (and fails its health check), then kill the deployer
      const started = await waitFor(async () => {
        const r = await get(port, "/version");
        return r?.body === "2";
      });
      expect(started).toBe(true);
    } finally {
      child.kill("SIGKILL");
    }
    await new Promise((r) => child.once("exit", r));
    expect((await get(port, "/version"))?.body).toBe("2");

    const [result] = await recover(fileTrail({ dir: trailDir }), {
      host: sb.host,
      steps: [...steps, swapLink],
      lock: false,
      backoffMs: 1,
    });
    expect(result?.status, result?.error?.message).toBe("rolled-back");
    expect(result?.found).toBe("died-while-applying");
    expect(result?.steps.map((s) => [s.name, s.status])).toEqual([
      ["process.stop", "undone"],
      ["test.symlink-swap", "undone"],
      ["process.start", "undone"],
    ]);
    expect(await readlink(current)).toBe(join(sb.dir, "releases", "1"));
    expect((await get(port, "/version"))?.body).toBe("1");
    expect((await get(port, "/health"))?.status).toBe(200);
    expect(await pidsWith(sb.tag)).toEqual([Number(await readFile(pidFile, "utf8"))]);
  });
});

// The field walkthrough of issue 11: across runs, as deploys live. Release 1, 2 healthy; 3 broken.
describe("across runs: v1 → v2 → failing v3 → rollback to v1, with the environment kept", () => {
  let sb: Sandbox;
  let port: number;
  const secret = "across-token-0123456789";

  beforeEach(async () => {
    sb = await sandbox("atomkit-across-");
    port = await freePort();
    for (const [release, broken] of [
      ["1", false],
      ["2", false],
      ["3", true],
    ] as const) {
      const dir = join(sb.dir, "releases", release);
      await mkdir(dir, { recursive: true });
      await copyFile(SERVER, join(dir, "server.mjs"));
      await writeFile(join(dir, "VERSION"), release);
      if (broken) await writeFile(join(dir, "BROKEN"), "");
    }
    await symlink(join(sb.dir, "releases", "1"), join(sb.dir, "current"));
  });
  afterEach(async () => {
    await sb.cleanup();
  });

  const release = (version: string) => {
    const pidFile = join(sb.dir, "app.pid");
    const health = {
      http: { port, path: "/health" },
      timeoutMs: version === "3" ? 1_500 : PATIENCE_MS,
      intervalMs: 50,
    };
    return atom("release", {
      steps: [
        // default env: "keep"; a process.start launch is restarted from its record
        stopProcess(
          {
            pidFile,
            graceMs: 3_000,
            secretEnv: { TOKEN: secret },
            health: { ...health, timeoutMs: PATIENCE_MS },
          },
          { name: "stop" },
        ),
        swapLink(
          { link: join(sb.dir, "current"), target: join(sb.dir, "releases", version) },
          { name: "link" },
        ),
        startProcess(
          {
            // the app changes into a directory of its own after it started, as busybox httpd -h does
            command: [NODE, "server.mjs", `--port=${port}`, `--tag=${sb.tag}`, "--unhealthy-if=BROKEN"],
            cwd: join(sb.dir, "current"),
            env: { TOKEN: secret, APP_PORT: String(port) },
            pidFile,
            health,
            graceMs: 3_000,
          },
          { name: "start", secret: ["env.TOKEN"] },
        ),
      ],
    });
  };

  it("every rollback verified, no drift, no force; v1 serves with its environment; nothing earlier is refused", async () => {
    const trailDir = join(sb.dir, "trails");
    const trail = fileTrail({ dir: trailDir });
    const opts = { host: sb.host, trail, lock: false as const, backoffMs: 1 };
    const deploy = (v: string) => run(release(v), { ...opts, meta: { vars: { version: v } } });
    const serving = async () => ({
      version: (await get(port, "/version"))?.body,
      token: await getJson(port, "/env?name=TOKEN"),
      appPort: await getJson(port, "/env?name=APP_PORT"),
      processes: (await pidsWith(sb.tag)).length,
    });
    const back = {
      host: () => sb.host,
      lock: false as const,
      backoffMs: 1,
      // the deploy file: the atom rebuilt from the vars the run recorded, secrets included
      atom: (view: { run: { meta?: unknown } }) =>
        release((view.run.meta as { vars: { version: string } }).vars.version),
    };

    expect((await deploy("1")).status).toBe("committed");
    const v2 = await deploy("2");
    expect(v2.status, v2.error?.message).toBe("committed");
    expect(await serving()).toEqual({ version: "2", token: secret, appPort: String(port), processes: 1 });
    const v3 = await deploy("3");
    expect(v3.status, v3.error?.message).toBe("rolled-back");
    expect(await serving()).toEqual({ version: "2", token: secret, appPort: String(port), processes: 1 });

    // the rolled-back v3 restarted v2 under a new pid: the same launch, so no drift
    const back1 = await rollback(trail, [sb.host.name], { ...back, atomName: "release" });
    expect(
      back1.status,
      JSON.stringify(back1.hosts[0]?.error?.message ?? back1.hosts[0]?.undo?.error?.message),
    ).toBe("rolled-back");
    expect(back1.hosts[0]?.undo?.steps.map((s) => [s.name, s.status, s.verified])).toEqual([
      ["stop", "undone", true],
      ["link", "undone", true],
      ["start", "undone", true],
    ]);
    expect(await serving()).toEqual({ version: "1", token: secret, appPort: String(port), processes: 1 });
    expect(await getJson(port, "/cwd")).toBe(join(sb.dir, "releases", "1"));

    // nothing earlier than v1: refused, explained, nothing changed
    await expect(rollback(trail, [sb.host.name], { ...back, atomName: "release" })).rejects.toThrow(
      /nothing earlier to go back to/,
    );
    expect(await serving()).toEqual({ version: "1", token: secret, appPort: String(port), processes: 1 });

    // forward again, and undo that run
    const again = await deploy("2");
    expect(again.status, again.error?.message).toBe("committed");
    const undone = await undoRun(trail, again.runId, { ...back, host: sb.host });
    expect(undone.status, undone.error?.message).toBe("rolled-back");
    expect(await serving()).toEqual({ version: "1", token: secret, appPort: String(port), processes: 1 });
    expect(await allText(trailDir)).not.toContain(secret);
  });

  it("an atom without a stop step never commits while the old release serves", async () => {
    const pidFile = join(sb.dir, "app.pid");
    const noStop = (version: string) =>
      atom("release", {
        steps: [
          swapLink(
            { link: join(sb.dir, "current"), target: join(sb.dir, "releases", version) },
            { name: "link" },
          ),
          startProcess(
            {
              command: [NODE, "server.mjs", `--port=${port}`, `--tag=${sb.tag}`],
              cwd: join(sb.dir, "current"),
              pidFile,
              health: { http: { port, path: "/health" }, timeoutMs: PATIENCE_MS, intervalMs: 50 },
            },
            { name: "start" },
          ),
        ],
      });
    expect((await run(noStop("1"), { host: sb.host, lock: false })).status).toBe("committed");
    const r = await run(noStop("2"), { host: sb.host, lock: false, backoffMs: 1 });
    expect(r.status).toBe("rolled-back");
    expect(r.error?.message).toMatch(/another launch[\s\S]*releases\/1 \(wanted .*releases\/2\)/);
    expect((await get(port, "/version"))?.body).toBe("1");
  });
});
