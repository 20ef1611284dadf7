import type { AtomPhase } from "./atom";
import { isLive, type StepStatus } from "./engine/state";
import { type ErrorInfo, TrailError } from "./errors";
import type { Json } from "./types";

// the step state machine (one doc line per status, the allowed moves) lives with the engine
export type { StepStatus } from "./engine/state";

export type RunStatus = "committed" | "rolled-back" | "rollback-failed";

/** How a run was started: a forward run, or `undoRun` of an earlier committed run. */
export type RunMode = "run" | "undo";

export interface TrailStepInfo {
  name: string;
  kind: string;
  phase: AtomPhase;
  title: string;
  /** Validated params without the kind's secret paths: enough to rebuild the step in a new process. */
  params: Json;
  /**
   * A secret value stood in a param outside the secret paths and was masked here: the step can only be
   * rebuilt from the deploy file (which holds the value), never from these params.
   */
  masked?: boolean;
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

/** The host lease a run held: recover checks it to tell a dead run from a live one. */
export interface LockRecord {
  name: string;
  token: string;
  owner: string;
}

/** Every record carries `mac` when the store seals its trail (see `sealTrail`). */
interface Sealed {
  mac?: string;
}

export interface RunStartRecord extends Sealed {
  t: "run";
  v: 2;
  runId: string;
  atom: string;
  host: string;
  mode: RunMode;
  /** Undo runs: the run they undo. */
  undoOf?: string;
  /** The fleet run this host run belongs to. */
  fleet?: string;
  at: string;
  pid: number;
  machine: string;
  /** The lease the run holds on its host; absent when it ran without a lock. */
  lock?: LockRecord;
  steps: TrailStepInfo[];
  /** What the caller recorded with the run (`RunOptions.meta`), e.g. the CLI's `--var`s (never secret ones). */
  meta?: Json;
  /**
   * The store lock (see `TrailStore.lock`) the run's controller held for this host. Once another
   * controller can take it, that controller is gone: recover need not wait for the host lease to go stale.
   */
  storeLock?: string;
}

export interface StepTrailRecord extends Sealed {
  t: "step";
  runId: string;
  step: string;
  status: StepStatus;
  at: string;
  before?: Json;
  after?: Json;
  changed?: boolean;
  verified?: boolean;
  /** When check began observing a failed apply (failed-* records). */
  checkAt?: string;
  /** When the last verify after undo began (undone, undo-failed records). */
  verifyAt?: string;
  error?: ErrorInfo;
  /** Set on records written by `recover`. */
  recovered?: boolean;
}

export interface RunEndRecord extends Sealed {
  t: "end";
  runId: string;
  status: RunStatus;
  at: string;
  error?: ErrorInfo;
  stillApplied?: string[];
  /** Committed runs: each changed step's state observed at the end (what the run left). */
  final?: Record<string, Json>;
  /** The outcome was decided by `recover` after the original process died (or its rollback failed). */
  recovered?: boolean;
}

/** The start of a fleet run: one atom on many hosts, each host's run linked by `fleet`. */
export interface FleetStartRecord extends Sealed {
  t: "fleet";
  v: 2;
  fleetId: string;
  atom: string;
  mode: RunMode;
  /** Fleet undos: the fleet run they undo. */
  undoOf?: string;
  hosts: string[];
  at: string;
  pid: number;
  machine: string;
  /** Batches, concurrency and failure policy, as run. */
  options?: Json;
  meta?: Json;
}

export interface FleetEndRecord extends Sealed {
  t: "fleet-end";
  fleetId: string;
  status: FleetStatus;
  at: string;
  hosts: Array<{ host: string; state: string; runId?: string; undoRunId?: string }>;
}

export type FleetStatus = "committed" | "rolled-back" | "partial" | "rollback-failed";

export type TrailRecord = RunStartRecord | StepTrailRecord | RunEndRecord | FleetStartRecord | FleetEndRecord;

export interface RunSummary {
  runId: string;
  atom: string;
  host: string;
  mode: RunMode;
  undoOf?: string;
  fleet?: string;
  startedAt: string;
  endedAt?: string;
  /**
   * `unfinished`: no end record, the process died (or is still running): see `recover`. `corrupt`: the
   * trail file cannot be read or fails its integrity check (`problem` says why); nothing acts on it.
   */
  status: RunStatus | "unfinished" | "corrupt";
  recovered?: boolean;
  steps: number;
  /** Steps whose change is live after the run (a committed run that changed nothing has none). */
  changed: number;
  /** `corrupt` only: what is wrong with the file. */
  problem?: string;
  /** What the caller recorded with the run (the CLI's `--var`s). */
  meta?: Json;
}

/**
 * Which runs `listRuns` returns. A store with an index (PostgreSQL) selects by it; the others filter
 * after reading. Every field must match; a list of hosts matches any of them.
 */
export interface RunQuery {
  host?: string | readonly string[];
  atom?: string;
  status?: RunSummary["status"];
  fleet?: string;
  undoOf?: string;
}

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

/** Who takes a store lock: shown to whoever finds it held. */
export interface StoreLockOwner {
  owner: string;
  /** What for, e.g. "run 20261202T… of atom release". */
  note?: string;
}

/** Locks held in a shared store until `release`, or until the store loses them. */
export interface StoreLock {
  /** The names held, e.g. `host/web1`. */
  readonly names: readonly string[];
  /**
   * Aborted when the store lost the locks (its session ended: the database restarted or dropped the
   * connection): another controller may take them now, so the run stops and rolls back while the host
   * lease still keeps everyone else off the host.
   */
  readonly signal: AbortSignal;
  release(): Promise<void>;
}

/** The store lock name of a host: one controller per host at a time across machines. */
export const hostLockName = (host: string): string => `host/${host}`;

/**
 * The durable journal of runs. `append` with `sync: true` must not return before the records would
 * survive a crash (fsync, a committed transaction); without it the store may buffer, but must keep
 * order: a later synced append makes every earlier record durable too. A failed append must leave the
 * store as before it (no partial record) and lose nothing appended earlier.
 */
export interface TrailStore {
  append(runId: string, records: readonly TrailRecord[], options?: { sync?: boolean }): Promise<void>;
  /**
   * Records in append order; a torn last record (crash mid-write) is dropped. Throws when the records
   * cannot be trusted (a bad line in the middle, a failed integrity check).
   */
  readRun(runId: string): Promise<TrailRecord[]>;
  /**
   * Oldest first, only those matching `query`. One unreadable run is listed as `corrupt` (unless the
   * query names a host, atom, fleet or status: a corrupt run has none); it never hides or blocks the others.
   */
  listRuns(query?: RunQuery): Promise<RunSummary[]>;
  /**
   * Every id the store holds records under (runs and fleets), from its own index, without reading
   * them. With `query` a store may leave out the runs its index knows not to match (it may also return
   * them: the caller filters again on what it reads).
   */
  listIds?(query?: RunQuery): Promise<string[]>;
  /**
   * A cheap fingerprint of each run's records (a file's size and mtime, a row count) that changes
   * whenever records are added or removed: `listRuns` then reads again only the runs that changed, so
   * every host of a fleet rollback asking for the runs does not read all of them again.
   */
  stamps?(ids: readonly string[]): Promise<Map<string, string>>;
  /**
   * The records of many runs at once (a database answers one query instead of one per run); a run it
   * cannot give is left out, and read alone (its error then names the problem).
   */
  readRuns?(ids: readonly string[]): Promise<Map<string, TrailRecord[]>>;
  /** Deletes every record of a run or fleet (`pruneTrail`); optional: a store without it is never pruned. */
  remove?(runId: string): Promise<void>;
  /**
   * Coordination for a store shared by several controllers (PostgreSQL): takes every named lock or
   * none, and throws a `LockedError` naming the holder when one is held. Runs, undos and recovers take
   * `host/<name>` for each host they change (a fleet all of its hosts at once, before any is touched),
   * so two controllers never deploy the same host; the host lease stays the last line of defence.
   * A controller that dies loses its locks with its session.
   */
  lock?(names: readonly string[], owner: StoreLockOwner): Promise<StoreLock>;
  /** Brings the store's schema up to date (a database store); returns the schema version. */
  migrate?(): Promise<{ version: number; applied: number[] }>;
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

/**
 * Longest record a trail writes or reads. A state is a few facts, not data: a longer record is refused
 * when written and reported as corrupt when read, so one huge record cannot cost every command its memory.
 */
export const MAX_RECORD_BYTES = 4 * 1024 * 1024;

/** Refuses a record of `bytes` over MAX_RECORD_BYTES (UTF-16 length is a lower bound of its UTF-8 size). */
export function refuseOversized(runId: string, r: TrailRecord, bytes: number): void {
  if (bytes <= MAX_RECORD_BYTES) return;
  throw new TrailError(`a ${r.t} record of run ${runId} is ${bytes} bytes`, {
    expected: `records under ${MAX_RECORD_BYTES} bytes (a state holds facts, not data)`,
    found: `${bytes} bytes${"step" in r ? ` for step "${r.step}"` : ""}`,
    hint: "make the kind's observe() return a digest instead of content",
  });
}
