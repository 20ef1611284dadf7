import { createReadStream } from "node:fs";
import { type FileHandle, mkdir, open, readdir, readFile, rm, stat, truncate } from "node:fs/promises";
import { TrailError } from "../errors";
import { MAX_RECORD_BYTES, type TrailRecord } from "../trail";

// The run files of a file trail: their names, reading them line by line, opening one for append, and
// writing every byte of a buffer.

/** What a run id must look like to name a file: no path separators, no leading dot. */
export const RUN_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A run file open for append. */
export interface Handle {
  fh: FileHandle;
  /** Bytes known to be in the file: a failed write is cut back to this. */
  size: number;
}

/** The run ids in the trail directory: from file names, never from the records inside. */
export async function listIds(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  return names
    .filter((n) => n.endsWith(".jsonl"))
    .map((n) => n.slice(0, -".jsonl".length))
    .filter((id) => RUN_ID_RE.test(id))
    .sort();
}

/** Writes every byte: a write may return short (a full disk) without throwing. */
export async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off);
    if (bytesWritten <= 0) {
      throw Object.assign(new Error("no space left on device (a write wrote nothing)"), { code: "ENOSPC" });
    }
    off += bytesWritten;
  }
}

export function trailWriteError(file: string, error: unknown): TrailError {
  const code = (error as NodeJS.ErrnoException)?.code;
  return new TrailError(`cannot write the trail ${file}: ${(error as Error)?.message ?? error}`, {
    expected: "the record written and synced",
    found: code ?? "an error",
    hint:
      code === "ENOSPC"
        ? "the trail's disk is full: free space there (nothing written since the last record counts as done)"
        : "check the trail directory's disk and permissions",
    cause: error,
  });
}

/**
 * Reads JSON lines without holding more than one line in memory; a torn last line (the process died
 * mid-write) is dropped, any other bad line, or one longer than MAX_RECORD_BYTES, makes the file corrupt.
 */
export async function readRecords(file: string): Promise<TrailRecord[]> {
  const out: TrailRecord[] = [];
  let carry: Buffer[] = [];
  let carried = 0;
  let lineNo = 0;
  const parse = (line: Buffer, last: boolean) => {
    lineNo++;
    if (!line.length) return;
    try {
      out.push(JSON.parse(line.toString("utf8")) as TrailRecord);
    } catch (error) {
      if (last) return; // torn by a crash mid-write
      throw new TrailError(
        `trail file ${file} is corrupt at line ${lineNo}`,
        {
          cause: error,
          hint: "only a torn last line is expected after a crash; restore the file from a backup, or move it out of the trail directory",
        },
        "ATOM_TRAIL_CORRUPT",
      );
    }
  };
  try {
    for await (const chunk of createReadStream(file, {
      highWaterMark: 256 * 1024,
    }) as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
        const piece = chunk.subarray(start, nl);
        const line = carry.length ? Buffer.concat([...carry, piece]) : piece;
        carry = [];
        carried = 0;
        parse(line, false);
        start = nl + 1;
      }
      if (start < chunk.length) {
        carry.push(chunk.subarray(start));
        carried += chunk.length - start;
        if (carried > MAX_RECORD_BYTES) {
          throw new TrailError(
            `trail file ${file} has a line longer than ${MAX_RECORD_BYTES} bytes (line ${lineNo + 1})`,
            {
              hint: "the file was not written by Atomkit; move it out of the trail directory",
            },
            "ATOM_TRAIL_CORRUPT",
          );
        }
      }
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  if (carry.length) parse(Buffer.concat(carry), true);
  return out;
}

export async function openForAppend(dir: string, file: string): Promise<Handle> {
  await mkdir(dir, { recursive: true });
  // A file left by a crash may end in a torn line: cut it, so new records start on a line of their own.
  let existed = true;
  try {
    const text = await readFile(file);
    if (text.length && text[text.length - 1] !== 10) await truncate(file, text.lastIndexOf(10) + 1);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    existed = false;
  }
  // The directory first (its fsync makes the new entry durable): a process out of descriptors (EMFILE)
  // then fails before the run's file exists, rather than leaving an empty one that lists as corrupt.
  const dh = await open(dir, "r");
  let fh: FileHandle | undefined;
  try {
    fh = await open(file, "a");
    const { size } = await fh.stat();
    await dh.sync().catch(() => {});
    return { fh, size };
  } catch (error) {
    await fh?.close().catch(() => {});
    // a file this call created and nothing was written to is no run
    if (fh && !existed && (await stat(file).catch(() => null))?.size === 0) await rm(file, { force: true });
    throw error;
  } finally {
    await dh.close().catch(() => {});
  }
}
