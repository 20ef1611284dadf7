import { AtomError, type ErrorDetails } from "@atomkit/core";

/** Limits of what an archive may unpack to: the guard against tar and gzip bombs. */
export interface ArchiveLimits {
  /** Sum of the sizes of all file entries. Default 1 GiB. */
  maxBytes: number;
  /** Number of entries of any type. Default 100 000. */
  maxEntries: number;
  /**
   * Path components of any entry, counted after `strip` (node-tar's extraction time grows with the
   * square of the depth: 400 levels take seconds). Default 64; at most 1000.
   */
  maxDepth: number;
}

export const DEFAULT_LIMITS: ArchiveLimits = { maxBytes: 1024 ** 3, maxEntries: 100_000, maxDepth: 64 };
export const MAX_DEPTH = 1000;

/** An archive that `fs.untar` refuses to extract; nothing was written. */
export class UnsafeArchiveError extends AtomError {
  /** The entry at fault, as named in the archive (absent for problems of the whole archive). */
  readonly entry?: string;
  readonly problem: string;
  constructor(problem: string, entry: string | undefined, details: ErrorDetails = {}) {
    super("ATOM_STEP_FAILED", `unsafe archive, nothing was extracted: ${problem}`, details);
    this.problem = problem;
    if (entry !== undefined) this.entry = entry;
  }
}
