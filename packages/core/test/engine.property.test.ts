import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { atom, defineStep, localHost, memoryTrail, type RunResult, run, type Step } from "../src/index";

// Property tests of the engine over a model world: random atoms of 1–12 steps across the three phases,
// with random failures in apply (before/after a partial change), undo (transient/permanent), observe,
// undo that "succeeds" without restoring, and random aborts. The invariants are DESIGN.md's promises.

interface StepPlan {
  phase: "pre" | "steps" | "post";
  failApply: "none" | "before" | "after";
  /** Undo attempts that throw before one succeeds; 99 = never succeeds. */
  failUndo: 0 | 1 | 2 | 99;
  lyingUndo: boolean;
  /** The n-th observe of this step throws once (0 = never). */
  failObserveAt: number;
  /** Abort the run while this step applies (after it changed state). */
  abortInApply: boolean;
}

const stepPlan: fc.Arbitrary<StepPlan> = fc.record({
  phase: fc.constantFrom("pre", "steps", "steps", "post"),
  failApply: fc.constantFrom("none", "none", "none", "none", "before", "after"),
  failUndo: fc.constantFrom(0, 0, 0, 1, 2, 99),
  lyingUndo: fc.constantFrom(false, false, false, false, true),
  failObserveAt: fc.constantFrom(0, 0, 0, 0, 1, 2, 3, 4),
  abortInApply: fc.constantFrom(false, false, false, false, false, false, false, true),
});

function simulate(plans: StepPlan[]) {
  const world = new Map<number, number>();
  const log: Array<{ op: "apply" | "undo"; i: number }> = [];
  const observes = new Map<number, number>();
  const undoTries = new Map<number, number>();
  const ac = new AbortController();
  const kind = defineStep({
    kind: "model.step",
    params: (p: { i: number }) => p,
    observe: async (_ctx, { i }) => {
      const n = (observes.get(i) ?? 0) + 1;
      observes.set(i, n);
      if (plans[i]!.failObserveAt === n) throw new Error(`observe ${i} failed (call ${n})`);
      return { v: world.get(i) ?? 0 };
    },
    apply: async (_ctx, { i }, before) => {
      const plan = plans[i]!;
      if (plan.failApply === "before") throw new Error(`apply ${i} failed before`);
      world.set(i, before.v + 1);
      log.push({ op: "apply", i });
      if (plan.abortInApply) ac.abort();
      if (plan.failApply === "after") throw new Error(`apply ${i} failed after`);
    },
    undo: async (_ctx, { i }, before) => {
      const plan = plans[i]!;
      const t = (undoTries.get(i) ?? 0) + 1;
      undoTries.set(i, t);
      if (t <= plan.failUndo) throw new Error(`undo ${i} failed (try ${t})`);
      if (plan.lyingUndo) return;
      world.set(i, before.v);
      log.push({ op: "undo", i });
    },
  });
  const steps: Record<StepPlan["phase"], Step[]> = { pre: [], steps: [], post: [] };
  for (const [i, p] of plans.entries()) steps[p.phase].push(kind({ i }, { name: `s${i}` }));
  const order = [...steps.pre, ...steps.steps, ...steps.post].map((s) => Number(s.name.slice(1)));
  return { world, log, ac, order, atom: atom("prop", steps) };
}

const host = localHost({ stateDir: "/nonexistent-no-lock-used" });

describe("engine properties", () => {
  it("commit, rollback, rollback-failed invariants hold for random atoms and failures", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepPlan, { minLength: 1, maxLength: 12 }), async (plans) => {
        const sim = simulate(plans);
        const result: RunResult = await run(sim.atom, {
          host,
          trail: memoryTrail(),
          lock: false,
          signal: sim.ac.signal,
          backoffMs: 0,
          abortGraceMs: 0,
        });
        const changedNow = sim.order.filter((i) => (sim.world.get(i) ?? 0) !== 0).map((i) => `s${i}`);

        // result lists every step in run order
        expect(result.steps.map((s) => s.name)).toEqual(sim.order.map((i) => `s${i}`));

        const applies = sim.log.filter((e) => e.op === "apply").map((e) => e.i);
        // an undo retried after its verify could not observe runs twice in a row: undo is idempotent
        const undos = sim.log
          .filter((e) => e.op === "undo")
          .map((e) => e.i)
          .filter((i, k, all) => k === 0 || all[k - 1] !== i);

        if (result.status === "committed") {
          // every step applied and live
          for (const s of result.steps) expect(s.status).toBe("applied");
          expect(changedNow).toEqual(sim.order.map((i) => `s${i}`));
          expect(undos).toEqual([]);
        } else if (result.status === "rolled-back") {
          // every state is back at before, every undone step verified
          expect(changedNow).toEqual([]);
          for (const s of result.steps) {
            if (s.status === "undone") expect(s.verified).toBe(true);
            else expect(["pending", "failed-unchanged"]).toContain(s.status);
          }
          expect(result.stillApplied).toEqual([]);
        } else {
          // rollback-failed: the result names exactly the steps still applied, and they are
          expect(result.stillApplied).toEqual(changedNow);
          expect(result.error?.code).toBe("ATOM_ROLLBACK_FAILED");
        }
        // undo order is the exact reverse of apply order (a prefix of it when rollback stopped)
        const reversed = [...applies].reverse();
        expect(reversed.slice(0, undos.length)).toEqual(undos);
        // a step that never changed state is never undone
        for (const i of undos) expect(applies).toContain(i);
        for (const s of result.steps) {
          if (s.status === "failed-unchanged") expect(undos).not.toContain(Number(s.name.slice(1)));
        }
        // pre-phase steps are undone last
        const firstPre = undos.findIndex((i) => plans[i]!.phase === "pre");
        if (firstPre >= 0) for (const i of undos.slice(firstPre)) expect(plans[i]!.phase).toBe("pre");
        // a run without any injected failure or abort commits
        const clean = plans.every((p) => p.failApply === "none" && p.failObserveAt === 0 && !p.abortInApply);
        if (clean) expect(result.status).toBe("committed");
      }),
      { numRuns: Number(process.env.ATOMKIT_PROPERTY_RUNS ?? 1500) },
    );
  });
});
