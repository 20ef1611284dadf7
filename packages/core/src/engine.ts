import { hostname } from "node:os";
import { deepEqual, messageOf, nowIso, sleep } from "./_utils";
import type { AtomPhase } from "./atom";
import {
  AtomError,
  DriftError,
  type ErrorInfo,
  errorReason,
  isAtomError,
  RollbackError,
  StepError,
  type StepPhase,
  toErrorInfo,
} from "./errors";
import type { RunEvent } from "./events";
import type { Host } from "./host";
import type { Redactor } from "./redact";
import type { StepContext, StepKindDefinition } from "./step";
import { engineStepError, type FailureContext, toStepError } from "./step-failure";
import type {
  LockRecord,
  RunMode,
  RunStatus,
  StepStatus,
  StepTrailRecord,
  TrailRecord,
  TrailStepInfo,
  TrailStore,
} from "./trail";
import type { Json } from "./types";

/** Errors of attempts whose work had not stopped when the grace after its abort ran out. */
const UNSETTLED = new WeakSet<object>();

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

const BACKOFF_CAP_MS = 5_000;

/** The state machine shared by `run`, `undoRun` and `recover`. */
export class Engine {
  readonly entries: Entry[] = [];
  private readonly started = Date.now();
  /**
   * The first trail write that failed. The run goes on (a rollback must not stop because the trail's
   * disk is full: recover re-observes whatever the trail missed), and the caller says so.
   */
  trailError: AtomError | undefined;

  constructor(readonly o: EngineOptions) {}

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

  // --- Trail and events ---

  async start(mode: RunMode, infos: TrailStepInfo[], undoOf?: string, meta?: Json): Promise<void> {
    await this.write(
      [
        {
          t: "run",
          v: 2,
          runId: this.o.runId,
          atom: this.o.atom,
          host: this.o.host.name,
          mode,
          ...(undoOf ? { undoOf } : {}),
          ...(this.o.fleet ? { fleet: this.o.fleet } : {}),
          at: nowIso(),
          pid: process.pid,
          machine: hostname(),
          ...(this.o.lock ? { lock: this.o.lock } : {}),
          ...(this.o.storeLock ? { storeLock: this.o.storeLock } : {}),
          steps: infos,
          ...(meta !== undefined ? { meta: this.o.redactor.scrub(meta) } : {}),
        },
      ],
      true,
    );
    this.emit({
      type: "run:start",
      mode,
      ...(undoOf ? { undoOf } : {}),
      steps: this.entries.map(({ step }) => ({
        name: step.name,
        kind: step.kind,
        phase: step.phase,
        title: step.title,
      })),
    });
  }

  /** Writes the end record; a trail that cannot take it is remembered in `trailError`, not thrown. */
  async end(status: RunStatus, error?: AtomError): Promise<void> {
    // a committed run's changes are its result, not leftovers
    const stillApplied = status === "committed" ? [] : this.stillApplied();
    const final = status === "committed" ? await this.finalStates() : undefined;
    await this.write(
      [
        {
          t: "end",
          runId: this.o.runId,
          status,
          at: nowIso(),
          ...(error ? { error: this.info(error) } : {}),
          ...(stillApplied.length ? { stillApplied } : {}),
          ...(final ? { final: this.o.redactor.scrub(final) } : {}),
          ...(this.o.recovering ? { recovered: true } : {}),
        },
      ],
      true,
    ).catch((e: unknown) => this.noteTrailError(e));
    this.emit({
      type: "run:end",
      status,
      durationMs: Date.now() - this.started,
      stillApplied,
      ...(error ? { error: this.info(error) } : {}),
      ...(this.trailError ? { trailError: this.info(this.trailError) } : {}),
    });
  }

  private noteTrailError(error: unknown): void {
    this.trailError ??= isAtomError(error)
      ? error
      : new AtomError("ATOM_TRAIL_INVALID", `the trail could not be written: ${messageOf(error)}`, {
          cause: error,
        });
  }

  /**
   * What a committed run left, per changed step: observed once more at the end, because a later step
   * may change what an earlier one observes (process.start reuses the pid file process.stop looked
   * at). `undoRun` compares against this, not against each step's own after, to tell drift from that.
   */
  private async finalStates(): Promise<Record<string, Json> | undefined> {
    const out: Record<string, Json> = {};
    for (const entry of this.entries) {
      if (entry.rec.status !== "applied" || !entry.rec.changed) continue;
      try {
        out[entry.step.name] = await this.observe(entry, "observe");
      } catch {
        // unknown: undoRun falls back to the step's after
      }
    }
    return Object.keys(out).length ? out : undefined;
  }

  /** Writes the step's current record. Intents are synced before the step acts. */
  async journal(entry: Entry, sync: boolean, error?: AtomError): Promise<void> {
    const { rec } = entry;
    const r = this.o.redactor;
    const record: StepTrailRecord = {
      t: "step",
      runId: this.o.runId,
      step: rec.name,
      status: rec.status,
      at: nowIso(),
      ...(rec.before !== undefined ? { before: r.scrub(rec.before) } : {}),
      ...(rec.after !== undefined ? { after: r.scrub(rec.after) } : {}),
      ...(rec.changed !== undefined ? { changed: rec.changed } : {}),
      ...(rec.verified !== undefined ? { verified: rec.verified } : {}),
      // when a phase's last part began: a report draws apply | check and undo | verify apart
      ...(rec.checkAt && rec.status.startsWith("failed-") ? { checkAt: rec.checkAt } : {}),
      ...(rec.verifyAt && (rec.status === "undone" || rec.status === "undo-failed")
        ? { verifyAt: rec.verifyAt }
        : {}),
      ...(error ? { error: this.info(error) } : {}),
      ...(this.o.recovering ? { recovered: true } : {}),
    };
    await this.write([record], sync);
  }

  /** Masking is done field by field by the callers: never over ids, times or names. */
  private async write(records: TrailRecord[], sync: boolean): Promise<void> {
    try {
      await this.o.trail.append(this.o.runId, records, { sync });
    } catch (error) {
      this.noteTrailError(error);
      throw error;
    }
  }

  /** Emits an event; the run, host, time and (given an entry) the step's identity are filled in. */
  emit(event: { type: RunEvent["type"]; [field: string]: unknown }, entry?: Entry): void {
    if (!this.o.onEvent) return;
    // only the event's own values are masked: ids, names and times are structure
    const { type, ...values } = event;
    const full = {
      runId: this.o.runId,
      atom: this.o.atom,
      host: this.o.host.name,
      at: nowIso(),
      ...(entry ? { step: entry.step.name, kind: entry.step.kind, phase: entry.step.phase } : {}),
      type,
      ...this.o.redactor.scrub(values),
    } as RunEvent;
    try {
      this.o.onEvent(full);
    } catch {
      // a broken renderer must never break a deploy
    }
  }

  info(error: unknown): ErrorInfo {
    return this.o.redactor.scrub(toErrorInfo(error));
  }

  // --- Acting ---

  private ctx(entry: Entry, signal: AbortSignal): StepContext {
    return {
      host: this.o.host,
      signal,
      runId: this.o.runId,
      step: entry.step.name,
      log: (message: string) => this.emit({ type: "step:log", message: String(message) }, entry),
      redact: <T>(value: T) => this.o.redactor.scrub(value),
    };
  }

  /** Runs one attempt of a step function under its timeout and the outer signal. */
  private async attempt<T>(
    entry: Entry,
    phase: StepPhase,
    fn: (ctx: StepContext) => Promise<T>,
    outer?: AbortSignal,
  ): Promise<T> {
    const { timeoutMs } = entry.step;
    // the common case (no timeout, no cancel) needs no timer or race: they are most of the engine's own
    // per-step cost when steps are cheap. The signal that never fires is still the step's own: one
    // shared by every step would gather the abort listeners of every host's steps at once (a fleet's
    // undos), each add and remove scanning them all, and Node warning of a leak past 10.
    if (timeoutMs === undefined && !outer) {
      try {
        return await fn(this.ctx(entry, new AbortController().signal));
      } catch (error) {
        throw this.wrap(entry, phase, error);
      }
    }
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    // why the run was aborted (a lost lock, Ctrl-C, a fleet's failure budget) belongs in the message
    const why = () => (isAtomError(outer?.reason) ? `: ${outer.reason.shortMessage}` : "");
    const onOuter = () =>
      ac.abort(this.stepError(entry, phase, "ATOM_ABORTED", `the run was aborted${why()}`, outer?.reason));
    if (outer?.aborted) onOuter();
    else outer?.addEventListener("abort", onOuter, { once: true });
    if (timeoutMs !== undefined) {
      timer = setTimeout(
        () => ac.abort(this.stepError(entry, phase, "ATOM_TIMEOUT", `timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
    }
    const aborted = new Promise<never>((_, reject) => {
      if (ac.signal.aborted) reject(ac.signal.reason);
      else ac.signal.addEventListener("abort", () => reject(ac.signal.reason), { once: true });
    });
    aborted.catch(() => {});
    let work: Promise<T> | undefined;
    try {
      if (ac.signal.aborted) throw ac.signal.reason;
      work = Promise.resolve().then(() => fn(this.ctx(entry, ac.signal)));
      return await Promise.race([work, aborted]);
    } catch (error) {
      if (ac.signal.aborted && work) {
        // let the step notice its signal and stop before check observes what it did
        const grace = new AbortController();
        let settled = false;
        await Promise.race([
          work.then(
            () => (settled = true),
            () => (settled = true),
          ),
          sleep(this.o.abortGraceMs, grace.signal),
        ]);
        grace.abort(); // clears the grace timer, which would otherwise hold the process open
        if (!settled) {
          // the step ignores its signal and may still be acting: nothing must run on top of it
          const wrapped = this.wrap(entry, phase, error);
          UNSETTLED.add(wrapped);
          throw wrapped;
        }
      }
      throw this.wrap(entry, phase, error);
    } finally {
      if (timer) clearTimeout(timer);
      outer?.removeEventListener("abort", onOuter);
    }
  }

  /** The one error rule (step-failure.ts): whatever the step threw, one StepError with full context. */
  private wrap(entry: Entry, phase: StepPhase, error: unknown): AtomError {
    return toStepError(error, this.where(entry, phase));
  }

  stepError(
    entry: Entry,
    phase: StepPhase,
    code: AtomError["code"],
    message: string,
    cause?: unknown,
  ): StepError {
    return engineStepError(this.where(entry, phase), code, message, cause);
  }

  private where(entry: Entry, phase: StepPhase): FailureContext {
    const { atom, host, redactor } = this.o;
    return { atom, host: host.name, step: entry.step.name, kind: entry.step.kind, phase, redactor };
  }

  private same(entry: Entry, a: unknown, b: unknown): boolean {
    const fn = entry.step.definition.same;
    try {
      return fn ? fn(a, b) : deepEqual(a, b);
    } catch {
      // a throwing same() must not escape the engine; "different" is the safe answer everywhere it is
      // asked (check: undo it; drift: stop; verify: not restored)
      return false;
    }
  }

  private async observe(entry: Entry, phase: StepPhase, outer?: AbortSignal): Promise<Json> {
    const { definition, params } = entry.step;
    const state = await this.attempt(entry, phase, (ctx) => definition.observe(ctx, params), outer);
    // Compared and handed to undo as JSON (what a new process reads back), but unmasked: a state that
    // quotes another step's secret must be restored exactly. Masking happens where records and events
    // leave the engine; a state read back masked then fails verify loudly instead of being "restored".
    try {
      return JSON.parse(JSON.stringify(state ?? null)) as Json;
    } catch (error) {
      throw this.stepError(
        entry,
        phase,
        "ATOM_STEP_FAILED",
        "observe returned a state that is not JSON",
        error,
      );
    }
  }

  /**
   * observe → journal intent → apply → observe, for each entry in order. On a failure, check decides
   * whether the step changed state. Returns the failure, if any; rollback is the caller's call.
   */
  async forward(entries: Entry[], signal?: AbortSignal): Promise<AtomError | undefined> {
    for (const entry of entries) {
      const { rec, step } = entry;
      if (signal?.aborted) return this.abortError(signal);
      this.emit({ type: "step:start", title: step.title }, entry);
      rec.startedAt = nowIso();
      const t0 = Date.now();
      let before: Json;
      try {
        before = await this.observe(entry, "observe", signal);
      } catch (error) {
        // nothing was done yet: the step failed without changing state
        return this.failed(entry, "failed-unchanged", error as AtomError, t0);
      }
      rec.before = before;
      if (this.o.redactor.holdsSecret(before)) {
        // what undo restores comes from the trail in a new process, and the trail never holds a secret
        return this.failed(
          entry,
          "failed-unchanged",
          this.stepError(
            entry,
            "observe",
            "ATOM_STEP_FAILED",
            "the step's state holds a secret value, which the trail never records, so nothing was applied: undo in a new process (recover, undo <runId>) could not restore it",
          ),
          t0,
        );
      }
      rec.status = "applying";
      try {
        await this.journal(entry, true);
      } catch (error) {
        return this.failed(
          entry,
          "failed-unchanged",
          this.stepError(
            entry,
            "apply",
            "ATOM_STEP_FAILED",
            `the trail could not record the intent, so apply was not started: ${isAtomError(error) ? error.shortMessage : messageOf(error)}`,
            error,
          ),
          t0,
        );
      }
      for (let attempt = 1; ; attempt++) {
        rec.attempts = attempt;
        let failure: AtomError | undefined;
        try {
          await this.attempt(
            entry,
            "apply",
            (ctx) => step.definition.apply(ctx, step.params, before),
            signal,
          );
          rec.after = await this.observe(entry, "observe", signal);
        } catch (error) {
          failure = error as AtomError;
        }
        if (!failure) {
          rec.changed = !this.same(entry, rec.after, before);
          rec.status = "applied";
          rec.endedAt = nowIso();
          rec.durationMs = Date.now() - t0;
          // Not synced: the next intent syncs it; if we die first, the step reads as "applying" and
          // recover re-observes it, which is just as safe. The last step's is synced: a death before
          // the end record must read as "every step applied" (recover then keeps the commit).
          const last = entry === entries[entries.length - 1];
          await this.journal(entry, last).catch(() => {});
          this.emit({ type: "step:applied", changed: rec.changed, durationMs: rec.durationMs }, entry);
          break;
        }
        // check: a failed step may still have changed something
        let now: Json;
        rec.checkAt = nowIso();
        try {
          now = await this.observe(entry, "check");
        } catch (checkError) {
          delete rec.after;
          return this.failed(entry, "failed-unknown", failure, t0, checkError as AtomError);
        }
        if (this.same(entry, now, before)) {
          delete rec.after;
          const retryable =
            attempt <= step.retries && failure.code === "ATOM_STEP_FAILED" && !signal?.aborted;
          if (!retryable) return this.failed(entry, "failed-unchanged", failure, t0);
          this.emit({ type: "step:retry", attempt, error: this.info(failure), undo: false }, entry);
          await sleep(this.backoff(attempt - 1), signal);
          continue;
        }
        rec.after = now;
        return this.failed(entry, "failed-changed", failure, t0);
      }
    }
    return signal?.aborted ? this.abortError(signal) : undefined;
  }

  private async failed(
    entry: Entry,
    status: "failed-unchanged" | "failed-changed" | "failed-unknown",
    error: AtomError,
    t0: number,
    checkError?: AtomError,
  ): Promise<AtomError> {
    const { rec } = entry;
    rec.status = status;
    rec.error = error;
    rec.endedAt = nowIso();
    rec.durationMs = Date.now() - t0;
    if (status === "failed-changed") rec.changed = true;
    await this.journal(entry, true, checkError ?? error).catch(() => {});
    this.emit({ type: "step:failed", status, error: this.info(error), durationMs: rec.durationMs }, entry);
    return error;
  }

  private abortError(signal: AbortSignal): AtomError {
    const reason = signal.reason;
    if (isAtomError(reason)) return reason;
    return new AtomError("ATOM_ABORTED", "the run was aborted", {
      atom: this.o.atom,
      host: this.o.host.name,
      cause: reason,
    });
  }

  /** Re-observes a step whose apply was interrupted (recover): did it change state? */
  async check(entry: Entry): Promise<void> {
    const { rec } = entry;
    rec.checkAt = nowIso();
    try {
      const now = await this.observe(entry, "check");
      if (this.same(entry, now, rec.before)) {
        rec.status = "failed-unchanged";
        delete rec.after;
      } else {
        rec.status = "failed-changed";
        rec.changed = true;
        rec.after = now;
      }
      await this.journal(entry, true);
    } catch (error) {
      rec.status = "failed-unknown";
      delete rec.after;
      rec.error = error as AtomError;
      await this.journal(entry, true, error as AtomError);
    }
  }

  /**
   * Observes every live step and throws a DriftError, before anything is undone, if one is neither
   * what the run left (`final`, else its after) nor its before.
   */
  async refuseDrift(final: Record<string, Json> = {}): Promise<void> {
    for (const entry of this.toUndo()) {
      const { rec } = entry;
      const left = final[entry.step.name] ?? rec.after;
      if (left === undefined) continue;
      const now = await this.observeRetried(entry, "undo");
      if (this.matches(entry, now, left) || this.same(entry, now, rec.before)) continue;
      throw new DriftError("the state changed since the run applied this step; nothing was undone", {
        atom: this.o.atom,
        host: this.o.host.name,
        step: entry.step.name,
        kind: entry.step.kind,
        phase: "undo",
        expected: left,
        found: this.o.redactor.scrub(now),
        hint: "someone changed the host since (another deploy?); inspect it, then undo with force (--force) to restore the recorded before-state anyway",
      });
    }
  }

  /**
   * Lets every kind remove what an interrupted apply or undo left beside its target (temporary names).
   * Best effort: a cleanup that fails is reported as a log line, never as the run's failure.
   */
  async cleanup(): Promise<void> {
    for (const entry of this.entries) {
      const { definition, params } = entry.step;
      if (!definition.cleanup) continue;
      try {
        await this.attempt(entry, "undo", (ctx) => definition.cleanup!(ctx, params));
      } catch (error) {
        this.emit(
          { type: "step:log", message: `cleanup failed: ${(error as AtomError).shortMessage ?? error}` },
          entry,
        );
      }
    }
  }

  /**
   * Read-only: each live step's state now against what the run left (`final`, else its after). For
   * `atomkit status`: does the host still serve what the run left?
   */
  async compareLeft(
    final: Record<string, Json> = {},
  ): Promise<Array<{ step: string; matches: boolean; left?: Json; now?: Json; error?: ErrorInfo }>> {
    const out: Array<{ step: string; matches: boolean; left?: Json; now?: Json; error?: ErrorInfo }> = [];
    for (const entry of [...this.toUndo()].reverse()) {
      const left = final[entry.step.name] ?? entry.rec.after;
      if (left === undefined) continue;
      try {
        const now = await this.observe(entry, "observe");
        out.push({
          step: entry.step.name,
          matches: this.matches(entry, now, left),
          left,
          now: this.o.redactor.scrub(now),
        });
      } catch (error) {
        out.push({ step: entry.step.name, matches: false, left, error: this.info(error) });
      }
    }
    return out;
  }

  /** Entries whose change may be live, newest first. */
  toUndo(): Entry[] {
    return this.entries.filter(({ rec }) => isLive(rec)).reverse();
  }

  /** Names of steps whose change is live, in run order. */
  stillApplied(): string[] {
    return this.entries.filter(({ rec }) => isLive(rec)).map(({ rec }) => rec.name);
  }

  /**
   * Undoes every live entry newest first: observe, drift check, undo with retries, verify. Stops at the
   * first step that cannot be undone and verified, and returns that failure.
   */
  async rollback(
    options: { force?: boolean | undefined; reason?: AtomError | undefined } = {},
  ): Promise<RollbackError | undefined> {
    const list = this.toUndo();
    this.emit({
      type: "rollback:start",
      steps: list.map((e) => e.rec.name),
      ...(options.reason ? { reason: this.info(options.reason) } : {}),
    });
    for (const entry of list) {
      const failure = await this.undoOne(entry, options.force ?? false);
      if (failure)
        return new RollbackError(failure, this.stillApplied(), { atom: this.o.atom, host: this.o.host.name });
    }
    return undefined;
  }

  private async undoOne(entry: Entry, force: boolean): Promise<AtomError | undefined> {
    const { rec, step } = entry;
    const t0 = Date.now();
    rec.undoStartedAt = nowIso();
    this.emit({ type: "step:undo-start" }, entry);
    const fail = async (status: "undo-failed" | "drift", error: AtomError) => {
      rec.status = status;
      rec.undoError = error;
      rec.undoEndedAt = nowIso();
      rec.undoDurationMs = Date.now() - t0;
      await this.journal(entry, true, error).catch(() => {});
      this.emit({ type: "step:undo-failed", error: this.info(error), durationMs: rec.undoDurationMs }, entry);
      return error;
    };
    const done = async (alreadyRestored: boolean) => {
      rec.status = "undone";
      rec.verified = true;
      rec.undoEndedAt = nowIso();
      rec.undoDurationMs = Date.now() - t0;
      // not synced: a lost "undone" reads as "undoing" and recover verifies it by observing
      await this.journal(entry, false).catch(() => {});
      this.emit(
        { type: "step:undone", verified: true, alreadyRestored, durationMs: rec.undoDurationMs },
        entry,
      );
      return undefined;
    };

    // a dropped link while looking must not end the rollback: observe is retried like undo itself
    let now: Json;
    try {
      now = await this.observeRetried(entry, "undo");
    } catch (error) {
      return fail("undo-failed", error as AtomError);
    }
    const before = rec.before as Json;
    if (this.same(entry, now, before)) return done(true);
    // what the run left (undoRun) also counts: a later step of the run may change what this one
    // observes and not be undone itself (it changed nothing of its own)
    const left = entry.final !== undefined && this.matches(entry, now, entry.final);
    if (rec.after !== undefined && !this.matches(entry, now, rec.after) && !left) {
      this.emit({ type: "step:drift", forced: force, expected: rec.after, found: now }, entry);
      if (!force) {
        return fail(
          "drift",
          new DriftError("the state changed since this run applied the step, so undo was not attempted", {
            atom: this.o.atom,
            host: this.o.host.name,
            step: step.name,
            kind: step.kind,
            phase: "undo",
            expected: this.o.redactor.scrub(rec.after),
            found: this.o.redactor.scrub(now),
            hint: "someone else changed it; inspect the host, then undo with force (--force) to restore the recorded before-state anyway",
          }),
        );
      }
    }
    // after is unknown when check could not observe; the state seen now is the best after there is
    const after = rec.after !== undefined ? rec.after : now;
    rec.status = "undoing";
    // Without the intent on disk (a full trail disk) the undo still goes ahead: leaving the change live
    // is worse, and recover decides from fresh observes whatever the trail missed.
    await this.journal(entry, true).catch(() => {});
    let last: AtomError | undefined;
    // what the previous failed attempt ended with: the same failure over the same state again means
    // retrying cannot help (a deterministic error), so the rollback moves on instead of backing off
    let lastFailure: string | undefined;
    for (let attempt = 0; attempt <= step.undoRetries; attempt++) {
      // a verify time is this attempt's or none: a later attempt that fails before verifying must not
      // show an earlier attempt's verify
      delete rec.verifyAt;
      if (attempt > 0) {
        this.emit({ type: "step:retry", attempt, error: this.info(last), undo: true }, entry);
        await sleep(this.backoff(attempt - 1));
      }
      let undoError: AtomError | undefined;
      try {
        await this.attempt(entry, "undo", (ctx) => step.definition.undo(ctx, step.params, before, after));
      } catch (error) {
        undoError = error as AtomError;
        // an undo that timed out and did not stop may still be acting: no second one on top of it
        if (UNSETTLED.has(undoError)) return fail("undo-failed", undoError);
      }
      // verify, also after a failed attempt: it may have done its work before failing
      let seen: Json;
      rec.verifyAt = nowIso();
      try {
        seen = await this.observe(entry, "verify");
      } catch (error) {
        last = error as AtomError;
        continue;
      }
      if (this.same(entry, seen, before)) return done(false);
      const failure = `${undoError?.code}\0${undoError?.shortMessage}\0${JSON.stringify(seen)}`;
      const repeated = failure === lastFailure || hopeless(undoError);
      lastFailure = failure;
      last =
        undoError ??
        new StepError("ATOM_VERIFY_FAILED", "undo finished but the state is not the recorded before-state", {
          atom: this.o.atom,
          host: this.o.host.name,
          step: step.name,
          kind: step.kind,
          phase: "verify",
          expected: before,
          found: this.o.redactor.scrub(seen),
          hint: `the undo of ${step.kind} did not restore the state; fix the host by hand (or the step kind), then \`atomkit recover ${this.o.runId}\` finishes the rollback`,
        });
      if (repeated) break;
    }
    return fail("undo-failed", last!);
  }

  /**
   * A live state against a recorded one: equal as is, or once masked the way the trail masked it (a
   * state read back from a trail holds `***` where a secret stood).
   */
  private matches(entry: Entry, live: Json, recorded: Json): boolean {
    return (
      this.same(entry, live, recorded) ||
      (!this.o.redactor.empty && this.same(entry, this.o.redactor.scrub(live), recorded))
    );
  }

  /** observe with the step's undo retries and backoff: a link that drops and comes back is not a failure. */
  private async observeRetried(entry: Entry, phase: StepPhase): Promise<Json> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.observe(entry, phase);
      } catch (error) {
        if (attempt >= entry.step.undoRetries || UNSETTLED.has(error as object)) throw error;
        this.emit({ type: "step:retry", attempt: attempt + 1, error: this.info(error), undo: true }, entry);
        await sleep(this.backoff(attempt));
      }
    }
  }

  private backoff(attempt: number): number {
    return Math.min(this.o.backoffMs * 2 ** attempt, BACKOFF_CAP_MS);
  }
}

/** A step whose change may be live: applied with a change, failed after changing, or not yet undone. */
export function isLive(rec: { status: StepStatus; changed?: boolean | undefined }): boolean {
  switch (rec.status) {
    case "applied":
      return rec.changed !== false;
    case "failed-changed":
    case "failed-unknown":
    case "undoing":
    case "undo-failed":
    case "drift":
      return true;
    default:
      return false;
  }
}

/** Failures no retry can mend: the host refused who we are. */
function hopeless(error: AtomError | undefined): boolean {
  const reason = errorReason(error?.cause ?? error);
  return reason === "HOST_KEY" || reason === "AUTH";
}
