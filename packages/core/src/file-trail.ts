import { rm, stat, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { turns } from "./_utils";
import { AtomError } from "./errors";
import { keyFromFile } from "./file-trail/key";
import {
  type Handle,
  listIds,
  openForAppend,
  RUN_ID_RE,
  readRecords,
  trailWriteError,
  writeAll,
} from "./file-trail/records";
import { keyFrom, sealTrail } from "./seal";
import { refuseOversized, SummaryCache, type TrailStore } from "./trail";

// The embedded trail: one JSON-lines file per run. This file holds the store (buffering, appends,
// fsync, listing); file-trail/records.ts reads and writes the files, file-trail/key.ts keeps the key.

/** Options of `fileTrail`: the trail's directory and the key its records are sealed with (or where that key is kept). */
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

function fileStore(dir: string): TrailStore & { readonly dir: string } {
  const handles = new Map<string, Promise<Handle>>();
  // Records appended without `sync` wait here and go out with the next synced append, in one write:
  // a crash loses only unsynced records, which the contract allows (recover re-observes those steps).
  // They leave this map only once written: a failed write keeps them for the next attempt, but drops the
  // records of the append that failed (its caller was told; written later, a run record of a run that
  // never started would turn up as an unfinished run).
  const pending = new Map<string, Buffer[]>();
  const cache = new SummaryCache();
  const inTurn = turns();

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
   * failure the records of the failing append (`own`) are dropped, the others kept for the next write.
   *
   * Writes of one run go one at a time, and each takes what waits only once its handle is open: two
   * writers that both took the same waiting records (an append opening a new run's file while a listing
   * flushed that run) wrote them twice, and the duplicate broke the sealed chain (seen as "trail record 2
   * fails its integrity check" after a fleet rollback).
   */
  const write = (runId: string, sync: boolean, own: readonly Buffer[] = []) =>
    inTurn(runId, async () => {
      const dropOwn = (kept: readonly Buffer[]) => {
        const back = [...kept, ...(pending.get(runId) ?? [])].filter((c) => !own.includes(c));
        if (back.length) pending.set(runId, back);
        else pending.delete(runId);
      };
      let h: Handle;
      try {
        h = await handleOf(runId);
      } catch (error) {
        dropOwn([]);
        throw error;
      }
      const chunks = pending.get(runId);
      if (chunks?.length) {
        // taken before the first await: an append meanwhile waits for the next write
        pending.delete(runId);
        const data = Buffer.concat(chunks);
        try {
          await writeAll(h.fh, data);
        } catch (error) {
          dropOwn(chunks);
          // no torn line may stay in the middle of the file: later records would follow it
          await h.fh.truncate(h.size).catch(() => {});
          // a run none of whose records reached the disk is no run: its empty file would read as corrupt
          if (h.size === 0) await dropEmpty(runId, h);
          throw trailWriteError(fileOf(runId), error);
        }
        h.size += data.length;
      }
      if (sync) await h.fh.sync().catch((error) => Promise.reject(trailWriteError(fileOf(runId), error)));
    });

  const closeHandle = async (runId: string) => {
    const h = handles.get(runId);
    handles.delete(runId);
    await (await h?.catch(() => undefined))?.fh.close().catch(() => {});
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
      await write(runId, opts.sync === true, lines);
      // in turn too: a write queued before this one still has the handle it opened
      if (ending) await inTurn(runId, () => closeHandle(runId));
    },
    remove(runId) {
      const file = fileOf(runId);
      return inTurn(runId, async () => {
        pending.delete(runId);
        await closeHandle(runId);
        await unlink(file).catch((error: unknown) => {
          if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw trailWriteError(file, error);
        });
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
      await Promise.all([...handles.keys()].map((runId) => inTurn(runId, () => closeHandle(runId))));
    },
    async listIds() {
      // a run known only to this process's buffer is a run too
      for (const runId of [...pending.keys()]) await write(runId, false);
      return listIds(dir);
    },
  };
}
