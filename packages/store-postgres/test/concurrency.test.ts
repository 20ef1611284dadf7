import type { TrailRecord } from "@atomkit/core";
import { afterEach, describe, expect, it } from "vitest";
import { postgresTrail } from "../src";
import { dropSchema, freshSchema, KEY, PG_URL, pgMissing } from "./_pg";

// A fleet's runs append while the controller reads the trail (a listing, a report): a read flushes the
// records still waiting, and an append's own write must not take the same ones. Written twice, a record
// breaks the sealed chain and the run reads back as forged.
describe.skipIf(pgMissing)("appends while the trail is read", () => {
  const schema = freshSchema();
  afterEach(() => dropSchema(schema));

  it("every record is stored once, and each run verifies from a fresh reader", async () => {
    const trail = postgresTrail({ connectionString: PG_URL!, schema, key: KEY });
    const runIds = Array.from({ length: 8 }, (_, i) => `20260101T000000000Z-abcde${i}`);
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
    const step = (runId: string, name: string): TrailRecord => ({
      t: "step",
      runId,
      step: name,
      status: "applying",
      at: "2026-01-01T00:00:01Z",
    });
    let appending = true;
    const reading = (async () => {
      while (appending) {
        await Promise.all(runIds.map((runId) => trail.readRun(runId).catch(() => [])));
        await new Promise(setImmediate);
      }
    })();
    await Promise.all(
      runIds.map(async (runId) => {
        await trail.append(runId, [start(runId)], { sync: true });
        // unsynced: it waits in memory until a read or the next synced append takes it
        await trail.append(runId, [step(runId, "s1")]);
        await trail.append(runId, [step(runId, "s2")], { sync: true });
      }),
    );
    appending = false;
    await reading;
    await trail.close?.();
    const fresh = postgresTrail({ connectionString: PG_URL!, schema, key: KEY });
    for (const runId of runIds) {
      const records = await fresh.readRun(runId);
      expect(records.map((r) => ("step" in r ? r.step : r.t))).toEqual(["run", "s1", "s2"]);
    }
    await fresh.close?.();
  });
});
