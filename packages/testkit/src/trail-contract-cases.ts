import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  atom,
  LockedError,
  localHost,
  run,
  type StepTrailRecord,
  type TrailStore,
  undoRun,
} from "@atomkit/core";
import { foldRun, MAX_RECORD_BYTES } from "@atomkit/core/kit";
import { expect, it } from "vitest";
import { at, end, put, start, step } from "./trail-records";

/** What every part of the trail contract works with: another handle on the current test's backing. */
export interface TrailSuite {
  /** Opens a handle (closed after the test), as a second process would. */
  open: () => Promise<TrailStore>;
}

/** Appending and reading back: order, exact values, the size limit, concurrent runs, reads meanwhile. */
export function recordsCases(s: TrailSuite): void {
  const open = s.open;
  it("gives a run's records back in append order, synced or not, to this handle and another", async () => {
    const s = await open();
    await s.append("r1", [start("r1", { i: 1 })], { sync: true });
    await s.append("r1", [step("r1", "applying")], { sync: true });
    // unsynced: may wait in memory, but a reader of this handle sees it and order is kept
    await s.append("r1", [step("r1", "applied", { before: { x: 1 }, after: { x: 2 }, changed: true })]);
    expect((await s.readRun("r1")).map((r) => r.t === "step" && r.status)).toEqual([
      false,
      "applying",
      "applied",
    ]);
    await s.append("r1", [end("r1", "committed")], { sync: true });
    const other = await open();
    const records = await other.readRun("r1");
    expect(records).toHaveLength(4);
    expect(foldRun(records, "r1")?.steps[0]).toMatchObject({ status: "applied", after: { x: 2 } });
    expect(await other.readRun("nothing-here")).toEqual([]);
  });

  it("keeps values exactly: unicode, nesting, big and negative numbers, empty strings", async () => {
    const s = await open();
    const before = {
      t: "Grüße ✓ \u0000 \n \"'`$(rm -rf /)",
      n: [0, -1, 2 ** 53 - 1, 1.5e-7],
      e: "",
      o: { a: { b: [] } },
    };
    await s.append("r1", [start("r1", { i: 1 }), step("r1", "applied", { before, after: null })], {
      sync: true,
    });
    const back = (await (await open()).readRun("r1"))[1] as StepTrailRecord;
    expect(back.before).toEqual(before);
    expect(back.after).toBeNull();
  });

  it("refuses a record over the size limit and keeps everything appended before it", async () => {
    const s = await open();
    await s.append("r", [start("r", { i: 1 })], { sync: true });
    const huge = step("r", "applied", { after: { blob: "x".repeat(MAX_RECORD_BYTES + 1) } });
    await expect(s.append("r", [huge], { sync: true })).rejects.toThrow(/bytes/);
    await s.append("r", [end("r", "rolled-back")], { sync: true });
    expect((await (await open()).readRun("r")).map((r) => r.t)).toEqual(["run", "end"]);
  });

  it("keeps concurrent runs apart, each in its own order", async () => {
    const s = await open();
    const n = 12;
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const id = `c${i}`;
        await s.append(id, [start(id, { i, host: `h${i}` })], { sync: true });
        for (let k = 0; k < 5; k++)
          await s.append(id, [step(id, k % 2 ? "applied" : "applying")], { sync: k % 2 === 0 });
        await s.append(id, [end(id, "committed")], { sync: true });
      }),
    );
    const other = await open();
    for (let i = 0; i < n; i++) {
      const recs = await other.readRun(`c${i}`);
      expect(recs.map((r) => r.t)).toEqual(["run", "step", "step", "step", "step", "step", "end"]);
      expect(recs.every((r) => !("runId" in r) || r.runId === `c${i}`)).toBe(true);
    }
    expect(await other.listRuns()).toHaveLength(n);
  });

  it("stores each record once while the trail is read meanwhile (a read flushes waiting records)", async () => {
    // A fleet's runs append while the controller lists or reads the trail. A store that buffers
    // unsynced records and lets a read flush them must not write them twice when an append's own write
    // overlaps (a new run's file opening, a query in flight): a duplicate breaks a sealed chain, and the
    // run reads back as forged.
    const s = await open();
    const ids = Array.from({ length: 8 }, (_, i) => `w${i}`);
    let appending = true;
    const reading = (async () => {
      while (appending) {
        await Promise.all([s.listRuns(), ...ids.map((id) => s.readRun(id))]);
        await new Promise((r) => setImmediate(r));
      }
    })();
    await Promise.all(
      ids.map(async (id, i) => {
        await s.append(id, [start(id, { i })], { sync: true });
        await s.append(id, [step(id, "applying")]);
        await s.append(id, [step(id, "applied")], { sync: true });
      }),
    );
    appending = false;
    await reading;
    const other = await open();
    for (const id of ids) {
      const recs = await other.readRun(id);
      expect(recs.map((r) => (r.t === "step" ? r.status : r.t))).toEqual(["run", "applying", "applied"]);
    }
  });
}

/** listRuns and its queries, fleets, and what other handles appended since. */
export function listCases(s: TrailSuite): void {
  const open = s.open;
  it("lists runs oldest first with their status, and selects by host, atom, status, fleet and undoOf", async () => {
    const s = await open();
    await s.append("b", [start("b", { i: 2, host: "web2" }), step("b", "applying")], { sync: true });
    await s.append(
      "a",
      [start("a", { i: 1 }), step("a", "applied", { changed: true }), end("a", "committed")],
      {
        sync: true,
      },
    );
    await s.append("c", [start("c", { i: 3, atom: "db", fleet: "f1" }), end("c", "rolled-back")], {
      sync: true,
    });
    await s.append("u", [start("u", { i: 4, mode: "undo", undoOf: "a" }), end("u", "rolled-back")], {
      sync: true,
    });
    await s.append(
      "f1",
      [
        {
          t: "fleet",
          v: 2,
          fleetId: "f1",
          atom: "db",
          mode: "run",
          hosts: ["web1"],
          at: at(3),
          pid: 1,
          machine: "t",
        },
      ],
      {
        sync: true,
      },
    );
    const all = await (await open()).listRuns();
    expect(all.map((r) => [r.runId, r.status])).toEqual([
      ["a", "committed"],
      ["b", "unfinished"],
      ["c", "rolled-back"],
      ["u", "rolled-back"],
    ]);
    expect(all[0]).toMatchObject({ atom: "release", host: "web1", steps: 1, changed: 1, mode: "run" });
    const ids = (q: Parameters<TrailStore["listRuns"]>[0]) =>
      s.listRuns(q).then((l) => l.map((r) => r.runId));
    expect(await ids({ host: "web2" })).toEqual(["b"]);
    expect(await ids({ host: ["web2", "web1"] })).toEqual(["a", "b", "c", "u"]);
    expect(await ids({ atom: "db" })).toEqual(["c"]);
    expect(await ids({ status: "unfinished" })).toEqual(["b"]);
    expect(await ids({ fleet: "f1" })).toEqual(["c"]);
    expect(await ids({ undoOf: "a" })).toEqual(["u"]);
    expect(await ids({ host: "web1", status: "committed", atom: "release" })).toEqual(["a"]);
    expect(await ids({ host: "nowhere" })).toEqual([]);
    // a fleet's own records are not a host run, but the store holds them
    if (s.listIds) expect(await s.listIds()).toEqual(expect.arrayContaining(["a", "b", "c", "u", "f1"]));
    expect((await s.readRun("f1"))[0]).toMatchObject({ t: "fleet", fleetId: "f1" });
  });

  it("an unsynced record reaches listRuns and other handles once a later append is synced", async () => {
    const s = await open();
    await s.append("r", [start("r", { i: 1 })], { sync: true });
    await s.append("r", [step("r", "applied", { changed: true })]);
    await s.append("r", [end("r", "committed")], { sync: true });
    const other = await open();
    expect((await other.listRuns()).map((r) => [r.runId, r.status, r.changed])).toEqual([
      ["r", "committed", 1],
    ]);
  });

  it("a handle that listed the runs sees what another handle appended since (no stale summaries)", async () => {
    const s = await open();
    const other = await open();
    await other.append("r", [start("r", { i: 1 }), step("r", "applying")], { sync: true });
    expect((await s.listRuns()).map((r) => r.status)).toEqual(["unfinished"]);
    await other.append("r", [step("r", "applied", { changed: true }), end("r", "committed")], {
      sync: true,
    });
    await other.append("q", [start("q", { i: 2 })], { sync: true });
    expect((await s.listRuns()).map((r) => [r.runId, r.status])).toEqual([
      ["r", "committed"],
      ["q", "unfinished"],
    ]);
    // and its own run, started here and finished elsewhere (recover in another process)
    await s.append("own", [start("own", { i: 3 }), step("own", "applying")], { sync: true });
    expect((await s.listRuns({ status: "unfinished" })).map((r) => r.runId)).toEqual(["q", "own"]);
    await other.append("own", [step("own", "failed-unchanged"), end("own", "rolled-back")], { sync: true });
    await s.append("own2", [start("own2", { i: 4 })], { sync: true });
    expect((await s.listRuns({ status: "rolled-back" })).map((r) => r.runId)).toEqual(["own"]);
  });
}

/** remove, where the store has it. */
export function removeCases(s: TrailSuite): void {
  const open = s.open;
  it("removes every record of a run and nothing else", async (ctx) => {
    const s = await open();
    if (!s.remove) return ctx.skip();
    await s.append("x", [start("x", { i: 1 }), end("x", "committed")], { sync: true });
    await s.append("y", [start("y", { i: 2 }), end("y", "committed")], { sync: true });
    await s.remove("x");
    const other = await open();
    expect((await other.listRuns()).map((r) => r.runId)).toEqual(["y"]);
    expect(await other.readRun("x")).toEqual([]);
  });
}

/** A real run and its undo from another handle, through the engine. */
export function engineCases(s: TrailSuite): void {
  const open = s.open;
  it("holds a real run, its undo and their states as the engine wrote them", async () => {
    const dir = await mkdtemp(join(tmpdir(), "atomkit-trail-contract-"));
    try {
      const s = await open();
      const host = localHost({ name: "contract", stateDir: join(dir, "state") });
      const path = join(dir, "file.txt");
      await writeFile(path, "v0");
      const a = atom("release", { steps: [put({ path, text: "v1" }, { name: "put" })] });
      const first = await run(a, { host, trail: s });
      expect(first.error).toBeUndefined();
      expect(first.status).toBe("committed");
      expect(await readFile(path, "utf8")).toBe("v1");
      // undone from another handle, as `atomkit undo` in a new process
      const other = await open();
      const undo = await undoRun(other, first.runId, { host, steps: [put] });
      expect(undo.status).toBe("rolled-back");
      expect(await readFile(path, "utf8")).toBe("v0");
      const runs = await (await open()).listRuns({ host: "contract" });
      expect(runs.map((r) => [r.mode, r.status])).toEqual([
        ["run", "committed"],
        ["undo", "rolled-back"],
      ]);
      const view = foldRun(await other.readRun(first.runId), first.runId);
      expect(view?.steps[0]).toMatchObject({
        status: "applied",
        before: { text: "v0" },
        after: { text: "v1" },
      });
      await expect(undoRun(other, first.runId, { host, steps: [put] })).rejects.toThrow(/already undone/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

/** Store locks, where the store has them. */
export function lockCases(s: TrailSuite): void {
  const open = s.open;
  it("store locks, where the store has them: all or none, the holder named, freed on release", async (ctx) => {
    const s = await open();
    const other = await open();
    if (!s.lock || !other.lock) return ctx.skip();
    const held = await s.lock(["host/a", "host/b"], { owner: "alice@ci-1", note: "run 1" });
    expect(held.signal.aborted).toBe(false);
    const refused = await other.lock(["host/c", "host/b"], { owner: "bob@ci-2" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(LockedError);
    expect(String((refused as Error).message)).toMatch(/alice@ci-1/);
    // none of an all-or-none take was kept: c is free
    const c = await other.lock(["host/c"], { owner: "bob@ci-2" });
    await c.release();
    await held.release();
    const again = await other.lock(["host/a", "host/b", "host/c"], { owner: "bob@ci-2" });
    await again.release();
  });
}
