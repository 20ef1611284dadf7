import { defineStep } from "@atomkit/core";
import { absolutePath, checkFields, fail, ParamsFieldError, show, tempBeside } from "@atomkit/core/kit";
import {
  checkFileState,
  fileMode,
  localFile,
  observeFile,
  PACKAGE,
  refuseNonFile,
  removeTempFiles,
  requireLocalFile,
  requireParent,
  restoreFile,
  saveBackup,
} from "./_utils";

/** What `fs.upload` sends, where, and with which mode. */
export interface UploadFileOptions {
  /** The file on the machine running Atomkit. */
  source: string;
  /** Absolute path on the host. */
  path: string;
  /** Permission bits of the uploaded file. Default 0o644. */
  mode?: number | string;
  /**
   * Expected sha256 (hex) of the file. When given, a different file is refused before it replaces
   * anything, and a host that already has it is left alone without sending a byte.
   */
  sha256?: string;
}

/** `fs.upload`'s options validated, defaults filled in: what the trail records. */
export interface UploadFileParams {
  /** The local file, as an absolute path. */
  source: string;
  path: string;
  mode: number;
  /** Lower-case hex; absent when the options gave none. */
  sha256?: string;
}

const KIND = "fs.upload";

/**
 * `fs.upload`: streams a local file to the host (constant memory) under a temporary name beside `path`,
 * checks its sha256 where it landed, then renames it into place. Undo restores the replaced file's exact
 * bytes and mode from a backup on the host, or removes the file if there was none.
 */
export const uploadFile = defineStep({
  kind: KIND,
  package: PACKAGE,
  params: (input: UploadFileOptions): UploadFileParams =>
    checkFields(input, {
      source: localFile,
      path: absolutePath,
      mode: (v, p) => fileMode(v, p, 0o644),
      sha256: (v, p) => {
        if (v === undefined) return undefined;
        if (typeof v !== "string" || !/^[0-9a-fA-F]{64}$/.test(v)) {
          throw new ParamsFieldError(p, `expected 64 hex digits, found ${show(v)}`);
        }
        return v.toLowerCase();
      },
    }),
  preflight: (p) => requireLocalFile(p.source, "source"),
  describe: (p) => `upload ${p.source} → ${p.path}`,
  observe: (ctx, p) => observeFile(ctx.host, p.path),
  state: checkFileState,
  owns: (p) => [p.path],
  // temporary files of an interrupted write or restore, beside the file
  cleanup: (ctx, p) => removeTempFiles(ctx.host, p.path),
  async apply(ctx, p) {
    const { host } = ctx;
    const now = await observeFile(host, p.path);
    refuseNonFile(p.path, now.type);
    if (now.type === "file" && p.sha256 === now.sha256 && now.mode === p.mode) return;
    await requireParent(ctx.host, p.path);
    const tmp = tempBeside(p.path);
    try {
      const sent = await host.upload(p.source, tmp, { mode: p.mode, signal: ctx.signal });
      if (p.sha256 && sent.sha256 !== p.sha256) {
        throw fail(`${show(p.source)} is not the expected file, so nothing was replaced`, {
          expected: `sha256 ${p.sha256}`,
          found: `sha256 ${sent.sha256}`,
          hint: "check the artifact: it is another build, or it was changed after its checksum was taken",
        });
      }
      // a local upload is hashed as it is written; over a network, check what actually landed
      const landed = host.local ? sent.sha256 : await host.hash(tmp);
      if (landed !== sent.sha256) {
        throw fail(`the upload of ${show(p.source)} arrived damaged`, {
          expected: `sha256 ${sent.sha256}`,
          found: `sha256 ${landed}`,
          hint: "retry; if it persists, check the host's disk and the connection",
        });
      }
      if (now.type === "file" && now.sha256 !== sent.sha256) await saveBackup(host, p.path, now.sha256);
      await host.rename(tmp, p.path);
    } catch (error) {
      await host.rm(tmp, { force: true }).catch(() => {});
      throw error;
    }
  },
  // Cannot restore: owner, group and timestamps when the backup had to be copied (state directory on
  // another filesystem); a backup saved by hard link is the old inode itself and comes back whole.
  undo: (ctx, p, before) => restoreFile(ctx.host, p.path, before),
});
