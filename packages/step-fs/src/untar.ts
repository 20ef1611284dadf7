import { posix } from "node:path";
import { defineStep, type Host, isAtomError, type StepContext } from "@atomkit/core";
import {
  absolutePath,
  integer,
  localFile,
  PACKAGE,
  ParamsFieldError,
  paramsObject,
  readJson,
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
  inspectArchive,
  MARKER,
  UnsafeArchiveError,
} from "./archive";

export interface UntarOptions {
  /** A .tar or .tar.gz on the machine running Atomkit. */
  archive: string;
  /** Absolute path of the new directory on the host, e.g. `/srv/app/releases/42`. Must not exist yet. */
  path: string;
  /** Leading path components to drop from every entry (`tar --strip-components`). Default 0. */
  strip?: number;
  /** Refuse archives beyond these. Defaults: 1 GiB of files, 100 000 entries. */
  limits?: Partial<ArchiveLimits>;
  /**
   * What writes the files once the archive passed inspection: `node-tar` in this process (local hosts
   * only; node-tar's own path checks apply on top of ours), or the host's `tar` on a copy of the
   * inspected archive (the only choice on a remote host; several times faster for many small files).
   * Default `node-tar` on a local host, `tar` on a remote one.
   */
  extractWith?: "node-tar" | "tar";
}

export interface UntarParams {
  archive: string;
  path: string;
  strip: number;
  limits: ArchiveLimits;
  extractWith?: "node-tar" | "tar";
}

/** The directory at `path` and the sha256 of the archive it was extracted from (its release marker). */
export type UntarState =
  | { type: "missing" }
  | { type: "directory"; archive: string | null }
  | { type: "file" | "symlink" | "other" };

const KIND = "fs.untar";

/**
 * `fs.untar`: extracts an archive into a new directory. Every entry is checked before a byte is written
 * (see `inspectArchive`); extraction goes to a temporary directory beside `path`, which is renamed into
 * place, so a failure never leaves a half-extracted release. A marker file `.atomkit-release` inside the
 * directory records the archive's sha256. On a remote host the inspected archive is uploaded and
 * extracted there by `tar`.
 */
export const untar = defineStep({
  kind: KIND,
  package: PACKAGE,
  params: (input: UntarOptions): UntarParams => {
    const o = paramsObject(input, ["archive", "path", "strip", "limits", "extractWith"]);
    if (o.extractWith !== undefined && o.extractWith !== "node-tar" && o.extractWith !== "tar") {
      throw new ParamsFieldError("extractWith", `expected "node-tar" or "tar", found ${show(o.extractWith)}`);
    }
    const limits = { ...DEFAULT_LIMITS };
    if (o.limits !== undefined) {
      const l = paramsObject(o.limits, ["maxBytes", "maxEntries"]);
      if (l.maxBytes !== undefined) limits.maxBytes = integer(l.maxBytes, "limits.maxBytes", { min: 1 });
      if (l.maxEntries !== undefined)
        limits.maxEntries = integer(l.maxEntries, "limits.maxEntries", { min: 1 });
    }
    const path = absolutePath(o.path, "path");
    if (posix.basename(path) === "." || posix.basename(path) === "..") {
      throw new ParamsFieldError("path", `expected a directory name, found ${show(o.path)}`);
    }
    return {
      archive: localFile(o.archive, "archive"),
      path,
      strip: integer(o.strip, "strip", { min: 0, max: 64, fallback: 0 }),
      limits,
      ...(o.extractWith ? { extractWith: o.extractWith } : {}),
    };
  },
  describe: (p) => `untar ${posix.basename(p.archive)} → ${p.path}`,
  observe: (ctx, p) => observeRelease(ctx.host, p.path),
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
    let summary: ArchiveSummary;
    try {
      summary = await inspectArchive(p.archive, { limits: p.limits, strip: p.strip, signal: ctx.signal });
    } catch (error) {
      throw withContext(ctx, error, p.archive);
    }
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
    await host.mkdir(tmp, { mode: 0o755 });
    try {
      if (extractWith === "node-tar") {
        await extractLocal(p.archive, tmp, { sha256: summary.sha256, strip: p.strip, signal: ctx.signal });
      } else {
        const sent = await host.upload(p.archive, upload, { mode: 0o600, signal: ctx.signal });
        if (sent.sha256 !== summary.sha256) {
          throw new UnsafeArchiveError("the archive changed between inspection and upload", undefined, {
            expected: `sha256 ${summary.sha256}`,
            found: `sha256 ${sent.sha256}`,
            hint: "something is rewriting the archive file; build it once, then deploy it",
          });
        }
        // absolute paths only: GNU tar never reads an archive name with "/" before its first ":" as host:path
        await host.exec(
          [
            "tar",
            "-x",
            ...(summary.compression === "gzip" ? ["-z"] : []),
            "-f",
            upload,
            "-C",
            tmp,
            "--no-same-owner",
            ...(p.strip ? [`--strip-components=${p.strip}`] : []),
          ],
          { signal: ctx.signal },
        );
        await host.rm(upload, { force: true });
      }
      await host.writeFile(
        posix.join(tmp, MARKER),
        `${JSON.stringify({ sha256: summary.sha256, archive: posix.basename(p.archive), entries: summary.entries, bytes: summary.bytes })}\n`,
      );
      await host.rename(tmp, p.path);
    } catch (error) {
      await host.rm(tmp, { recursive: true, force: true }).catch(() => {});
      if (extractWith === "tar") await host.rm(upload, { force: true }).catch(() => {});
      throw withContext(ctx, error, p.archive);
    }
  },
  // Cannot restore: nothing (the directory did not exist before); any files added to it later are lost.
  async undo(ctx, p, before, after) {
    if (before.type !== "missing") return; // apply found this archive there already, or refused
    const { host } = ctx;
    const now = await observeRelease(host, p.path);
    if (now.type === "missing") return;
    if (now.type !== "directory" || (after.type === "directory" && now.archive !== after.archive)) {
      throw stepError(ctx, KIND, "undo", `${show(p.path)} is not the directory this step extracted`, {
        expected: after.type === "directory" ? `a directory from archive ${after.archive}` : "that directory",
        found:
          now.type === "directory" ? `a directory from archive ${now.archive ?? "unknown"}` : `a ${now.type}`,
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

async function observeRelease(host: Host, path: string): Promise<UntarState> {
  const st = await host.lstat(path);
  if (!st) return { type: "missing" };
  if (st.type !== "directory") return { type: st.type };
  const marker = await readJson<{ sha256?: unknown }>(host, posix.join(path, MARKER));
  return { type: "directory", archive: typeof marker?.sha256 === "string" ? marker.sha256 : null };
}

/** Temporary directories and uploads of an attempt that died (the host lock keeps runs apart). */
async function removeLeftovers(host: Host, path: string): Promise<void> {
  const dir = posix.dirname(path);
  const prefix = tempPrefix(path);
  for (const name of await host.readdir(dir)) {
    if (name.startsWith(prefix)) await host.rm(posix.join(dir, name), { recursive: true, force: true });
  }
}

function withContext(ctx: StepContext, error: unknown, archive: string): unknown {
  if (error instanceof UnsafeArchiveError && !error.step) {
    return new UnsafeArchiveError(error.problem, error.entry, {
      host: ctx.host.name,
      step: ctx.step,
      kind: KIND,
      phase: "apply",
      expected: error.expected,
      found: error.found ?? archive,
      hint: error.hint,
      cause: error.cause,
    });
  }
  if (isAtomError(error) || !(error instanceof Error)) return error;
  // node-tar's own refusals during extraction (strict mode) arrive as plain errors with a tar code
  const code = (error as { tarCode?: string; code?: string }).tarCode;
  if (code) {
    return stepError(ctx, KIND, "apply", `extraction failed, nothing was kept: ${error.message}`, {
      found: code,
      cause: error,
    });
  }
  return error;
}
