// Shared by the forged-trail tests: a real release (fs.untar, process.stop, symlink.swap, process.start)
// in a temp dir, a sealed trail, and helpers that write forged trail records the way an attacker would.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Json, RunStartRecord, StepTrailRecord, TrailRecord, TrailStore } from "@atomkit/core";
import { hashTree } from "@atomkit/testkit";

/** A run id as the engine makes them (time, then random hex). */
export function forgedRunId(): string {
  return `${new Date().toISOString().replace(/[-:.]/g, "")}-${randomBytes(3).toString("hex")}`;
}

/** A .tar.gz with one page, made by the system's tar. */
export async function makeArchive(dir: string, name: string, page: string): Promise<string> {
  const src = join(dir, `${name}-src`);
  await mkdir(src, { recursive: true });
  await writeFile(join(src, "index.html"), page);
  const file = join(dir, `${name}.tar.gz`);
  execFileSync("tar", ["-czf", file, "-C", src, "."]);
  await rm(src, { recursive: true, force: true });
  return file;
}

/** The records of a run, as a forger writes them: a run record, step records, maybe an end. */
export function runRecords(
  runId: string,
  o: {
    atom?: string;
    host?: string;
    steps: RunStartRecord["steps"];
    records?: Array<Omit<StepTrailRecord, "t" | "runId" | "at"> & { at?: string }>;
    end?: { status: "committed" | "rolled-back" | "rollback-failed"; final?: Record<string, Json> };
    meta?: Json;
  },
): TrailRecord[] {
  const at = new Date().toISOString();
  return [
    {
      t: "run",
      v: 2,
      runId,
      atom: o.atom ?? "release",
      host: o.host ?? "local",
      mode: "run",
      at,
      pid: 999_999,
      machine: "forger",
      steps: o.steps,
      ...(o.meta !== undefined ? { meta: o.meta } : {}),
    },
    ...(o.records ?? []).map((r) => ({ t: "step" as const, runId, at, ...r })),
    ...(o.end ? [{ t: "end" as const, runId, at, ...o.end }] : []),
  ];
}

/** Writes records with the trail's own key (an attacker who has it, or a buggy writer). */
export async function appendSealed(trail: TrailStore, runId: string, records: TrailRecord[]): Promise<void> {
  await trail.append(runId, records, { sync: true });
  await trail.close?.();
}

/** Writes records as bare JSON lines (an attacker who can write the trail directory but has no key). */
export async function writeUnsealed(dir: string, runId: string, records: TrailRecord[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${runId}.jsonl`), records.map((r) => `${JSON.stringify(r)}\n`).join(""));
}

/** The lines of a trail file, parsed. */
export async function trailLines(dir: string, runId: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(join(dir, `${runId}.jsonl`), "utf8");
  return text
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export async function writeLines(dir: string, runId: string, lines: unknown[]): Promise<void> {
  await writeFile(join(dir, `${runId}.jsonl`), lines.map((l) => `${JSON.stringify(l)}\n`).join(""));
}

/** A live (not zombie) pid. */
export async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Every process whose working directory is inside `root`: only ever ones a test started there. */
export async function processesIn(root: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const cwd = await readlink(`/proc/${name}/cwd`).catch(() => "");
    if ((cwd === root || cwd.startsWith(`${root}/`)) && (await alive(Number(name)))) out.push(Number(name));
  }
  return out;
}

/** Kills what a test started (found by working directory, so by pid, never by name). */
export async function killProcessesIn(root: string): Promise<void> {
  for (const pid of await processesIn(root)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
}

/** A path under /tmp that a forged command would create: the proof that it ran. */
export function proofPath(): string {
  return `/tmp/x-${randomBytes(8).toString("hex")}`;
}

/** Hashes of everything a refused forgery must leave alone. */
export async function snapshot(paths: Record<string, string>): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, path] of Object.entries(paths)) out[name] = await hashTree(path);
  return out;
}

export { existsSync };
