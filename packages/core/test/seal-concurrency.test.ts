import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { fileTrail, memoryTrail, sealTrail, type TrailRecord } from "../src/index";
import { tempDir } from "./_helpers";

// Appends to one run that overlap (a caller that does not wait for the last one, or two callers of one
// store) must still chain every record to the one before it: a record sealed against a stale "last"
// reads back as forged, and a run that reads as forged blocks every later command on its host.

const start = (runId: string): TrailRecord => ({
  t: "run",
  v: 2,
  runId,
  atom: "a",
  host: "h",
  mode: "run",
  at: "2026-01-01T00:00:00Z",
  pid: 1,
  machine: "m",
  steps: [],
});
const step = (runId: string, i: number): TrailRecord => ({
  t: "step",
  runId,
  step: `s${i}`,
  status: "applying",
  at: "2026-01-01T00:00:01Z",
});

describe("sealTrail under overlapping appends", () => {
  const stores = {
    memory: () => sealTrail(memoryTrail(), randomBytes(32)),
    file: async () =>
      fileTrail({ dir: (await tempDir("atomkit-seal-race-")).dir, key: randomBytes(32).toString("hex") }),
  };
  for (const [name, make] of Object.entries(stores)) {
    it(`${name}: a new run's records appended without waiting read back whole and verified`, async () => {
      const trail = await make();
      const runId = "20260101T000000000Z-abcdef";
      await Promise.all([
        trail.append(runId, [start(runId)], { sync: true }),
        trail.append(runId, [step(runId, 1)]),
        trail.append(runId, [step(runId, 2)], { sync: true }),
      ]);
      const records = await trail.readRun(runId);
      expect(records.map((r) => ("step" in r ? r.step : r.t))).toEqual(["run", "s1", "s2"]);
      await trail.close?.();
    });
  }
});

describe("sealTrail seals what reads back", () => {
  it("a record holding a value whose JSON differs from its fields (toJSON) verifies in a new reader", async () => {
    const { dir } = await tempDir("atomkit-seal-json-");
    const key = randomBytes(32).toString("hex");
    const writer = fileTrail({ dir, key });
    const runId = "20260101T000000000Z-abcdef";
    const odd = { toJSON: () => ({ shown: "as JSON" }), field: "not in the JSON" };
    await writer.append(runId, [start(runId)], { sync: true });
    await writer.append(
      runId,
      [{ ...step(runId, 1), error: { message: "x", cause: odd } } as unknown as TrailRecord],
      {
        sync: true,
      },
    );
    await writer.close?.();
    const records = await fileTrail({ dir, key }).readRun(runId);
    expect(records).toHaveLength(2);
  });
});
