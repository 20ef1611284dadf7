import { posix } from "node:path";
import type { Host } from "@atomkit/core";
import { exists, readJson, trashRoot } from "./_utils";

/** What `emptyTrash` removes: everything older than the retention, in one trash directory. */
export interface EmptyTrashOptions {
  /** Keep what is younger than this. Default 7 days. 0 empties everything. */
  olderThanMs?: number;
  /** The trash directory, if steps were given another `trash` than `<host.stateDir>/trash`. */
  trash?: string;
  /** The time ages are counted from, in ms since the epoch. Default `Date.now()`. */
  now?: number;
}

/** What `emptyTrash` did: those runs can no longer be undone. */
export interface EmptyTrashResult {
  /** Paths removed from the host. */
  removed: string[];
}

const DAY = 24 * 60 * 60 * 1000;

/**
 * Empties the trash of fs.remove and fs.prune (`<trash>/<runId>/`) and the backups of fs.write and
 * fs.upload (`<stateDir>/backups/`) older than `olderThanMs`. Runs whose trash or backups are gone can no
 * longer be undone: keep the retention longer than you would ever roll back. Call it from a scheduled
 * job, or at the end of a deploy script (never from inside a run).
 */
export async function emptyTrash(host: Host, options: EmptyTrashOptions = {}): Promise<EmptyTrashResult> {
  const now = options.now ?? Date.now();
  const cutoff = now - (options.olderThanMs ?? 7 * DAY);
  const removed: string[] = [];
  const remove = async (path: string) => {
    await host.rm(path, { recursive: true, force: true });
    removed.push(path);
  };

  const root = trashRoot(host, options.trash);
  for (const name of await listOrEmpty(host, root)) {
    if (name.startsWith(".")) continue;
    const path = posix.join(root, name);
    const born = runTime(name) ?? (await host.lstat(path))?.mtimeMs ?? now;
    if (born < cutoff) await remove(path);
  }
  // index entries pointing at items that are gone
  const indexDir = posix.join(root, ".index");
  for (const name of await listOrEmpty(host, indexDir)) {
    const path = posix.join(indexDir, name);
    const index = await readJson<{ trash?: string; pruned?: Record<string, string> }>(host, path);
    const items = [...(index?.trash ? [index.trash] : []), ...Object.values(index?.pruned ?? {})];
    let any = false;
    for (const item of items) if (await exists(host, item)) any = true;
    if (!any) await remove(path);
  }

  const backups = posix.join(host.stateDir, "backups");
  for (const name of await listOrEmpty(host, backups)) {
    if (!name.endsWith(".json")) continue;
    const sha = name.slice(0, -".json".length);
    const meta = await readJson<{ usedAt?: string }>(host, posix.join(backups, name));
    const used = meta?.usedAt ? Date.parse(meta.usedAt) : Number.NaN;
    if (Number.isNaN(used) || used < cutoff) {
      await remove(posix.join(backups, sha));
      await remove(posix.join(backups, name));
    }
  }
  return { removed };
}

async function listOrEmpty(host: Host, dir: string): Promise<string[]> {
  return (await host.stat(dir))?.type === "directory" ? (await host.readdir(dir)).sort() : [];
}

/** The time in a core run id (`20261127T001502Z-3f9a1c`), or null for ids of another shape. */
function runTime(runId: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(runId);
  if (!m) return null;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}
