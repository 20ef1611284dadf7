import { spawn } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import {
  AtomError,
  atom,
  defineStep,
  fileTrail,
  localHost,
  recover,
  registerSteps,
  run,
  undoRun,
} from "../src/index";
import { acquireLease, foldRun } from "../src/kit";
import { model, tempDir, testHost } from "./_helpers";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(() => cleanup());

describe("fileTrail", () => {
  it("writes one JSON-lines file per run: intent before result, params without secrets, errors with code and stack", async () => {
    const m = model();
    const trail = fileTrail({ dir: join(dir, "trails") });
    const result = await run(
      atom("rel", {
        steps: [
          m.kind({ id: "a", secret: "pa55word-x" }, { name: "a" }),
          m.kind({ id: "b", failApply: "after" }, { name: "b" }),
        ],
      }),
      { host: testHost(dir), trail, backoffMs: 0 },
    );
    expect(await readdir(join(dir, "trails"))).toEqual([`${result.runId}.jsonl`]);
    const records = await trail.readRun(result.runId);
    const start = records[0];
    expect(start).toMatchObject({ t: "run", atom: "rel", host: "local", mode: "run", pid: process.pid });
    expect(start?.t === "run" && start.steps[0]?.params).toEqual({ id: "a" });
    const statuses = records.filter((r) => r.t === "step").map((r) => `${r.step}:${r.status}`);
    expect(statuses).toEqual([
      "a:applying",
      "a:applied",
      "b:applying",
      "b:failed-changed",
      "b:undoing",
      "b:undone",
      "a:undoing",
      "a:undone",
    ]);
    const failed = records.find((r) => r.t === "step" && r.status === "failed-changed");
    expect(failed?.t === "step" && failed.error).toMatchObject({
      code: "ATOM_STEP_FAILED",
      stack: expect.stringContaining("Error"),
    });
    expect(records.at(-1)).toMatchObject({ t: "end", status: "rolled-back" });
    expect(await readFile(join(dir, "trails", `${result.runId}.jsonl`), "utf8")).not.toContain("pa55word-x");
    expect(foldRun(records)?.steps.map((s) => [s.name, s.status, s.verified])).toEqual([
      ["a", "undone", true],
      ["b", "undone", true],
    ]);
  });

  it("listRuns summarises runs oldest first, unfinished when there is no end record", async () => {
    const trail = fileTrail({ dir: join(dir, "trails") });
    const m = model();
    const r1 = await run(atom("one", { steps: [m.kind({ id: "a" }, { name: "a" })] }), {
      host: testHost(dir),
      trail,
    });
    await trail.append("zz-unfinished", [
      {
        t: "run",
        v: 2,
        runId: "zz-unfinished",
        atom: "two",
        host: "local",
        mode: "run",
        at: new Date(Date.now() + 1000).toISOString(),
        pid: 1,
        machine: "m",
        steps: [],
      },
    ]);
    const runs = await trail.listRuns();
    expect(runs.map((r) => [r.runId, r.atom, r.status])).toEqual([
      [r1.runId, "one", "committed"],
      ["zz-unfinished", "two", "unfinished"],
    ]);
    await expect(trail.readRun("../../etc/passwd")).rejects.toThrow(/invalid run id/);
  });
});

describe("undoRun", () => {
  it("rolls back a committed run newest first, verified, recorded as its own run linked to the original", async () => {
    const m = model();
    registerSteps(m.kind);
    const trail = fileTrail({ dir: join(dir, "trails") });
    const host = testHost(dir);
    const r = await run(
      atom("rel", { steps: [m.kind({ id: "a" }, { name: "a" }), m.kind({ id: "b" }, { name: "b" })] }),
      { host, trail },
    );
    expect([...m.world.values()]).toEqual([1, 1]);
    const u = await undoRun(trail, r.runId, { host, backoffMs: 0 });
    expect(u.status).toBe("rolled-back");
    expect(u.steps.map((s) => [s.name, s.status, s.verified])).toEqual([
      ["a", "undone", true],
      ["b", "undone", true],
    ]);
    expect(m.log).toEqual(["apply:a", "apply:b", "undo:b", "undo:a"]);
    const runs = await trail.listRuns();
    expect(runs.find((x) => x.runId === u.runId)).toMatchObject({
      mode: "undo",
      undoOf: r.runId,
      status: "rolled-back",
    });
    // a second undo of the same run is refused
    await expect(undoRun(trail, r.runId, { host })).rejects.toThrow(/already undone by run/);
  });

  it("refuses with ATOM_DRIFT before changing anything when someone changed the state since, unless forced", async () => {
    const m = model();
    const trail = fileTrail({ dir: join(dir, "trails") });
    const host = testHost(dir);
    const r = await run(
      atom("rel", { steps: [m.kind({ id: "a" }, { name: "a" }), m.kind({ id: "b" }, { name: "b" })] }),
      { host, trail },
    );
    m.world.set("a", 7); // another deploy touched step a's state
    const err = await undoRun(trail, r.runId, { host, steps: [m.kind] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ATOM_DRIFT", step: "a", expected: { v: 1 }, found: { v: 7 } });
    expect(m.world.get("b")).toBe(1); // nothing was undone
    expect((await trail.listRuns()).map((x) => x.status)).toEqual(["committed"]); // and no undo run opened
    const forced = await undoRun(trail, r.runId, { host, steps: [m.kind], force: true, backoffMs: 0 });
    expect(forced.status).toBe("rolled-back");
    expect([...m.world.values()]).toEqual([0, 0]);
  });

  it("tells drift from a later step of the same run changing what an earlier one observes", async () => {
    // like process.stop then process.start on one pid file: step b changes the state step a observes
    const world = { x: 0 };
    const setX = defineStep({
      kind: "shared.set",
      params: (p: { to: number }) => p,
      observe: async () => ({ x: world.x }),
      apply: async (_ctx, p) => {
        world.x = p.to;
      },
      undo: async (_ctx, _p, before) => {
        world.x = before.x;
      },
    });
    const trail = fileTrail({ dir: join(dir, "trails") });
    const host = testHost(dir);
    const r = await run(
      atom("rel", { steps: [setX({ to: 1 }, { name: "a" }), setX({ to: 2 }, { name: "b" })] }),
      { host, trail },
    );
    expect(r.status).toBe("committed");
    const u = await undoRun(trail, r.runId, { host, steps: [setX], backoffMs: 0 });
    expect(u.status, u.error?.message).toBe("rolled-back");
    expect(world.x).toBe(0);
    // and a real change by someone else is still refused
    const r2 = await run(
      atom("rel", { steps: [setX({ to: 1 }, { name: "a" }), setX({ to: 2 }, { name: "b" })] }),
      { host, trail },
    );
    world.x = 5;
    await expect(undoRun(trail, r2.runId, { host, steps: [setX] })).rejects.toMatchObject({
      code: "ATOM_DRIFT",
      expected: { x: 2 },
      found: { x: 5 },
    });
  });

  it("gives secret params back to rebuilt steps, and keeps them out of the undo run's trail", async () => {
    const seen: unknown[] = [];
    let n = 0;
    const login = defineStep({
      kind: "secret.login",
      params: (p: { user: string; token: string }) => p,
      secret: ["token"],
      observe: async () => ({ n }),
      apply: async () => {
        n++;
      },
      undo: async (_ctx, p) => {
        seen.push(p.token);
        n--;
      },
    });
    const trail = fileTrail({ dir: join(dir, "trails") });
    const host = testHost(dir);
    const r = await run(
      atom("rel", { steps: [login({ user: "u", token: "tok-123456" }, { name: "login" })] }),
      { host, trail },
    );
    const u = await undoRun(trail, r.runId, {
      host,
      steps: [login],
      secrets: { login: { token: "tok-123456" } },
    });
    expect(u.status).toBe("rolled-back");
    expect(seen).toEqual(["tok-123456"]);
    for (const f of await readdir(join(dir, "trails")))
      expect(await readFile(join(dir, "trails", f), "utf8")).not.toContain("tok-123456");
  });

  it("names the package to load when a step kind is not registered", async () => {
    const trail = fileTrail({ dir: join(dir, "trails") });
    const host = testHost(dir);
    const orphan = defineStep({
      kind: "orphan.thing",
      package: "atom-step-orphan",
      params: (p: null) => p,
      observe: async () => ({ n: 1 }),
      apply: async () => {},
      undo: async () => {},
    });
    let n = 0;
    const changing = defineStep({
      kind: "orphan.changing",
      params: (p: null) => p,
      observe: async () => ({ n }),
      apply: async () => {
        n++;
      },
      undo: async () => {},
    });
    const r = await run(atom("rel", { steps: [orphan(null), changing(null)] }), { host, trail });
    const err = await undoRun(trail, r.runId, { host }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AtomError);
    expect((err as AtomError).code).toBe("ATOM_UNKNOWN_KIND");
    expect((err as AtomError).message).toMatch(
      /orphan.changing.*not registered[\s\S]*import @atomkit\/step-orphan[\s\S]*in the deploy file[\s\S]*registerSteps/,
    );
  });
});

describe("recover", () => {
  it("a run that died after its last step is left committed unless asked to roll back", async () => {
    const m = model();
    const trail = fileTrail({ dir: join(dir, "trails") });
    const host = testHost(dir);
    const r = await run(atom("rel", { steps: [m.kind({ id: "a" }, { name: "a" })] }), { host, trail });
    // simulate the death: drop the end record
    const file = join(dir, "trails", `${r.runId}.jsonl`);
    const lines = (await readFile(file, "utf8")).trim().split("\n");
    await writeFile(file, `${lines.slice(0, -1).join("\n")}\n`);
    const [left] = await recover(trail, { host, steps: [m.kind] });
    expect(left).toMatchObject({ found: "died-before-commit", status: "committed" });
    expect(m.world.get("a")).toBe(1);
    await writeFile(file, `${lines.slice(0, -1).join("\n")}\n`);
    const [back] = await recover(trail, { host, steps: [m.kind], rollbackCommitted: true, backoffMs: 0 });
    expect(back).toMatchObject({ found: "died-before-commit", status: "rolled-back" });
    expect(m.world.get("a")).toBe(0);
  });

  it("refuses to recover a dead run when later runs left changes on the host, unless allowed", async () => {
    const m = model();
    const trail = fileTrail({ dir: join(dir, "trails") });
    const host = testHost(dir);
    const dead = await run(atom("rel", { steps: [m.kind({ id: "a" }, { name: "a" })] }), { host, trail });
    const file = join(dir, "trails", `${dead.runId}.jsonl`);
    const lines = (await readFile(file, "utf8")).trim().split("\n");
    await writeFile(file, `${lines.slice(0, -1).join("\n")}\n`); // it "died" before its end record
    await new Promise((r) => setTimeout(r, 5));
    // a library caller that skips the unfinished-run check (the CLI never does)
    const opts = { host, trail, refuseUnfinished: false };
    const failing = m.kind({ id: "c", failApply: "after" }, { name: "c" });
    const rolledBack = await run(
      atom("rel", { steps: [m.kind({ id: "c2" }, { name: "c2" }), failing] }),
      opts,
    );
    expect(rolledBack.status).toBe("rolled-back");
    // a rolled-back run is net zero: no reason to refuse
    await expect(recover(trail, { host, steps: [m.kind], runId: dead.runId })).resolves.toHaveLength(1);
    await writeFile(file, `${lines.slice(0, -1).join("\n")}\n`); // dead again, for the next case
    await run(atom("rel", { steps: [m.kind({ id: "b" }, { name: "b" })] }), opts);
    const err = await recover(trail, { host, steps: [m.kind] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ATOM_DRIFT" });
    expect(String((err as Error).message)).toMatch(/1 later run\(s\) left changes[\s\S]*--allow-later-runs/);
    const [forced] = await recover(trail, {
      host,
      steps: [m.kind],
      allowLaterRuns: true,
      rollbackCommitted: true,
      backoffMs: 0,
    });
    expect(forced?.status).toBe("rolled-back");
  });

  it("refuses a run that already ended, pointing to undo", async () => {
    const m = model();
    const trail = fileTrail({ dir: join(dir, "trails") });
    const r = await run(atom("rel", { steps: [m.kind({ id: "a" }, { name: "a" })] }), {
      host: testHost(dir),
      trail,
    });
    await expect(recover(trail, { host: testHost(dir), runId: r.runId })).rejects.toThrow(/atomkit undo/);
  });
});

describe("host locks across processes", () => {
  it("of two concurrent runs on one lock exactly one wins; the other fails with ATOM_LOCKED", async () => {
    const stateDir = join(dir, "state");
    for (let round = 0; round < 3; round++) {
      // whoever gets the lock holds it inside its step until the test opens the gate, so the two runs
      // overlap however slowly either process starts (no fixed sleep for the other one to fall into)
      const gate = join(dir, `gate-${round}`);
      const inside = join(dir, `inside-${round}`);
      const script = `
        import { existsSync, mkdirSync, writeFileSync } from "node:fs";
        import { atom, defineStep, localHost, run } from ${JSON.stringify(join(__dirname, "../dist/index.js"))};
        const wait = defineStep({ kind: "t.wait", params: (p) => p, observe: async () => null,
          apply: async () => {
            mkdirSync(${JSON.stringify(inside)}, { recursive: true });
            writeFileSync(${JSON.stringify(inside)} + "/" + process.pid, "");
            while (!existsSync(${JSON.stringify(gate)})) await new Promise((r) => setTimeout(r, 20));
          },
          undo: async () => {} });
        try {
          const r = await run(atom("a", { steps: [wait(null)] }), { host: localHost({ stateDir: ${JSON.stringify(stateDir)} }) });
          console.log(r.status);
        } catch (e) { console.log(e.code); }
      `;
      let closed = 0;
      const once = () =>
        new Promise<string>((resolve) => {
          const child = spawn(process.execPath, ["--input-type=module", "-e", script]);
          // a failed or timed-out round leaves no child waiting for its gate
          onTestFinished(() => {
            child.kill("SIGKILL");
          });
          let out = "";
          child.stdout.on("data", (d: Buffer) => {
            out += d;
          });
          child.on("close", () => {
            closed++;
            resolve(out.trim());
          });
        });
      const both = Promise.all([once(), once()]);
      // one was refused (it ended), or both got in (the bug this test is for): either way, let go
      const entered = async () => (await readdir(inside).catch(() => [])).length;
      while (closed === 0 && (await entered()) < 2) await new Promise((r) => setTimeout(r, 20));
      await writeFile(gate, "");
      expect((await both).sort()).toEqual(["ATOM_LOCKED", "committed"]);
    }
  });

  it("breaking a stale lease is compare-and-swap: a fresh lease that took its place survives", async () => {
    const base = localHost({ stateDir: join(dir, "state") });
    const path = join(dir, "state/locks/deploy.lock");
    const old = new Date(Date.now() - 120_000).toISOString();
    const stale = {
      name: "deploy",
      owner: "dead",
      pid: 1,
      machine: "gone",
      host: "local",
      startedAt: old,
      heartbeatAt: old,
      ttlMs: 1000,
      token: "stale-token",
    };
    await base.mkdir(join(dir, "state/locks"), { recursive: true });
    await base.writeFile(path, JSON.stringify(stale));
    const now = new Date().toISOString();
    const fresh = {
      ...stale,
      owner: "carol",
      startedAt: now,
      heartbeatAt: now,
      ttlMs: 60_000,
      token: "fresh-token",
    };
    // another breaker wins the race just before ours renames the file away
    const racing = {
      ...base,
      rename: async (from: string, to: string) => {
        if (from === path) await base.writeFile(path, JSON.stringify(fresh));
        return base.rename(from, to);
      },
    };
    const err = await acquireLease(racing, "deploy", { owner: "bob", breakStale: true }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "ATOM_LOCKED" });
    expect(String((err as Error).message)).toContain("carol");
    expect(JSON.parse(await readFile(path, "utf8")).token).toBe("fresh-token");
  });

  it("an unreadable lease file (a holder died mid-create) is stale after a grace, not a block forever", async () => {
    const host = localHost({ stateDir: join(dir, "state") });
    const path = join(dir, "state/locks/deploy.lock");
    await host.mkdir(join(dir, "state/locks"), { recursive: true });
    await host.writeFile(path, "");
    const { utimes } = await import("node:fs/promises");
    const past = new Date(Date.now() - 60_000);
    await utimes(path, past, past);
    const err = await host.lock("deploy", { owner: "bob" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ATOM_LOCKED", stale: true });
    expect(String((err as Error).message)).toContain("unreadable lease file");
    const lease = await host.lock("deploy", { owner: "bob", breakStale: true });
    expect(lease.info.owner).toBe("bob");
    await lease.release();
  });

  it("a lease whose heartbeat stopped is reported stale and taken over only when told", async () => {
    const host = localHost({ stateDir: join(dir, "state") });
    const lease = await host.lock("deploy", { owner: "crashed", ttlMs: 100 });
    // the holder dies without releasing: stop its heartbeat by making the lease look old
    await lease.release();
    const old = new Date(Date.now() - 10_000).toISOString();
    await host.writeFile(
      join(dir, "state/locks/deploy.lock"),
      JSON.stringify({ ...lease.info, heartbeatAt: old }),
    );
    const m = model();
    const err = await run(atom("r", { steps: [m.kind({ id: "a" }, { name: "a" })] }), { host }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "ATOM_LOCKED", stale: true });
    expect(String((err as Error).message)).toMatch(/stale[\s\S]*fix:.*breakStale/);
    const ok = await run(atom("r", { steps: [m.kind({ id: "a" }, { name: "a" })] }), {
      host,
      lock: { breakStale: true },
    });
    expect(ok.status).toBe("committed");
  });
});
