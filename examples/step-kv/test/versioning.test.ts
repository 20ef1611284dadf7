import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atom, defineStep, fileTrail, localHost, run, type StepContext, undoRun } from "@atomkit/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { checkState, type KvSetParams, recordedValue, setKey } from "../src/index";

/**
 * kv.set as 0.1.x shipped it: the same kind id, apply and undo, but its state was the bare value
 * (`"off"`, or null for no key). Trails it wrote are still on disk when 0.2 is installed.
 */
const setKeyV1 = defineStep({
  ...setKey.definition,
  observe: async (ctx: StepContext, p: KvSetParams) => recordedValue(await setKey.definition.observe(ctx, p)),
  plan: undefined,
  same: undefined,
  state: undefined,
  // biome-ignore lint/suspicious/noExplicitAny: a past version's state type, on purpose
} as any);

describe("kv.set state versions", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "atomkit-kv-v1-"));
    await mkdir(join(root, "data"));
  });
  afterEach(() => rm(root, { recursive: true, force: true, maxRetries: 10 }));

  it("state accepts v2 and v1 shapes, and refuses anything else", () => {
    expect(checkState({ value: "on" })).toEqual({ value: "on" });
    expect(checkState({ value: null })).toEqual({ value: null });
    expect(checkState("on")).toEqual({ value: "on" }); // v1
    expect(checkState(null)).toEqual({ value: null }); // v1: no key
    for (const bad of [1, [], { value: 1 }, { value: "on", pid: 4 }, {}]) {
      expect(() => checkState(bad), JSON.stringify(bad)).toThrow();
    }
    expect(() => checkState({ value: "on", extra: 1 })).toThrow(/unexpected key "extra"/);
  });

  it("a run recorded by 0.1.x (bare-string states) is undone by 0.2: no false drift, verified", async () => {
    const file = join(root, "data", "flags.json");
    await writeFile(file, `${JSON.stringify({ checkout: "off" }, null, 2)}\n`);
    const host = localHost({ stateDir: join(root, "state") });
    const trailDir = join(root, "trails");
    const old = await run(atom("flags", { steps: [setKeyV1({ file, key: "checkout", value: "on" })] }), {
      host,
      trail: fileTrail({ dir: trailDir, key: false }),
    });
    expect(old.status, old.error?.message).toBe("committed");
    expect(old.steps[0]?.before).toBe("off"); // the v1 shape really is in the trail

    const undone = await undoRun(fileTrail({ dir: trailDir, key: false }), old.runId, {
      host,
      steps: [setKey], // today's kind reads the old trail
    });
    expect(undone.status, undone.error?.message).toBe("rolled-back");
    expect(undone.steps[0]).toMatchObject({ status: "undone", verified: true });
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ checkout: "off" });
  });

  it("a v1 state for a key that did not exist (null) undoes by removing the key", async () => {
    const file = join(root, "data", "flags.json");
    await writeFile(file, `${JSON.stringify({ mode: "blue" }, null, 2)}\n`);
    const host = localHost({ stateDir: join(root, "state") });
    const trailDir = join(root, "trails");
    const old = await run(atom("flags", { steps: [setKeyV1({ file, key: "checkout", value: "on" })] }), {
      host,
      trail: fileTrail({ dir: trailDir, key: false }),
    });
    expect(old.steps[0]?.before).toBeNull();
    const undone = await undoRun(fileTrail({ dir: trailDir, key: false }), old.runId, {
      host,
      steps: [setKey],
    });
    expect(undone.status, undone.error?.message).toBe("rolled-back");
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ mode: "blue" });
  });
});
