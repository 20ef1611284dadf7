import { type FileHandle, mkdir, open, readdir, readFile, truncate } from "node:fs/promises";
import { join } from "node:path";
import { AtomError } from "./errors";
import { foldRun, type RunSummary, summarize, type TrailRecord, type TrailStore } from "./trail";

export interface FileTrailOptions {
  /** Default `.atomkit/trails` (relative to the working directory). */
  dir?: string;
}

const RUN_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * The embedded default trail: one JSON-lines file per run, `<dir>/<runId>.jsonl`, appended with
 * O_APPEND and fsynced when the engine asks (every intent, every end). No server needed.
 */
export function fileTrail(options: FileTrailOptions = {}): TrailStore & { readonly dir: string } {
  const dir = options.dir ?? join(".atomkit", "trails");
  const handles = new Map<string, Promise<FileHandle>>();
  // Records appended without `sync` wait here and go out with the next synced append, in one write:
  // a crash loses only unsynced records, which the contract allows (recover re-observes those steps).
  const pending = new Map<string, string>();
  const flush = async (runId: string) => {
    const text = pending.get(runId);
    if (!text) return;
    pending.delete(runId);
    await (await handleOf(runId)).write(text);
  };

  const fileOf = (runId: string) => {
    if (!RUN_ID_RE.test(runId)) {
      throw new AtomError("ATOM_RUN_NOT_FOUND", `invalid run id ${JSON.stringify(runId)}`, {
        expected: "a run id as printed by `atomkit trail`, e.g. 20261127T001502Z-3f9a1c",
        found: runId,
      });
    }
    return join(dir, `${runId}.jsonl`);
  };

  const handleOf = (runId: string): Promise<FileHandle> => {
    let h = handles.get(runId);
    if (!h) {
      h = openForAppend(dir, fileOf(runId));
      handles.set(runId, h);
      h.catch(() => handles.delete(runId));
    }
    return h;
  };

  return {
    dir,
    async append(runId, records, opts = {}) {
      const text = (pending.get(runId) ?? "") + records.map((r) => `${JSON.stringify(r)}\n`).join("");
      const ending = records.some((r) => r.t === "end");
      if (!opts.sync && !ending) {
        pending.set(runId, text);
        return;
      }
      pending.delete(runId);
      const fh = await handleOf(runId);
      await fh.write(text);
      if (opts.sync) await fh.sync();
      if (ending) {
        handles.delete(runId);
        await fh.close();
      }
    },
    async readRun(runId) {
      if (pending.has(runId)) await flush(runId);
      let text: string;
      try {
        text = await readFile(fileOf(runId), "utf8");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw error;
      }
      return parseLines(text, fileOf(runId));
    },
    async listRuns() {
      for (const runId of [...pending.keys()]) await flush(runId);
      let names: string[];
      try {
        names = (await readdir(dir)).filter((n) => n.endsWith(".jsonl")).sort();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw error;
      }
      const out: RunSummary[] = [];
      for (const name of names) {
        const view = foldRun(await this.readRun(name.slice(0, -".jsonl".length)));
        if (view) out.push(summarize(view));
      }
      return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.runId.localeCompare(b.runId));
    },
    async close() {
      for (const runId of [...pending.keys()]) await flush(runId);
      const all = [...handles.values()];
      handles.clear();
      await Promise.all(all.map(async (h) => (await h).close().catch(() => {})));
    },
  };
}

/** Parses JSON lines; a torn last line (the process died mid-write) is dropped, any other bad line is an error. */
function parseLines(text: string, file: string): TrailRecord[] {
  const lines = text.split("\n");
  const complete = text.endsWith("\n");
  const out: TrailRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line) continue;
    const last = i === lines.length - 1;
    try {
      out.push(JSON.parse(line) as TrailRecord);
    } catch (error) {
      if (last && !complete) break;
      throw new AtomError("ATOM_RUN_NOT_FOUND", `trail file ${file} is corrupt at line ${i + 1}`, {
        cause: error,
        hint: "only a torn last line is expected after a crash; restore the file from a backup",
      });
    }
  }
  return out;
}

async function openForAppend(dir: string, file: string): Promise<FileHandle> {
  await mkdir(dir, { recursive: true });
  // A file left by a crash may end in a torn line: cut it, so new records start on a line of their own.
  try {
    const text = await readFile(file, "utf8");
    if (text && !text.endsWith("\n"))
      await truncate(file, Buffer.byteLength(text.slice(0, text.lastIndexOf("\n") + 1)));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const fh = await open(file, "a");
  // make the new directory entry durable too
  const dh = await open(dir, "r");
  await dh.sync().catch(() => {});
  await dh.close();
  return fh;
}
