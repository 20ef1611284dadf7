import { atom, defineStep, memoryTrail, run, validateParams } from "@atomkit/core";
import { expect, it } from "vitest";
import type { BoundStep } from "./step-context";
import { viaJson } from "./step-context";
import type { StepContractOptions, StepFixture } from "./step-contract";
import { diffTrees, TreeSnapshot } from "./tree";
import { undoInChild } from "./undo-child";

/** What every part of the contract works with: the options, the current fixture, and helpers. */
export interface ContractSuite {
  options: StepContractOptions;
  fixture: () => StepFixture;
  /** A fresh step instance bound to its validated params, as a new process would bind it. */
  bind: () => Promise<BoundStep>;
  /** The fixture's picture, or the step's own observed state. */
  snapshot: () => Promise<unknown>;
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

export function observeCases(s: ContractSuite): void {
  it("observe is read-only and its state survives the trail (JSON round trip)", async () => {
    const b = await s.bind();
    const picture = await s.snapshot();
    const first = await b.observe();
    const second = await b.observe();
    expect(viaJson(first)).toEqual(first);
    expect(b.same(first, second)).toBe(true);
    expectPicture(await s.snapshot(), picture, "observe must change nothing");
  });
}

export function paramsCases(s: ContractSuite): void {
  it("params validate again as the trail holds them, and recorded states pass the kind's state check", async () => {
    // recover and undo re-validate the params a trail holds (the validated ones, secret paths left
    // out) and check every recorded state: a kind must accept its own output
    const step = s.fixture().step();
    const first = await validateParams(step);
    if (first.issues) throw new Error(`testkit: fixture params invalid: ${JSON.stringify(first.issues)}`);
    const d = step.definition;
    const secret = [...(d.secret ?? []), ...(step.options.secret ?? [])];
    const recorded = viaJson(first.value) as Record<string, unknown>;
    const again = await validateParams({ ...step, params: recorded });
    if (!secret.length) {
      expect(again.issues, "the params validator must accept its own output").toBeUndefined();
      if (!again.issues) expect(viaJson(again.value)).toEqual(recorded);
    }
    const b = await s.bind();
    const before = viaJson(await b.observe());
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
      await b.apply(before);
      const after = viaJson(await b.observe());
      // put it back: a fixture may share state with the next test (a daemon's image tags)
      await b.undo(before, after);
      await checkState(after);
    }
  });
}

export function applyUndoCases(s: ContractSuite): void {
  it("apply changes the observed state", async () => {
    const b = await s.bind();
    const before = await b.observe();
    await b.apply(before);
    const after = await b.observe();
    expect(b.same(after, before), "after apply the state must differ from before").toBe(false);
    if (s.options.idempotent) {
      await b.apply(after);
      expect(b.same(await b.observe(), after), "a second apply must change nothing").toBe(true);
    }
    await b.undo(before, after);
  });

  it("undo from trail states, on a fresh step instance, restores before (verify passes)", async () => {
    const picture = await s.snapshot();
    const first = await s.bind();
    const before = viaJson(await first.observe());
    await first.apply(before);
    const after = viaJson(await first.observe());
    const fresh = await s.bind(); // a new instance, states from JSON (the recover part: a new process)
    await fresh.undo(viaJson(before), viaJson(after));
    expect(fresh.same(await fresh.observe(), before)).toBe(true);
    expectPicture(
      await s.snapshot(),
      picture,
      "undo (from trail states, fresh instance) must restore before",
    );
  });

  it("undo twice is safe", async () => {
    const picture = await s.snapshot();
    const b = await s.bind();
    const before = await b.observe();
    await b.apply(before);
    const after = await b.observe();
    await b.undo(before, after);
    await b.undo(before, after);
    expect(b.same(await b.observe(), before)).toBe(true);
    expectPicture(await s.snapshot(), picture, "undo twice must restore before");
  });
}

export function recoverCases(s: ContractSuite): void {
  it("undo in a new process, from the trail's JSON alone, restores before (as recover and `atomkit undo` run it)", async (t) => {
    const fx = s.fixture();
    if (!fx.host.local && !fx.childHost)
      return t.skip(`the host ${fx.host.name} is not local and the fixture gives no childHost`);
    const picture = await s.snapshot();
    const b = await s.bind();
    const before = viaJson(await b.observe());
    await b.apply(before);
    const after = viaJson(await b.observe());
    // as the trail holds them: JSON, with every secret value of the run masked
    await undoInChild({
      step: b.step,
      params: viaJson(b.params),
      before: b.ctx.redact(before),
      after: b.ctx.redact(after),
      host: fx.host,
      kindModule: s.options.kindModule,
      childHost: fx.childHost,
    });
    expect(
      b.same(await b.observe(), before),
      "after the undo in a new process the state must be before",
    ).toBe(true);
    expectPicture(await s.snapshot(), picture, "undo in a new process must restore before");
  });
}

export function rollbackCases(s: ContractSuite): void {
  it("the engine rolls it back verified when a later step fails, and commits it", async () => {
    const picture = await s.snapshot();
    const failing = await run(
      atom("testkit-rollback", {
        steps: [s.fixture().step(), failAfter(null, { name: "injected-failure" })],
      }),
      { host: s.fixture().host, trail: memoryTrail(), lock: false, backoffMs: 1 },
    );
    expect(failing.status, failing.error?.message).toBe("rolled-back");
    expect(failing.steps[0]).toMatchObject({ status: "undone", verified: true });
    expectPicture(await s.snapshot(), picture, "the engine's rollback must restore before");

    const ok = await run(atom("testkit-commit", { steps: [s.fixture().step()] }), {
      host: s.fixture().host,
      lock: false,
    });
    expect(ok.status, ok.error?.message).toBe("committed");
    expect(ok.steps[0]?.changed).toBe(true);
    await (await s.bind()).undo(ok.steps[0]?.before, ok.steps[0]?.after);
    expectPicture(await s.snapshot(), picture, "undo of a committed run must restore before");
  });

  it("a failure in the middle of apply is classified by check and rolled back", async (t) => {
    if (!s.fixture().breakApply) return t.skip("the fixture has no breakApply");
    const picture = await s.snapshot();
    await s.fixture().breakApply?.();
    const result = await run(atom("testkit-broken-apply", { steps: [s.fixture().step()] }), {
      host: s.fixture().host,
      lock: false,
      backoffMs: 1,
    });
    const leaves = s.options.breakApplyLeaves ?? "changed";
    expect(result.status, result.error?.message).toBe("rolled-back");
    expect(result.steps[0]?.status).toBe(leaves === "changed" ? "undone" : "failed-unchanged");
    if (leaves === "changed") expect(result.steps[0]?.verified).toBe(true);
    expect(result.error?.code).toMatch(/ATOM_STEP_FAILED|ATOM_TIMEOUT/);
    expectPicture(await s.snapshot(), picture, "rollback of a broken apply must restore before");
  });
}
