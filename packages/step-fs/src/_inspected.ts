import type { Stats } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { open, realpath } from "node:fs/promises";
import type { ArchiveLimits, ArchiveSummary } from "./archive";
import { inspectSource } from "./archive";

/**
 * One inspection per archive per process: a fleet's hosts all extract the same archive at once, and
 * inspecting (gunzip + entry checks + sha256) it once per host cost more than the extraction itself.
 * The result is kept per file *identity* (real path, device, inode, size, mtime, ctime) and per strip
 * and limits, and the file is stat-ed again on every use: a rewritten file is inspected afresh.
 *
 * Archives up to `memory.perArchive` bytes are read into memory once and inspected there; the bytes
 * handed to extraction are that buffer, so what lands on a host is exactly what was inspected (no second
 * hash, no window in which the file can change). Larger archives keep only the summary, and extraction
 * reads the file again and checks its digest against it.
 */
export const memory = {
  /**
   * The largest archive held in memory: 512 MiB covers every release we have seen (a few to a few
   * hundred MB) while leaving a 2 GB controller room for a fleet's connections. Tests lower it to take
   * the file path with small archives.
   */
  perArchive: 512 * 1024 * 1024,
  /** All held archives together: an archive that would pass this is not held (the file path serves it). */
  total: 1024 * 1024 * 1024,
  /**
   * An entry nobody uses is dropped after this long: a rolling deploy's next batch still finds it, and
   * the timer never keeps a CLI process alive (unref).
   */
  idleMs: 30_000,
};

/**
 * `ATOMKIT_UNTAR_HOLD_MAX` (bytes), when set, overrides `memory.perArchive`: 0 sends every archive by
 * the file path (a controller short of memory; the benchmark's comparison with that path).
 */
function holdLimit(): number {
  const env = process.env.ATOMKIT_UNTAR_HOLD_MAX;
  return env !== undefined && /^\d+$/.test(env) ? Number(env) : memory.perArchive;
}

/** An inspected archive, held for the caller until `release()`. */
export interface Inspected {
  summary: ArchiveSummary;
  /** The inspected bytes, or null: too large to hold, extraction reads the file and checks its digest. */
  bytes: Buffer | null;
  /** Done with it (idempotent): the entry may be dropped once nobody else holds it. */
  release(): void;
}

interface Entry {
  key: string;
  result: Promise<{ summary: ArchiveSummary; bytes: Buffer | null }>;
  /** Callers holding it (waiting or extracting). */
  users: number;
  /** Callers still waiting for the inspection: when all of them give up, it stops. */
  waiting: number;
  settled: boolean;
  /** Bytes counted against `memory.total`. */
  held: number;
  stop: AbortController;
  timer?: NodeJS.Timeout;
}

const entries = new Map<string, Entry>();
let heldBytes = 0;
let count = 0;

/** How many inspections this process ran (tests prove a fleet shares one). */
export const inspectionCount = () => count;

/** What is kept now: entries (in use or idle), the bytes held in memory, and whether `real` has one. */
export function cacheStats(real?: string) {
  const mine = [...entries.values()].filter((e) => JSON.parse(e.key)[0] === real);
  return {
    entries: entries.size,
    heldBytes,
    has: mine.length > 0,
    waiting: mine.reduce((n, e) => n + e.waiting, 0),
  };
}

/**
 * The inspection of `file` with these options: the one already made (or under way) for the same file
 * identity, or a new one. `signal` stops this caller's wait; the inspection itself stops once every
 * caller waiting for it has given up.
 */
export async function inspectOnce(
  file: string,
  o: { strip: number; limits: ArchiveLimits; signal?: AbortSignal },
): Promise<Inspected> {
  o.signal?.throwIfAborted();
  const real = await realpath(file);
  const fh = await open(real, "r");
  let entry: Entry;
  try {
    const st = await fh.stat();
    const { maxBytes, maxEntries, maxDepth } = o.limits;
    const identity = [real, st.dev, st.ino, st.size, st.mtimeMs, st.ctimeMs];
    const key = JSON.stringify([...identity, o.strip, maxBytes, maxEntries, maxDepth]);
    const found = entries.get(key);
    if (found && !found.stop.signal.aborted) {
      entry = found;
      await fh.close();
    } else {
      entry = start(key, fh, st, file, o); // takes the file handle
    }
  } catch (error) {
    await fh.close().catch(() => {});
    throw error;
  }
  clearTimeout(entry.timer);
  entry.users++;
  entry.waiting++;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    leave(entry);
  };
  try {
    const { summary, bytes } = await raced(entry.result, o.signal);
    return { summary, bytes, release };
  } catch (error) {
    release();
    throw error;
  } finally {
    entry.waiting--;
    if (entry.waiting === 0 && !entry.settled) {
      unlist(entry); // a caller arriving now starts afresh rather than join a stopped inspection
      entry.stop.abort(new Error("every caller gave up"));
    }
  }
}

function start(
  key: string,
  fh: FileHandle,
  st: Stats,
  name: string,
  o: { strip: number; limits: ArchiveLimits },
): Entry {
  const size = st.size;
  const hold = size <= holdLimit() && room(size);
  const entry: Entry = {
    key,
    result: Promise.resolve({ summary: undefined as never, bytes: null }),
    users: 0,
    waiting: 0,
    settled: false,
    held: hold ? size : 0,
    stop: new AbortController(),
  };
  heldBytes += entry.held;
  entries.set(key, entry);
  count++;
  const signal = entry.stop.signal;
  entry.result = (async () => {
    if (!hold) {
      await fh.close();
      // the summary alone: extraction reads the file again and compares its digest with this one
      return { summary: await inspectSource({ file: name }, { ...o, signal }), bytes: null };
    }
    let bytes: Buffer;
    try {
      bytes = await readAll(fh, size, signal);
      // written to while read: the bytes are still what gets inspected and extracted, but they belong
      // to no identity, so later callers inspect afresh
      const after = await fh.stat();
      if (after.size !== size || after.mtimeMs !== st.mtimeMs || after.ctimeMs !== st.ctimeMs) {
        unlist(entry);
      }
    } finally {
      await fh.close();
    }
    return { summary: await inspectSource({ bytes, name }, { ...o, signal }), bytes };
  })();
  entry.result.then(
    () => {
      entry.settled = true;
    },
    () => {
      // failures are not kept: a refused archive is refused again (and reported) by the next caller
      entry.settled = true;
      unlist(entry);
      free(entry);
    },
  );
  return entry;
}

/** The whole file into one buffer, in reads that notice an abort. */
async function readAll(fh: FileHandle, size: number, signal: AbortSignal): Promise<Buffer> {
  const bytes = Buffer.allocUnsafe(size);
  let at = 0;
  while (at < size) {
    signal.throwIfAborted();
    const { bytesRead } = await fh.read(bytes, at, Math.min(size - at, 8 * 1024 * 1024), at);
    if (bytesRead === 0) break; // shrank while read: inspection judges what was there
    at += bytesRead;
  }
  return at === size ? bytes : bytes.subarray(0, at);
}

/** Whether `size` more bytes fit under `memory.total`, dropping unused entries to make room. */
function room(size: number): boolean {
  if (heldBytes + size <= memory.total) return true;
  for (const e of [...entries.values()]) {
    if (e.users === 0 && e.held) {
      clearTimeout(e.timer);
      unlist(e);
      free(e);
    }
  }
  return heldBytes + size <= memory.total;
}

function leave(entry: Entry): void {
  entry.users--;
  if (entry.users > 0) return;
  if (entries.get(entry.key) !== entry) {
    free(entry); // written to while read, or failed: nobody can reuse it
    return;
  }
  entry.timer = setTimeout(() => {
    unlist(entry);
    free(entry);
  }, memory.idleMs);
  entry.timer.unref();
}

function unlist(entry: Entry): void {
  if (entries.get(entry.key) === entry) entries.delete(entry.key);
}

function free(entry: Entry): void {
  heldBytes -= entry.held;
  entry.held = 0;
}

/** `promise`, or the signal's reason as soon as it aborts (the promise goes on for the others). */
function raced<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
