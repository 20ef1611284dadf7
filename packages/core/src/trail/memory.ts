import type { RunSummary, TrailRecord, TrailStore } from "../trail";
import { summarizeAll } from "./fold";
import { refuseOversized } from "./limits";
import { matchesQuery } from "./query";

/** Keeps runs in memory: for tests, benchmarks and throwaway runs. Lost with the process. */
export function memoryTrail(): TrailStore & { records: Map<string, TrailRecord[]> } {
  const records = new Map<string, TrailRecord[]>();
  // a run's summary is folded again only when it got records: every run of a fleet lists the runs,
  // so without this a fleet of n hosts folds n² runs
  const summaries = new Map<string, { count: number; list: RunSummary[] }>();
  return {
    records,
    async append(runId, recs) {
      // the same limit as every store: a kind tested on the memory trail must not fail on the file trail
      for (const r of recs) refuseOversized(runId, r, JSON.stringify(r).length);
      const list = records.get(runId) ?? [];
      records.set(runId, list);
      // kept by reference (the engine writes fresh records and never mutates a state); readers get copies
      list.push(...recs);
    },
    async readRun(runId) {
      return structuredClone(records.get(runId) ?? []);
    },
    async listRuns(query) {
      const out: RunSummary[] = [];
      for (const [id, list] of records) {
        let known = summaries.get(id);
        if (known?.count !== list.length) {
          known = { count: list.length, list: await summarizeAll([id], async () => list) };
          summaries.set(id, known);
        }
        out.push(...known.list.filter((r) => matchesQuery(r, query)).map((r) => ({ ...r })));
      }
      return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.runId.localeCompare(b.runId));
    },
    async listIds() {
      return [...records.keys()];
    },
    async remove(runId) {
      records.delete(runId);
      summaries.delete(runId);
    },
  };
}
