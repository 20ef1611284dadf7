// The error classes (one per meaning, each with its code), and HostError's normalised reasons. The base
// class and the codes are in atom-error.ts; an error's serialisable form in error-info.ts.
import { AtomError, type ErrorDetails, isAtomError } from "./atom-error";

export { AtomError, type AtomErrorCode, type ErrorDetails, isAtomError, type StepPhase } from "./atom-error";
export { type ErrorInfo, toErrorInfo } from "./error-info";

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

/** One invalid field of a step's params: the step, its kind, the field's path and what is wrong. */
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

/** Why a host operation failed, the same on every host (errno names, plus transport reasons). */
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

/** The normalised reason of a HostError or a Node fs error (`ENOENT`, `EACCES`…), or undefined. */
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
