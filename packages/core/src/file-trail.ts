import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import {
  type FileHandle,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rm,
  stat,
  truncate,
  unlink,
} from "node:fs/promises";
import { dirname, join } from "node:path";
import { AtomError, TrailError } from "./errors";
import { keyFrom, sealTrail } from "./seal";
import { MAX_RECORD_BYTES, refuseOversized, SummaryCache, type TrailRecord, type TrailStore } from "./trail";

export interface FileTrailOptions {
  /** Default `.atomkit/trails` (relative to the working directory). */
  dir?: string;
  /**
   * The key that seals every record with an HMAC chain (see `sealTrail`): a forged or edited record is
   * refused by recover and undo. Default: `ATOMKIT_TRAIL_KEY` from the environment (64 hex digits, or a
   * passphrase of 16 characters or more), else the key file (`keyFile`). `false`: an unsealed trail
   * (tests, throwaway runs).
   */
  key?: Uint8Array | string | false;
  /**
   * Where the key is kept when none is given: default `trail.key` beside the trail directory (outside
   * it, so whoever can drop a file into the trail directory cannot sign it). Created with mode 0600 on
   * the first write to a trail that holds no runs yet (a trail with runs and no key refuses to write:
   * the key is lost); keep it out of version control, and copy it with the trails you move.
   */
  keyFile?: string;
}

const RUN_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * The embedded default trail: one JSON-lines file per run, `<dir>/<runId>.jsonl`, appended with
 * O_APPEND and fsynced when the engine asks (every intent, every end), sealed with a per-project key.
 * No server needed.
 */
export function fileTrail(options: FileTrailOptions = {}): TrailStore & { readonly dir: string } {
  const dir = options.dir ?? join(".atomkit", "trails");
  const store = fileStore(dir);
  if (options.key === false) return store;
  const given = options.key ?? process.env.ATOMKIT_TRAIL_KEY;
  const key =
    given !== undefined && given !== ""
      ? keyFrom(given)
      : (purpose: "read" | "write") =>
          keyFromFile(
            options.keyFile ?? join(dirname(dir), "trail.key"),
            purpose === "write" ? dir : undefined,
          );
  return Object.assign(sealTrail(store, key), { dir });
}

interface Handle {
  fh: FileHandle;
  /** Bytes known to be in the file: a failed write is cut back to this. */
  size: number;
}

function fileStore(dir: string): TrailStore & { readonly dir: string } {
  const handles = new Map<string, Promise<Handle>>();
  // Records appended without `sync` wait here and go out with the next synced append, in one write:
  // a crash loses only unsynced records, which the contract allows (recover re-observes those steps).
  // They leave this map only once written: a failed write keeps them for the next attempt, but drops the
  // records of the append that failed (its caller was told; written later, a run record of a run that
  // never started would turn up as an unfinished run).
  const pending = new Map<string, Buffer[]>();
  const cache = new SummaryCache();

  const fileOf = (runId: string) => {
    if (!RUN_ID_RE.test(runId)) {
      throw new AtomError("ATOM_RUN_NOT_FOUND", `invalid run id ${JSON.stringify(runId)}`, {
        expected: "a run id as printed by `atomkit trail`, e.g. 20261127T001502Z-3f9a1c",
        found: runId,
      });
    }
    return join(dir, `${runId}.jsonl`);
  };

  const handleOf = (runId: string): Promise<Handle> => {
    let h = handles.get(runId);
    if (!h) {
      h = openForAppend(dir, fileOf(runId));
      handles.set(runId, h);
      h.catch(() => handles.delete(runId));
    }
    return h;
  };

  /**
   * Writes what waits for `runId` (all of it or nothing: a short or failed write is cut back). On a
   * failure the last `own` records (those of the failing append) are dropped, the others kept.
   */
  const write = async (runId: string, sync: boolean, own = 0) => {
    const chunks = pending.get(runId);
    const keep = () => {
      const earlier = chunks?.slice(0, chunks.length - own) ?? [];
      if (earlier.length) pending.set(runId, earlier);
      else pending.delete(runId);
    };
    let h: Handle;
    try {
      h = await handleOf(runId);
    } catch (error) {
      keep();
      throw error;
    }
    if (chunks?.length) {
      const data = Buffer.concat(chunks);
      try {
        await writeAll(h.fh, data);
      } catch (error) {
        keep();
        // no torn line may stay in the middle of the file: later records would follow it
        await h.fh.truncate(h.size).catch(() => {});
        // a run none of whose records reached the disk is no run: its empty file would read as corrupt
        if (h.size === 0) await dropEmpty(runId, h);
        throw trailWriteError(fileOf(runId), error);
      }
      h.size += data.length;
      pending.delete(runId);
    }
    if (sync) await h.fh.sync().catch((error) => Promise.reject(trailWriteError(fileOf(runId), error)));
  };

  const dropEmpty = async (runId: string, h: Handle) => {
    handles.delete(runId);
    await h.fh.close().catch(() => {});
    const file = fileOf(runId);
    if ((await stat(file).catch(() => null))?.size === 0) await rm(file, { force: true });
  };

  return {
    dir,
    async append(runId, records, opts = {}) {
      const lines = records.map((r) => {
        const line = Buffer.from(`${JSON.stringify(r)}\n`);
        refuseOversized(runId, r, line.length);
        return line;
      });
      const list = pending.get(runId) ?? [];
      pending.set(runId, [...list, ...lines]);
      const ending = records.some((r) => r.t === "end" || r.t === "fleet-end");
      if (!opts.sync && !ending) return;
      await write(runId, opts.sync === true, lines.length);
      if (ending) {
        const h = handles.get(runId);
        handles.delete(runId);
        await (await h)?.fh.close().catch(() => {});
      }
    },
    async remove(runId) {
      const file = fileOf(runId);
      pending.delete(runId);
      const h = handles.get(runId);
      handles.delete(runId);
      await (await h?.catch(() => undefined))?.fh.close().catch(() => {});
      await unlink(file).catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw trailWriteError(file, error);
      });
    },
    async readRun(runId) {
      if (pending.has(runId)) await write(runId, false);
      return readRecords(fileOf(runId));
    },
    async listRuns(query) {
      const ids = await this.listIds!();
      return cache.list(ids, await this.stamps!(ids), (id) => this.readRun(id), query);
    },
    async stamps(ids) {
      // size, mtime and inode: appends grow the file; a file replaced or cut back is another stamp
      const out = new Map<string, string>();
      await Promise.all(
        ids.map(async (id) => {
          const st = await stat(fileOf(id)).catch(() => null);
          if (st) out.set(id, `${st.size}:${st.mtimeMs}:${st.ino}`);
        }),
      );
      return out;
    },
    async close() {
      for (const runId of [...pending.keys()]) await write(runId, false).catch(() => {});
      const all = [...handles.values()];
      handles.clear();
      await Promise.all(all.map(async (h) => (await h).fh.close().catch(() => {})));
    },
    async listIds() {
      // a run known only to this process's buffer is a run too
      for (const runId of [...pending.keys()]) await write(runId, false);
      return listIds(dir);
    },
  };
}

/** The run ids in the trail directory: from file names, never from the records inside. */
async function listIds(dir: string): Promise<string[]> {
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
async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off);
    if (bytesWritten <= 0) {
      throw Object.assign(new Error("no space left on device (a write wrote nothing)"), { code: "ENOSPC" });
    }
    off += bytesWritten;
  }
}

function trailWriteError(file: string, error: unknown): TrailError {
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
async function readRecords(file: string): Promise<TrailRecord[]> {
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

async function openForAppend(dir: string, file: string): Promise<Handle> {
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

// --- The trail key ---

/** The key in `file`; created for a new trail (`createFor`: its directory) that holds no runs yet. */
async function keyFromFile(file: string, createFor: string | undefined): Promise<Uint8Array> {
  try {
    return keyFrom((await readFile(file, "utf8")).trim());
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw keyFileError(file, "read", error);
    const missing = (found: string, more = "") =>
      new TrailError(`no trail key at ${file}${found}`, {
        expected:
          "the key the trail was sealed with (the trail.key file beside the trail directory, or ATOMKIT_TRAIL_KEY)",
        found: "no key file",
        hint: `copy trail.key along with the trails, or set ATOMKIT_TRAIL_KEY to the key they were written with${more}`,
      });
    if (createFor === undefined) throw missing("");
    // runs sealed with a key that is gone: a new key would make all of them unreadable (a crashed one
    // would no longer block a deploy, nor be recoverable), so the key is lost, not yet to be made
    const runs = (
      await listIds(createFor).catch((e: unknown) => Promise.reject(keyFileError(file, "create", e)))
    ).length;
    if (runs) {
      throw missing(
        `, but the trail ${createFor} holds ${runs} run(s) sealed with one`,
        "; to start a new trail instead, move those runs out of the directory first",
      );
    }
  }
  // written whole to a temporary file, then linked into place: a racing process reads all of it or none
  await mkdir(dirname(file), { recursive: true });
  const fresh = randomBytes(32).toString("hex");
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    const fh = await open(tmp, "wx", 0o600);
    await fh.writeFile(`${fresh}\n`);
    await fh.sync();
    await fh.close();
    await link(tmp, file);
    return Buffer.from(fresh, "hex");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST")
      return keyFrom((await readFile(file, "utf8")).trim());
    throw keyFileError(file, "create", error);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** A key file that cannot be read or written is a trail that cannot be written: a TrailError. */
function keyFileError(file: string, what: "read" | "create", error: unknown): unknown {
  if (error instanceof TrailError) return error;
  const code = (error as NodeJS.ErrnoException)?.code;
  return new TrailError(`cannot ${what} the trail key ${file}: ${(error as Error)?.message ?? error}`, {
    expected: what === "read" ? "a readable key file" : "the key file written (nothing ran)",
    found: code ?? "an error",
    hint:
      code === "ENOSPC"
        ? "the trail's disk is full: free space there, then run again"
        : "check the permissions of the key file and its directory, or set ATOMKIT_TRAIL_KEY",
    cause: error,
  });
}
