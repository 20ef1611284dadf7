import type { RunQuery, RunSummary, TrailStore } from "../trail";

/**
 * The runs of `store` that match `query`, filtered again here: a store written before `listRuns` took a
 * query returns every run, and acting on another fleet's runs (or refusing on them) must not follow.
 */
export async function runsWhere(store: TrailStore, query: RunQuery): Promise<RunSummary[]> {
  return (await store.listRuns(query)).filter((r) => matchesQuery(r, query));
}

/** Whether a summary matches a query (`listRuns` of stores without an index). */
export function matchesQuery(r: RunSummary, q: RunQuery | undefined): boolean {
  if (!q) return true;
  if (q.host !== undefined && !(typeof q.host === "string" ? r.host === q.host : q.host.includes(r.host)))
    return false;
  return (
    (q.atom === undefined || r.atom === q.atom) &&
    (q.status === undefined || r.status === q.status) &&
    (q.fleet === undefined || r.fleet === q.fleet) &&
    (q.undoOf === undefined || r.undoOf === q.undoOf)
  );
}
