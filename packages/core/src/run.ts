import { newRunId, omitPaths, viaJson } from "./_utils";
import { type Atom, stepsOf } from "./atom";
import { type BoundStep, Engine, type StepRecord } from "./engine";
import { type AtomError, LockedError } from "./errors";
import type { RunEvent } from "./events";
import { refuseUnfinished } from "./history";
import type { Host, Lease } from "./host";
import { localHost } from "./local-host";
import { validateAll } from "./params";
import { Redactor } from "./redact";
import type { Step } from "./step";
import { memoryTrail, type RunStatus, type TrailStepInfo, type TrailStore } from "./trail";
import { defaultOwner, lockRecord, storeLockOf, takeStoreLock } from "./trail-lock";
import type { Json } from "./types";

/** The host lock a run takes (`RunOptions.lock`): its name, owner, lifetime and takeover. */
export interface LockSettings {
  /** One run per host and lock name. Default `deploy`. */
  name?: string;
  /** Default `<user>@<machine>`. */
  owner?: string;
  /** Default 60 000. */
  ttlMs?: number;
  /** Take over a lease whose heartbeat stopped. Default false. */
  breakStale?: boolean;
  /** Take over the lease held under this token (its holder is known dead). */
  breakToken?: string;
}

/** Options of `run`: host, trail, lock, events, timeouts and signal. */
export interface RunOptions {
  /** Default `localHost()`. */
  host?: Host;
  /** Default an in-memory trail: pass `fileTrail()` for a run that can be recovered after a crash. */
  trail?: TrailStore;
  /** Aborting it stops the current step and rolls back. Rollback itself is not aborted by it. */
  signal?: AbortSignal;
  onEvent?: (event: RunEvent) => void;
  /** Default: a new time-sortable id. */
  runId?: string;
  /**
   * Recorded with the run in the trail (e.g. the CLI's `--var`s), for whoever undoes or recovers it.
   * Secret values in it are masked, like everything the trail holds.
   */
  meta?: Json;
  /** The fleet run this host run belongs to (set by `runFleet`). */
  fleet?: string;
  /**
   * Refuse to start while the trail holds an unfinished run on this host (its state is what recover
   * must observe first). Default true; `runFleet` checks every host once before it starts.
   */
  refuseUnfinished?: boolean;
  /** The host lock taken for the run. `false`: none (the caller serialises runs). Default `{ name: "deploy" }`. */
  lock?: LockSettings | false;
  /**
   * The caller holds this host's store lock already (`TrailStore.lock`; `runFleet` takes every host's at
   * once): none is taken. Without it a store with locks is locked for the host before the host lease.
   */
  storeLocked?: boolean;
  /** Roll back through drift instead of stopping at it. Default false. */
  force?: boolean;
  /** Base delay between undo attempts, doubled per attempt. Default 200. */
  backoffMs?: number;
  /** How long an aborted or timed-out step may take to stop before check observes it. Default 5 000. */
  abortGraceMs?: number;
}

/** What `run` returns: the run's status, every step's record and the error when it failed. */
export interface RunResult {
  runId: string;
  atom: string;
  host: string;
  status: RunStatus;
  /** Every step of the atom in run order; steps never reached are `pending`. */
  steps: StepRecord[];
  /** Why the run did not commit; for `rollback-failed` a RollbackError whose `reason` is that cause. */
  error?: AtomError;
  /** The failure that started the rollback. */
  reason?: AtomError;
  /** Steps whose change is live (empty unless `rollback-failed`). */
  stillApplied: string[];
  durationMs: number;
  /**
   * The trail could not record everything (e.g. its disk is full). The host is as `status` says, but the
   * trail may lack the outcome: run `recover` once the trail can be written.
   */
  trailError?: AtomError;
}

/**
 * Runs an atom on one host: validate every step's params, take the host lock, then observe → apply →
 * observe each step, journaling intents before acting. On any failure, roll back newest first with
 * drift detection and verification. Throws only when nothing ran (invalid params, lock held).
 */
export async function run(atom: Atom, options: RunOptions = {}): Promise<RunResult> {
  const host = options.host ?? localHost();
  const trail = options.trail ?? memoryTrail();
  const placed = stepsOf(atom);
  const values = await validateAll(
    placed.map((p) => p.step),
    { atom: atom.name, host: host.name },
  );
  const runId = options.runId ?? newRunId();
  // every secret of the atom first: a title or param of an early step may quote a later step's secret
  const redactor = redactorFor(placed.map((p, i) => ({ step: p.step, params: values[i] })));
  const bound = placed.map(({ step, phase }, i) => bind(step, phase, values[i], redactor));

  const note = `run ${runId} of atom ${atom.name}`;
  // the store's lock first: it is where controllers on other machines meet, before any host is touched
  const storeLock = await takeStoreLock(options.trail, [host.name], note, {
    held: options.storeLocked,
    owner: options.lock ? options.lock.owner : undefined,
  });
  const lease = await takeLock(host, options.lock, note).catch(async (error) => {
    await storeLock?.release().catch(() => {});
    // a dead holder whose run the trail knows is better named by that run, with the command to finish it
    if (error instanceof LockedError && error.stale && options.trail && options.refuseUnfinished !== false)
      await refuseUnfinished(options.trail, [host.name]);
    throw error;
  });
  const started = Date.now();
  try {
    // after the lock: a live holder is named by the lock; only a dead run's trail is left to refuse on
    if (options.refuseUnfinished !== false && options.trail) await refuseUnfinished(trail, [host.name]);
    const engine = new Engine({
      runId,
      atom: atom.name,
      host,
      trail,
      redactor,
      onEvent: options.onEvent,
      backoffMs: options.backoffMs ?? 200,
      abortGraceMs: options.abortGraceMs ?? 5_000,
      lock: lockRecord(lease),
      fleet: options.fleet,
      storeLock: storeLockOf(options.trail, host.name),
    });
    for (const step of bound) engine.add(step);
    await engine.start(
      "run",
      bound.map((b) => trailInfo(b, redactor)),
      undefined,
      options.meta,
    );
    const signal = anySignal(options.signal, lease?.signal, storeLock?.signal);
    const failure = await engine.forward(engine.entries, signal);
    const result = (status: RunStatus, error?: AtomError): RunResult => ({
      runId,
      atom: atom.name,
      host: host.name,
      status,
      steps: engine.entries.map((e) => e.rec),
      ...(error ? { error } : {}),
      ...(failure ? { reason: failure } : {}),
      stillApplied: status === "committed" ? [] : engine.stillApplied(),
      durationMs: Date.now() - started,
      ...(engine.trailError ? { trailError: engine.trailError } : {}),
    });
    if (failure && lease?.signal.aborted) {
      // Someone else holds the host now: rolling back would race them. Leave the run unfinished (no end
      // record) for `recover`, which takes the lock first.
      return {
        ...result("rollback-failed", lease.signal.reason as AtomError),
        stillApplied: engine.stillApplied(),
      };
    }
    let status: RunStatus = "committed";
    let error: AtomError | undefined;
    if (failure) {
      const rollbackError = await engine.rollback({ force: options.force, reason: failure });
      status = rollbackError ? "rollback-failed" : "rolled-back";
      if (rollbackError) rollbackError.reason = failure;
      error = rollbackError ?? failure;
    }
    await engine.end(status, error);
    return result(status, error);
  } finally {
    await lease?.release().catch(() => {});
    await storeLock?.release().catch(() => {});
  }
}

// --- Shared with undoRun / recover ---

/** A redactor holding every secret param value of the given steps. */
export function redactorFor(steps: ReadonlyArray<{ step: Step; params: unknown }>): Redactor {
  const redactor = new Redactor();
  for (const { step, params } of steps) redactor.add(params, secretPaths(step));
  return redactor;
}

export function secretPaths(step: Step): string[] {
  return [...(step.definition.secret ?? []), ...(step.options.secret ?? [])];
}

export function bind(step: Step, phase: BoundStep["phase"], params: unknown, redactor: Redactor): BoundStep {
  const secret = secretPaths(step);
  redactor.add(params, secret);
  let title = step.name;
  try {
    title = step.definition.describe?.(params as never) ?? step.name;
  } catch {
    // a describe() that throws must not stop the run
  }
  return {
    name: step.name,
    kind: step.kind,
    phase,
    title: redactor.text(title),
    params,
    definition: step.definition,
    ...(step.options.timeoutMs !== undefined ? { timeoutMs: step.options.timeoutMs } : {}),
    retries: step.options.retries ?? 0,
    undoRetries: step.options.undoRetries ?? 2,
    secret,
  };
}

export function trailInfo(b: BoundStep, redactor: Redactor): TrailStepInfo {
  const params = omitPaths(viaJson(b.params ?? null), b.secret) as Json;
  return {
    name: b.name,
    kind: b.kind,
    phase: b.phase,
    title: b.title,
    params: redactor.scrub(params),
    // a secret in a param outside the secret paths: the step can then be rebuilt only from the deploy file
    ...(redactor.holdsSecret(params) ? { masked: true } : {}),
    ...(b.definition.package ? { package: b.definition.package } : {}),
    ...(b.timeoutMs !== undefined ? { timeoutMs: b.timeoutMs } : {}),
    undoRetries: b.undoRetries,
  };
}

export async function takeLock(
  host: Host,
  lock: LockSettings | false | undefined,
  note: string,
): Promise<Lease | undefined> {
  if (lock === false) return undefined;
  const settings = lock ?? {};
  return host.lock(settings.name ?? "deploy", {
    owner: settings.owner ?? defaultOwner(),
    ...(settings.ttlMs !== undefined ? { ttlMs: settings.ttlMs } : {}),
    ...(settings.breakStale !== undefined ? { breakStale: settings.breakStale } : {}),
    ...(settings.breakToken !== undefined ? { breakToken: settings.breakToken } : {}),
    note,
  });
}

function anySignal(...signals: Array<AbortSignal | undefined>): AbortSignal | undefined {
  const list = signals.filter((s): s is AbortSignal => !!s);
  if (list.length <= 1) return list[0];
  return AbortSignal.any(list);
}
