import { errorReason } from "@atomkit/core";

/** Exit codes scripts can rely on. */
export const EXIT = {
  /** The run committed (or the command succeeded). */
  ok: 0,
  /** An unexpected error. */
  error: 1,
  /** Invalid input: usage, deploy file, params, vars. Nothing ran. */
  invalid: 2,
  /** The run failed and was rolled back, verified: the host is as before. */
  rolledBack: 3,
  /** Rollback failed: the host is in a mixed state; see the steps still applied. */
  rollbackFailed: 4,
  /** Another run holds the host lock, or an unfinished run must be recovered first. Nothing ran. */
  locked: 5,
  /** Refused: the host changed since the run (drift), or later runs left changes. Nothing was undone. */
  drift: 6,
  /** A host could not be reached (connection refused, timed out, dropped). Nothing ran there. */
  unreachable: 7,
  /** A host was refused: its key is unknown, changed or revoked, or it refused the credentials. */
  hostRefused: 8,
  /**
   * The trail cannot be trusted or written (a corrupt or copied run file, an integrity check failed, a
   * record differs from the deploy file, disk full). Also a run, undo or recover that finished on the host but whose trail lacks the
   * outcome: `atomkit recover <runId>` once the trail can be written (the next run is refused until then).
   */
  trail: 9,
  /** Stopped at once by a second Ctrl-C; the trail is left for `atomkit recover`. */
  interrupted: 130,
} as const;

export function exitCodeOf(error: unknown): number {
  const code = (error as { code?: string } | null)?.code;
  switch (code) {
    case "ATOM_INVALID_ATOM":
    case "ATOM_INVALID_OPTION":
    case "ATOM_INVALID_STEP":
    case "ATOM_NOT_UNDOABLE":
    case "ATOM_PARAMS_INVALID":
    case "ATOM_RUN_NOT_FOUND":
    case "ATOM_UNKNOWN_KIND":
      return EXIT.invalid;
    case "ATOM_LOCKED":
      return EXIT.locked;
    case "ATOM_DRIFT":
      return EXIT.drift;
    case "ATOM_ROLLBACK_FAILED":
      return EXIT.rollbackFailed;
    case "ATOM_TRAIL_CORRUPT":
    case "ATOM_TRAIL_INVALID":
      return EXIT.trail;
    case "ATOM_HOST": {
      const reason = errorReason(error);
      if (reason === "CONNECTION") return EXIT.unreachable;
      if (reason === "HOST_KEY" || reason === "AUTH") return EXIT.hostRefused;
      return EXIT.error;
    }
    default:
      return EXIT.error;
  }
}
