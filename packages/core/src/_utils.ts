import { randomBytes } from "node:crypto";

export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "string") return error;
  try {
    return JSON.stringify(error);
  } catch {
    return String(error);
  }
}

/** Structural equality of JSON values; object key order does not matter. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") {
    // NaN never reaches here via JSON; treat undefined and missing alike through the object branch
    return false;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], bb[i])) return false;
    return true;
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  if (ak.length !== bk.length) return false;
  for (const k of ak) if (!deepEqual(ao[k], bo[k])) return false;
  return true;
}

/** A JSON round trip: what a state looks like after the trail stored it and a new process read it. */
export function viaJson<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/** Resolves after `ms` milliseconds, or at once when `signal` aborts (it never rejects: check the signal after). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * One queue per key: `inTurn(key, work)` starts `work` once every earlier work of that key has settled
 * (a failed one does not stop the queue), and resolves or rejects as `work` does.
 */
export function turns(): <T>(key: string, work: () => Promise<T>) => Promise<T> {
  const queues = new Map<string, Promise<unknown>>();
  return <T>(key: string, work: () => Promise<T>): Promise<T> => {
    const turn = (queues.get(key) ?? Promise.resolve()).catch(() => {}).then(work);
    queues.set(key, turn);
    const clear = () => {
      if (queues.get(key) === turn) queues.delete(key);
    };
    turn.then(clear, clear);
    return turn;
  };
}

let lastMs = 0;

/**
 * Time-sortable, unique run id with milliseconds: `20261127T001502123Z-3f9a1c`. Strictly increasing
 * within a process (runs started in the same millisecond still sort in start order), so "the latest
 * run" is never decided by the random suffix.
 */
export function newRunId(now = new Date()): string {
  const ms = Math.max(now.getTime(), lastMs + 1);
  lastMs = ms;
  const stamp = new Date(ms).toISOString().replace(/[-:.]/g, "");
  return `${stamp}-${randomBytes(3).toString("hex")}`;
}

export function nowIso(): string {
  return new Date().toISOString();
}

/** Reads `a.b.c` from an object; undefined when any part is missing. */
export function getPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** A copy of `obj` without the dotted `paths`. */
export function omitPaths<T>(obj: T, paths: readonly string[]): T {
  if (!paths.length || obj === null || typeof obj !== "object") return obj;
  const copy = structuredClone(obj) as Record<string, unknown>;
  for (const path of paths) {
    const parts = path.split(".");
    let cur: unknown = copy;
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur !== null && typeof cur === "object" ? (cur as Record<string, unknown>)[parts[i]!] : undefined;
    }
    if (cur !== null && typeof cur === "object") delete (cur as Record<string, unknown>)[parts.at(-1)!];
  }
  return copy as T;
}

/**
 * One word quoted for a POSIX shell (`it's` → `'it'\''s'`; plain words stay as they are). For host
 * authors whose transport takes a command line (SSH exec); a step kind passes argv and never quotes.
 */
export function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Whether a process with this pid exists on this machine (EPERM: it exists, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
