import { describe, expect, it } from "vitest";
import { contractReport } from "./_child-vitest";

describe("the recover part of the step contract (undo in a new process)", () => {
  it("catches a kind that keeps its before-state in module memory, which every in-process case passes", async () => {
    const tests = await contractReport("forgetful");
    const byTitle = Object.fromEntries(tests.map((t) => [t.title, t]));
    const recover = tests.find((t) => t.title.startsWith("undo in a new process"));
    expect(recover?.status).toBe("failed");
    const message = recover?.failureMessages.join("\n") ?? "";
    expect(message).toContain("after the undo in a new process the state must be before");
    // every other case, the in-process undo from JSON states on a fresh instance among them, is fooled
    // (the fixture has no breakApply: that case skips)
    const fooled = tests.filter((t) => t !== recover && t.status !== "skipped");
    expect(fooled.map((t) => [t.title, t.status])).toEqual(fooled.map((t) => [t.title, "passed"]));
    expect(
      byTitle["undo from trail states, on a fresh step instance, restores before (verify passes)"]?.status,
    ).toBe("passed");
    expect(fooled.length).toBeGreaterThanOrEqual(6);
  });
});
