import { isLive } from "../engine/state";
import type {
  RunEndRecord,
  RunQuery,
  RunStartRecord,
  RunSummary,
  RunView,
  StepView,
  TrailRecord,
} from "../trail";
import { matchesQuery } from "./query";

/**
 * Folds a run's records into its latest state. With `runId`, records of any other run are not this
 * run's (a copied or spliced file): the run record must carry that id.
 */
export function foldRun(records: readonly TrailRecord[], runId?: string): RunView | undefined {
  const start = records.find((r): r is RunStartRecord => r.t === "run");
  if (!start || (runId !== undefined && start.runId !== runId)) return undefined;
  const steps = new Map<string, StepView>(
    start.steps.map((s) => [s.name, { ...s, status: s.status ?? "pending" }]),
  );
  let end: RunEndRecord | undefined;
  for (const r of records) {
    if ((r.t === "step" || r.t === "end") && r.runId !== start.runId) continue;
    if (r.t === "step") {
      const view = steps.get(r.step);
      if (!view) continue;
      const { t: _t, runId: _r, step: _s, recovered: _rec, mac: _m, error, ...fields } = r;
      Object.assign(view, fields);
      // the failure that made the run roll back stays visible next to a later undo failure
      if (error && (r.status === "undo-failed" || r.status === "drift")) view.undoError = error;
      else if (error) view.error = error;
    } else if (r.t === "end") end = r;
  }
  return { run: start, steps: [...steps.values()], ...(end ? { end } : {}) };
}

/** A run as `listRuns` lists it: who, what, when, how it ended, and how many of its steps are live. */
export function summarize(view: RunView): RunSummary {
  return {
    runId: view.run.runId,
    atom: view.run.atom,
    host: view.run.host,
    mode: view.run.mode,
    ...(view.run.undoOf ? { undoOf: view.run.undoOf } : {}),
    ...(view.run.fleet ? { fleet: view.run.fleet } : {}),
    startedAt: view.run.at,
    ...(view.end ? { endedAt: view.end.at } : {}),
    status: view.end?.status ?? "unfinished",
    ...(view.end?.recovered ? { recovered: true } : {}),
    steps: view.steps.length,
    changed: view.steps.filter((s) => isLive(s)).length,
    ...(view.run.meta !== undefined ? { meta: view.run.meta } : {}),
  };
}

/** A run whose trail cannot be read, as `listRuns` reports it. */
export function corruptSummary(runId: string, problem: string, at = ""): RunSummary {
  return {
    runId,
    atom: "?",
    host: "?",
    mode: "run",
    startedAt: at,
    status: "corrupt",
    steps: 0,
    changed: 0,
    problem,
  };
}

/** Summaries of the run files among `ids`, oldest first; a file that fails to read is listed as corrupt. */
export async function summarizeAll(
  ids: readonly string[],
  read: (runId: string) => Promise<readonly TrailRecord[]>,
  query?: RunQuery,
): Promise<RunSummary[]> {
  const out: RunSummary[] = [];
  for (const runId of ids) {
    let records: readonly TrailRecord[];
    try {
      records = await read(runId);
    } catch (error) {
      out.push(corruptSummary(runId, error instanceof Error ? error.message.split("\n")[0]! : String(error)));
      continue;
    }
    if (records[0]?.t === "fleet") continue; // a fleet's own records, not a host run
    const view = foldRun(records, runId);
    if (view) out.push(summarize(view));
    else
      out.push(
        corruptSummary(
          runId,
          records.length
            ? `no run record for ${runId} (a trail file copied or renamed from another run?)`
            : "the trail file is empty",
        ),
      );
  }
  return out
    .filter((r) => matchesQuery(r, query))
    .sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.runId.localeCompare(b.runId));
}
