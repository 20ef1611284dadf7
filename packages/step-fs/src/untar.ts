import { posix } from "node:path";
import { defineStep } from "@atomkit/core";
import { optional } from "@atomkit/core/kit";
import { extract } from "./_untar-extract";
import { failure, MAX_TIMER_MS, timeBound } from "./_untar-failure";
import { observeRelease, removeLeftovers } from "./_untar-release";
import {
  absolutePath,
  checkFields,
  integer,
  localFile,
  PACKAGE,
  ParamsFieldError,
  requireLocalFile,
  show,
  stepError,
  tempBeside,
} from "./_utils";
import { type ArchiveLimits, DEFAULT_LIMITS, MARKER, MAX_DEPTH } from "./archive";
import { nothing, orNull, sha256, typedState } from "./state-check";

/** The archive limits plus a bound on the time of inspection and extraction together. */
export interface UntarLimits extends ArchiveLimits {
  /**
   * Inspection and extraction (upload and the host's tar included) must finish within this, or the
   * step fails and keeps nothing. Default 600 000 (10 minutes).
   */
  maxMs: number;
}

/** What `fs.untar` extracts, where, and within which limits. */
export interface UntarOptions {
  /** A .tar or .tar.gz on the machine running Atomkit. */
  archive: string;
  /** Absolute path of the new directory on the host, e.g. `/srv/app/releases/42`. Must not exist yet. */
  path: string;
  /** Leading path components to drop from every entry (`tar --strip-components`). Default 0. */
  strip?: number;
  /**
   * Refuse archives beyond these. Defaults: 1 GiB of files, 100 000 entries, 64 path components per
   * entry (after strip), 10 minutes for inspection and extraction.
   */
  limits?: Partial<UntarLimits>;
  /**
   * What writes the files once the archive passed inspection: `node-tar` in this process (local hosts
   * only; node-tar's own path checks apply on top of ours), or the host's `tar` fed the inspected
   * archive on its stdin (the only choice on a remote host; several times faster for many small files).
   * Default `node-tar` on a local host, `tar` on a remote one.
   */
  extractWith?: "node-tar" | "tar";
}

/** `fs.untar`'s options validated, defaults filled in: what the trail records. */
export interface UntarParams {
  /** The local archive, as an absolute path. */
  archive: string;
  path: string;
  strip: number;
  /** Every limit, the defaults filled in. */
  limits: UntarLimits;
  /** Absent: chosen when the step applies, `node-tar` on a local host and `tar` on a remote one. */
  extractWith?: "node-tar" | "tar";
}

/**
 * The directory at `path` and the sha256 of the archive it was extracted from (its release marker):
 * what the release *is*, not which inode holds it — the same release renamed back is the same state.
 */
export type UntarState =
  | { type: "missing" }
  | { type: "directory"; archive: string | null }
  | { type: "file" | "symlink" | "other" };

const DEFAULT_MAX_MS = 10 * 60 * 1000;

const KIND = "fs.untar";

/**
 * `fs.untar`: extracts an archive into a new directory. Every entry is checked before a byte is written
 * (see `inspectArchive`); extraction goes to a temporary directory beside `path`, which is renamed into
 * place, so a failure never leaves a half-extracted release. A marker file `.atomkit-release` inside the
 * directory records the archive's sha256. An archive is inspected once per process however many hosts
 * extract it (see `_inspected.ts`); on a remote host the inspected bytes are streamed into its `tar`.
 */
export const untar = defineStep({
  kind: KIND,
  package: PACKAGE,
  params: (input: UntarOptions): UntarParams => {
    const o = checkFields(input, {
      archive: localFile,
      path: (v, p) => {
        const path = absolutePath(v, p);
        if (posix.basename(path) === "." || posix.basename(path) === "..") {
          throw new ParamsFieldError(p, `expected a directory name, found ${show(v)}`);
        }
        return path;
      },
      strip: (v, p) => integer(v, p, { min: 0, max: 64, fallback: 0 }),
      limits: limitsOf,
      extractWith: (v, p) => {
        if (v !== undefined && v !== "node-tar" && v !== "tar") {
          throw new ParamsFieldError(p, `expected "node-tar" or "tar", found ${show(v)}`);
        }
        return v as UntarParams["extractWith"];
      },
    });
    return {
      archive: o.archive,
      path: o.path,
      strip: o.strip,
      limits: o.limits,
      ...(o.extractWith ? { extractWith: o.extractWith } : {}),
    };
  },
  preflight: (p) => requireLocalFile(p.archive, "archive"),
  describe: (p) => `untar ${posix.basename(p.archive)} → ${p.path}`,
  observe: (ctx, p) => observeRelease(ctx.host, p.path),
  state: (input: unknown): UntarState =>
    typedState(input, {
      missing: nothing,
      directory: { archive: orNull(sha256) },
      file: nothing,
      symlink: nothing,
      other: nothing,
    }),
  owns: (p) => [p.path],
  // the temporary directory and upload of an interrupted apply, the renamed-aside release of an undo
  cleanup: (ctx, p) => removeLeftovers(ctx.host, p.path),
  async apply(ctx, p) {
    const { host } = ctx;
    const extractWith = p.extractWith ?? (host.local ? "node-tar" : "tar");
    if (extractWith === "node-tar" && !host.local) {
      throw stepError(ctx, KIND, "apply", "node-tar can only extract on the machine running Atomkit", {
        expected: 'extractWith "tar" (or nothing) on a remote host',
        found: 'extractWith "node-tar"',
        hint: "leave extractWith out: remote hosts extract with their own tar after the archive is inspected here",
      });
    }
    const bound = timeBound(p.limits.maxMs, ctx.signal);
    try {
      await extract(ctx, KIND, p, extractWith, bound.signal);
    } catch (error) {
      throw failure(ctx, KIND, p, error, bound);
    } finally {
      bound.dispose();
    }
  },
  // Cannot restore: nothing (the directory did not exist before); any files added to it later are lost.
  async undo(ctx, p, before, after) {
    if (before.type !== "missing") return; // apply found this archive there already, or refused
    const { host } = ctx;
    const now = await observeRelease(host, p.path);
    if (now.type === "missing") return;
    // apply writes the release marker before the rename into place: a directory without one was never
    // extracted by this step, whatever a trail says (a forged record must not make undo delete it)
    if (
      now.type !== "directory" ||
      now.archive === null ||
      (after.type === "directory" && now.archive !== after.archive)
    ) {
      throw stepError(ctx, KIND, "undo", `${show(p.path)} is not the directory this step extracted`, {
        expected: after.type === "directory" ? `a directory from archive ${after.archive}` : "that directory",
        found:
          now.type !== "directory"
            ? `a ${now.type}`
            : now.archive === null
              ? `a directory without a release marker (${MARKER})`
              : `a directory from archive ${now.archive}`,
        hint: "someone replaced it; inspect it and remove it by hand if it should go",
      });
    }
    // renamed away first, so a crash half-way through the delete never leaves a partial release at path
    const doomed = tempBeside(p.path);
    await host.rename(p.path, doomed);
    await host.rm(doomed, { recursive: true, force: true });
  },
});

// --- Internal helpers ---

/** `limits`: each bound optional, the defaults for the rest. */
function limitsOf(value: unknown, field: string): UntarLimits {
  const limits: UntarLimits = { ...DEFAULT_LIMITS, maxMs: DEFAULT_MAX_MS };
  if (value === undefined) return limits;
  const l = checkFields(
    value,
    {
      maxBytes: optional((v, p) => integer(v, p, { min: 1 })),
      maxEntries: optional((v, p) => integer(v, p, { min: 1 })),
      maxDepth: optional((v, p) => integer(v, p, { min: 1, max: MAX_DEPTH })),
      maxMs: optional((v, p) => integer(v, p, { min: 1, max: MAX_TIMER_MS })),
    },
    field,
  );
  return { ...limits, ...l };
}
