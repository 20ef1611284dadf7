import { messageOf } from "./_utils";
import type { Json } from "./types";

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

export const isAtomError = (error: unknown): error is AtomError =>
  typeof error === "object" && error !== null && IS_ATOM_ERROR in error;

/**
 * A step's observe, apply, undo or verify failed, timed out or was aborted: the one shape every step
 * failure has, naming atom, host, step, kind and phase, with secrets masked. What the kind threw is
 * `cause` (a kit `fail()` gives its message, expected, found and hint to this error instead).
 */
export class StepError extends AtomError {}

/** Params failed validation. Nothing ran. */
export class ParamsError extends AtomError {
  readonly issues: readonly ParamsIssue[];
  constructor(message: string, issues: readonly ParamsIssue[], details: ErrorDetails = {}) {
    super("ATOM_PARAMS_INVALID", message, details);
    this.issues = issues;
  }
}

export interface ParamsIssue {
  step: string;
  kind: string;
  /** Dotted path of the field, e.g. `health.http.port`; empty for the params object itself. */
  path: string;
  message: string;
}

/** The state at undo time is neither the recorded after nor before: someone else changed it. */
export class DriftError extends AtomError {
  constructor(message: string, details: ErrorDetails = {}) {
    super("ATOM_DRIFT", message, details);
  }
}

/** Rollback stopped: the host is in a mixed state. `stillApplied` lists the steps whose change is live. */
export class RollbackError extends AtomError {
  readonly stillApplied: readonly string[];
  /** The undo, verify or drift failure that stopped the rollback. */
  readonly failed: AtomError;
  /** The failure that made the run roll back in the first place. */
  reason?: AtomError;
  constructor(failed: AtomError, stillApplied: readonly string[], details: ErrorDetails = {}) {
    super(
      "ATOM_ROLLBACK_FAILED",
      `rollback stopped at step "${failed.step}": ${failed.shortMessage}. Still applied: ${
        stillApplied.length ? stillApplied.map((s) => `"${s}"`).join(", ") : "none"
      }`,
      {
        ...details,
        step: failed.step,
        kind: failed.kind,
        phase: failed.phase,
        expected: failed.expected,
        found: failed.found,
        hint: failed.hint ?? "fix the cause, then run `atomkit recover <runId>` or `atomkit undo <runId>`",
        cause: failed,
      },
    );
    this.stillApplied = stillApplied;
    this.failed = failed;
  }
}

/**
 * A trail cannot be trusted or written. `ATOM_TRAIL_CORRUPT`: stored records cannot be read as a run (a
 * corrupt file, a record failing its integrity check, a run file copied to another id).
 * `ATOM_TRAIL_INVALID` (the default): a disk that refused the write (ENOSPC), or records that do not fit
 * the deploy file, the key or the schema.
 */
export class TrailError extends AtomError {
  constructor(
    message: string,
    details: ErrorDetails = {},
    code: "ATOM_TRAIL_CORRUPT" | "ATOM_TRAIL_INVALID" = "ATOM_TRAIL_INVALID",
  ) {
    super(code, message, details);
  }
}

/** Another run holds the host's lock. */
export class LockedError extends AtomError {
  readonly holder: LeaseInfoLike;
  readonly stale: boolean;
  constructor(message: string, holder: LeaseInfoLike, stale: boolean, details: ErrorDetails = {}) {
    super("ATOM_LOCKED", message, details);
    this.holder = holder;
    this.stale = stale;
  }
}

interface LeaseInfoLike {
  owner: string;
  pid: number;
  machine: string;
  startedAt: string;
  heartbeatAt: string;
}

/** A host operation failed. `reason` is normalised across hosts (local fs errno, SFTP status, exit code). */
export class HostError extends AtomError {
  readonly reason: HostErrorReason;
  readonly exitCode?: number;
  readonly stderr?: string;
  constructor(
    reason: HostErrorReason,
    message: string,
    details: ErrorDetails & { exitCode?: number; stderr?: string } = {},
  ) {
    super("ATOM_HOST", message, details);
    this.reason = reason;
    if (details.exitCode !== undefined) this.exitCode = details.exitCode;
    if (details.stderr !== undefined) this.stderr = details.stderr;
  }
}

export type HostErrorReason =
  | "ENOENT"
  | "EEXIST"
  | "ENOTDIR"
  | "EISDIR"
  | "ENOTEMPTY"
  | "EACCES"
  | "ENOSPC"
  | "EXIT"
  /** The host cannot be reached, or the link to it dropped. */
  | "CONNECTION"
  /** The host's key is unknown, changed or revoked: refused, never trusted. */
  | "HOST_KEY"
  /** The host refused the credentials. */
  | "AUTH"
  | "OTHER";

/** True when `error` is a HostError (or a Node fs error) meaning "no such file". */
export function isNotFound(error: unknown): boolean {
  return errorReason(error) === "ENOENT";
}

export function errorReason(error: unknown): HostErrorReason | undefined {
  if (error instanceof HostError || (isAtomError(error) && "reason" in error)) {
    return (error as HostError).reason;
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (
    typeof code === "string" &&
    ["ENOENT", "EEXIST", "ENOTDIR", "EISDIR", "ENOTEMPTY", "EACCES", "ENOSPC"].includes(code)
  ) {
    return code as HostErrorReason;
  }
  return undefined;
}

/** The serialisable form of an error, as stored in the trail and in step records. */
export interface ErrorInfo {
  name: string;
  code?: string;
  message: string;
  /** The message without context, expected/found and hint (every AtomError): what one-line renderers show. */
  shortMessage?: string;
  /** What the step expected and what it found, as JSON (clipped when large). */
  expected?: Json;
  found?: Json;
  stack?: string;
  step?: string;
  phase?: string;
  hint?: string;
  cause?: ErrorInfo;
}

export function toErrorInfo(error: unknown, depth = 0): ErrorInfo {
  if (!(error instanceof Error)) return { name: "Error", message: messageOf(error) };
  const info: ErrorInfo = { name: error.name, message: error.message };
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" || typeof code === "number") info.code = String(code);
  if (error.stack) info.stack = error.stack;
  if (isAtomError(error)) {
    if (error.step) info.step = error.step;
    if (error.phase) info.phase = error.phase;
    if (error.hint) info.hint = error.hint;
    info.shortMessage = error.shortMessage;
    if (error.expected !== undefined) info.expected = asJson(error.expected);
    if (error.found !== undefined) info.found = asJson(error.found);
  }
  if (error.cause !== undefined && depth < 4) info.cause = toErrorInfo(error.cause, depth + 1);
  return info;
}

// --- Internal helpers ---

/** A detail value as JSON for the trail: as it is when small, else its first 4,000 characters as text. */
function asJson(value: unknown): Json {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    // cyclic or BigInt: only its text form is recordable
  }
  if (text === undefined) return String(value);
  return text.length <= 4000 ? (JSON.parse(text) as Json) : `${text.slice(0, 4000)}…`;
}

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
