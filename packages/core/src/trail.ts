import type { AtomPhase } from "./atom";
import type { StepStatus } from "./engine/state";
import type { ErrorInfo } from "./errors";
import type { Json } from "./types";

// The trail's records and the TrailStore contract. What works on them lives under trail/: reading many
// runs by query (query.ts), folding records into a run and its summary (fold.ts), summaries kept by
// stamp (cache.ts), the in-memory store (memory.ts), and the record size limit (limits.ts).

// the step state machine (one doc line per status, the allowed moves) lives with the engine
export type { StepStatus } from "./engine/state";
export { SummaryCache } from "./trail/cache";
export { corruptSummary, foldRun, summarize, summarizeAll } from "./trail/fold";
export { MAX_RECORD_BYTES, refuseOversized } from "./trail/limits";
export { memoryTrail } from "./trail/memory";
export { matchesQuery, runsWhere } from "./trail/query";

/** How a run ended: committed, rolled back, or a rollback that failed (the host is in a mixed state). */
export type RunStatus = "committed" | "rolled-back" | "rollback-failed";

/** How a run was started: a forward run, or `undoRun` of an earlier committed run. */
export type RunMode = "run" | "undo";

/** A step as the run's start record describes it: name, kind, phase, title, params without secrets. */
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

/** The trail record starting a run: atom, host, mode, steps and metadata. */
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

/** The trail record of one step's progress: its status with before/after states and errors. */
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

/** The trail record ending a run: its status and, on failure, the error. */
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

/** The trail record ending a fleet: its status and hosts. */
export interface FleetEndRecord extends Sealed {
  t: "fleet-end";
  fleetId: string;
  status: FleetStatus;
  at: string;
  hosts: Array<{ host: string; state: string; runId?: string; undoRunId?: string }>;
}

/** How a fleet ended: every host committed, rolled back, partly (`halt`), or a rollback failed. */
export type FleetStatus = "committed" | "rolled-back" | "partial" | "rollback-failed";

/** Any record a trail stores: run and fleet start and end, and step progress. */
export type TrailRecord = RunStartRecord | StepTrailRecord | RunEndRecord | FleetStartRecord | FleetEndRecord;

/** One run as a trail's listing shows it, without its step records. */
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

/** One step of a run folded from its records: latest status, states and errors. */
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
