import {
  atom,
  deepEqual,
  defineStep,
  type Host,
  memoryTrail,
  run,
  type Step,
  type StepContext,
  validateParams,
} from "@atomkit/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { diffTrees, TreeSnapshot } from "./tree";

export interface StepFixture {
  host: Host;
  /** Builds a fresh step with the same params; called more than once to prove undo needs only the trail. */
  step: () => Step;
  /**
   * A picture of everything the step may touch, compared byte for byte where the suite expects "nothing
   * changed" or "back as before": `snapshotTree(dir)` (a mismatch names the paths that differ) or
   * `hashTree(dir)` (a mismatch shows two hashes). Keep the host's `stateDir` out of it (outside `dir`,
   * or `{ ignore }`): locks and backups change there on every run. Default: the step's own observe.
   */
  snapshot?: () => Promise<unknown>;
  /** Makes the next apply fail after a partial change (see `breakApplyLeaves`). Omit if it cannot. */
  breakApply?: () => Promise<void> | void;
  cleanup?: () => Promise<void>;
}

export interface StepContractOptions {
  /** Title of the describe block. Default: the step's kind. */
  name?: string;
  /** A fresh fixture per test: temp dir, processes, containers… */
  setup: () => Promise<StepFixture>;
  /**
   * The kind's apply is idempotent: a second apply from the after-state changes nothing. Default false:
   * the suite then only requires that apply changes the observed state.
   */
  idempotent?: boolean;
  /** What `breakApply` leaves behind when apply fails: a partial change, or none. Default `"changed"`. */
  breakApplyLeaves?: "changed" | "unchanged";
  /** Extra tests inside the same describe, with the current fixture. */
  additionalTests?: (fixture: () => StepFixture) => void;
}

/** A step that fails after the step under test, to prove the engine rolls that step back. */
const failAfter = defineStep({
  kind: "testkit.fail",
  params: (p: null) => p,
  observe: async () => null,
  apply: async () => {
    throw new Error("testkit: injected failure after the step under test");
  },
  undo: async () => {},
});

/**
 * "Back as before" / "nothing changed": the picture now equals the one taken first. Tree snapshots that
 * differ are reported path by path, so a failing kind says which file it left behind.
 */
function expectPicture(now: unknown, before: unknown, what: string): void {
  if (now instanceof TreeSnapshot && before instanceof TreeSnapshot) {
    const diff = diffTrees(before, now);
    if (diff.length) {
      throw new Error(
        `${what}: the tree ${now.root} differs from before (+ added, - removed, ~ changed):\n  ${diff.join("\n  ")}`,
      );
    }
    return;
  }
  expect(now, what).toEqual(before);
}

/** A JSON round trip: the state as a new process reads it back from the trail. */
const viaTrail = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/**
 * The contract every step kind keeps, as a vitest suite. Run it from the kind's own tests with a
 * fixture factory (ours and third parties' alike):
 *
 * observe is read-only and JSON; apply changes the state (idempotent kinds: a second apply changes
 * nothing); undo restores `before` and verify passes; undo works from JSON round-tripped states on a
 * fresh step instance; undo twice is safe; a failure in the middle of apply is classified by check and
 * rolled back; and the engine commits it and rolls it back when a later step fails. Params validate
 * again as a trail holds them, and observed states pass the kind's own `state` check.
 */
export function describeStepContract(options: StepContractOptions): void {
  let f: StepFixture | undefined;
  const fixture = () => {
    if (!f) throw new Error("testkit: fixture not set up");
    return f;
  };
  const bind = async () => {
    const step = fixture().step();
    const validated = await validateParams(step);
    if (validated.issues)
      throw new Error(`testkit: fixture params invalid: ${JSON.stringify(validated.issues)}`);
    const ctx: StepContext = {
      host: fixture().host,
      signal: new AbortController().signal,
      log: () => {},
      runId: "testkit",
      step: step.name,
    };
    const d = step.definition;
    return {
      step,
      observe: () => d.observe(ctx, validated.value),
      apply: (before: unknown) => d.apply(ctx, validated.value, before),
      undo: (before: unknown, after: unknown) => d.undo(ctx, validated.value, before, after),
      isSame: (a: unknown, b: unknown) => (d.same ? d.same(a, b) : deepEqual(viaTrail(a), viaTrail(b))),
    };
  };
  const snapshot = async () => {
    const fx = fixture();
    return fx.snapshot ? fx.snapshot() : viaTrail(await (await bind()).observe());
  };

  describe(options.name ?? "step contract", () => {
    beforeEach(async () => {
      f = await options.setup();
    });
    afterEach(async () => {
      await f?.cleanup?.();
      f = undefined;
    });

    it("observe is read-only and its state survives the trail (JSON round trip)", async () => {
      const s = await bind();
      const picture = await snapshot();
      const a = await s.observe();
      const b = await s.observe();
      expect(viaTrail(a)).toEqual(a);
      expect(s.isSame(a, b)).toBe(true);
      expectPicture(await snapshot(), picture, "observe must change nothing");
    });

    it("params validate again as the trail holds them, and recorded states pass the kind's state check", async () => {
      // recover and undo re-validate the params a trail holds (the validated ones, secret paths left
      // out) and check every recorded state: a kind must accept its own output
      const step = fixture().step();
      const first = await validateParams(step);
      if (first.issues) throw new Error(`testkit: fixture params invalid: ${JSON.stringify(first.issues)}`);
      const d = step.definition;
      const secret = [...(d.secret ?? []), ...(step.options.secret ?? [])];
      const recorded = viaTrail(first.value) as Record<string, unknown>;
      const again = await validateParams({ ...step, params: recorded });
      if (!secret.length) {
        expect(again.issues, "the params validator must accept its own output").toBeUndefined();
        if (!again.issues) expect(viaTrail(again.value)).toEqual(recorded);
      }
      const s = await bind();
      const before = viaTrail(await s.observe());
      if (d.state) {
        const check = d.state as
          | ((v: unknown) => unknown)
          | { "~standard": { validate: (v: unknown) => Promise<{ issues?: Array<{ message: string }> }> } };
        const checkState = async (v: unknown) => {
          if (typeof check === "function") return check(v);
          const r = await check["~standard"].validate(v);
          if (r.issues) throw new Error(`state check: ${r.issues[0]?.message}`);
        };
        await checkState(before);
        await s.apply(before);
        const after = viaTrail(await s.observe());
        // put it back: a fixture may share state with the next test (a daemon's image tags)
        await s.undo(before, after);
        await checkState(after);
      }
    });

    it("apply changes the observed state", async () => {
      const s = await bind();
      const before = await s.observe();
      await s.apply(before);
      const after = await s.observe();
      expect(s.isSame(after, before), "after apply the state must differ from before").toBe(false);
      if (options.idempotent) {
        await s.apply(after);
        expect(s.isSame(await s.observe(), after), "a second apply must change nothing").toBe(true);
      }
      await s.undo(before, after);
    });

    it("undo from trail states, on a fresh step instance, restores before (verify passes)", async () => {
      const picture = await snapshot();
      const first = await bind();
      const before = viaTrail(await first.observe());
      await first.apply(before);
      const after = viaTrail(await first.observe());
      const fresh = await bind(); // as a new process would: new instance, states from JSON
      await fresh.undo(viaTrail(before), viaTrail(after));
      expect(fresh.isSame(await fresh.observe(), before)).toBe(true);
      expectPicture(
        await snapshot(),
        picture,
        "undo (from trail states, fresh instance) must restore before",
      );
    });

    it("undo twice is safe", async () => {
      const picture = await snapshot();
      const s = await bind();
      const before = await s.observe();
      await s.apply(before);
      const after = await s.observe();
      await s.undo(before, after);
      await s.undo(before, after);
      expect(s.isSame(await s.observe(), before)).toBe(true);
      expectPicture(await snapshot(), picture, "undo twice must restore before");
    });

    it("the engine rolls it back verified when a later step fails, and commits it", async () => {
      const picture = await snapshot();
      const failing = await run(
        atom("testkit-rollback", {
          steps: [fixture().step(), failAfter(null, { name: "injected-failure" })],
        }),
        { host: fixture().host, trail: memoryTrail(), lock: false, backoffMs: 1 },
      );
      expect(failing.status, failing.error?.message).toBe("rolled-back");
      expect(failing.steps[0]).toMatchObject({ status: "undone", verified: true });
      expectPicture(await snapshot(), picture, "the engine's rollback must restore before");

      const ok = await run(atom("testkit-commit", { steps: [fixture().step()] }), {
        host: fixture().host,
        lock: false,
      });
      expect(ok.status, ok.error?.message).toBe("committed");
      expect(ok.steps[0]?.changed).toBe(true);
      await (await bind()).undo(ok.steps[0]?.before, ok.steps[0]?.after);
      expectPicture(await snapshot(), picture, "undo of a committed run must restore before");
    });

    it("a failure in the middle of apply is classified by check and rolled back", async (t) => {
      if (!fixture().breakApply) return t.skip("the fixture has no breakApply");
      const picture = await snapshot();
      await fixture().breakApply?.();
      const result = await run(atom("testkit-broken-apply", { steps: [fixture().step()] }), {
        host: fixture().host,
        lock: false,
        backoffMs: 1,
      });
      const leaves = options.breakApplyLeaves ?? "changed";
      expect(result.status, result.error?.message).toBe("rolled-back");
      expect(result.steps[0]?.status).toBe(leaves === "changed" ? "undone" : "failed-unchanged");
      if (leaves === "changed") expect(result.steps[0]?.verified).toBe(true);
      expect(result.error?.code).toMatch(/ATOM_STEP_FAILED|ATOM_TIMEOUT/);
      expectPicture(await snapshot(), picture, "rollback of a broken apply must restore before");
    });

    options.additionalTests?.(fixture);
  });
}
