import type { AtomError, StepError, StepPhase } from "../errors";
import type { Host } from "../host";
import type { Redactor } from "../redact";
import { engineStepError, type FailureContext, toStepError } from "../step-failure";

// Where the engine meets the one error rule (../step-failure.ts): the run's scope and the step in
// hand become the context every StepError carries.

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

function where(scope: ErrorScope, step: ErrorStep, phase: StepPhase): FailureContext {
  return {
    atom: scope.atom,
    host: scope.host.name,
    step: step.name,
    kind: step.kind,
    phase,
    redactor: scope.redactor,
  };
}

/** Whatever the step threw, as one StepError with full context, secrets masked. */
export function wrap(scope: ErrorScope, step: ErrorStep, phase: StepPhase, error: unknown): AtomError {
  return toStepError(error, where(scope, step, phase));
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
  return engineStepError(where(scope, step, phase), code, message, cause);
}
