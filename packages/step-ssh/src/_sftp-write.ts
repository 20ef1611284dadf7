import { createHash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import { HostError, isNotFound, type UploadResult, type WriteFileOptions } from "@atomkit/core";
import { tempBeside } from "@atomkit/core/kit";
import type { SFTPWrapper } from "ssh2";
import { messageOf, type Sftp } from "./_sftp";
import { call, hasExtension, maxWriteLength, writePipelined } from "./_utils";

/**
 * Bytes of an upload's pending WRITE requests (4 × ~255 KiB with OpenSSH): enough to keep a LAN busy
 * (1 MiB per round trip), and what a fleet pays per host in flight, since each pending request is
 * held in ssh2's packet and then in the socket's queue until the server reads it.
 */
const UPLOAD_BYTES_IN_FLIGHT = 1024 * 1024;

/**
 * Host.writeFile over SFTP: the whole content goes to a temporary name beside `path` (core's
 * `tempBeside`, which shortens long names), then is renamed (or, `exclusive`, hard-linked) into place:
 * `path` is never seen empty or partial.
 */
export function writeFile(
  s: Sftp,
  path: string,
  data: string | Uint8Array,
  opts: WriteFileOptions = {},
): Promise<void> {
  return s.op("writeFile", path, async (sftp) => {
    const buffer = Buffer.from(data);
    const tmp = tempBeside(path);
    try {
      await writeHandle(s, "writeFile", sftp, tmp, "wx", [buffer], opts.mode);
      if (opts.exclusive) await s.linkInto(sftp, tmp, path);
      else await s.renameOn(sftp, tmp, path);
    } catch (error) {
      await call((cb) => sftp.unlink(tmp, cb)).catch(() => {});
      throw error;
    }
    // `path` is created: a temp name left by a drop here is only a leftover (cleanup finds its prefix)
    if (opts.exclusive) await call((cb) => sftp.unlink(tmp, cb)).catch(() => {});
  });
}

/** Host.upload over SFTP: pipelined writes from one buffer, hashed while streaming (constant memory). */
export function upload(
  s: Sftp,
  localPath: string,
  path: string,
  opts: { mode?: number; signal?: AbortSignal } = {},
): Promise<UploadResult> {
  return s.op("upload", path, async (sftp) => {
    const hash = createHash("sha256");
    // open the local file first: a missing source must not truncate the remote file
    let file: FileHandle;
    try {
      file = await open(localPath, "r");
    } catch (error) {
      throw new HostError(
        isNotFound(error) ? "ENOENT" : "OTHER",
        `upload ${localPath} failed: ${messageOf(error)}`,
        { host: s.name, cause: error, hint: "the local file to upload must exist" },
      );
    }
    // plain reads, pulled only when the writer has a free slot: backpressure without stream plumbing.
    // One buffer of one WRITE's size for the whole file: ssh2 copies a WRITE's payload into its
    // packet before write() returns, and writePipelined sends each piece before pulling the next.
    const buffer = Buffer.allocUnsafe(maxWriteLength(sftp));
    async function* hashed(): AsyncIterable<Buffer> {
      for (;;) {
        const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) return;
        const chunk = buffer.subarray(0, bytesRead);
        hash.update(chunk);
        yield chunk;
      }
    }
    let bytes: number;
    try {
      bytes = await writeHandle(s, "upload", sftp, path, "w", hashed(), opts.mode, opts.signal);
    } finally {
      await file.close().catch(() => {});
    }
    return { sha256: hash.digest("hex"), bytes };
  });
}

/** Opens `path`, writes `source`, applies `mode`, fsyncs (when the server can) and closes. */
async function writeHandle(
  s: Sftp,
  op: "writeFile" | "upload",
  sftp: SFTPWrapper,
  path: string,
  flags: "w" | "wx",
  source: AsyncIterable<Buffer> | Iterable<Buffer>,
  mode: number | undefined,
  signal?: AbortSignal,
): Promise<number> {
  let handle: Buffer;
  try {
    handle = await call<Buffer>((cb) => sftp.open(path, flags, { mode: mode ?? 0o644 }, cb));
  } catch (error) {
    return s.explain(sftp, op, path, error, (st) =>
      st ? (flags === "wx" ? "EEXIST" : st.type === "directory" ? "EISDIR" : undefined) : undefined,
    );
  }
  try {
    const maxInFlight = Math.min(64, Math.max(2, Math.floor(UPLOAD_BYTES_IN_FLIGHT / maxWriteLength(sftp))));
    const bytes = await writePipelined(sftp, handle, source, { maxInFlight, signal });
    // open()'s mode is filtered by the server's umask, as locally
    if (mode !== undefined) await call((cb) => sftp.fchmod(handle, mode, cb));
    if (hasExtension(sftp, "fsync@openssh.com")) await call((cb) => sftp.ext_openssh_fsync(handle, cb));
    return bytes;
  } finally {
    await call((cb) => sftp.close(handle, cb)).catch(() => {});
  }
}
