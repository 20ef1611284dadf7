import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { atom, localHost, memoryTrail, runFleet, sealTrail, type TrailStore } from "../src/index";
import { model, tempDir } from "./_helpers";

// A fleet's rollback-all undoes every host, and each undo asks for the runs (undos of its run, later
// runs on its host): a store without an index must not read every run again for every host.

/** A memory trail with stamps (its record counts) that counts the runs it reads. */
function countingStore(): TrailStore & { reads: number } {
  const inner = memoryTrail();
  const store = {
    reads: 0,
    append: inner.append,
    remove: inner.remove,
    listIds: inner.listIds,
    listRuns: inner.listRuns,
    async readRun(id: string) {
      store.reads++;
      return inner.readRun(id);
    },
    async stamps(ids: readonly string[]) {
      return new Map(
        ids.flatMap((id) => (inner.records.has(id) ? [[id, String(inner.records.get(id)!.length)]] : [])),
      );
    },
  };
  return store as TrailStore & { reads: number };
}

/** `n` runs started (only their run record) on host "h". */
async function startRuns(trail: TrailStore, prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const runId = `${prefix}${i}`;
    const at = `2026-01-01T00:00:0${i}Z`;
    await trail.append(
      runId,
      [{ t: "run", v: 2, runId, atom: "a", host: "h", mode: "run", at, pid: 1, machine: "m", steps: [] }],
      {
        sync: true,
      },
    );
  }
}

describe("listRuns reads a run again only when it changed", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.cleanup());

  it("a fleet rollback of n hosts reads O(n) runs, not O(n²)", async () => {
    const { kind } = model();
    const n = 40;
    const inner = countingStore();
    const trail = sealTrail(inner, randomBytes(32));
    const hosts = Array.from({ length: n }, (_, i) =>
      localHost({ name: `h${i}`, stateDir: join(dir.dir, `s${i}`) }),
    );
    const result = await runFleet(
      (h) =>
        atom("release", {
          steps: [
            kind({ id: `${h.name}-a` }, { name: "a" }),
            kind(
              { id: `${h.name}-b`, ...(h.name === `h${n - 1}` ? { failApply: "before" as const } : {}) },
              { name: "b" },
            ),
          ],
        }),
      hosts,
      { trail, concurrency: 5, backoffMs: 0 },
    );
    expect(result.status).toBe("rolled-back");
    expect(result.hosts.filter((h) => h.state === "rolled-back")).toHaveLength(n);
    // every run is read a few times (verified when written, loaded for its undo, listed when it
    // changed); without the stamps every host's undo listing re-read all 2n runs: ~4n² reads
    expect(inner.reads).toBeLessThan(n * 25);
    expect(inner.reads).toBeGreaterThan(n);
  });

  it("a store that ignores the query (written before listRuns took one) is filtered again: rollback-all stays right", async () => {
    const { kind } = model();
    const inner = memoryTrail();
    const old: TrailStore = { ...inner, listRuns: () => inner.listRuns() };
    const hosts = Array.from({ length: 4 }, (_, i) =>
      localHost({ name: `o${i}`, stateDir: join(dir.dir, `o${i}`) }),
    );
    const result = await runFleet(
      (h) =>
        atom("release", {
          steps: [
            kind(
              { id: `${h.name}-a`, ...(h.name === "o3" ? { failApply: "before" as const } : {}) },
              { name: "a" },
            ),
          ],
        }),
      hosts,
      { trail: old, backoffMs: 0 },
    );
    expect(result.hosts.map((h) => [h.host, h.state, h.error?.message])).toEqual([
      ["o0", "rolled-back", undefined],
      ["o1", "rolled-back", undefined],
      ["o2", "rolled-back", undefined],
      ["o3", "rolled-back", undefined],
    ]);
  });

  it("without stamps every listing reads every run (the baseline the stamps save)", async () => {
    const inner = countingStore();
    const { stamps: _, ...plain } = inner;
    let reads = 0;
    const store: TrailStore = { ...plain, readRun: (id) => (reads++, inner.readRun(id)) };
    const trail = sealTrail(store, randomBytes(32));
    await startRuns(trail, "r", 10);
    reads = 0;
    await trail.listRuns();
    await trail.listRuns();
    expect(reads).toBe(20);
    const cached = sealTrail(inner, randomBytes(32));
    await startRuns(cached, "c", 10);
    const before = inner.reads;
    await cached.listRuns({ host: "h" });
    const first = inner.reads - before;
    await cached.listRuns({ host: "h" });
    expect(inner.reads - before - first).toBe(0);
  });
});
