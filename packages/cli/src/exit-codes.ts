/** Exit codes scripts can rely on. */
export const EXIT = {
  /** The run committed (or the command succeeded). */
  ok: 0,
  /** An unexpected error. */
  error: 1,
  /** Invalid input: usage, deploy file, params. Nothing ran. */
  invalid: 2,
  /** The run failed and was rolled back, verified: the host is as before. */
  rolledBack: 3,
  /** Rollback failed: the host is in a mixed state; see the steps still applied. */
  rollbackFailed: 4,
  /** Another run holds the host lock. Nothing ran. */
  locked: 5,
  /** Undo refused: the host changed since the run (drift). Nothing was undone. */
  drift: 6,
  /** Stopped at once by a second Ctrl-C; the trail is left for `atomkit recover`. */
  interrupted: 130,
} as const;

export function exitCodeOf(error: unknown): number {
  const code = (error as { code?: string } | null)?.code;
  switch (code) {
    case "ATOM_PARAMS_INVALID":
    case "ATOM_INVALID_ATOM":
    case "ATOM_INVALID_STEP":
    case "ATOM_UNKNOWN_KIND":
    case "ATOM_RUN_NOT_FOUND":
    case "ATOM_NOT_UNDOABLE":
      return EXIT.invalid;
    case "ATOM_LOCKED":
      return EXIT.locked;
    case "ATOM_DRIFT":
      return EXIT.drift;
    case "ATOM_ROLLBACK_FAILED":
      return EXIT.rollbackFailed;
    default:
      return EXIT.error;
  }
}
