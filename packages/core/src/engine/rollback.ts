import { nowIso, sleep } from "../_utils";
import type { Engine, Entry } from "../engine";
import { type AtomError, DriftError, type ErrorInfo, errorReason, RollbackError, StepError } from "../errors";
import type { Json } from "../types";
import { attempt, backoff, isUnsettled, observe, observeRetried } from "./attempt";
import { move } from "./state";

// Going back: every live step newest first, each observed (drift check), undone with retries, and
// verified by observing it equal to its before. Also the read-only comparisons undo and status make.

/** What `compareLeft` says of one step. */
export interface LeftComparison {
  step: string;
  matches: boolean;
  left?: Json;
  now?: Json;
  error?: ErrorInfo;
}

/**
 * Observes every live step and throws a DriftError, before anything is undone, if one is neither
 * what the run left (`final`, else its after) nor its before.
 */
export async function refuseDrift(engine: Engine, final: Record<string, Json> = {}): Promise<void> {
  for (const entry of engine.toUndo()) {
    const { rec } = entry;
    const left = final[entry.step.name] ?? rec.after;
    if (left === undefined) continue;
    const now = await observeRetried(engine, entry, "undo");
    if (engine.matches(entry, now, left) || engine.same(entry, now, rec.before)) continue;
    throw new DriftError("the state changed since the run applied this step; nothing was undone", {
      atom: engine.o.atom,
      host: engine.o.host.name,
      step: entry.step.name,
      kind: entry.step.kind,
      phase: "undo",
      expected: left,
      found: engine.o.redactor.scrub(now),
      hint: "someone changed the host since (another deploy?); inspect it, then undo with force (--force) to restore the recorded before-state anyway",
    });
  }
}

/**
 * Read-only: each live step's state now against what the run left (`final`, else its after). For
 * `atomkit status`: does the host still serve what the run left?
 */
export async function compareLeft(
  engine: Engine,
  final: Record<string, Json> = {},
): Promise<LeftComparison[]> {
  const out: LeftComparison[] = [];
  for (const entry of [...engine.toUndo()].reverse()) {
    const left = final[entry.step.name] ?? entry.rec.after;
    if (left === undefined) continue;
    try {
      const now = await observe(engine, entry, "observe");
      out.push({
        step: entry.step.name,
        matches: engine.matches(entry, now, left),
        left,
        now: engine.o.redactor.scrub(now),
      });
    } catch (error) {
      out.push({ step: entry.step.name, matches: false, left, error: engine.info(error) });
    }
  }
  return out;
}

/**
 * Undoes every live entry newest first: observe, drift check, undo with retries, verify. Stops at the
 * first step that cannot be undone and verified, and returns that failure.
 */
export async function rollback(
  engine: Engine,
  options: { force?: boolean | undefined; reason?: AtomError | undefined } = {},
): Promise<RollbackError | undefined> {
  const list = engine.toUndo();
  engine.emit({
    type: "rollback:start",
    steps: list.map((e) => e.rec.name),
    ...(options.reason ? { reason: engine.info(options.reason) } : {}),
  });
  for (const entry of list) {
    const failure = await undoOne(engine, entry, options.force ?? false);
    if (failure)
      return new RollbackError(failure, engine.stillApplied(), {
        atom: engine.o.atom,
        host: engine.o.host.name,
      });
  }
  return undefined;
}

async function undoOne(engine: Engine, entry: Entry, force: boolean): Promise<AtomError | undefined> {
  const { o } = engine;
  const { rec, step } = entry;
  const t0 = Date.now();
  rec.undoStartedAt = nowIso();
  engine.emit({ type: "step:undo-start" }, entry);
  const fail = async (status: "undo-failed" | "drift", error: AtomError) => {
    move(rec, status);
    rec.undoError = error;
    rec.undoEndedAt = nowIso();
    rec.undoDurationMs = Date.now() - t0;
    await engine.journal.step(entry, true, error).catch(() => {});
    engine.emit(
      { type: "step:undo-failed", error: engine.info(error), durationMs: rec.undoDurationMs },
      entry,
    );
    return error;
  };
  const done = async (alreadyRestored: boolean) => {
    move(rec, "undone");
    rec.verified = true;
    rec.undoEndedAt = nowIso();
    rec.undoDurationMs = Date.now() - t0;
    // not synced: a lost "undone" reads as "undoing" and recover verifies it by observing
    await engine.journal.step(entry, false).catch(() => {});
    engine.emit(
      { type: "step:undone", verified: true, alreadyRestored, durationMs: rec.undoDurationMs },
      entry,
    );
    return undefined;
  };

  // a dropped link while looking must not end the rollback: observe is retried like undo itself
  let now: Json;
  try {
    now = await observeRetried(engine, entry, "undo");
  } catch (error) {
    return fail("undo-failed", error as AtomError);
  }
  const before = rec.before as Json;
  if (engine.same(entry, now, before)) return done(true);
  // what the run left (undoRun) also counts: a later step of the run may change what this one
  // observes and not be undone itself (it changed nothing of its own)
  const left = entry.final !== undefined && engine.matches(entry, now, entry.final);
  if (rec.after !== undefined && !engine.matches(entry, now, rec.after) && !left) {
    engine.emit({ type: "step:drift", forced: force, expected: rec.after, found: now }, entry);
    if (!force) {
      return fail(
        "drift",
        new DriftError("the state changed since this run applied the step, so undo was not attempted", {
          atom: o.atom,
          host: o.host.name,
          step: step.name,
          kind: step.kind,
          phase: "undo",
          expected: o.redactor.scrub(rec.after),
          found: o.redactor.scrub(now),
          hint: "someone else changed it; inspect the host, then undo with force (--force) to restore the recorded before-state anyway",
        }),
      );
    }
  }
  // after is unknown when check could not observe; the state seen now is the best after there is
  const after = rec.after !== undefined ? rec.after : now;
  move(rec, "undoing");
  // Without the intent on disk (a full trail disk) the undo still goes ahead: leaving the change live
  // is worse, and recover decides from fresh observes whatever the trail missed.
  await engine.journal.step(entry, true).catch(() => {});
  let last: AtomError | undefined;
  // what the previous failed attempt ended with: the same failure over the same state again means
  // retrying cannot help (a deterministic error), so the rollback moves on instead of backing off
  let lastFailure: string | undefined;
  for (let n = 0; n <= step.undoRetries; n++) {
    // a verify time is this attempt's or none: a later attempt that fails before verifying must not
    // show an earlier attempt's verify
    delete rec.verifyAt;
    if (n > 0) {
      engine.emit({ type: "step:retry", attempt: n, error: engine.info(last), undo: true }, entry);
      await sleep(backoff(engine, n - 1));
    }
    let undoError: AtomError | undefined;
    try {
      await attempt(engine, entry, "undo", (ctx) => step.definition.undo(ctx, step.params, before, after));
    } catch (error) {
      undoError = error as AtomError;
      // an undo that timed out and did not stop may still be acting: no second one on top of it
      if (isUnsettled(undoError)) return fail("undo-failed", undoError);
    }
    // verify, also after a failed attempt: it may have done its work before failing
    let seen: Json;
    rec.verifyAt = nowIso();
    try {
      seen = await observe(engine, entry, "verify");
    } catch (error) {
      last = error as AtomError;
      continue;
    }
    if (engine.same(entry, seen, before)) return done(false);
    const failure = `${undoError?.code}\0${undoError?.shortMessage}\0${JSON.stringify(seen)}`;
    const repeated = failure === lastFailure || hopeless(undoError);
    lastFailure = failure;
    last =
      undoError ??
      new StepError("ATOM_VERIFY_FAILED", "undo finished but the state is not the recorded before-state", {
        atom: o.atom,
        host: o.host.name,
        step: step.name,
        kind: step.kind,
        phase: "verify",
        expected: before,
        found: o.redactor.scrub(seen),
        hint: `the undo of ${step.kind} did not restore the state; fix the host by hand (or the step kind), then \`atomkit recover ${o.runId}\` finishes the rollback`,
      });
    if (repeated) break;
  }
  return fail("undo-failed", last!);
}

/**
 * Lets every kind remove what an interrupted apply or undo left beside its target (temporary names).
 * Best effort: a cleanup that fails is reported as a log line, never as the run's failure.
 */
export async function cleanup(engine: Engine): Promise<void> {
  for (const entry of engine.entries) {
    const { definition, params } = entry.step;
    if (!definition.cleanup) continue;
    try {
      await attempt(engine, entry, "undo", (ctx) => definition.cleanup!(ctx, params));
    } catch (error) {
      engine.emit(
        { type: "step:log", message: `cleanup failed: ${(error as AtomError).shortMessage ?? error}` },
        entry,
      );
    }
  }
}

/** Failures no retry can mend: the host refused who we are. */
function hopeless(error: AtomError | undefined): boolean {
  const reason = errorReason(error?.cause ?? error);
  return reason === "HOST_KEY" || reason === "AUTH";
}
