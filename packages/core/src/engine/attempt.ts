import { sleep } from "../_utils";
import type { Engine, Entry } from "../engine";
import { isAtomError, type StepPhase } from "../errors";
import type { StepContext } from "../step";
import type { Json } from "../types";
import { stepError, wrap } from "./step-error";

// One call of a step function: under its timeout and the run's signal, with a grace for an aborted
// step to stop, and the retries with backoff that observe and undo get.

/** Errors of attempts whose work had not stopped when the grace after its abort ran out. */
const UNSETTLED = new WeakSet<object>();

/** The step ignored its abort and may still be acting: nothing must run on top of it. */
export function isUnsettled(error: unknown): boolean {
  return typeof error === "object" && error !== null && UNSETTLED.has(error);
}

const BACKOFF_CAP_MS = 5_000;

/** The delay before retry `attempt` (0-based): doubles per attempt, capped at 5 s. */
export function backoff(engine: Engine, attempt: number): number {
  return Math.min(engine.o.backoffMs * 2 ** attempt, BACKOFF_CAP_MS);
}

function contextFor(engine: Engine, entry: Entry, signal: AbortSignal): StepContext {
  const { o } = engine;
  return {
    host: o.host,
    signal,
    runId: o.runId,
    step: entry.step.name,
    log: (message: string) => engine.emit({ type: "step:log", message: String(message) }, entry),
    redact: <T>(value: T) => o.redactor.scrub(value),
  };
}

/** Runs one attempt of a step function under its timeout and the outer signal. */
export async function attempt<T>(
  engine: Engine,
  entry: Entry,
  phase: StepPhase,
  fn: (ctx: StepContext) => Promise<T>,
  outer?: AbortSignal,
): Promise<T> {
  const { o } = engine;
  const { timeoutMs } = entry.step;
  // the common case (no timeout, no cancel) needs no timer or race: they are most of the engine's own
  // per-step cost when steps are cheap. The signal that never fires is still the step's own: one
  // shared by every step would gather the abort listeners of every host's steps at once (a fleet's
  // undos), each add and remove scanning them all, and Node warning of a leak past 10.
  if (timeoutMs === undefined && !outer) {
    try {
      return await fn(contextFor(engine, entry, new AbortController().signal));
    } catch (error) {
      throw wrap(o, entry.step, phase, error);
    }
  }
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  // why the run was aborted (a lost lock, Ctrl-C, a fleet's failure budget) belongs in the message
  const why = () => (isAtomError(outer?.reason) ? `: ${outer.reason.shortMessage}` : "");
  const onOuter = () =>
    ac.abort(stepError(o, entry.step, phase, "ATOM_ABORTED", `the run was aborted${why()}`, outer?.reason));
  if (outer?.aborted) onOuter();
  else outer?.addEventListener("abort", onOuter, { once: true });
  if (timeoutMs !== undefined) {
    timer = setTimeout(
      () => ac.abort(stepError(o, entry.step, phase, "ATOM_TIMEOUT", `timed out after ${timeoutMs} ms`)),
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
    work = Promise.resolve().then(() => fn(contextFor(engine, entry, ac.signal)));
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
        sleep(o.abortGraceMs, grace.signal),
      ]);
      grace.abort(); // clears the grace timer, which would otherwise hold the process open
      if (!settled) {
        // the step ignores its signal and may still be acting: nothing must run on top of it
        const wrapped = wrap(o, entry.step, phase, error);
        UNSETTLED.add(wrapped);
        throw wrapped;
      }
    }
    throw wrap(o, entry.step, phase, error);
  } finally {
    if (timer) clearTimeout(timer);
    outer?.removeEventListener("abort", onOuter);
  }
}

/** One observe of a step, as JSON. */
export async function observe(
  engine: Engine,
  entry: Entry,
  phase: StepPhase,
  outer?: AbortSignal,
): Promise<Json> {
  const { definition, params } = entry.step;
  const state = await attempt(engine, entry, phase, (ctx) => definition.observe(ctx, params), outer);
  // Compared and handed to undo as JSON (what a new process reads back), but unmasked: a state that
  // quotes another step's secret must be restored exactly. Masking happens where records and events
  // leave the engine; a state read back masked then fails verify loudly instead of being "restored".
  try {
    return JSON.parse(JSON.stringify(state ?? null)) as Json;
  } catch (error) {
    throw stepError(
      engine.o,
      entry.step,
      phase,
      "ATOM_STEP_FAILED",
      "observe returned a state that is not JSON",
      error,
    );
  }
}

/** observe with the step's undo retries and backoff: a link that drops and comes back is not a failure. */
export async function observeRetried(engine: Engine, entry: Entry, phase: StepPhase): Promise<Json> {
  for (let n = 0; ; n++) {
    try {
      return await observe(engine, entry, phase);
    } catch (error) {
      if (n >= entry.step.undoRetries || isUnsettled(error)) throw error;
      engine.emit({ type: "step:retry", attempt: n + 1, error: engine.info(error), undo: true }, entry);
      await sleep(backoff(engine, n));
    }
  }
}
