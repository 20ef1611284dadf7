import type { AtomPhase } from "./atom";
import type { ErrorInfo } from "./errors";
import type { Json } from "./types";

export type RunStatus = "committed" | "rolled-back" | "rollback-failed";

/**
 * Where a step is. `applying` and `undoing` are intents, written durably before the step acts: a trail
 * that ends on one of them means the process died while acting, and only a fresh observe can tell
 * what happened.
 */
export type StepStatus =
  | "pending"
  | "applying"
  | "applied"
  | "failed-unchanged"
  | "failed-changed"
  | "failed-unknown"
  | "undoing"
  | "undone"
  | "undo-failed"
  | "drift";

/** How a run was started: a forward run, or `undoRun` of an earlier committed run. */
export type RunMode = "run" | "undo";

export interface TrailStepInfo {
  name: string;
  kind: string;
  phase: AtomPhase;
  title: string;
  /** Validated params without the kind's secret paths: enough to rebuild the step in a new process. */
  params: Json;
  package?: string;
  timeoutMs?: number;
  undoRetries?: number;
  /** Undo runs only: the state the step starts from (copied from the run being undone). */
  status?: StepStatus;
  before?: Json;
  after?: Json;
  /** Undo runs only: the state the undone run left for this step. */
  final?: Json;
}

export interface RunStartRecord {
  t: "run";
  v: 1;
  runId: string;
  atom: string;
  host: string;
  mode: RunMode;
  /** Undo runs: the run they undo. */
  undoOf?: string;
  at: string;
  pid: number;
  machine: string;
  steps: TrailStepInfo[];
  /** What the caller recorded with the run (`RunOptions.meta`), e.g. the CLI's `--var`s. */
  meta?: Json;
}

export interface StepTrailRecord {
  t: "step";
  runId: string;
  step: string;
  status: StepStatus;
  at: string;
  before?: Json;
  after?: Json;
  changed?: boolean;
  verified?: boolean;
  error?: ErrorInfo;
  /** Set on records written by `recover`. */
  recovered?: boolean;
}

export interface RunEndRecord {
  t: "end";
  runId: string;
  status: RunStatus;
  at: string;
  error?: ErrorInfo;
  stillApplied?: string[];
  /** Committed runs: each changed step's state observed at the end (what the run left). */
  final?: Record<string, Json>;
  /** The outcome was decided by `recover` after the original process died. */
  recovered?: boolean;
}

export type TrailRecord = RunStartRecord | StepTrailRecord | RunEndRecord;

export interface RunSummary {
  runId: string;
  atom: string;
  host: string;
  mode: RunMode;
  undoOf?: string;
  startedAt: string;
  endedAt?: string;
  /** `unfinished`: no end record, the process died (or is still running): see `recover`. */
  status: RunStatus | "unfinished";
  recovered?: boolean;
  steps: number;
}

/**
 * The durable journal of runs. `append` with `sync: true` must not return before the records would
 * survive a crash (fsync, a committed transaction); without it the store may buffer, but must keep
 * order: a later synced append makes every earlier record durable too.
 */
export interface TrailStore {
  append(runId: string, records: readonly TrailRecord[], options?: { sync?: boolean }): Promise<void>;
  /** Records in append order; a torn last record (crash mid-write) is dropped. */
  readRun(runId: string): Promise<TrailRecord[]>;
  /** Oldest first. */
  listRuns(): Promise<RunSummary[]>;
  close?(): Promise<void>;
}

/** A run folded from its records: the latest known state of each step. */
export interface RunView {
  run: RunStartRecord;
  steps: StepView[];
  end?: RunEndRecord;
}

export interface StepView extends TrailStepInfo {
  status: StepStatus;
  before?: Json;
  after?: Json;
  changed?: boolean;
  verified?: boolean;
  error?: ErrorInfo;
  undoError?: ErrorInfo;
  at?: string;
}

export function foldRun(records: readonly TrailRecord[]): RunView | undefined {
  const start = records.find((r): r is RunStartRecord => r.t === "run");
  if (!start) return undefined;
  const steps = new Map<string, StepView>(
    start.steps.map((s) => [s.name, { ...s, status: s.status ?? "pending" }]),
  );
  let end: RunEndRecord | undefined;
  for (const r of records) {
    if (r.t === "step") {
      const view = steps.get(r.step);
      if (!view) continue;
      const { t: _t, runId: _r, step: _s, recovered: _rec, error, ...fields } = r;
      Object.assign(view, fields);
      // the failure that made the run roll back stays visible next to a later undo failure
      if (error && (r.status === "undo-failed" || r.status === "drift")) view.undoError = error;
      else if (error) view.error = error;
    } else if (r.t === "end") end = r;
  }
  return { run: start, steps: [...steps.values()], ...(end ? { end } : {}) };
}

export function summarize(view: RunView): RunSummary {
  return {
    runId: view.run.runId,
    atom: view.run.atom,
    host: view.run.host,
    mode: view.run.mode,
    ...(view.run.undoOf ? { undoOf: view.run.undoOf } : {}),
    startedAt: view.run.at,
    ...(view.end ? { endedAt: view.end.at } : {}),
    status: view.end?.status ?? "unfinished",
    ...(view.end?.recovered ? { recovered: true } : {}),
    steps: view.steps.length,
  };
}

/** Keeps runs in memory: for tests, benchmarks and throwaway runs. Lost with the process. */
export function memoryTrail(): TrailStore & { records: Map<string, TrailRecord[]> } {
  const records = new Map<string, TrailRecord[]>();
  return {
    records,
    async append(runId, recs) {
      const list = records.get(runId) ?? [];
      records.set(runId, list);
      // kept by reference (the engine writes fresh records and never mutates a state); readers get copies
      list.push(...recs);
    },
    async readRun(runId) {
      return structuredClone(records.get(runId) ?? []);
    },
    async listRuns() {
      const out: RunSummary[] = [];
      for (const list of records.values()) {
        const view = foldRun(list);
        if (view) out.push(summarize(view));
      }
      return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.runId.localeCompare(b.runId));
    },
  };
}
