import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  AtomError,
  atom,
  DriftError,
  defineStep,
  fileTrail,
  isAtomError,
  memoryTrail,
  ParamsError,
  type RunEvent,
  run,
} from "../src/index";
import { model, tempDir, testHost } from "./_helpers";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(() => cleanup());

const opts = () => ({ host: testHost(dir), backoffMs: 0, abortGraceMs: 50 });

describe("run: forward", () => {
  it("commits, observing before and after each step, in pre → steps → post order", async () => {
    const m = model();
    const events: RunEvent[] = [];
    const result = await run(
      atom("release", {
        pre: [m.kind({ id: "drain" }, { name: "drain" })],
        steps: [m.kind({ id: "a" }, { name: "a" }), m.kind({ id: "b" }, { name: "b" })],
        post: [m.kind({ id: "undrain" }, { name: "undrain" })],
      }),
      { ...opts(), onEvent: (e) => events.push(e) },
    );
    expect(result.status).toBe("committed");
    expect(m.log).toEqual(["apply:drain", "apply:a", "apply:b", "apply:undrain"]);
    expect(result.steps.map((s) => [s.name, s.phase, s.status, s.before, s.after, s.changed])).toEqual([
      ["drain", "pre", "applied", { v: 0 }, { v: 1 }, true],
      ["a", "steps", "applied", { v: 0 }, { v: 1 }, true],
      ["b", "steps", "applied", { v: 0 }, { v: 1 }, true],
      ["undrain", "post", "applied", { v: 0 }, { v: 1 }, true],
    ]);
    expect(events[0]).toMatchObject({ type: "run:start", atom: "release", host: "local" });
    expect(events.at(-1)).toMatchObject({ type: "run:end", status: "committed" });
    expect(events.filter((e) => e.type === "step:applied")).toHaveLength(4);
  });

  it("validates every step's params first (zod and function validators) and runs nothing when one is bad", async () => {
    const m = model();
    const zodKind = defineStep({
      kind: "test.zod",
      params: z.object({ port: z.number().int().min(1).max(65535) }),
      observe: async () => null,
      apply: async () => {},
      undo: async () => {},
    });
    const err = await run(
      atom("bad", {
        steps: [
          m.kind({ id: "a" }, { name: "a" }),
          zodKind({ port: 70000 } as never, { name: "listen" }),
          m.kind({ id: "" }, { name: "c" }),
        ],
      }),
      opts(),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ParamsError);
    const pe = err as ParamsError;
    expect(pe.code).toBe("ATOM_PARAMS_INVALID");
    expect(pe.issues.map((i) => [i.step, i.path])).toEqual([
      ["listen", "port"],
      ["c", "id"],
    ]);
    expect(pe.message).toContain('step "listen" (test.zod) field "port"');
    expect(pe.message).toContain('atom "bad"');
    expect(m.log).toEqual([]);
  });

  it("refuses duplicate step names and non-steps when the atom is built", () => {
    const m = model();
    expect(() => atom("dup", { steps: [m.kind({ id: "a" }), m.kind({ id: "b" })] })).toThrow(
      /two steps are named "model.bump"/,
    );
    expect(() => atom("bad name!", { steps: [m.kind({ id: "a" })] })).toThrow(AtomError);
    expect(() => atom("empty", { steps: [] })).toThrow(/no steps/);
    expect(() =>
      defineStep({
        kind: "NoDot",
        params: (p: unknown) => p,
        observe: async () => 1,
        apply: async () => {},
        undo: async () => {},
      }),
    ).toThrow(/invalid step kind/);
  });

  it("check: a step failing before changing anything is failed-unchanged and never undone", async () => {
    const m = model();
    const result = await run(
      atom("r", {
        steps: [m.kind({ id: "a" }, { name: "a" }), m.kind({ id: "b", failApply: "before" }, { name: "b" })],
      }),
      opts(),
    );
    expect(result.status).toBe("rolled-back");
    expect(result.steps.map((s) => s.status)).toEqual(["undone", "failed-unchanged"]);
    expect(m.log).toEqual(["apply:a", "undo:a"]);
    expect(result.error?.code).toBe("ATOM_STEP_FAILED");
    expect(result.error?.message).toMatch(
      /step "b" \(model.bump\), apply: apply failed: apply of b failed before/,
    );
  });

  it("check: a step failing after a partial change is failed-changed and undone first", async () => {
    const m = model();
    const result = await run(
      atom("r", {
        steps: [m.kind({ id: "a" }, { name: "a" }), m.kind({ id: "b", failApply: "after" }, { name: "b" })],
      }),
      opts(),
    );
    expect(result.status).toBe("rolled-back");
    expect(result.steps.map((s) => [s.status, s.verified])).toEqual([
      ["undone", true],
      ["undone", true],
    ]);
    expect(m.log).toEqual(["apply:a", "apply:b", "undo:b", "undo:a"]);
    expect([...m.world.values()]).toEqual([0, 0]);
  });

  it("retries apply only when check proves nothing changed", async () => {
    let calls = 0;
    const world = { v: 0 };
    const flaky = defineStep({
      kind: "test.flaky",
      params: (p: null) => p,
      observe: async () => ({ ...world }),
      apply: async () => {
        calls++;
        if (calls < 3) throw new Error("busy");
        world.v = 1;
      },
      undo: async () => {
        world.v = 0;
      },
    });
    const result = await run(atom("r", { steps: [flaky(null, { retries: 2 })] }), opts());
    expect(result.status).toBe("committed");
    expect(result.steps[0]?.attempts).toBe(3);
  });

  it("a timeout aborts the step's signal, check runs, and the run rolls back", async () => {
    const m = model();
    const result = await run(
      atom("r", {
        steps: [
          m.kind({ id: "a" }, { name: "a" }),
          m.kind({ id: "slow", hangApply: true }, { name: "slow", timeoutMs: 50 }),
        ],
      }),
      opts(),
    );
    expect(result.status).toBe("rolled-back");
    expect(result.error?.code).toBe("ATOM_TIMEOUT");
    expect(result.steps[1]?.status).toBe("undone");
    expect([...m.world.values()]).toEqual([0, 0]);
  });

  it("an abort (Ctrl-C) stops the current step and rolls back everything done", async () => {
    const m = model();
    const ac = new AbortController();
    const events: string[] = [];
    const result = await run(
      atom("r", {
        steps: [
          m.kind({ id: "a" }, { name: "a" }),
          m.kind({ id: "hang", hangApply: true }, { name: "hang" }),
          m.kind({ id: "c" }, { name: "c" }),
        ],
      }),
      {
        ...opts(),
        signal: ac.signal,
        onEvent: (e) => {
          events.push(e.type);
          if (e.type === "step:start" && e.step === "hang") setTimeout(() => ac.abort(), 20);
        },
      },
    );
    expect(result.status).toBe("rolled-back");
    expect(result.error?.code).toBe("ATOM_ABORTED");
    expect(result.steps.map((s) => s.status)).toEqual(["undone", "undone", "pending"]);
    expect(m.log).toEqual(["apply:a", "apply:hang", "undo:hang", "undo:a"]);
  });

  it("an already-aborted signal runs nothing and reports ATOM_ABORTED", async () => {
    const m = model();
    const result = await run(atom("r", { steps: [m.kind({ id: "a" }, { name: "a" })] }), {
      ...opts(),
      signal: AbortSignal.abort(),
    });
    expect(result.status).toBe("rolled-back");
    expect(result.error?.code).toBe("ATOM_ABORTED");
    expect(m.log).toEqual([]);
  });
});

describe("run: rollback", () => {
  it("retries a failing undo with backoff, then verifies", async () => {
    const m = model();
    const result = await run(
      atom("r", {
        steps: [
          m.kind({ id: "a", failUndo: 2 }, { name: "a" }),
          m.kind({ id: "b", failApply: "before" }, { name: "b" }),
        ],
      }),
      opts(),
    );
    expect(result.status).toBe("rolled-back");
    expect(m.undoTries.get("a")).toBe(3);
    expect(result.steps[0]).toMatchObject({ status: "undone", verified: true });
  });

  it("an undo that keeps failing stops the rollback: rollback-failed, loud, listing what is still applied", async () => {
    const m = model();
    const result = await run(
      atom("r", {
        steps: [
          m.kind({ id: "a" }, { name: "a" }),
          m.kind({ id: "b", failUndo: 99 }, { name: "b" }),
          m.kind({ id: "c" }, { name: "c" }),
          m.kind({ id: "d", failApply: "before" }, { name: "d" }),
        ],
      }),
      opts(),
    );
    expect(result.status).toBe("rollback-failed");
    expect(result.stillApplied).toEqual(["a", "b"]);
    expect(result.error?.code).toBe("ATOM_ROLLBACK_FAILED");
    expect(result.error?.message).toContain('Still applied: "a", "b"');
    expect(result.reason?.step).toBe("d");
    expect(m.world.get("a")).toBe(1);
    expect(m.world.get("b")).toBe(1);
    expect(m.world.get("c")).toBe(0);
    expect(m.undoTries.get("b")).toBe(3); // 1 + undoRetries (2)
  });

  it("verify: an undo that returns without restoring is caught", async () => {
    const m = model();
    const result = await run(
      atom("r", {
        steps: [
          m.kind({ id: "a", lyingUndo: true }, { name: "a" }),
          m.kind({ id: "b", failApply: "before" }, { name: "b" }),
        ],
      }),
      opts(),
    );
    expect(result.status).toBe("rollback-failed");
    expect(result.steps[0]?.status).toBe("undo-failed");
    expect(result.steps[0]?.undoError?.code).toBe("ATOM_VERIFY_FAILED");
    expect(result.steps[0]?.undoError?.message).toMatch(/expected: \{"v":0\}\n\s+found:\s+\{"v":1\}/);
  });

  it("drift: state changed by someone else stops the rollback before undo, unless forced", async () => {
    for (const force of [false, true]) {
      const m = model();
      const meddler = defineStep({
        kind: "test.meddle",
        params: (p: null) => p,
        observe: async () => null,
        apply: async () => {
          m.world.set("a", 42); // someone else changes a's state mid-run
          throw new Error("fail after meddling");
        },
        undo: async () => {},
      });
      const result = await run(
        atom("r", { steps: [m.kind({ id: "a" }, { name: "a" }), meddler(null, { name: "m" })] }),
        {
          ...opts(),
          force,
        },
      );
      if (!force) {
        expect(result.status).toBe("rollback-failed");
        expect(result.steps[0]?.status).toBe("drift");
        const drift = result.steps[0]?.undoError;
        expect(drift).toBeInstanceOf(DriftError);
        expect(drift?.expected).toEqual({ v: 1 });
        expect(drift?.found).toEqual({ v: 42 });
        expect(m.world.get("a")).toBe(42);
        expect(result.stillApplied).toEqual(["a"]);
      } else {
        expect(result.status).toBe("rolled-back");
        expect(m.world.get("a")).toBe(0);
      }
    }
  });

  it("a step that changed nothing is never undone", async () => {
    const noop = defineStep({
      kind: "test.noop",
      params: (p: null) => p,
      observe: async () => "same",
      apply: async () => {},
      undo: async () => {
        throw new Error("must not be called");
      },
    });
    const m = model();
    const result = await run(
      atom("r", {
        steps: [noop(null, { name: "n" }), m.kind({ id: "b", failApply: "before" }, { name: "b" })],
      }),
      opts(),
    );
    expect(result.status).toBe("rolled-back");
    expect(result.steps[0]).toMatchObject({ status: "applied", changed: false });
  });
});

describe("run: trail, secrets, errors", () => {
  it("secret params never reach the trail, events or error messages", async () => {
    const m = model();
    const trail = fileTrail({ dir: `${dir}/trails` });
    const events: RunEvent[] = [];
    const secret = "hunter2-s3cr3t";
    const result = await run(
      atom("r", {
        steps: [
          m.kind({ id: "a", secret }, { name: "a" }),
          m.kind({ id: "b", failApply: "after", secret }, { name: "b" }),
        ],
      }),
      { ...opts(), trail, onEvent: (e) => events.push(e) },
    );
    expect(result.status).toBe("rolled-back");
    const { readFile, readdir } = await import("node:fs/promises");
    const files = await readdir(`${dir}/trails`);
    const text = (await Promise.all(files.map((f) => readFile(`${dir}/trails/${f}`, "utf8")))).join("");
    expect(text).toContain("failed after changing ***");
    expect(text).not.toContain(secret);
    expect(JSON.stringify(events)).not.toContain(secret);
    expect(result.error?.message).not.toContain(secret);
  });

  it("a provider's own AtomError quoting a secret is masked in the result and the rollback error", async () => {
    const secret = "pw-0123456789";
    const leaky = defineStep({
      kind: "test.leaky",
      params: (p: { password: string }) => p,
      secret: ["password"],
      observe: async () => null,
      apply: async (ctx, p) => {
        throw new AtomError("ATOM_STEP_FAILED", `login with ${p.password} refused`, {
          step: ctx.step,
          host: ctx.host.name,
          found: p.password,
        });
      },
      undo: async () => {},
    });
    const result = await run(atom("r", { steps: [leaky({ password: secret }, { name: "login" })] }), opts());
    expect(result.status).toBe("rolled-back");
    expect(result.error?.message).toContain("login with *** refused");
    expect(
      JSON.stringify({ m: result.error?.message, f: result.error?.found, s: result.steps }),
    ).not.toContain(secret);
  });

  it("a same() that throws is treated as 'different', never escaping the engine", async () => {
    let v = 0;
    const odd = defineStep({
      kind: "test.odd",
      params: (p: null) => p,
      observe: async () => ({ v }),
      same: () => {
        throw new Error("broken same");
      },
      apply: async () => {
        v = 1;
        throw new Error("apply failed");
      },
      undo: async () => {
        v = 0;
      },
    });
    const result = await run(atom("r", { steps: [odd(null, { name: "odd" })] }), opts());
    // check says "changed" (safe: undo runs); verify cannot confirm, so the rollback is reported failed
    expect(result.status).toBe("rollback-failed");
    expect(result.steps[0]?.status).toBe("drift");
  });

  it("a run that loses its lock mid-step does not roll back over the new holder: it is left for recover", async () => {
    const m = model();
    const trail = memoryTrail();
    const { rm } = await import("node:fs/promises");
    let breaking: ReturnType<typeof setInterval> | undefined;
    const result = await run(
      atom("r", {
        steps: [
          m.kind({ id: "a" }, { name: "a" }),
          m.kind({ id: "hang", hangApply: true }, { name: "hang" }),
        ],
      }),
      {
        ...opts(),
        trail,
        lock: { ttlMs: 150 },
        onEvent: (e) => {
          // someone breaks our lease while "hang" runs; the heartbeat notices within ttl/3. Removed
          // again and again until the run ends: a heartbeat that read the lease just before one removal
          // writes it back (on a loaded box that window is wide), the next removal is then noticed
          if (e.type === "step:start" && e.step === "hang") {
            breaking = setInterval(() => void rm(`${dir}/.state/locks/deploy.lock`, { force: true }), 20);
          }
        },
      },
    ).finally(() => clearInterval(breaking));
    expect(result.status).toBe("rollback-failed");
    expect(result.error?.code).toBe("ATOM_LOCKED");
    expect(result.stillApplied).toEqual(["a", "hang"]);
    expect(m.log).toEqual(["apply:a", "apply:hang"]);
    expect((await trail.listRuns()).map((r) => r.status)).toEqual(["unfinished"]);
  });

  it("an undo that times out and ignores its signal is not retried on top of itself", async () => {
    let undos = 0;
    let v = 0;
    const stuck = defineStep({
      kind: "test.stuck",
      params: (p: null) => p,
      observe: async () => ({ v }),
      apply: async () => {
        v = 1;
      },
      undo: async () => {
        undos++;
        await new Promise((r) => setTimeout(r, 400)); // ignores ctx.signal
      },
    });
    const m = model();
    const result = await run(
      atom("r", {
        steps: [
          stuck(null, { name: "stuck", timeoutMs: 50 }),
          m.kind({ id: "b", failApply: "before" }, { name: "b" }),
        ],
      }),
      opts(),
    );
    expect(result.status).toBe("rollback-failed");
    expect(result.steps[0]?.undoError?.code).toBe("ATOM_TIMEOUT");
    expect(undos).toBe(1);
  });

  it("a second run on the same host fails fast with ATOM_LOCKED naming the holder", async () => {
    const m = model();
    const gate = defineStep({
      kind: "test.gate",
      params: (p: null) => p,
      observe: async () => null,
      apply: async () => {
        const second = await run(
          atom("other", { steps: [m.kind({ id: "x" }, { name: "x" })] }),
          opts(),
        ).catch((e: unknown) => e);
        expect(isAtomError(second) && second.code).toBe("ATOM_LOCKED");
        expect(String((second as Error).message)).toMatch(/held by .* since/);
      },
      undo: async () => {},
    });
    const result = await run(atom("first", { steps: [gate(null)] }), opts());
    expect(result.status).toBe("committed");
    expect(m.log).toEqual([]);
    // released on exit: a third run goes through
    expect((await run(atom("third", { steps: [m.kind({ id: "y" }, { name: "y" })] }), opts())).status).toBe(
      "committed",
    );
  });

  it("the memory trail holds the run, folded into a committed summary", async () => {
    const m = model();
    const trail = memoryTrail();
    const result = await run(atom("r", { steps: [m.kind({ id: "a" }, { name: "a" })] }), {
      ...opts(),
      trail,
    });
    const runs = await trail.listRuns();
    expect(runs).toEqual([
      expect.objectContaining({ runId: result.runId, status: "committed", atom: "r", steps: 1 }),
    ]);
    const types = (await trail.readRun(result.runId)).map((r) => (r.t === "step" ? `step:${r.status}` : r.t));
    expect(types).toEqual(["run", "step:applying", "step:applied", "end"]);
  });
});
