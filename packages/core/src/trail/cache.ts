import type { RunQuery, RunSummary, TrailRecord } from "../trail";
import { summarizeAll } from "./fold";
import { matchesQuery } from "./query";

/**
 * Summaries by run, each kept with the stamp of the records it was folded from (`TrailStore.stamps`):
 * a run whose stamp is unchanged is not read again. Ids no longer listed are forgotten.
 */
export class SummaryCache {
  private known = new Map<string, { stamp: string; list: RunSummary[] }>();

  forget(runId: string): void {
    this.known.delete(runId);
  }

  /**
   * `read(id, given)`: the records of run `id` as they will be trusted; `given` are the records
   * `readMany` fetched for it in bulk (a sealed store verifies them), absent when it is read alone.
   */
  async list(
    ids: readonly string[],
    stamps: Map<string, string> | undefined,
    read: (runId: string, given?: readonly TrailRecord[]) => Promise<readonly TrailRecord[]>,
    query?: RunQuery,
    readMany?: (ids: readonly string[]) => Promise<Map<string, TrailRecord[]>>,
  ): Promise<RunSummary[]> {
    const next = new Map<string, { stamp: string; list: RunSummary[] }>();
    const out: RunSummary[] = [];
    const changed = ids.filter((id) => {
      const stamp = stamps?.get(id);
      return stamp === undefined || this.known.get(id)?.stamp !== stamp;
    });
    const fetched = new Map<string, TrailRecord[]>();
    if (readMany && changed.length > 1)
      for (let i = 0; i < changed.length; i += 500)
        for (const [id, records] of await readMany(changed.slice(i, i + 500))) fetched.set(id, records);
    const readOne = (id: string) => read(id, fetched.get(id));
    for (const id of ids) {
      const stamp = stamps?.get(id);
      let entry = this.known.get(id);
      if (stamp === undefined || entry?.stamp !== stamp) {
        entry = { stamp: stamp ?? "", list: await summarizeAll([id], readOne) };
      }
      if (stamp !== undefined) next.set(id, entry);
      out.push(...entry.list.filter((r) => matchesQuery(r, query)).map((r) => ({ ...r })));
    }
    this.known = next;
    return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.runId.localeCompare(b.runId));
  }
}
