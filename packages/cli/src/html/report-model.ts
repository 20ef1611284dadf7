import type {
  FleetEndRecord,
  FleetSpread,
  FleetStartRecord,
  RunStartRecord,
  RunSummary,
  TrailRecord,
  TrailStore,
} from "@atomkit/core";
import { planBatches } from "@atomkit/core/kit";
import { extent } from "./markup";
import type { HostModel, HostOutcome, Outcome, ReportModel, RunModel } from "./model";
import { runModel, varsOf } from "./run-model";
import { markers, time } from "./timeline";

// The report of one run or of a fleet run: its hosts, each with its runs, and the markers over all.

/** The model of a run or a fleet run (by its fleet id); undefined when the trail has no such id. */
export async function reportModel(trail: TrailStore, id: string): Promise<ReportModel | undefined> {
  const records = await trail.readRun(id);
  const fleet = records.find((r): r is FleetStartRecord => r.t === "fleet");
  if (fleet && fleet.fleetId === id) return fleetModel(trail, fleet, records);
  const run = runModel(records, id);
  if (!run) return undefined;
  const start = records.find((r): r is RunStartRecord => r.t === "run")!;
  const host: HostModel = {
    host: run.host,
    outcome: run.status,
    batch: 0,
    runs: [run],
    ...failedStepOf(run),
  };
  return {
    kind: "run",
    id,
    atom: start.atom,
    mode: start.mode,
    ...(start.undoOf ? { undoOf: start.undoOf } : {}),
    outcome: run.status,
    vars: varsOf(start.meta),
    ...(start.lock?.owner ? { owner: start.lock.owner } : {}),
    machine: start.machine,
    pid: start.pid,
    startedAt: run.startedAt,
    ...(run.endedAt !== undefined ? { endedAt: run.endedAt } : {}),
    hosts: [host],
    batches: 1,
    ...markers([host]),
    generatedAt: Date.now(),
  };
}

async function fleetModel(
  trail: TrailStore,
  fleet: FleetStartRecord,
  records: readonly TrailRecord[],
): Promise<ReportModel> {
  const end = records.find((r): r is FleetEndRecord => r.t === "fleet-end");
  const summaries = (await trail.listRuns()).filter((r) => r.fleet === fleet.fleetId);
  const runs = await Promise.all(
    summaries.map(async (s) => runModel(await trail.readRun(s.runId).catch(() => []), s.runId) ?? corrupt(s)),
  );
  const options = (fleet.options ?? {}) as { batch?: FleetSpread["batch"] };
  let batchOf = new Map<string, number>();
  try {
    planBatches(fleet.hosts, options.batch).forEach((list, i) => {
      for (const h of list) batchOf.set(h, i);
    });
  } catch {
    batchOf = new Map(); // a batch plan the trail holds but core no longer accepts: one batch
  }
  const endState = new Map(end?.hosts.map((h) => [h.host, h.state]) ?? []);
  const hosts = fleet.hosts.map((name): HostModel => {
    const own = runs
      .filter((r) => r.host === name)
      .sort((a, b) => a.startedAt - b.startedAt || a.runId.localeCompare(b.runId));
    const forward = own.find((r) => r.mode === fleet.mode) ?? own[0];
    const state = endState.get(name);
    const last = own[own.length - 1];
    const outcome: HostOutcome = (state as HostOutcome | undefined) ?? (last ? last.status : "unfinished");
    return {
      host: name,
      outcome: outcome === "not-run" && own.length ? "unfinished" : outcome,
      batch: batchOf.get(name) ?? 0,
      runs: own,
      ...(forward ? failedStepOf(forward) : {}),
    };
  });
  // the CLI records vars per host run (hosts may have vars of their own): the fleet's are those that
  // every host ran with; the rest are shown on each host
  const forwards = hosts.map((h) => h.runs.find((r) => r.mode === fleet.mode)).filter((r) => r !== undefined);
  let vars = varsOf(fleet.meta);
  if (!vars.length && forwards.length) {
    const key = ([k, v]: [string, string]) => `${k}\u0000${v}`;
    const common = forwards
      .slice(1)
      .reduce(
        (set, r) => new Set(r.vars.map(key).filter((x) => set.has(x))),
        new Set(forwards[0]!.vars.map(key)),
      );
    vars = forwards[0]!.vars.filter((kv) => common.has(key(kv)));
    for (const h of hosts) {
      const own = h.runs.find((r) => r.mode === fleet.mode)?.vars.filter((kv) => !common.has(key(kv)));
      if (own?.length) h.ownVars = own;
    }
  }
  // an unfinished fleet has no end: its duration is unknown, not "until its last record"
  const endAt = end && Number.isFinite(time(end.at)) ? time(end.at) : undefined;
  const outcome: Outcome = end ? end.status : "unfinished";
  return {
    kind: "fleet",
    id: fleet.fleetId,
    atom: fleet.atom,
    mode: fleet.mode,
    ...(fleet.undoOf ? { undoOf: fleet.undoOf } : {}),
    outcome,
    vars,
    ...(runs.find((r) => r.owner) ? { owner: runs.find((r) => r.owner)!.owner! } : {}),
    machine: fleet.machine,
    pid: fleet.pid,
    startedAt: Number.isFinite(time(fleet.at)) ? time(fleet.at) : extent(runs.map((r) => r.startedAt)).min,
    ...(endAt !== undefined ? { endedAt: endAt } : {}),
    hosts,
    batches: hosts.reduce((n, h) => Math.max(n, h.batch + 1), 1),
    ...markers(hosts),
    generatedAt: Date.now(),
  };
}

function failedStepOf(run: RunModel): { failedStep?: string } {
  const failed = run.steps.find(
    (s) => s.status.startsWith("failed-") || s.error || s.status === "undo-failed" || s.status === "drift",
  );
  return failed ? { failedStep: failed.name } : {};
}

/** A listed run whose records cannot be read: shown with the reason rather than left out. */
function corrupt(s: RunSummary): RunModel {
  return {
    runId: s.runId,
    mode: s.mode,
    host: s.host,
    status: "unfinished",
    startedAt: time(s.startedAt),
    vars: [],
    steps: [],
    error: { name: "TrailError", message: s.problem ?? "the run's records could not be read" },
  };
}
