import { memoryTrail, type TrailRecord } from "@atomkit/core";
import { describe, expect, it } from "vitest";
import { renderHistory } from "../src/html/history-page";
import { anchor } from "../src/html/markup";
import { reportModel, runModel } from "../src/html/model";
import { renderRunReport } from "../src/html/run-page";

// The report's reading of odd trails: records a crash and recover leave, times that do not parse, ids
// that would collide. (The real-trail and browser tests are report.test.ts and report-fleet.test.ts.)

const T = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const start = (runId: string, steps: string[], at = T(0)): TrailRecord =>
  ({
    t: "run",
    v: 2,
    runId,
    atom: "release",
    host: "web",
    mode: "run",
    at,
    pid: 1,
    machine: "m",
    steps: steps.map((name) => ({ name, kind: "x.y", phase: "steps", title: name, params: {} })),
  }) as TrailRecord;
const step = (runId: string, name: string, status: string, at: string, extra: object = {}): TrailRecord =>
  ({ t: "step", runId, step: name, status, at, ...extra }) as TrailRecord;

describe("report model", () => {
  it("an undo cut by a dead process and finished by recover: the cut stretch apart, recover's own after it", () => {
    const run = runModel(
      [
        start("r1", ["a", "b"]),
        step("r1", "a", "applying", T(1), { before: 1 }),
        step("r1", "a", "applied", T(2), { before: 1, after: 2, changed: true }),
        step("r1", "b", "applying", T(3), { before: 1 }),
        step("r1", "b", "failed-changed", T(5), {
          checkAt: T(4),
          after: 3,
          error: { name: "E", message: "boom" },
        }),
        step("r1", "b", "undoing", T(6)),
        // the process died here; five hours later recover undid it again and verified
        step("r1", "b", "undoing", T(18_000), { recovered: true }),
        step("r1", "b", "undone", T(18_002), { verifyAt: T(18_001), verified: true, recovered: true }),
        step("r1", "a", "undoing", T(18_003), { recovered: true }),
        step("r1", "a", "undone", T(18_004), { verified: true, recovered: true }),
        { t: "end", runId: "r1", status: "rolled-back", at: T(18_005), recovered: true } as TrailRecord,
      ],
      "r1",
    )!;
    const b = run.steps
      .find((s) => s.name === "b")!
      .segments.map((g) => [g.phase, g.to - g.from, !!g.interrupted]);
    expect(b).toEqual([
      ["apply", 1000, false],
      ["check", 1000, false],
      ["undo", 0, true],
      ["undo", 1000, false],
      ["verify", 1000, false],
    ]);
    expect(run.recovered).toBe(true);
  });

  it("times that do not parse never crash the report; the page says ?", async () => {
    const trail = memoryTrail();
    await trail.append("r2", [
      start("r2", ["a"], "not a time"),
      step("r2", "a", "applying", "garbage"),
      step("r2", "a", "applied", T(2), { before: 1, after: 2, changed: true }),
      { t: "end", runId: "r2", status: "committed", at: "also garbage" } as TrailRecord,
    ]);
    const model = (await reportModel(trail, "r2"))!;
    const page = renderRunReport(model);
    expect(page).toContain("<dt>started</dt><dd>?</dd>");
    expect(page).not.toContain("NaN ms");
    expect(renderHistory(await trail.listRuns())).toContain("No readable start times.");
  });

  it("a status the trail made up becomes no class name", async () => {
    const trail = memoryTrail();
    await trail.append("r3", [
      start("r3", ["a"]),
      { t: "end", runId: "r3", status: 'x" onmouseover="alert(1)', at: T(1) } as unknown as TrailRecord,
    ]);
    const page = renderRunReport((await reportModel(trail, "r3"))!);
    expect(page).not.toMatch(/onmouseover="/);
    expect(page).toContain('class="badge o-corrupt"');
  });

  it("anchors are ids of letters, digits, - and _ only, and different names never share one", () => {
    const names = ["web.1", "web_1", "web-1", "wéb1", "web 1", "web/1", '"><x', "web_2e_1"];
    const ids = names.map((n) => anchor("host", n));
    for (const id of ids) expect(id).toMatch(/^host-[A-Za-z0-9_-]+$/);
    expect(new Set(ids).size).toBe(names.length);
  });
});
