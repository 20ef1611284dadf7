import { hostname } from "node:os";
import { messageOf, nowIso } from "../_utils";
import type { EngineOptions, Entry } from "../engine";
import { AtomError, type ErrorInfo, isAtomError, toErrorInfo } from "../errors";
import type { RunEvent } from "../events";
import type { RunMode, RunStatus, StepTrailRecord, TrailRecord, TrailStepInfo } from "../trail";
import type { Json } from "../types";

// What leaves the engine: records for the trail and events for the caller, both masked. Masking is done
// field by field here, never over ids, times or names (they are structure, and must stay readable).

export class Journal {
  private readonly started = Date.now();
  /**
   * The first trail write that failed. The run goes on (a rollback must not stop because the trail's
   * disk is full: recover re-observes whatever the trail missed), and the caller says so.
   */
  trailError: AtomError | undefined;

  constructor(private readonly o: EngineOptions) {}

  /** Writes the run record (synced) and emits `run:start`. */
  async start(
    mode: RunMode,
    entries: readonly Entry[],
    infos: TrailStepInfo[],
    undoOf?: string,
    meta?: Json,
  ): Promise<void> {
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
      steps: entries.map(({ step }) => ({
        name: step.name,
        kind: step.kind,
        phase: step.phase,
        title: step.title,
      })),
    });
  }

  /** Writes the end record; a trail that cannot take it is remembered in `trailError`, not thrown. */
  async end(
    status: RunStatus,
    error: AtomError | undefined,
    stillApplied: string[],
    final: Record<string, Json> | undefined,
  ): Promise<void> {
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

  /** Writes the step's current record. Intents are synced before the step acts. */
  async step(entry: Entry, sync: boolean, error?: AtomError): Promise<void> {
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

  private async write(records: TrailRecord[], sync: boolean): Promise<void> {
    try {
      await this.o.trail.append(this.o.runId, records, { sync });
    } catch (error) {
      this.noteTrailError(error);
      throw error;
    }
  }

  private noteTrailError(error: unknown): void {
    this.trailError ??= isAtomError(error)
      ? error
      : new AtomError("ATOM_TRAIL_INVALID", `the trail could not be written: ${messageOf(error)}`, {
          cause: error,
        });
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

  /** An error as records and events carry it, masked. */
  info(error: unknown): ErrorInfo {
    return this.o.redactor.scrub(toErrorInfo(error));
  }
}
