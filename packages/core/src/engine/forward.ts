import { messageOf, nowIso, sleep } from "../_utils";
import type { Engine, Entry } from "../engine";
import { AtomError, isAtomError } from "../errors";
import type { Json } from "../types";
import { attempt, backoff, observe } from "./attempt";
import { move } from "./state";
import { stepError } from "./step-error";

// The forward pass: observe → journal intent → apply → observe, for each step in order, and check (a
// fresh observe) whenever apply failed or was interrupted, to tell whether the step changed anything.

type Failed = "failed-unchanged" | "failed-changed" | "failed-unknown";

/**
 * observe → journal intent → apply → observe, for each entry in order. On a failure, check decides
 * whether the step changed state. Returns the failure, if any; rollback is the caller's call.
 */
export async function forward(
  engine: Engine,
  entries: Entry[],
  signal?: AbortSignal,
): Promise<AtomError | undefined> {
  for (const entry of entries) {
    const { rec, step } = entry;
    if (signal?.aborted) return abortError(engine, signal);
    engine.emit({ type: "step:start", title: step.title }, entry);
    rec.startedAt = nowIso();
    const t0 = Date.now();
    let before: Json;
    try {
      before = await observe(engine, entry, "observe", signal);
    } catch (error) {
      // nothing was done yet: the step failed without changing state
      return failed(engine, entry, "failed-unchanged", error as AtomError, t0);
    }
    rec.before = before;
    if (engine.o.redactor.holdsSecret(before)) {
      // what undo restores comes from the trail in a new process, and the trail never holds a secret
      return failed(
        engine,
        entry,
        "failed-unchanged",
        stepError(
          engine.o,
          step,
          "observe",
          "ATOM_STEP_FAILED",
          "the step's state holds a secret value, which the trail never records, so nothing was applied: undo in a new process (recover, undo <runId>) could not restore it",
        ),
        t0,
      );
    }
    move(rec, "applying");
    try {
      await engine.journal.step(entry, true);
    } catch (error) {
      return failed(
        engine,
        entry,
        "failed-unchanged",
        stepError(
          engine.o,
          step,
          "apply",
          "ATOM_STEP_FAILED",
          `the trail could not record the intent, so apply was not started: ${isAtomError(error) ? error.shortMessage : messageOf(error)}`,
          error,
        ),
        t0,
      );
    }
    for (let n = 1; ; n++) {
      rec.attempts = n;
      let failure: AtomError | undefined;
      try {
        await attempt(
          engine,
          entry,
          "apply",
          (ctx) => step.definition.apply(ctx, step.params, before),
          signal,
        );
        rec.after = await observe(engine, entry, "observe", signal);
      } catch (error) {
        failure = error as AtomError;
      }
      if (!failure) {
        rec.changed = !engine.same(entry, rec.after, before);
        move(rec, "applied");
        rec.endedAt = nowIso();
        rec.durationMs = Date.now() - t0;
        // Not synced: the next intent syncs it; if we die first, the step reads as "applying" and
        // recover re-observes it, which is just as safe. The last step's is synced: a death before
        // the end record must read as "every step applied" (recover then keeps the commit).
        const last = entry === entries[entries.length - 1];
        await engine.journal.step(entry, last).catch(() => {});
        engine.emit({ type: "step:applied", changed: rec.changed, durationMs: rec.durationMs }, entry);
        break;
      }
      // check: a failed step may still have changed something
      let now: Json;
      rec.checkAt = nowIso();
      try {
        now = await observe(engine, entry, "check");
      } catch (checkError) {
        delete rec.after;
        return failed(engine, entry, "failed-unknown", failure, t0, checkError as AtomError);
      }
      if (engine.same(entry, now, before)) {
        delete rec.after;
        const retryable = n <= step.retries && failure.code === "ATOM_STEP_FAILED" && !signal?.aborted;
        if (!retryable) return failed(engine, entry, "failed-unchanged", failure, t0);
        engine.emit({ type: "step:retry", attempt: n, error: engine.info(failure), undo: false }, entry);
        await sleep(backoff(engine, n - 1), signal);
        continue;
      }
      rec.after = now;
      return failed(engine, entry, "failed-changed", failure, t0);
    }
  }
  return signal?.aborted ? abortError(engine, signal) : undefined;
}

async function failed(
  engine: Engine,
  entry: Entry,
  status: Failed,
  error: AtomError,
  t0: number,
  checkError?: AtomError,
): Promise<AtomError> {
  const { rec } = entry;
  move(rec, status);
  rec.error = error;
  rec.endedAt = nowIso();
  rec.durationMs = Date.now() - t0;
  if (status === "failed-changed") rec.changed = true;
  await engine.journal.step(entry, true, checkError ?? error).catch(() => {});
  engine.emit({ type: "step:failed", status, error: engine.info(error), durationMs: rec.durationMs }, entry);
  return error;
}

function abortError(engine: Engine, signal: AbortSignal): AtomError {
  const reason = signal.reason;
  if (isAtomError(reason)) return reason;
  return new AtomError("ATOM_ABORTED", "the run was aborted", {
    atom: engine.o.atom,
    host: engine.o.host.name,
    cause: reason,
  });
}

/**
 * Re-observes a step whose apply was interrupted (recover): did it change state? A trail that cannot
 * take the outcome fails recover (the step still reads `applying`, and the next recover checks again).
 */
export async function check(engine: Engine, entry: Entry): Promise<void> {
  const { rec } = entry;
  rec.checkAt = nowIso();
  let now: Json;
  try {
    now = await observe(engine, entry, "check");
  } catch (error) {
    move(rec, "failed-unknown");
    delete rec.after;
    rec.error = error as AtomError;
    await engine.journal.step(entry, true, error as AtomError);
    return;
  }
  if (engine.same(entry, now, rec.before)) {
    move(rec, "failed-unchanged");
    delete rec.after;
  } else {
    move(rec, "failed-changed");
    rec.changed = true;
    rec.after = now;
  }
  await engine.journal.step(entry, true);
}

/**
 * What a committed run left, per changed step: observed once more at the end, because a later step
 * may change what an earlier one observes (process.start reuses the pid file process.stop looked
 * at). `undoRun` compares against this, not against each step's own after, to tell drift from that.
 */
export async function finalStates(engine: Engine): Promise<Record<string, Json> | undefined> {
  const out: Record<string, Json> = {};
  for (const entry of engine.entries) {
    if (entry.rec.status !== "applied" || !entry.rec.changed) continue;
    try {
      out[entry.step.name] = await observe(engine, entry, "observe");
    } catch {
      // unknown: undoRun falls back to the step's after
    }
  }
  return Object.keys(out).length ? out : undefined;
}
