// The one error rule: whatever a step kind throws (the kit's `fail()`, a HostError, a bare Error, an
// old-style `stepError`), the run reports one StepError naming atom, host, step, kind and phase, with
// every secret masked in its text, its details and its causes. The class never depends on what was
// thrown or on whether the run had secrets. The engine calls these two functions and nothing else.
import { messageOf } from "./_utils";
import { AtomError, type AtomErrorCode, isAtomError, StepError, type StepPhase } from "./errors";
import { isKindFailure } from "./kit/fail";
import type { Redactor } from "./redact";

/** What the engine knows about a failing step, and the run's secrets. */
export interface FailureContext {
  atom: string;
  host: string;
  step: string;
  kind: string;
  phase: StepPhase;
  redactor: Redactor;
}

/** StepErrors this module made: complete and masked, passed on as they are. */
const complete = new WeakSet<object>();

/** A StepError of the engine's own (a timeout, an abort), with `cause` (masked) as the reason. */
export function engineStepError(
  where: FailureContext,
  code: AtomErrorCode,
  message: string,
  cause?: unknown,
): StepError {
  const inner = isAtomError(cause) ? cause : undefined;
  return make(where, code, message, inner, cause);
}

/** What a step function threw, as the run's StepError (see the file comment). */
export function toStepError(error: unknown, where: FailureContext): StepError {
  if (error instanceof StepError && complete.has(error) && error.step === where.step) return error;
  // the kind described its failure itself: its message, details and cause become the StepError's own
  const own =
    isKindFailure(error) ||
    (isAtomError(error) && error.step === where.step && error.constructor === AtomError);
  if (own) return make(where, error.code, error.shortMessage, error, error.cause);
  return make(
    where,
    "ATOM_STEP_FAILED",
    // a plain error says nothing about when it happened: the phase opens the short message
    `${where.phase} failed: ${isAtomError(error) ? error.shortMessage : messageOf(error)}`,
    isAtomError(error) ? error : undefined,
    error,
  );
}

function make(
  where: FailureContext,
  code: AtomErrorCode,
  message: string,
  details: AtomError | undefined,
  cause: unknown,
): StepError {
  const r = where.redactor;
  const error = new StepError(code, r.text(message), {
    atom: where.atom,
    host: where.host,
    step: where.step,
    kind: where.kind,
    phase: where.phase,
    expected: r.scrub(details?.expected),
    found: r.scrub(details?.found),
    hint: details?.hint ? r.text(details.hint) : undefined,
    cause: maskError(cause, r),
  });
  complete.add(error);
  return error;
}

/**
 * A copy of an error (and its causes) with every secret masked in its strings and details, of the same
 * class (a HostError stays one, so its `reason` still counts); the error itself when there is no secret.
 */
export function maskError<T>(error: T, r: Redactor, depth = 0): T {
  if (r.empty || error === undefined || error === null) return error;
  if (typeof error !== "object") return r.scrub(error);
  if (!(error instanceof Error) || depth > 8) return error;
  const copy = Object.create(Object.getPrototypeOf(error)) as Record<PropertyKey, unknown>;
  for (const key of Reflect.ownKeys(error)) {
    const desc = Object.getOwnPropertyDescriptor(error, key)!;
    if ("value" in desc) {
      const v = desc.value as unknown;
      desc.value =
        key === "cause"
          ? maskError(v, r, depth + 1)
          : typeof v === "string"
            ? r.text(v)
            : isPlain(v)
              ? r.scrub(v)
              : v;
    }
    Object.defineProperty(copy, key, desc);
  }
  return copy as T;
}

function isPlain(value: unknown): boolean {
  if (Array.isArray(value)) return true;
  if (value === null || typeof value !== "object") return typeof value === "number";
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
