import { defineStep } from "@atomkit/core";
import { absolutePath, checkFields, ParamsFieldError, show } from "@atomkit/core/kit";
import {
  checkFileState,
  type FileState,
  fileMode,
  observeFile,
  PACKAGE,
  refuseNonFile,
  removeTempFiles,
  requireParent,
  restoreFile,
  saveBackup,
  sha256Hex,
} from "./_utils";

/** What `fs.write` writes, where, and with which mode. */
export interface WriteFileStepOptions {
  /** Absolute path of the file on the host. */
  path: string;
  /**
   * The new content. Always kept out of the trail, events and logs (the kind lists it as `secret`), so a
   * rendered config with passwords is safe here; the trail holds only its sha256.
   */
  content: string;
  /** How `content` is encoded: `utf8` (default) or `base64` for binary data. */
  encoding?: "utf8" | "base64";
  /** Permission bits of the written file. Default 0o644; use 0o600 for secrets. */
  mode?: number | string;
}

/** `fs.write`'s options validated, defaults filled in. The trail records them without `content`. */
export interface WriteFileParams {
  path: string;
  /** Secret: removed before the params reach the trail, events or logs. */
  content: string;
  encoding: "utf8" | "base64";
  mode: number;
}

const KIND = "fs.write";

/**
 * `fs.write`: writes content to a file atomically (temporary file beside it, fsync, rename). The old
 * bytes are kept as a content-addressed backup on the host, so undo restores them exactly, with their
 * mode, from the recorded state alone; or removes the file if there was none.
 */
export const writeFile = defineStep({
  kind: KIND,
  package: PACKAGE,
  secret: ["content"],
  params: (input: WriteFileStepOptions): WriteFileParams =>
    checkFields(input, {
      path: absolutePath,
      content: (v, p) => {
        // never echo the value: it may be a secret of the wrong type
        if (typeof v !== "string") {
          throw new ParamsFieldError(p, `expected a string, found ${v === null ? "null" : `a ${typeof v}`}`);
        }
        return v;
      },
      encoding: (v, p) => {
        if (v !== undefined && v !== "utf8" && v !== "base64") {
          throw new ParamsFieldError(p, `expected "utf8" or "base64", found ${show(v)}`);
        }
        return (v ?? "utf8") as WriteFileParams["encoding"];
      },
      mode: (v, p) => fileMode(v, p, 0o644),
    }),
  describe: (p) => `write ${p.path}`,
  observe: (ctx, p) => observeFile(ctx.host, p.path),
  state: checkFileState,
  owns: (p) => [p.path],
  // temporary files of an interrupted write or restore, beside the file
  cleanup: (ctx, p) => removeTempFiles(ctx.host, p.path),
  plan: async (_ctx, p): Promise<FileState> => ({
    type: "file",
    sha256: sha256Hex(Buffer.from(p.content, p.encoding)),
    mode: p.mode,
  }),
  async apply(ctx, p) {
    const { host } = ctx;
    const now = await observeFile(host, p.path);
    refuseNonFile(p.path, now.type);
    const data = Buffer.from(p.content, p.encoding);
    if (now.type === "file") {
      if (now.sha256 === sha256Hex(data) && now.mode === p.mode) return;
      await saveBackup(host, p.path, now.sha256);
    } else await requireParent(ctx.host, p.path);
    await host.writeFile(p.path, data, { mode: p.mode });
  },
  // Cannot restore: owner, group and timestamps when the backup had to be copied (state directory on
  // another filesystem); a backup saved by hard link is the old inode itself and comes back whole.
  undo: (ctx, p, before) => restoreFile(ctx.host, p.path, before),
});
