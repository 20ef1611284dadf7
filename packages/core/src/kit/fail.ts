// The one way a step kind reports a failure of its own. The kind says what went wrong; the engine,
// which knows the atom, host, step, kind and phase, completes it into the run's StepError (see
// step-failure.ts), so no kind repeats its own name or guesses its phase.
import { AtomError, type AtomErrorCode, type ErrorDetails, StepError, type StepPhase } from "../errors";
import type { StepContext } from "../step";

const KIND_FAILURE = Symbol.for("@atomkit/core:kind-failure");

/** What a kind knows about its failure; the engine adds atom, host, step, kind and phase. */
export interface FailDetails {
  /** What the step expected (a state, a value), as shown to the user. */
  expected?: unknown;
  /** What it found instead. */
  found?: unknown;
  /** How to fix it, when known: one imperative sentence. */
  hint?: string | undefined;
  /** The error underneath (a HostError, a Node error): kept as the StepError's cause. */
  cause?: unknown;
  /** Default `ATOM_STEP_FAILED`; another code only where it means exactly that (`ATOM_NOT_UNDOABLE`). */
  code?: AtomErrorCode | undefined;
}

/**
 * Throws a step kind's failure: `throw fail("the parent directory does not exist", { expected, found,
 * hint })`. It throws itself (a forgotten `throw` cannot let the step carry on); writing `throw fail(…)`
 * tells the reader, and TypeScript, that the line ends the function. Outside a run (a kind's function
 * called directly) the error is a StepError without context; inside one the engine completes it.
 */
export function fail(message: string, details: FailDetails = {}): never {
  const { code, ...rest } = details;
  const error = new StepError(code ?? "ATOM_STEP_FAILED", message, rest);
  Object.defineProperty(error, KIND_FAILURE, { value: true });
  throw error;
}

/** Whether `error` was thrown by `fail()` (its fields are lifted into the run's StepError). */
export function isKindFailure(error: unknown): error is StepError {
  return typeof error === "object" && error !== null && KIND_FAILURE in error;
}

/**
 * @deprecated use `throw fail(message, details)`: the engine adds host, step, kind and phase itself.
 * An error raised by a step that names them by hand; the engine completes it the same way.
 */
export function stepError(
  ctx: StepContext,
  kind: string,
  phase: StepPhase,
  message: string,
  details: Omit<ErrorDetails, "host" | "step" | "kind" | "phase"> = {},
): AtomError {
  return new AtomError("ATOM_STEP_FAILED", message, {
    ...details,
    host: ctx.host.name,
    step: ctx.step,
    kind,
    phase,
  });
}
