import { posix } from "node:path";
import { defineStep, type Host, isAtomError, optional, type StepContext } from "@atomkit/core";
import { inspectOnce } from "./_inspected";
import {
  absolutePath,
  checkFields,
  integer,
  localFile,
  PACKAGE,
  ParamsFieldError,
  readJson,
  requireLocalFile,
  requireParentDir,
  show,
  stepError,
  tempBeside,
  tempPrefix,
} from "./_utils";
import {
  type ArchiveLimits,
  type ArchiveSummary,
  DEFAULT_LIMITS,
  extractLocal,
  MARKER,
  MAX_DEPTH,
  UnsafeArchiveError,
} from "./archive";
import { streamToHostTar, uploadToHostTar } from "./host-tar";
import { nothing, orNull, sha256, typedState } from "./state-check";

/** The archive limits plus a bound on the time of inspection and extraction together. */
export interface UntarLimits extends ArchiveLimits {
  /**
   * Inspection and extraction (upload and the host's tar included) must finish within this, or the
   * step fails and keeps nothing. Default 600 000 (10 minutes).
   */
  maxMs: number;
}

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

export interface UntarParams {
  archive: string;
  path: string;
  strip: number;
  limits: UntarLimits;
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
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's own bound

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
      await extract(ctx, p, extractWith, bound.signal);
    } catch (error) {
      throw failure(ctx, p, error, bound);
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

/** Inspects, then extracts into a temporary directory beside `path`, renamed into place at the end. */
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

async function extract(
  ctx: StepContext,
  p: UntarParams,
  extractWith: "node-tar" | "tar",
  signal: AbortSignal,
): Promise<void> {
  const inspected = await inspectOnce(p.archive, { strip: p.strip, limits: p.limits, signal });
  try {
    await extractInspected(ctx, p, extractWith, signal, inspected.summary, inspected.bytes);
  } finally {
    inspected.release();
  }
}

async function extractInspected(
  ctx: StepContext,
  p: UntarParams,
  extractWith: "node-tar" | "tar",
  signal: AbortSignal,
  summary: ArchiveSummary,
  bytes: Buffer | null,
): Promise<void> {
  const { host } = ctx;
  const now = await observeRelease(host, p.path);
  if (now.type === "directory" && now.archive === summary.sha256) return; // this archive is already there
  if (now.type !== "missing") {
    throw stepError(ctx, KIND, "apply", `${show(p.path)} already exists, so nothing was extracted`, {
      expected: "nothing at the path (fs.untar creates a new directory)",
      found:
        now.type === "directory" ? `a directory from archive ${now.archive ?? "unknown"}` : `a ${now.type}`,
      hint: "extract each release into a new directory (e.g. releases/<id>), or remove the old one first",
    });
  }
  await requireParentDir(ctx, KIND, p.path);
  await removeLeftovers(host, p.path);
  const tmp = tempBeside(p.path);
  const upload = `${tmp}.tar`;
  try {
    await host.mkdir(tmp, { mode: 0o755 });
    if (extractWith === "node-tar") {
      const source = bytes ? { bytes, name: p.archive } : { file: p.archive };
      await extractLocal(source, tmp, { ...summary, strip: p.strip, limits: p.limits, signal });
    } else {
      const o = { kind: KIND, archive: p.archive, strip: p.strip, summary, dir: tmp, signal };
      if (bytes) await streamToHostTar(ctx, o, bytes);
      else await uploadToHostTar(ctx, o, upload);
    }
    await host.writeFile(
      posix.join(tmp, MARKER),
      `${JSON.stringify({ sha256: summary.sha256, archive: posix.basename(p.archive), entries: summary.entries, bytes: summary.bytes })}\n`,
    );
    await host.rename(tmp, p.path);
  } catch (error) {
    // extractLocal has settled (nothing still writes into tmp) and the host's tar was waited for
    await host.rm(tmp, { recursive: true, force: true }).catch(() => {});
    if (extractWith === "tar" && !bytes) await host.rm(upload, { force: true }).catch(() => {});
    throw error;
  }
}

async function observeRelease(host: Host, path: string): Promise<UntarState> {
  const st = await host.lstat(path);
  if (!st) return { type: "missing" };
  if (st.type !== "directory") return { type: st.type };
  const marker = await readJson<{ sha256?: unknown }>(host, posix.join(path, MARKER));
  const sha = marker?.sha256;
  // a marker is evidence from the host: only a well-formed digest names the archive
  return { type: "directory", archive: typeof sha === "string" && /^[0-9a-f]{64}$/.test(sha) ? sha : null };
}

/** Temporary directories and uploads of an attempt that died (the host lock keeps runs apart). */
async function removeLeftovers(host: Host, path: string): Promise<void> {
  const dir = posix.dirname(path);
  const prefix = tempPrefix(path);
  if ((await host.lstat(dir))?.type !== "directory") return;
  for (const name of await host.readdir(dir)) {
    if (name.startsWith(prefix)) await host.rm(posix.join(dir, name), { recursive: true, force: true });
  }
}

/** `ms` from now, or the step's own signal (timeout, cancel), whichever comes first. */
function timeBound(ms: number, outer: AbortSignal) {
  const ac = new AbortController();
  const expired = new Error(`took longer than ${ms} ms`);
  const timer = setTimeout(() => ac.abort(expired), ms);
  const onOuter = () => ac.abort(outer.reason);
  if (outer.aborted) onOuter();
  else outer.addEventListener("abort", onOuter, { once: true });
  return {
    ms,
    signal: ac.signal,
    expired: () => ac.signal.aborted && ac.signal.reason === expired,
    dispose() {
      clearTimeout(timer);
      outer.removeEventListener("abort", onOuter);
    },
  };
}

/** Whatever apply threw, as the step's error: every failure of node-tar, gzip or tar names the step. */
function failure(ctx: StepContext, p: UntarParams, error: unknown, bound: ReturnType<typeof timeBound>) {
  if (bound.expired()) {
    return stepError(
      ctx,
      KIND,
      "apply",
      `extraction took longer than ${bound.ms} ms (limits.maxMs), nothing was kept`,
      {
        expected: `inspection and extraction within ${bound.ms} ms`,
        found: "still running, stopped",
        hint: "raise limits.maxMs for a trusted, very large archive; check the host's disk and the connection",
        cause: error,
      },
    );
  }
  if (ctx.signal.aborted) return ctx.signal.reason ?? error; // the engine's timeout or cancel says it best
  if (error instanceof UnsafeArchiveError && !error.step) {
    return new UnsafeArchiveError(error.problem, error.entry, {
      host: ctx.host.name,
      step: ctx.step,
      kind: KIND,
      phase: "apply",
      expected: error.expected,
      found: error.found ?? p.archive,
      hint: error.hint,
      cause: error.cause,
    });
  }
  if (isAtomError(error)) return error;
  // node-tar's refusals (strict mode) carry a tar code; the filesystem's errors an errno code
  const e = error as { message?: string; tarCode?: string; code?: string };
  const codes = [...new Set([e.tarCode, e.code].filter((c): c is string => typeof c === "string"))];
  return stepError(
    ctx,
    KIND,
    "apply",
    `extraction failed, nothing was kept: ${e?.message ?? String(error)}`,
    {
      expected: `every entry of ${posix.basename(p.archive)} written into a new directory beside ${show(p.path)}`,
      found: codes.length ? codes.join(" / ") : "an error while reading or writing",
      hint: codes.includes("ENOSPC")
        ? `free space on the filesystem of ${show(posix.dirname(p.path))}`
        : 'the archive passed inspection: check the disk and permissions at the target, or try extractWith: "tar"',
      cause: error,
    },
  );
}
