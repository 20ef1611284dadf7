import { posix } from "node:path";
import { defineStep, type Host } from "@atomkit/core";
import { absolutePath, checkFields, clip, deepEqual, fail, show } from "@atomkit/core/kit";
import {
  exists,
  indexFile,
  PACKAGE,
  readJson,
  renameOnHost,
  requireInTrash,
  sha256Hex,
  trashRoot,
  trashSlot,
  writeIndex,
} from "./_utils";
import { absPath, linkTarget, mode, orNull, size, typedState } from "./state-check";

/** What `fs.remove` moves into the run's trash. */
export interface RemoveOptions {
  /** Absolute path of the file, directory or symlink to remove. */
  path: string;
  /**
   * Trash directory on the host. It must be on the same filesystem as `path` (the move is a rename).
   * Default `<host.stateDir>/trash`.
   */
  trash?: string;
}

/** `fs.remove`'s options validated: what the trail records. */
export interface RemoveParams {
  path: string;
  /** Absent: the host's default trash, `<host.stateDir>/trash`. */
  trash?: string;
}

/**
 * What is at `path`; once removed, where it waits in the trash (`null` when it is not there, e.g. the
 * trash was emptied). The trash location is evidence for undo, not part of what `same()` compares:
 * "nothing at the path" is one state wherever the item waits.
 */
export type RemoveState =
  | { type: "missing"; trash: string | null }
  | { type: "file"; size: number; mode: number }
  | { type: "directory"; mode: number }
  | { type: "symlink"; target: string }
  | { type: "other"; mode: number };

interface RemoveIndex {
  path: string;
  trash: string;
  runId: string;
}

const KIND = "fs.remove";

/**
 * `fs.remove`: moves a file, directory or symlink into the run's trash
 * (`<trash>/<runId>/<hash>-<name>`), one rename, so undo can put it back whole. The trash is emptied
 * by `emptyTrash()` after a retention period; until then the run can be undone.
 */
export const removePath = defineStep({
  kind: KIND,
  package: PACKAGE,
  params: (input: RemoveOptions): RemoveParams =>
    checkFields(input, {
      path: absolutePath,
      trash: (v, p) => (v === undefined ? undefined : absolutePath(v, p)),
    }),
  describe: (p) => `remove ${p.path}`,
  observe: (ctx, p) => observeRemoved(ctx.host, p),
  same: (a, b) => (a.type === "missing" && b.type === "missing") || deepEqual(a, b),
  state: (input: unknown): RemoveState =>
    typedState(input, {
      missing: { trash: orNull(absPath) },
      file: { size, mode },
      directory: { mode },
      symlink: { target: linkTarget },
      other: { mode },
    }),
  owns: (p) => [p.path, ...(p.trash ? [p.trash] : [])],
  async apply(ctx, p) {
    const { host } = ctx;
    if (!(await host.lstat(p.path))) return;
    const root = trashRoot(host, p.trash);
    if (p.path === root || root.startsWith(`${p.path}/`)) {
      throw fail(`${show(p.path)} contains the trash itself`, {
        expected: "a path outside the trash directory",
        found: root,
        hint: "use emptyTrash() to clean the trash",
      });
    }
    const dest = trashSlot(root, ctx.runId, p.path, true);
    await host.mkdir(posix.dirname(dest), { recursive: true, mode: 0o700 });
    // recorded before the move: if we die right after it, observe still finds the item
    await writeIndex(host, indexFile(root, `remove:${p.path}`), {
      path: p.path,
      trash: dest,
      runId: ctx.runId,
    });
    await renameOnHost(ctx.host, p.path, dest);
  },
  // Cannot restore: nothing is lost while the trash is kept; after emptyTrash() the removed item is gone.
  async undo(ctx, p, before, after) {
    if (before.type === "missing") return;
    const { host } = ctx;
    const root = trashRoot(host, p.trash);
    if (await host.lstat(p.path)) {
      const now = await observeRemoved(host, p);
      if (sameItem(now, before)) return;
      throw fail(`something else is at ${show(p.path)} now, so the removed item stays in the trash`, {
        expected: "nothing at the path",
        found: now,
        hint: "move it away, then undo again",
      });
    }
    const index = await readJson<RemoveIndex>(host, indexFile(root, `remove:${p.path}`));
    // the recorded after-state first: a later run may have pointed the index elsewhere (and undone it)
    const from = (after.type === "missing" ? after.trash : null) ?? index?.trash ?? null;
    if (from) requireInTrash(root, from, show(p.path));
    if (!from || !(await exists(host, from))) {
      throw fail(`the removed ${show(p.path)} is no longer in the trash`, {
        expected: `the item in the trash${from ? ` at ${show(from)}` : ""}`,
        found: "nothing",
        hint: "the trash was emptied (emptyTrash) or changed by hand; restore it from a backup",
      });
    }
    await renameOnHost(ctx.host, from, p.path);
    if (index?.trash === from) await host.rm(indexFile(root, `remove:${p.path}`), { force: true });
  },
});

async function observeRemoved(host: Host, p: RemoveParams): Promise<RemoveState> {
  const st = await host.lstat(p.path);
  if (!st) {
    const index = await readJson<RemoveIndex>(host, indexFile(trashRoot(host, p.trash), `remove:${p.path}`));
    const trash = typeof index?.trash === "string" && (await exists(host, index.trash)) ? index.trash : null;
    return { type: "missing", trash };
  }
  switch (st.type) {
    case "file":
      return { type: "file", size: st.size, mode: st.mode };
    case "symlink":
      return { type: "symlink", target: await host.readlink(p.path) };
    default:
      return { type: st.type, mode: st.mode };
  }
}

const sameItem = (a: RemoveState, b: RemoveState) => deepEqual(a, b);
