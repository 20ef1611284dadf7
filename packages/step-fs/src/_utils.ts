import { createHash, randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { posix, resolve as resolveLocal } from "node:path";
import { errorReason, type Host, isNotFound, type StepContext } from "@atomkit/core";
import {
  absolutePath,
  checkFields,
  clip,
  fail,
  integer,
  boolean as kitBoolean,
  ParamsFieldError,
  restoreBackup,
  show,
  stepError,
  tempBeside,
  tempPrefix,
} from "@atomkit/core/kit";
import { absPath, mode, nothing, sha256, typedState } from "./state-check";

// The kit's helpers, re-exported for the kinds that still import them from here (untar, mkdir).
export {
  absolutePath,
  checkFields,
  clip,
  integer,
  ParamsFieldError,
  show,
  stepError,
  tempBeside,
  tempPrefix,
};

export const PACKAGE = "@atomkit/step-fs";

// --- Params validation: the kit's validators, plus what only files need ---

/**
 * A path to a file on the machine running Atomkit (an artifact to send), resolved against the working
 * directory. Only its shape is checked here: that the file exists is the kind's preflight
 * (`requireLocalFile`), made before a run but never before an undo, which does not need the artifact.
 */
export function localFile(value: unknown, field: string): string {
  if (typeof value !== "string" || value === "" || value.includes("\0")) {
    throw new ParamsFieldError(field, `expected a path to a local file, found ${show(value)}`);
  }
  return resolveLocal(value);
}

/** Preflight: the local artifact exists and is a regular file, so a run fails before any step acts. */
export function requireLocalFile(path: string, field: string): void {
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch {
    throw new ParamsFieldError(field, `the local file ${show(path)} does not exist`);
  }
  if (!isFile) throw new ParamsFieldError(field, `${show(path)} is not a regular file`);
}

/** Permission bits as a number (`0o640`) or an octal string (`"640"`, `"0640"`). */
export function fileMode(value: unknown, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === "string" && /^0?[0-7]{3,4}$/.test(value)) return Number.parseInt(value, 8);
  if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 0o7777) return value;
  throw new ParamsFieldError(field, `expected a mode like 0o644 or "0644", found ${show(value)}`);
}

/** The kit's `boolean` with a fallback for an absent value (the form fs.mkdir calls). */
export function boolean(value: unknown, field: string, fallback: boolean): boolean {
  return kitBoolean(value, field, { fallback });
}

// --- Host helpers ---

export const sha256Hex = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");

export async function readJson<T>(host: Host, path: string): Promise<T | null> {
  let text: string;
  try {
    text = (await host.readFile(path)).toString("utf8");
  } catch (error) {
    if (isNotFound(error) || errorReason(error) === "ENOTDIR") return null;
    throw error;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

/** @deprecated the form fs.untar calls: `requireParent(ctx.host, path)` */
export const requireParentDir = (ctx: StepContext, _kind: string, path: string) =>
  requireParent(ctx.host, path);

/** Refuses (nothing changed) when the directory that would hold `path` does not exist. */
export async function requireParent(host: Host, path: string): Promise<void> {
  const parent = posix.dirname(path);
  const st = await host.stat(parent);
  if (st?.type === "directory") return;
  throw fail(`the parent directory of ${show(path)} does not exist`, {
    expected: `a directory at ${show(parent)}`,
    found: st ? `a ${st.type}` : "nothing",
    hint: "create it first, e.g. with an fs.mkdir step before this one",
  });
}

/** rename(2) into a trash or backup location; a clear hint when it crosses filesystems. */
export async function renameOnHost(host: Host, from: string, to: string): Promise<void> {
  try {
    await host.rename(from, to);
  } catch (error) {
    const text = `${(error as Error)?.message} ${(error as { cause?: Error })?.cause?.message ?? ""}`;
    if (/EXDEV|cross-device/i.test(text)) {
      throw fail(`cannot move ${show(from)} to ${show(to)}: they are on different filesystems`, {
        expected: "the trash on the same filesystem as the path (a move must be a rename to be undoable)",
        found: "a cross-device rename",
        hint: "pass `trash` with a directory on the same filesystem, e.g. beside the path's parent",
        cause: error,
      });
    }
    throw error;
  }
}

// --- Regular files: state, backups, restore (fs.write, fs.upload) ---

/**
 * A regular file by content hash and mode; anything else only by its type. What the user cares about:
 * the same bytes and mode restored (by another inode, owner or time) are the same state.
 */
export type FileState =
  | { type: "missing" }
  | { type: "file"; sha256: string; mode: number }
  | { type: "directory" | "symlink" | "other" };

/** A FileState read back from a trail, exactly (its sha256 names the backup undo restores). */
export const checkFileState = (input: unknown): FileState =>
  typedState(input, {
    missing: nothing,
    file: { sha256, mode },
    directory: nothing,
    symlink: nothing,
    other: nothing,
  });

export async function observeFile(host: Host, path: string): Promise<FileState> {
  const st = await host.lstat(path);
  if (!st) return { type: "missing" };
  if (st.type !== "file") return { type: st.type };
  return { type: "file", sha256: await host.hash(path), mode: st.mode };
}

export function refuseNonFile(path: string, type: string | undefined) {
  if (type === undefined || type === "missing" || type === "file") return;
  throw fail(`${show(path)} exists and is not a regular file, so it was left untouched`, {
    expected: "a regular file or nothing",
    found: `a ${type}`,
    hint: `remove the ${type} first (e.g. with fs.remove) or choose another path`,
  });
}

const backupsDir = (host: Host) => posix.join(host.stateDir, "backups");

/**
 * Keeps the current bytes of `path` under `<stateDir>/backups/<sha256>` (content-addressed, so undo finds
 * them from the recorded state alone). A hard link costs nothing and keeps the old inode once the path
 * is replaced by rename; across filesystems it falls back to a copy.
 */
export async function saveBackup(host: Host, path: string, sha256: string): Promise<void> {
  const dir = backupsDir(host);
  const dest = posix.join(dir, sha256);
  await host.mkdir(dir, { recursive: true, mode: 0o700 });
  const existing = await host.lstat(dest);
  if (existing && (existing.type !== "file" || (await host.hash(dest)) !== sha256)) {
    await host.rm(dest, { force: true, recursive: true }); // damaged: replace it
  }
  if (!existing || !(await host.lstat(dest))) {
    const tmp = tempBeside(dest);
    try {
      const ln = await host.exec(["ln", "--", path, tmp], { reject: false });
      if (ln.code !== 0) await host.exec(["cp", "--", path, tmp]);
      await host.rename(tmp, dest);
    } catch (error) {
      await host.rm(tmp, { force: true }).catch(() => {});
      throw error;
    }
  }
  await host.writeFile(
    posix.join(dir, `${sha256}.json`),
    `${JSON.stringify({ usedAt: new Date().toISOString(), path })}\n`,
    { mode: 0o600 },
  );
}

/**
 * Puts the exact old bytes and mode back at `path`, atomically: the backup is hard-linked beside it and
 * renamed over it, so undo needs no free space (a full disk is when rollbacks matter most) and a backup
 * saved by link brings back the old inode itself, owner and times included.
 */
export async function restoreFile(host: Host, path: string, before: FileState): Promise<void> {
  const now = await observeFile(host, path);
  if (before.type === "missing") {
    // only ever remove a regular file: anything else there now was not made by this step
    if (now.type === "file") await host.rm(path, { force: true });
    return;
  }
  if (before.type !== "file") return; // apply refuses non-files, so it changed nothing
  if (now.type === "file" && now.sha256 === before.sha256) {
    if (now.mode !== before.mode) await host.chmod(path, before.mode);
    return;
  }
  if (now.type !== "file" && now.type !== "missing") {
    throw fail(`${show(path)} is no longer a regular file, so it was left untouched`, {
      expected: "a regular file or nothing",
      found: `a ${now.type}`,
      hint: "someone replaced it; restore it by hand",
    });
  }
  // the kit's restore: the same backups layout, checked, linked beside the path and renamed over it
  await restoreBackup(host, before.sha256, path, { mode: before.mode });
}

/**
 * Removes the temporary files an interrupted write, upload or restore left beside `path` (names
 * starting with its `tempPrefix`): only files and symlinks, never a directory, never anything else.
 */
export async function removeTempFiles(host: Host, path: string): Promise<void> {
  const dir = posix.dirname(path);
  const prefix = tempPrefix(path);
  if ((await host.lstat(dir))?.type !== "directory") return;
  for (const name of await host.readdir(dir)) {
    if (!name.startsWith(prefix)) continue;
    const leftover = posix.join(dir, name);
    const st = await host.lstat(leftover);
    if (st?.type === "file" || st?.type === "symlink") await host.rm(leftover, { force: true });
  }
}

// --- Trash (fs.remove, fs.prune) ---

/** `<stateDir>/trash` unless the step names another directory. */
export const trashRoot = (host: Host, override: string | undefined) =>
  override ?? posix.join(host.stateDir, "trash");

/**
 * Where a step records what it moved to the trash, keyed by what was removed (not by run): undo and
 * `undo <runId>` (a new run id) find the items from observe alone.
 */
export const indexFile = (root: string, key: string) => posix.join(root, ".index", `${sha256Hex(key)}.json`);

/** The run's own trash directory; the run id is made safe as one path segment. */
export function runTrash(root: string, runId: string): string {
  const segment = runId.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "_") || "_";
  return posix.join(root, segment);
}

/**
 * A fresh slot in the run's trash for what was at `path`: a digest of the path (items from one place
 * sort together), random bytes (two runs never collide), and the item's own name, clipped, when asked.
 */
export function trashSlot(root: string, runId: string, path: string, withName = false): string {
  const name = `${sha256Hex(path).slice(0, 12)}-${randomBytes(3).toString("hex")}`;
  return posix.join(runTrash(root, runId), withName ? `${name}-${clip(posix.basename(path), 100)}` : name);
}

export async function writeIndex(host: Host, file: string, value: unknown): Promise<void> {
  await host.mkdir(posix.dirname(file), { recursive: true, mode: 0o700 });
  await host.writeFile(file, `${JSON.stringify(value)}\n`, { mode: 0o600 });
}

export const exists = async (host: Host, path: string) => (await host.lstat(path)) !== null;

/**
 * A trash location read from a trail or an index is evidence: undo only ever moves back something from
 * inside the trash, never from anywhere a forged record names.
 */
export function requireInTrash(root: string, from: string, what: string): void {
  let ok = false;
  try {
    ok = absPath(from, "trash") === from && from.startsWith(`${root}/`);
  } catch {
    ok = false;
  }
  if (ok) return;
  throw fail(`the recorded trash location of ${what} is not inside the trash`, {
    expected: `a path under ${show(root)}`,
    found: from,
    hint: "the trail or the trash index was changed by hand; restore the item yourself if it should come back",
  });
}
