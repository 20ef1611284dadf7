import type { Json, TrailRecord } from "@atomkit/core";
import { foldRun, MASK } from "@atomkit/core/kit";
import type { RunMeta } from "../atoms";
import type { Phase, RunModel } from "./model";
import { segmentsOf, time } from "./timeline";

/** A run read from its records; the timeline comes from the record times of each step. */
export function runModel(records: readonly TrailRecord[], runId: string): RunModel | undefined {
  const view = foldRun(records, runId);
  if (!view) return undefined;
  const endedAt = view.end && Number.isFinite(time(view.end.at)) ? time(view.end.at) : undefined;
  const segments = segmentsOf(records, runId, endedAt);
  return {
    runId,
    mode: view.run.mode,
    ...(view.run.undoOf ? { undoOf: view.run.undoOf } : {}),
    host: view.run.host,
    status: view.end?.status ?? "unfinished",
    ...(view.end?.recovered ? { recovered: true } : {}),
    startedAt: time(view.run.at),
    ...(endedAt !== undefined ? { endedAt } : {}),
    ...(view.run.lock?.owner ? { owner: view.run.lock.owner } : {}),
    vars: varsOf(view.run.meta),
    steps: view.steps.map((s) => {
      const own = segments.filter((g) => g.step === s.name);
      const spent = (phases: Phase[]) => {
        const list = own.filter((g) => phases.includes(g.phase));
        return list.length ? list.reduce((t, g) => t + (g.to - g.from), 0) : undefined;
      };
      const applyMs = spent(["apply", "check"]);
      const undoMs = spent(["undo", "verify"]);
      return {
        name: s.name,
        kind: s.kind,
        title: s.title,
        params: s.params,
        status: s.status,
        ...(s.before !== undefined ? { before: s.before } : {}),
        ...(s.after !== undefined ? { after: s.after } : {}),
        ...(s.changed !== undefined ? { changed: s.changed } : {}),
        ...(s.verified !== undefined ? { verified: s.verified } : {}),
        ...(s.error ? { error: s.error } : {}),
        ...(s.undoError ? { undoError: s.undoError } : {}),
        ...(applyMs !== undefined ? { applyMs } : {}),
        ...(undoMs !== undefined ? { undoMs } : {}),
        segments: own,
      };
    }),
    ...(view.end?.error ? { error: view.end.error } : {}),
    ...(view.end?.stillApplied?.length ? { stillApplied: view.end.stillApplied } : {}),
  };
}

/** A run's vars as recorded, secret ones by name only (their values never reach the trail). */
export function varsOf(meta: Json | undefined): Array<[string, string]> {
  const m = (meta ?? {}) as Partial<RunMeta>;
  const out: Array<[string, string]> = Object.entries(m.vars ?? {}).map(([k, v]) => [k, String(v)]);
  for (const k of m.secretVars ?? []) out.push([k, MASK]);
  return out;
}
