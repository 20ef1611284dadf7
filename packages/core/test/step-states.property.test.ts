import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canMove, TRANSITIONS } from "../src/engine/state";
import {
  atom,
  defineStep,
  isAtomError,
  localHost,
  memoryTrail,
  type RunStartRecord,
  recover,
  run,
  type Step,
  type StepStatus,
  type TrailRecord,
  undoRun,
} from "../src/index";

// The step state machine is written down once (`TRANSITIONS` in src/engine/state.ts). This checks that
// whatever a run, an undo run or a recover (after a crash at any record) writes for a step is a walk
// through that table: random atoms with failures in observe, apply and undo, and aborts.

interface StepPlan {
  failApply: "none" | "before" | "after";
  /** Undo attempts that throw before one succeeds; 99 = never succeeds. */
  failUndo: 0 | 1 | 99;
  lyingUndo: boolean;
  /** The n-th observe of this step throws once (0 = never). */
  failObserveAt: number;
  abortInApply: boolean;
}

const stepPlan: fc.Arbitrary<StepPlan> = fc.record({
  failApply: fc.constantFrom("none", "none", "none", "before", "after"),
  failUndo: fc.constantFrom(0, 0, 0, 1, 99),
  lyingUndo: fc.constantFrom(false, false, false, false, true),
  failObserveAt: fc.constantFrom(0, 0, 0, 1, 2, 3, 4, 5),
  abortInApply: fc.constantFrom(false, false, false, false, false, false, true),
});

function simulate(plans: StepPlan[]) {
  const world = new Map<number, number>();
  const observes = new Map<number, number>();
  const undoTries = new Map<number, number>();
  const ac = new AbortController();
  const kind = defineStep({
    kind: "states.step",
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
      if (plan.abortInApply) ac.abort();
      if (plan.failApply === "after") throw new Error(`apply ${i} failed after`);
    },
    undo: async (_ctx, { i }, before) => {
      const t = (undoTries.get(i) ?? 0) + 1;
      undoTries.set(i, t);
      if (t <= plans[i]!.failUndo) throw new Error(`undo ${i} failed (try ${t})`);
      if (!plans[i]!.lyingUndo) world.set(i, before.v);
    },
  });
  const steps: Step[] = plans.map((_, i) => kind({ i }, { name: `s${i}` }));
  return { kind, ac, world, atom: atom("states", { steps }) };
}

/** Every step's statuses as its run's records give them: the start record's, then each step record's. */
function walks(records: readonly TrailRecord[]): Map<string, StepStatus[]> {
  const start = records.find((r): r is RunStartRecord => r.t === "run");
  const out = new Map<string, StepStatus[]>();
  for (const s of start?.steps ?? []) out.set(s.name, [s.status ?? "pending"]);
  for (const r of records) if (r.t === "step") out.get(r.step)?.push(r.status);
  return out;
}

function expectAllowed(records: readonly TrailRecord[], label: string): number {
  let moves = 0;
  for (const [step, walk] of walks(records)) {
    for (let k = 1; k < walk.length; k++) {
      const [from, to] = [walk[k - 1]!, walk[k]!];
      expect(canMove(from, to), `${label}: step ${step} went ${walk.join(" → ")}`).toBe(true);
      moves++;
    }
  }
  return moves;
}

/** A refusal (a finished run, a rebuilt step that does not check) is an answer; anything else is a bug. */
function refused(error: unknown): [] {
  if (!isAtomError(error)) throw error;
  return [];
}

const host = localHost({ stateDir: "/nonexistent-no-lock-used" });
const quick = { lock: false as const, backoffMs: 0, abortGraceMs: 0 };

describe("step states", () => {
  it("the table names every status and only statuses", () => {
    const statuses = Object.keys(TRANSITIONS) as StepStatus[];
    expect(statuses).toHaveLength(10);
    for (const to of Object.values(TRANSITIONS).flat()) expect(statuses).toContain(to);
    // final states stay final
    expect(TRANSITIONS.undone).toEqual([]);
    expect(TRANSITIONS["failed-unchanged"]).toEqual([]);
  });

  it("every status a run, an undo run or a recover writes is a move the table allows", async () => {
    const seen = new Set<string>();
    const runs = Number(process.env.ATOMKIT_PROPERTY_RUNS ?? 600);
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepPlan, { minLength: 1, maxLength: 8 }),
        fc.nat(),
        fc.option(fc.nat()),
        async (plans, crashAt, tamper) => {
          const sim = simulate(plans);
          const trail = memoryTrail();
          const back = { ...quick, host, steps: [sim.kind] };
          const result = await run(sim.atom, { ...quick, host, trail, signal: sim.ac.signal });
          const ran = trail.records.get(result.runId)!;
          expectAllowed(ran, "run");

          // the process died after any of its records: recover takes up what the trail says
          const cut = 1 + (crashAt % ran.length);
          const crashed = memoryTrail();
          crashed.records.set(result.runId, ran.slice(0, cut));
          // someone else may have changed a step's state since (drift)
          if (tamper !== null) sim.world.set(tamper % plans.length, 100);
          const [recovered] = await recover(crashed, { ...back, runId: result.runId }).catch(refused);
          if (recovered?.status === "rollback-failed") {
            // taken up again as it stopped, then through the drift
            await recover(crashed, { ...back, runId: result.runId }).catch(refused);
            await recover(crashed, { ...back, runId: result.runId, force: true }).catch(refused);
          }
          expectAllowed(crashed.records.get(result.runId)!, "recover after a crash");

          // a rollback that stopped is finished by recover, named
          if (result.status === "rollback-failed") {
            await recover(trail, { ...back, runId: result.runId }).catch(refused);
            expectAllowed(trail.records.get(result.runId)!, "recover of rollback-failed");
          }
          // a committed run is undone later, and that undo's rollback finished by recover if it stopped
          if (result.status === "committed") {
            const undo = await undoRun(trail, result.runId, back).catch((e: unknown) => {
              refused(e);
              return undefined;
            });
            if (undo) {
              if (undo.status === "rollback-failed")
                await recover(trail, { ...back, runId: undo.runId }).catch(refused);
              expectAllowed(trail.records.get(undo.runId)!, "undo run");
            }
          }
          for (const records of [...trail.records.values(), ...crashed.records.values()])
            for (const walk of walks(records).values())
              for (let k = 1; k < walk.length; k++) seen.add(`${walk[k - 1]} → ${walk[k]}`);
        },
      ),
      { numRuns: runs },
    );
    // the walks went through the whole machine, not just its first steps (given enough of them)
    if (runs < 300) return;
    for (const move of [
      "pending → applying",
      "pending → failed-unchanged",
      "applying → applied",
      "applying → failed-changed",
      "applying → failed-unchanged",
      "applying → failed-unknown",
      "applied → undoing",
      "applied → drift",
      "failed-changed → undoing",
      "undoing → undone",
      "undoing → undo-failed",
      "undoing → undoing",
      "undo-failed → undoing",
      "drift → drift",
      "drift → undoing",
    ])
      expect([...seen]).toContain(move);
  });
});
