import { describe, expect, it } from "vitest";
import {
  atom,
  defineStep,
  localHost,
  memoryTrail,
  prunePlan,
  pruneTrail,
  run,
  runFleet,
  undoRun,
} from "../src/index";
import { liveRuns } from "../src/kit";

// What a trail may forget. The sequence property test (sequence.property.test.ts) prunes between random
// runs, undos and rollbacks; these are the cases it reaches too rarely to rely on.

function world() {
  const values = new Map<string, number | null>();
  const set = defineStep({
    kind: "prune.set",
    params: (p: { v: number; fail?: boolean; stuck?: boolean }) => p,
    observe: async (ctx) => values.get(ctx.host.name) ?? null,
    apply: async (ctx, p) => {
      values.set(ctx.host.name, p.v);
      if (p.fail) throw new Error("health check failed");
    },
    undo: async (ctx, p, before) => {
      if (p.stuck) throw new Error("cannot restore");
      values.set(ctx.host.name, before);
    },
  });
  const host = (name = "m") => localHost({ name, stateDir: "/nonexistent-no-lock-used" });
  const release = (v: number, o: { fail?: boolean; stuck?: boolean } = {}) =>
    atom("rel", { steps: [set({ v, ...o }, { name: "x", undoRetries: 0 })] });
  return { set, host, release, values };
}

describe("pruneTrail", () => {
  it("removes a run and the undo that reversed it together, never one alone", async () => {
    const w = world();
    const host = w.host();
    const trail = memoryTrail();
    const c = { lock: false as const, host, trail, backoffMs: 0 };
    const a = await run(w.release(1), c);
    const f = await run(w.release(2), c);
    const u = await undoRun(trail, f.runId, { ...c, host: () => host, steps: [w.set] });
    expect(u.status).toBe("rolled-back");
    // the newest run (the undo) is kept by --keep 1, so the run it reversed stays too
    const plan = await pruneTrail(trail, { keep: 1 });
    expect(plan.remove).toEqual([]);
    // alone, the undo would read as a later change and refuse this undo (exit 6 in the CLI)
    const again = await undoRun(trail, a.runId, { ...c, host: () => host, steps: [w.set] });
    expect(again.status, again.error?.message).toBe("rolled-back");
    // now nothing is live: the pairs go, together
    expect((await pruneTrail(trail, { keep: 0 })).remove.sort()).toEqual(
      [a.runId, f.runId, u.runId, again.runId].sort(),
    );
  });

  it("never removes a live release, nor a rollback-failed run; --dry-run removes nothing", async () => {
    const w = world();
    const host = w.host();
    const trail = memoryTrail();
    const c = { lock: false as const, host, trail, backoffMs: 0 };
    const v1 = await run(w.release(1), c);
    const failed = await run(w.release(2, { fail: true }), c);
    expect(failed.status).toBe("rolled-back");
    const v3 = await run(w.release(3), c);
    const stuck = await run(
      atom("rel", {
        steps: [
          w.set({ v: 4, stuck: true }, { name: "x", undoRetries: 0 }),
          w.set({ v: 5, fail: true }, { name: "y" }),
        ],
      }),
      c,
    );
    expect(stuck.status).toBe("rollback-failed");
    const dry = await pruneTrail(trail, { keep: 0, dryRun: true });
    expect(dry.remove).toEqual([failed.runId]);
    expect((await trail.listRuns()).length).toBe(4);
    const done = await pruneTrail(trail, { keep: 0 });
    expect(done.remove).toEqual([failed.runId]);
    expect(done.kept).toMatchObject({ total: 3, live: 2, unsettled: 1 });
    expect(liveRuns(await trail.listRuns(), { host: host.name }).map((r) => r.runId)).toEqual([
      v3.runId,
      v1.runId,
    ]);
  });

  it("--older-than spares recent runs; a fleet's record goes with its last host run", async () => {
    const w = world();
    const trail = memoryTrail();
    const hosts = [w.host("a"), w.host("b")];
    const fleet = await runFleet(w.release(1, { fail: true }), hosts, { trail, lock: false, backoffMs: 0 });
    expect(fleet.status).toBe("rolled-back");
    const runs = await trail.listRuns();
    const ids = await trail.listIds!();
    const fleetIds = ids.filter((id) => !runs.some((r) => r.runId === id));
    expect(fleetIds).toEqual([fleet.fleetId]);
    const hour = 3_600_000;
    expect(prunePlan(runs, fleetIds, { olderThanMs: hour }).remove).toEqual([]);
    const later = prunePlan(runs, fleetIds, { olderThanMs: hour, now: Date.now() + 2 * hour }).remove;
    expect(later.sort()).toEqual([...runs.map((r) => r.runId), fleet.fleetId].sort());
    expect(() => prunePlan(runs, fleetIds, {})).toThrow(/--keep, --older-than or both/);
  });
});
