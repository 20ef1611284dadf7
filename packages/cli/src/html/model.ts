import {
  type ErrorInfo,
  type FleetEndRecord,
  type FleetSpread,
  type FleetStartRecord,
  foldRun,
  type Json,
  planBatches,
  type RunStartRecord,
  type RunSummary,
  type StepTrailRecord,
  type TrailRecord,
  type TrailStore,
} from "@atomkit/core";
import type { RunMeta } from "../atoms";
import { extent } from "./markup";

/** A recorded time in ms, or NaN when the trail holds none readable (callers check). */
const time = (text: string | undefined): number => (text ? Date.parse(text) : Number.NaN);

// What a report shows, read from the trail alone (no deploy file, no host): a run or a fleet, each host's
// runs (the forward run and the undos that reversed it) and, per step, the segments of a timeline.

export type Phase = "apply" | "check" | "undo" | "verify" | "drift";

/** One stretch of a step's work in time (ms since the epoch). */
export interface Segment {
  step: string;
  phase: Phase;
  from: number;
  to: number;
  failed?: boolean;
  /** Cut short by a process that died; recover decided the rest. */
  interrupted?: boolean;
}

export interface StepModel {
  name: string;
  kind: string;
  title: string;
  params: Json;
  status: string;
  before?: Json;
  after?: Json;
  changed?: boolean;
  verified?: boolean;
  error?: ErrorInfo;
  undoError?: ErrorInfo;
  applyMs?: number;
  undoMs?: number;
  segments: Segment[];
}

export type RunStatusShown = "committed" | "rolled-back" | "rollback-failed" | "unfinished";

export interface RunModel {
  runId: string;
  mode: "run" | "undo";
  undoOf?: string;
  host: string;
  status: RunStatusShown;
  recovered?: boolean;
  startedAt: number;
  endedAt?: number;
  /** Who ran it (the lock's owner: user@machine). */
  owner?: string;
  vars: Array<[string, string]>;
  steps: StepModel[];
  error?: ErrorInfo;
  stillApplied?: string[];
}

export type HostOutcome =
  | "committed"
  | "rolled-back"
  | "rollback-failed"
  | "not-run"
  | "refused"
  | "unfinished";

export interface HostModel {
  host: string;
  outcome: HostOutcome;
  /** The batch (0-based) the host ran in. */
  batch: number;
  /** Oldest first: the host's run in this fleet, then the undos of it. */
  runs: RunModel[];
  /** The step whose failure made this host roll back (or stop). */
  failedStep?: string;
  /** Vars of this host that differ from the fleet's (per-host vars of the deploy file). */
  ownVars?: Array<[string, string]>;
}

export type Outcome = "committed" | "rolled-back" | "rollback-failed" | "partial" | "unfinished";

export interface ReportModel {
  kind: "run" | "fleet";
  id: string;
  atom: string;
  mode: "run" | "undo";
  undoOf?: string;
  outcome: Outcome;
  vars: Array<[string, string]>;
  owner?: string;
  machine: string;
  pid: number;
  startedAt: number;
  endedAt?: number;
  hosts: HostModel[];
  batches: number;
  /** The first failure of a step, which started the rollback. */
  failure?: { host: string; step: string; at: number };
  /** From the first undo to the last one's end, across every host it touched. */
  rollback?: { from: number; to: number };
  generatedAt: number;
}

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

/**
 * Each step's records in order: `applying` opens apply, a result closes it (a failure's `checkAt` splits
 * off check); `undoing` opens undo, `undone`/`undo-failed` closes it (`verifyAt` splits off verify).
 * A phase still open at the end of the records was cut short by a process that died.
 */
function segmentsOf(records: readonly TrailRecord[], runId: string, endedAt: number | undefined): Segment[] {
  const out: Segment[] = [];
  const open = new Map<string, { phase: "apply" | "undo"; at: number; recovered: boolean }>();
  const steps = records.filter((r): r is StepTrailRecord => r.t === "step" && r.runId === runId);
  const close = (
    step: string,
    at: number,
    tail: "check" | "verify" | undefined,
    tailAt: number | undefined,
    failed: boolean,
  ) => {
    const o = open.get(step);
    open.delete(step);
    if (!o) {
      // nothing was opened in these records: a check by recover, an undo found already restored
      out.push({ step, phase: tail ?? "verify", from: at, to: at, ...(failed ? { failed } : {}) });
      return;
    }
    const split = tailAt !== undefined && tailAt >= o.at && tailAt <= at ? tailAt : undefined;
    out.push({
      step,
      phase: o.phase,
      from: o.at,
      to: split ?? at,
      ...(failed && split === undefined ? { failed } : {}),
    });
    if (split !== undefined && tail)
      out.push({ step, phase: tail, from: split, to: at, ...(failed ? { failed } : {}) });
  };
  let lastAt = Number.NEGATIVE_INFINITY;
  for (const r of steps) {
    const at = time(r.at);
    if (!Number.isFinite(at)) continue; // a record without a readable time cannot be placed
    lastAt = Math.max(lastAt, at);
    // a phase the dead process opened and recover finished: its end is unknown, recover's work is
    // its own stretch from here
    const o = open.get(r.step);
    if (r.recovered && o && !o.recovered) {
      open.delete(r.step);
      out.push({ step: r.step, phase: o.phase, from: o.at, to: o.at, interrupted: true });
    }
    const checkAt = r.checkAt ? time(r.checkAt) : undefined;
    const verifyAt = r.verifyAt ? time(r.verifyAt) : undefined;
    switch (r.status) {
      case "applying":
        open.set(r.step, { phase: "apply", at, recovered: !!r.recovered });
        break;
      case "applied":
        close(r.step, at, undefined, undefined, false);
        break;
      case "failed-unchanged":
      case "failed-changed":
      case "failed-unknown":
        if (!open.has(r.step) && checkAt !== undefined)
          out.push({ step: r.step, phase: "check", from: checkAt, to: at, failed: true });
        else close(r.step, at, "check", checkAt, true);
        break;
      case "undoing":
        open.set(r.step, { phase: "undo", at, recovered: !!r.recovered });
        break;
      case "undone":
        close(r.step, at, "verify", verifyAt, false);
        if (verifyAt === undefined && out[out.length - 1]?.phase === "undo")
          out.push({ step: r.step, phase: "verify", from: at, to: at });
        break;
      case "undo-failed":
        close(r.step, at, "verify", verifyAt, true);
        break;
      case "drift":
        open.delete(r.step);
        out.push({ step: r.step, phase: "drift", from: at, to: at, failed: true });
        break;
      default:
        break;
    }
  }
  // still open: the process died acting; the stretch ends at the last thing the trail knows
  for (const [step, o] of open) {
    out.push({ step, phase: o.phase, from: o.at, to: endedAt ?? Math.max(o.at, lastAt), interrupted: true });
  }
  return out;
}

function failedStepOf(run: RunModel): { failedStep?: string } {
  const failed = run.steps.find(
    (s) => s.status.startsWith("failed-") || s.error || s.status === "undo-failed" || s.status === "drift",
  );
  return failed ? { failedStep: failed.name } : {};
}

/** Where the first failure happened and how long the rollback took, over all hosts. */
function markers(hosts: HostModel[]): Pick<ReportModel, "failure" | "rollback"> {
  let failure: ReportModel["failure"];
  let from = Number.POSITIVE_INFINITY;
  let to = Number.NEGATIVE_INFINITY;
  for (const h of hosts) {
    for (const run of h.runs) {
      for (const s of run.steps) {
        for (const g of s.segments) {
          if (g.failed && (!failure || g.to < failure.at)) failure = { host: h.host, step: s.name, at: g.to };
          if (g.phase === "undo" || g.phase === "verify" || g.phase === "drift") {
            from = Math.min(from, g.from);
            to = Math.max(to, g.to);
          }
        }
      }
    }
  }
  return {
    ...(failure ? { failure } : {}),
    ...(from <= to ? { rollback: { from: failure ? Math.min(from, failure.at) : from, to } } : {}),
  };
}

function varsOf(meta: Json | undefined): Array<[string, string]> {
  const m = (meta ?? {}) as Partial<RunMeta>;
  const out: Array<[string, string]> = Object.entries(m.vars ?? {}).map(([k, v]) => [k, String(v)]);
  for (const k of m.secretVars ?? []) out.push([k, "***"]);
  return out;
}

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
