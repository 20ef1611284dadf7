// The base of every Atomkit error: its codes, the context it carries and how its message is built.
// The subclasses are in errors.ts, the serialisable form in error-info.ts.

/**
 * Stable error codes, sorted alphabetically, each meaning one thing. Scripts and the CLI branch on
 * these, never on messages.
 */
export type AtomErrorCode =
  /** The run was aborted (Ctrl-C, a lost lock, a fleet's failure budget) before it finished. */
  | "ATOM_ABORTED"
  /** A state changed since the run applied its step (someone else acted): nothing was undone. */
  | "ATOM_DRIFT"
  /** A host operation outside any step failed (connect, lock, files); `HostError.reason` says why. */
  | "ATOM_HOST"
  /** An atom definition is invalid: its name, no steps, two steps with one name. */
  | "ATOM_INVALID_ATOM"
  /** An option given to core is invalid: fleet options, a lock name, a host that is not the run's. */
  | "ATOM_INVALID_OPTION"
  /** A step kind definition or a step name is invalid (a programming error in the deploy file or kind). */
  | "ATOM_INVALID_STEP"
  /** Another run holds the host's lock. Nothing ran. */
  | "ATOM_LOCKED"
  /** The run cannot be undone or rolled back: already undone, unfinished, an undo itself, nothing live. */
  | "ATOM_NOT_UNDOABLE"
  /** A step's params (or the CLI's own input) failed validation. Nothing ran. */
  | "ATOM_PARAMS_INVALID"
  /** A rollback stopped: the host is in a mixed state (`RollbackError.stillApplied`). */
  | "ATOM_ROLLBACK_FAILED"
  /** No run or fleet with this id is in the trail (or the id is not one). */
  | "ATOM_RUN_NOT_FOUND"
  /** A step's observe, apply or undo failed (what it threw is the cause). */
  | "ATOM_STEP_FAILED"
  /** A step ran longer than its `timeoutMs`. */
  | "ATOM_TIMEOUT"
  /** Stored trail records cannot be read as a run: unparseable, failing their integrity check, copied from another run. */
  | "ATOM_TRAIL_CORRUPT"
  /** The trail cannot be used as it is: a write refused (disk full), or records that do not fit the deploy file, key or schema. */
  | "ATOM_TRAIL_INVALID"
  /** A step names a kind no registered package provides. */
  | "ATOM_UNKNOWN_KIND"
  /** An undo finished but observing again did not give the recorded before-state. */
  | "ATOM_VERIFY_FAILED";

/** Where a step was when it failed. `check` is the re-observe after a failure, `verify` the one after undo. */
export type StepPhase = "validate" | "observe" | "apply" | "check" | "undo" | "verify";

/** Context every Atomkit error may carry; the message is built from it. */
export interface ErrorDetails {
  atom?: string | undefined;
  host?: string | undefined;
  step?: string | undefined;
  kind?: string | undefined;
  phase?: StepPhase | undefined;
  /** What the engine or step expected (a state, a value), as shown to the user. */
  expected?: unknown;
  /** What it found instead. */
  found?: unknown;
  /** How to fix it, when known. */
  hint?: string | undefined;
  cause?: unknown;
}

// Unlike `instanceof`, a symbol brand survives two copies of @atomkit/core in one install.
const IS_ATOM_ERROR = Symbol.for("@atomkit/core:error");

/** Every error Atomkit throws: a stable `code`, the context (atom, host, step, kind, phase) and expected/found/hint. */
export class AtomError extends Error {
  readonly code: AtomErrorCode;
  /** The message without context, expected/found and hint: for one-line renderers. */
  readonly shortMessage: string;
  readonly atom?: string;
  readonly host?: string;
  readonly step?: string;
  readonly kind?: string;
  readonly phase?: StepPhase;
  readonly expected?: unknown;
  readonly found?: unknown;
  readonly hint?: string;

  constructor(code: AtomErrorCode, message: string, details: ErrorDetails = {}) {
    super(
      formatMessage(message, details),
      details.cause === undefined ? undefined : { cause: details.cause },
    );
    // Proper way to set `error.name`: inherited from the subclass, non-enumerable.
    Object.defineProperty(this, "name", { value: new.target.name, enumerable: false, configurable: true });
    Object.defineProperty(this, IS_ATOM_ERROR, { value: true });
    this.code = code;
    this.shortMessage = message;
    for (const key of ["atom", "host", "step", "kind", "phase", "expected", "found", "hint"] as const) {
      if (details[key] !== undefined) Object.assign(this, { [key]: details[key] });
    }
  }
}

/** Whether `error` is an AtomError (also one from another copy of @atomkit/core in the install). */
export const isAtomError = (error: unknown): error is AtomError =>
  typeof error === "object" && error !== null && IS_ATOM_ERROR in error;

function formatMessage(message: string, d: ErrorDetails): string {
  const where: string[] = [];
  if (d.atom) where.push(`atom "${d.atom}"`);
  if (d.host) where.push(`host "${d.host}"`);
  if (d.step) where.push(`step "${d.step}"${d.kind && d.kind !== d.step ? ` (${d.kind})` : ""}`);
  if (d.phase) where.push(d.phase);
  let text = `[atomkit]${where.length ? ` ${where.join(", ")}:` : ""} ${message}`;
  if (d.expected !== undefined) text += `\n  expected: ${show(d.expected)}`;
  if (d.found !== undefined) text += `\n  found:    ${show(d.found)}`;
  if (d.hint) text += `\n  fix:      ${d.hint}`;
  return text;
}

function show(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    const text = JSON.stringify(value);
    return text.length > 500 ? `${text.slice(0, 500)}…` : text;
  } catch {
    return String(value);
  }
}
