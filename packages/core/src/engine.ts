import { deepEqual } from "./_utils";
import type { AtomPhase } from "./atom";
import { check, finalStates, forward } from "./engine/forward";
import { Journal } from "./engine/journal";
import { cleanup, compareLeft, type LeftComparison, refuseDrift, rollback } from "./engine/rollback";
import { isLive, type StepStatus } from "./engine/state";
import type { AtomError, ErrorInfo, RollbackError } from "./errors";
import type { RunEvent } from "./events";
import type { Host } from "./host";
import type { Redactor } from "./redact";
import type { StepKindDefinition } from "./step";
import type { LockRecord, RunMode, RunStatus, TrailStepInfo, TrailStore } from "./trail";
import type { Json } from "./types";

// The engine shared by `run`, `undoRun` and `recover`, one concept per file under engine/: the step
// state machine (state.ts), one attempt of a step function (attempt.ts), the trail and events
// (journal.ts), the forward pass (forward.ts), going back (rollback.ts), and the error rule
// (step-error.ts). This file holds what they share: the steps, their records, and the comparisons.

/** One step's record in a run result: what the trail knows about it. */
export interface StepRecord {
  name: string;
  kind: string;
  phase: AtomPhase;
  title: string;
  status: StepStatus;
  before?: Json;
  after?: Json;
  /** apply changed the observed state (after differs from before). */
  changed?: boolean;
  /** After undo, observe equalled before. */
  verified?: boolean;
  /** The failure of observe/apply (or of check) that ended this step. */
  error?: AtomError;
  /** The failure of undo, verify, or the drift that stopped the rollback here. */
  undoError?: AtomError;
  startedAt?: string;
  endedAt?: string;
  durationMs?: number;
  undoStartedAt?: string;
  undoEndedAt?: string;
  undoDurationMs?: number;
  /** apply attempts made. */
  attempts?: number;
  /** When check began observing a failed apply (the apply segment of a timeline ends there). */
  checkAt?: string;
  /** When the last verify after undo began. */
  verifyAt?: string;
}

/** A step bound to validated params, ready to act; rebuilt from the trail by recover and undo. */
export interface BoundStep {
  name: string;
  kind: string;
  phase: AtomPhase;
  title: string;
  params: unknown;
  definition: StepKindDefinition<unknown, unknown, unknown>;
  timeoutMs?: number;
  retries: number;
  undoRetries: number;
  /** Dotted param paths kept out of the trail. */
  secret: readonly string[];
}

export interface Entry {
  step: BoundStep;
  rec: StepRecord;
  /** undoRun: the state the committed run left for this step (see finalStates). */
  final?: Json;
}

export interface EngineOptions {
  runId: string;
  atom: string;
  host: Host;
  trail: TrailStore;
  redactor: Redactor;
  onEvent?: ((event: RunEvent) => void) | undefined;
  /** Base delay of undo retries; doubles per attempt, capped at 5 s. */
  backoffMs: number;
  /** How long an aborted or timed-out apply may take to settle before check observes. */
  abortGraceMs: number;
  /** Records written by recover carry `recovered: true`. */
  recovering?: boolean;
  /** The lease the run holds, recorded so recover can tell a live run from a dead one. */
  lock?: LockRecord | undefined;
  /** The fleet run this host run belongs to. */
  fleet?: string | undefined;
  /** The store lock held for this host (`TrailStore.lock`), recorded for recover. */
  storeLock?: string | undefined;
}

/** The state machine shared by `run`, `undoRun` and `recover`. */
export class Engine {
  readonly entries: Entry[] = [];
  /** Trail records and events, masked. */
  readonly journal: Journal;

  constructor(readonly o: EngineOptions) {
    this.journal = new Journal(o);
  }

  /**
   * The first trail write that failed. The run goes on (a rollback must not stop because the trail's
   * disk is full: recover re-observes whatever the trail missed), and the caller says so.
   */
  get trailError(): AtomError | undefined {
    return this.journal.trailError;
  }

  /** Adds a step, `pending` unless `init` says where the trail knows it (recover, undo runs). */
  add(step: BoundStep, init: Partial<StepRecord> = {}): Entry {
    const entry: Entry = {
      step,
      rec: {
        name: step.name,
        kind: step.kind,
        phase: step.phase,
        title: step.title,
        status: "pending",
        ...init,
      },
    };
    this.entries.push(entry);
    return entry;
  }

  // --- Trail and events (engine/journal.ts) ---

  start(mode: RunMode, infos: TrailStepInfo[], undoOf?: string, meta?: Json): Promise<void> {
    return this.journal.start(mode, this.entries, infos, undoOf, meta);
  }

  /** Writes the end record; a trail that cannot take it is remembered in `trailError`, not thrown. */
  async end(status: RunStatus, error?: AtomError): Promise<void> {
    // a committed run's changes are its result, not leftovers
    const stillApplied = status === "committed" ? [] : this.stillApplied();
    const final = status === "committed" ? await finalStates(this) : undefined;
    await this.journal.end(status, error, stillApplied, final);
  }

  emit(event: { type: RunEvent["type"]; [field: string]: unknown }, entry?: Entry): void {
    this.journal.emit(event, entry);
  }

  info(error: unknown): ErrorInfo {
    return this.journal.info(error);
  }

  // --- Comparing states ---

  /** The kind's `same`, else deep equality; a `same` that throws answers "different". */
  same(entry: Entry, a: unknown, b: unknown): boolean {
    const fn = entry.step.definition.same;
    try {
      return fn ? fn(a, b) : deepEqual(a, b);
    } catch {
      // a throwing same() must not escape the engine; "different" is the safe answer everywhere it is
      // asked (check: undo it; drift: stop; verify: not restored)
      return false;
    }
  }

  /**
   * A live state against a recorded one: equal as is, or once masked the way the trail masked it (a
   * state read back from a trail holds `***` where a secret stood).
   */
  matches(entry: Entry, live: Json, recorded: Json): boolean {
    return (
      this.same(entry, live, recorded) ||
      (!this.o.redactor.empty && this.same(entry, this.o.redactor.scrub(live), recorded))
    );
  }

  // --- Forward (engine/forward.ts) ---

  /**
   * observe → journal intent → apply → observe, for each entry in order. On a failure, check decides
   * whether the step changed state. Returns the failure, if any; rollback is the caller's call.
   */
  forward(entries: Entry[], signal?: AbortSignal): Promise<AtomError | undefined> {
    return forward(this, entries, signal);
  }

  /** Re-observes a step whose apply was interrupted (recover): did it change state? */
  check(entry: Entry): Promise<void> {
    return check(this, entry);
  }

  /**
   * Recover: settles what a dead process left uncertain. A step it was applying is checked (a fresh
   * observe tells whether it changed anything); a step it was undoing, or whose undo failed, may have
   * stopped half-way, so its state may be neither after nor before: it is undone from what is there
   * now rather than refused as drift (its after is forgotten).
   */
  async settleInterrupted(): Promise<void> {
    for (const entry of this.entries) {
      if (entry.rec.status === "applying") await this.check(entry);
      else if (entry.rec.status === "undoing" || entry.rec.status === "undo-failed") delete entry.rec.after;
    }
  }

  // --- Going back (engine/rollback.ts) ---

  /**
   * Undoes every live entry newest first: observe, drift check, undo with retries, verify. Stops at the
   * first step that cannot be undone and verified, and returns that failure.
   */
  rollback(
    options: { force?: boolean | undefined; reason?: AtomError | undefined } = {},
  ): Promise<RollbackError | undefined> {
    return rollback(this, options);
  }

  /** Throws a DriftError, before anything is undone, if a live step is neither what the run left nor its before. */
  refuseDrift(final?: Record<string, Json>): Promise<void> {
    return refuseDrift(this, final);
  }

  /** Read-only: each live step's state now against what the run left (`atomkit status`). */
  compareLeft(final?: Record<string, Json>): Promise<LeftComparison[]> {
    return compareLeft(this, final);
  }

  /** Lets every kind remove what an interrupted apply or undo left beside its target (best effort). */
  cleanup(): Promise<void> {
    return cleanup(this);
  }

  /** Entries whose change may be live, newest first. */
  toUndo(): Entry[] {
    return this.entries.filter(({ rec }) => isLive(rec)).reverse();
  }

  /** Names of steps whose change is live, in run order. */
  stillApplied(): string[] {
    return this.entries.filter(({ rec }) => isLive(rec)).map(({ rec }) => rec.name);
  }
}
