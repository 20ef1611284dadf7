import { defineStep, type RunStartRecord, type StepTrailRecord, type TrailRecord } from "@atomkit/core";

// The records the trail contract appends (a run of one step "a" on web1, at fixed times) and the tiny
// real step kind its engine case runs.

export const at = (i: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();

export function start(runId: string, o: Partial<RunStartRecord> & { i: number }): RunStartRecord {
  const { i, ...rest } = o;
  return {
    t: "run",
    v: 2,
    runId,
    atom: "release",
    host: "web1",
    mode: "run",
    at: at(i),
    pid: 1,
    machine: "test",
    steps: [{ name: "a", kind: "test.put", phase: "steps", title: "a", params: { v: 1 } }],
    ...rest,
  };
}

export const step = (
  runId: string,
  status: StepTrailRecord["status"],
  extra: Partial<StepTrailRecord> = {},
) => ({ t: "step", runId, step: "a", status, at: at(50), ...extra }) as StepTrailRecord;

export const end = (runId: string, status: "committed" | "rolled-back" | "rollback-failed") =>
  ({ t: "end", runId, status, at: at(60) }) as TrailRecord;

/** A tiny real step kind for the engine scenarios: writes one file, remembers its content. */
export const put = defineStep({
  kind: "test.trail-put",
  params: (raw: { path: string; text: string }) => raw,
  async observe(ctx, p): Promise<{ text: string | null }> {
    try {
      return { text: (await ctx.host.readFile(p.path)).toString("utf8") };
    } catch {
      return { text: null };
    }
  },
  async apply(ctx, p) {
    await ctx.host.writeFile(p.path, p.text);
  },
  async undo(ctx, p, before) {
    if (before.text === null) await ctx.host.rm(p.path, { force: true });
    else await ctx.host.writeFile(p.path, before.text);
  },
});
