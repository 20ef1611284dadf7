import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  atom,
  defineStep,
  fileTrail,
  localHost,
  memoryTrail,
  pruneTrail,
  recover,
  rollback,
  run,
  type TrailStore,
  undoRun,
} from "../src/index";
import { liveRuns } from "../src/kit";

// Property tests across runs, where deploys live: random sequences of runs (some failing and rolled
// back), undos, rollbacks, and undos that fail half-way then are recovered, over a model host. The
// model's process gets a new pid on every (re)start, as a real one does: a state that compared pids
// would call a rolled-back run's restart "drift" (issue 11). The invariant: after every operation the
// host serves what the last live run left, or what was there before the first one. Pruning the trail
// between operations must change none of it.

type Op =
  | { op: "run"; version: number; fail: boolean }
  | { op: "undo-latest"; flaky: boolean }
  | { op: "undo-older" }
  | { op: "rollback"; count: 1 | 2 }
  | { op: "prune"; keep: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant("run" as const),
      version: fc.integer({ min: 1, max: 9 }),
      fail: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("undo-latest" as const), flaky: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("undo-older" as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("rollback" as const),
      count: fc.constantFrom(1 as const, 2 as const),
    }),
  },
  // forgetting old runs must change nothing of the above: what serves, what undo and rollback do
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("prune" as const), keep: fc.integer({ min: 0, max: 3 }) }),
  },
);

function world() {
  const host = { link: null as number | null, serving: null as number | null, pid: 0 };
  /** Undo attempts of the process step that fail before one succeeds (a flaky restart). */
  let failUndos = 0;
  const link = defineStep({
    kind: "seq.link",
    params: (p: { version: number }) => p,
    state: (s: unknown) => s as { target: number | null },
    observe: async () => ({ target: host.link }),
    apply: async (_ctx, p) => {
      host.link = p.version;
    },
    undo: async (_ctx, _p, before) => {
      host.link = before.target;
    },
  });
  const proc = defineStep({
    kind: "seq.proc",
    params: (p: { version: number }) => p,
    // what serves is the state; the pid is evidence, never compared
    observe: async () => ({ serving: host.serving, pid: host.pid }),
    same: (a, b) => a.serving === b.serving,
    apply: async (_ctx, p) => {
      host.serving = p.version;
      host.pid++;
    },
    undo: async (_ctx, _p, before) => {
      if (failUndos > 0) {
        failUndos--;
        throw new Error("the old release did not come up (flaky)");
      }
      host.serving = before.serving;
      if (before.serving !== null) host.pid++; // restarted: a new pid for the same release
    },
  });
  const health = defineStep({
    kind: "seq.health",
    params: (p: { version: number; fail: boolean }) => p,
    observe: async () => null,
    apply: async (_ctx, p) => {
      if (p.fail) throw new Error(`v${p.version} answers 500`);
    },
    undo: async () => {},
  });
  const release = (version: number, fail = false) =>
    atom("release", {
      steps: [
        link({ version }, { name: "link" }),
        proc({ version }, { name: "start", undoRetries: 0 }),
        health({ version, fail }, { name: "health" }),
      ],
    });
  return {
    host,
    kinds: [link, proc, health],
    release,
    flaky: (n: number) => {
      failUndos = n;
    },
  };
}

async function sequence(ops: Op[], trail: TrailStore) {
  const w = world();
  const host = localHost({ name: "model", stateDir: "/nonexistent-no-lock-used" });
  const common = { lock: false as const, backoffMs: 0, abortGraceMs: 0 };
  const back = { ...common, host: () => host, steps: w.kinds };
  /** The model: live releases, oldest first. What serves is the last one, else nothing. */
  const live: number[] = [];
  for (const o of ops) {
    if (o.op === "run") {
      const r = await run(w.release(o.version, o.fail), { ...common, host, trail });
      expect(r.status, r.error?.message).toBe(o.fail ? "rolled-back" : "committed");
      // a run that finds its release already serving changes nothing: no release of its own
      if (!o.fail && live.at(-1) !== o.version) live.push(o.version);
    } else if (o.op === "undo-latest") {
      const latest = liveRuns(await trail.listRuns(), { host: host.name })[0];
      if (!latest) continue;
      if (o.flaky) w.flaky(1);
      const u = await undoRun(trail, latest.runId, back);
      if (o.flaky) {
        // the restart failed: rollback-failed, mixed; once the cause is gone, recover finishes it
        expect(u.status).toBe("rollback-failed");
        const [done] = await recover(trail, { ...back, runId: u.runId });
        expect(done?.status, done?.error?.message).toBe("rolled-back");
      } else expect(u.status, u.error?.message).toBe("rolled-back");
      live.pop();
    } else if (o.op === "undo-older") {
      const older = liveRuns(await trail.listRuns(), { host: host.name })[1];
      if (!older) continue;
      // a later live run of the same atom is in the way: refused, nothing touched
      await expect(undoRun(trail, older.runId, back)).rejects.toMatchObject({ code: "ATOM_DRIFT" });
    } else if (o.op === "prune") {
      const liveIds = async () => liveRuns(await trail.listRuns(), { host: host.name }).map((r) => r.runId);
      const before = await liveIds();
      await pruneTrail(trail, { keep: o.keep });
      expect(await liveIds()).toEqual(before);
    } else {
      const result = rollback(trail, [host.name], { ...back, atomName: "release", count: o.count });
      if (live.length <= o.count) {
        await expect(result).rejects.toMatchObject({ code: "ATOM_NOT_UNDOABLE" });
        continue;
      }
      const r = await result;
      expect(r.status, r.hosts[0]?.error?.message ?? r.hosts[0]?.undo?.error?.message).toBe("rolled-back");
      live.splice(live.length - o.count, o.count);
    }
    // the invariant, after every operation
    const expected = live.at(-1) ?? null;
    expect({ link: w.host.link, serving: w.host.serving }).toEqual({ link: expected, serving: expected });
  }
}

describe("sequences of runs (issue 11)", () => {
  it(
    "never leave a host other than what the last live run left (memory trail)",
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 14 }), (ops) =>
          sequence(ops, memoryTrail()),
        ),
        { numRuns: Number(process.env.ATOMKIT_SEQUENCE_RUNS ?? 600) },
      );
    },
    10 * 60_000,
  );

  it(
    "hold with the sealed file trail too (every record read back and checked)",
    async () => {
      const dir = await mkdtemp(join(tmpdir(), "atomkit-seq-"));
      try {
        let n = 0;
        await fc.assert(
          fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 10 }), (ops) =>
            sequence(ops, fileTrail({ dir: join(dir, `t${n++}`, "trails") })),
          ),
          { numRuns: 60 },
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    10 * 60_000,
  );
});
