import { AtomError } from "./errors";
import { liveRuns, startedAfter, undoneRuns } from "./history";
import type { RunSummary, TrailStore } from "./trail";

// Which runs a trail can forget. Never one that `recover`, `rollback`, `undo` or `status` still needs:
// an unfinished, rollback-failed or unreadable run (recover, a person); a live release (status shows
// it, rollback goes back to it); one half of a run and the undo that reversed it (alone, the run would
// read as live again, or the undo as a change of its own).

/** Which runs `pruneTrail` may remove: beyond the newest `keep`, older than `olderThanMs`. */
export interface PruneOptions {
  /** Keep at least the newest `keep` runs of each host. */
  keep?: number;
  /** Only runs that ended (or, unfinished, started) more than this many ms ago. */
  olderThanMs?: number;
  /** For tests: the time `olderThanMs` counts back from. */
  now?: number;
}

/** What `prunePlan` decides: the run and fleet ids to remove, and what stays. */
export interface PrunePlan {
  /** Run ids to remove, oldest first, then fleet ids whose every host run goes. */
  remove: string[];
  /** How many runs stay, and why the protected ones stay. */
  kept: { total: number; live: number; unsettled: number };
}

/** Decides what `pruneTrail` removes; changes nothing. */
export function prunePlan(
  runs: readonly RunSummary[],
  fleetIds: readonly string[],
  o: PruneOptions,
): PrunePlan {
  if (o.keep === undefined && o.olderThanMs === undefined)
    throw new AtomError("ATOM_PARAMS_INVALID", "prune needs --keep, --older-than or both", {
      hint: "e.g. atomkit trail prune --keep 20   or   atomkit trail prune --older-than 90d",
    });
  if (o.keep !== undefined && !(Number.isInteger(o.keep) && o.keep >= 0))
    throw new AtomError("ATOM_PARAMS_INVALID", "prune --keep needs a whole number of runs", {
      expected: "0 or more",
      found: o.keep,
    });
  const now = o.now ?? Date.now();
  const live = new Set<string>();
  for (const host of new Set(runs.map((r) => r.host)))
    for (const r of liveRuns(runs, { host })) live.add(r.runId);
  const unsettled = new Set(
    runs
      .filter((r) => r.status === "unfinished" || r.status === "rollback-failed" || r.status === "corrupt")
      .map((r) => r.runId),
  );
  const newest = new Set<string>();
  if (o.keep !== undefined) {
    for (const host of new Set(runs.map((r) => r.host))) {
      const own = runs.filter((r) => r.host === host).sort((a, b) => (startedAfter(a, b) ? -1 : 1));
      for (const r of own.slice(0, o.keep)) newest.add(r.runId);
    }
  }
  const recent = (r: RunSummary) => {
    if (o.olderThanMs === undefined) return false;
    const at = Date.parse(r.endedAt ?? r.startedAt);
    return !Number.isFinite(at) || now - at < o.olderThanMs;
  };
  const removable = new Set(
    runs
      .filter((r) => !live.has(r.runId) && !unsettled.has(r.runId) && !newest.has(r.runId) && !recent(r))
      .map((r) => r.runId),
  );
  // a run and the undo that reversed it go together or not at all
  const undoneBy = undoneRuns(runs);
  for (let changed = true; changed; ) {
    changed = false;
    for (const r of runs) {
      const partner = r.mode === "undo" ? r.undoOf : undoneBy.get(r.runId);
      if (
        removable.has(r.runId) &&
        partner &&
        runs.some((x) => x.runId === partner) &&
        !removable.has(partner)
      ) {
        removable.delete(r.runId);
        changed = true;
      }
    }
  }
  const remove = runs.filter((r) => removable.has(r.runId)).map((r) => r.runId);
  // a fleet's own record goes with the last of its host runs
  const fleetsLeft = new Set(runs.filter((r) => !removable.has(r.runId) && r.fleet).map((r) => r.fleet!));
  const fleetsUsed = new Set(runs.filter((r) => r.fleet).map((r) => r.fleet!));
  for (const f of fleetIds) if (fleetsUsed.has(f) && !fleetsLeft.has(f)) remove.push(f);
  return {
    remove,
    kept: { total: runs.length - removable.size, live: live.size, unsettled: unsettled.size },
  };
}

/** Removes what `prunePlan` chose (nothing with `dryRun`); returns the plan. */
export async function pruneTrail(
  store: TrailStore,
  options: PruneOptions & { dryRun?: boolean },
): Promise<PrunePlan> {
  if (!store.remove)
    throw new AtomError("ATOM_PARAMS_INVALID", "this trail store cannot remove runs", {
      hint: "prune is for stores with remove(): the file trail and the memory trail",
    });
  const runs = await store.listRuns();
  const known = new Set(runs.map((r) => r.runId));
  const fleetIds = store.listIds ? (await store.listIds()).filter((id) => !known.has(id)) : [];
  const plan = prunePlan(runs, fleetIds, options);
  if (!options.dryRun) for (const id of plan.remove) await store.remove(id);
  return plan;
}
