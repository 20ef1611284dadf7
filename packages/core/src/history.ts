import { AtomError } from "./errors";
import { type RunStartRecord, type RunSummary, runsWhere, type TrailRecord, type TrailStore } from "./trail";

// What the runs of a trail mean together, across runs: which forward runs were undone, which runs left
// the host changed, which release is live. A rolled-back run whose every undo verified, and a committed
// run together with the undo that reversed it, are net zero: they are never drift for anything else.

/** Start order: by start time, then by run id (time-sortable and strictly increasing within a process). */
export function startedAfter(
  a: { startedAt: string; runId: string },
  b: { startedAt: string; runId: string },
): boolean {
  return a.startedAt > b.startedAt || (a.startedAt === b.startedAt && a.runId > b.runId);
}

/** Forward runs that an undo run reversed completely (ended rolled-back), by run id → undo run id. */
export function undoneRuns(runs: readonly RunSummary[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of runs)
    if (r.mode === "undo" && r.undoOf && r.status === "rolled-back") out.set(r.undoOf, r.runId);
  return out;
}

/**
 * Runs on the target's host, started after it, that left changes on the host: every run but those that
 * are net zero among themselves (a rolled-back run; a run that changed nothing; a committed run whose
 * undo is also later; that undo).
 * Unfinished, rollback-failed and corrupt runs always count: nobody knows what they left.
 */
export function changesAfter(
  runs: readonly RunSummary[],
  target: { runId: string; host: string; startedAt: string },
  filter: (r: RunSummary) => boolean = () => true,
): RunSummary[] {
  const later = runs.filter(
    (r) =>
      r.host === target.host &&
      r.runId !== target.runId &&
      r.undoOf !== target.runId &&
      startedAfter(r, target) &&
      filter(r),
  );
  const laterIds = new Set(later.map((r) => r.runId));
  const undone = undoneRuns(runs);
  return later.filter((r) => {
    if (r.status === "unfinished" || r.status === "rollback-failed" || r.status === "corrupt") return true;
    if (r.mode === "run") {
      if (r.status === "rolled-back" || r.changed === 0) return false;
      const undo = undone.get(r.runId);
      return !(undo && laterIds.has(undo));
    }
    // an undo that rolled back reversed a run: net zero together with it when that run is later too
    return !(r.undoOf && laterIds.has(r.undoOf));
  });
}

/**
 * Committed forward runs on a host (of one atom, if given) that changed something and that no undo has
 * reversed, newest first: the first is what serves now, the second is what `rollback` brings back. (A
 * run that found everything already as it asked changed nothing: it is no release of its own.)
 */
export function liveRuns(
  runs: readonly RunSummary[],
  where: { host: string; atom?: string | undefined },
): RunSummary[] {
  const undone = undoneRuns(runs);
  return runs
    .filter(
      (r) =>
        r.host === where.host &&
        r.mode === "run" &&
        r.status === "committed" &&
        r.changed > 0 &&
        !undone.has(r.runId) &&
        (where.atom === undefined || r.atom === where.atom),
    )
    .sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.runId.localeCompare(a.runId));
}

/** What `rollback` undoes on one host, newest first: to `to` (exclusive), or the `steps` newest live runs. */
export function rollbackPlan(
  runs: readonly RunSummary[],
  where: { host: string; atom?: string | undefined; to?: string | undefined; steps?: number | undefined },
): RunSummary[] {
  const live = liveRuns(runs, where);
  const what = where.atom ? `atom "${where.atom}"` : "any atom";
  if (!live.length) {
    throw new AtomError("ATOM_NOT_UNDOABLE", `nothing to roll back on host "${where.host}"`, {
      host: where.host,
      expected: `a committed run of ${what} that was not undone`,
      found: "none",
      hint: "`atomkit status` shows what is live on each host",
    });
  }
  if (where.to !== undefined) {
    const i = live.findIndex((r) => r.runId === where.to);
    if (i < 0) {
      throw new AtomError(
        "ATOM_NOT_UNDOABLE",
        `run ${where.to} is not a live release on host "${where.host}"`,
        {
          host: where.host,
          expected: `one of the live runs of ${what}: ${live.map((r) => r.runId).join(", ")}`,
          found: where.to,
          hint: "`atomkit status --history` lists the runs you can go back to",
        },
      );
    }
    if (i === 0) {
      throw new AtomError("ATOM_NOT_UNDOABLE", `run ${where.to} already serves on host "${where.host}"`, {
        host: where.host,
        hint: "nothing to do",
      });
    }
    return live.slice(0, i);
  }
  const steps = where.steps ?? 1;
  if (live.length <= steps) {
    const first = live[live.length - 1]!;
    throw new AtomError(
      "ATOM_NOT_UNDOABLE",
      `host "${where.host}" has ${live.length} live release(s) of ${what}: rolling back ${steps} would leave none serving`,
      {
        host: where.host,
        expected: `more than ${steps} committed run(s) that were not undone`,
        found: live.map((r) => `${r.runId} (${r.atom})`).join(", "),
        hint: `nothing earlier to go back to; to remove the first release as well, undo it explicitly: \`atomkit undo ${first.runId}\``,
      },
    );
  }
  return live.slice(0, steps);
}

/** Refuses to start on hosts whose last run is unfinished: a new run would change what recover must observe. */
export async function refuseUnfinished(trail: TrailStore, hosts: readonly string[]): Promise<void> {
  const unfinished = await runsWhere(trail, { status: "unfinished", host: hosts });
  if (!unfinished.length) return;
  const r = unfinished[0]!;
  // who started it and where: a deploy going on right now is someone's, and they can be asked
  const start = (await trail.readRun(r.runId).catch((): TrailRecord[] => [])).find(
    (x): x is RunStartRecord => x.t === "run",
  );
  const who = start ? `, by ${start.lock?.owner ?? "?"}, pid ${start.pid} on ${start.machine}` : "";
  throw new AtomError(
    "ATOM_LOCKED",
    `host "${r.host}" has an unfinished run ${r.runId} (${r.atom}, started ${r.startedAt}${who})`,
    {
      host: r.host,
      expected: "no unfinished run on the host",
      found: unfinished.map((u) => `${u.runId} on ${u.host}`).join(", "),
      hint: `if that process still runs, let it finish (\`atomkit unlock ${r.host}\` shows the live holder); if it died, \`atomkit recover ${r.runId}\` finishes it (recover refuses while it lives)`,
    },
  );
}
