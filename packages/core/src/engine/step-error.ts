import { messageOf } from "../_utils";
import { type AtomError, isAtomError, StepError, type StepPhase } from "../errors";
import type { Host } from "../host";
import type { Redactor } from "../redact";

// The one rule for what a caller gets when a step fails: a StepError naming atom, host, step, kind and
// phase, masked. Kept in this file alone so the rule changes in one place.

/** What an error is completed with: the run's atom and host, and the masking of its secrets. */
export interface ErrorScope {
  atom: string;
  host: Host;
  redactor: Redactor;
}

/** The step an error is about. */
export interface ErrorStep {
  name: string;
  kind: string;
}

/**
 * The one error shape a step failure has: a StepError naming atom, host, step, kind and phase. A
 * kind's own AtomError keeps its code, expected, found and hint (masked), and stays as the cause.
 */
export function wrap(scope: ErrorScope, step: ErrorStep, phase: StepPhase, error: unknown): AtomError {
  if (isAtomError(error) && error instanceof StepError && error.step === step.name && error.atom)
    return error; // the engine's own (abort, timeout), already complete
  if (isAtomError(error) && error.step === step.name) {
    const r = scope.redactor;
    return new StepError(error.code, r.text(error.shortMessage), {
      atom: scope.atom,
      host: error.host ?? scope.host.name,
      step: step.name,
      kind: error.kind ?? step.kind,
      phase: error.phase ?? phase,
      expected: r.scrub(error.expected),
      found: r.scrub(error.found),
      hint: error.hint ? r.text(error.hint) : undefined,
      cause: error,
    });
  }
  return stepError(
    scope,
    step,
    phase,
    "ATOM_STEP_FAILED",
    // an AtomError from inside the step carries its own context; its short message reads best
    `${phase} failed: ${isAtomError(error) ? error.shortMessage : messageOf(error)}`,
    error,
  );
}

/** A StepError the engine raises itself (abort, timeout, a state that is not JSON), masked. */
export function stepError(
  scope: ErrorScope,
  step: ErrorStep,
  phase: StepPhase,
  code: AtomError["code"],
  message: string,
  cause?: unknown,
): StepError {
  const inner = isAtomError(cause) ? cause : undefined;
  return new StepError(code, scope.redactor.text(message), {
    atom: scope.atom,
    host: scope.host.name,
    step: step.name,
    kind: step.kind,
    phase,
    expected: scope.redactor.scrub(inner?.expected),
    found: scope.redactor.scrub(inner?.found),
    hint: inner?.hint ? scope.redactor.text(inner.hint) : undefined,
    cause,
  });
}
