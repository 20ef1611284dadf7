import { posix } from "node:path";
import { defineStep, errorReason, type Host, type StepContext } from "@atomkit/core";
import { ParamsFieldError } from "@atomkit/core/kit";
import { absolutePath, boolean, checkFields, fileMode, PACKAGE, show, stepError } from "./_utils";
import { absPath, mode, nothing, typedState } from "./state-check";

/** What `fs.mkdir` ensures: a directory at `path`. */
export interface MakeDirOptions {
  /** Absolute path of the directory on the host. */
  path: string;
  /** Permission bits of every directory created (not of ones that exist). Default 0o755. */
  mode?: number | string;
  /** Create missing parents too, like `mkdir -p`. Default true. */
  recursive?: boolean;
}

/** `fs.mkdir`'s options validated, defaults filled in (`mode` as a number): what the trail records. */
export interface MakeDirParams {
  path: string;
  mode: number;
  recursive: boolean;
}

/**
 * The directory and its mode, or the list of directories that are missing (outermost first) and apply
 * would create: whether the directory is there, never which inode or owner it has.
 */
export type MakeDirState =
  | { type: "missing"; missing: string[] }
  | { type: "directory"; mode: number }
  | { type: "file" | "symlink" | "other" };

const KIND = "fs.mkdir";

/**
 * `fs.mkdir`: ensures a directory exists (an existing one is left as it is). Undo removes exactly the
 * directories this step created, innermost first, and only while they are empty.
 */
export const makeDir = defineStep({
  kind: KIND,
  package: PACKAGE,
  params: (input: MakeDirOptions): MakeDirParams =>
    checkFields(input, {
      path: absolutePath,
      mode: (v, p) => fileMode(v, p, 0o755),
      recursive: (v, p) => boolean(v, p, true),
    }),
  describe: (p) => `mkdir ${p.path}`,
  observe: (ctx, p) => observeDir(ctx.host, p.path),
  state: (input: unknown): MakeDirState =>
    typedState(input, {
      missing: { missing: dirChain },
      directory: { mode },
      file: nothing,
      symlink: nothing,
      other: nothing,
    }),
  owns: (p) => [p.path],
  plan: async (_ctx, p, before): Promise<MakeDirState> =>
    before.type === "missing" ? { type: "directory", mode: p.mode } : before,
  async apply(ctx, p) {
    const { host } = ctx;
    const now = await observeDir(host, p.path);
    if (now.type === "directory") return;
    if (now.type === "symlink" && (await host.stat(p.path))?.type === "directory") return;
    if (now.type !== "missing") {
      throw stepError(ctx, KIND, "apply", `${show(p.path)} exists and is not a directory`, {
        expected: "a directory or nothing",
        found: `a ${now.type}`,
        hint: "remove it first (e.g. with fs.remove) or choose another path",
      });
    }
    if (!p.recursive && now.missing.length > 1) {
      throw stepError(ctx, KIND, "apply", `the parent of ${show(p.path)} does not exist`, {
        expected: `a directory at ${show(posix.dirname(p.path))}`,
        found: "nothing",
        hint: "pass recursive: true, or create the parent first",
      });
    }
    for (const dir of now.missing) {
      try {
        await host.mkdir(dir, { mode: p.mode });
      } catch (error) {
        if (errorReason(error) !== "EEXIST" || (await host.lstat(dir))?.type !== "directory") throw error;
        continue; // made by someone else meanwhile: not ours to chmod
      }
      await host.chmod(dir, p.mode); // mkdir's mode is filtered by the umask
    }
  },
  // Cannot restore: nothing to restore (the directories did not exist); a non-empty one is refused.
  async undo(ctx, p, before) {
    if (before.type !== "missing") return;
    const { host } = ctx;
    refuseForeign(ctx, p.path, before.missing);
    for (const dir of [...before.missing].reverse()) {
      const st = await host.lstat(dir);
      if (!st) continue;
      if (st.type !== "directory") {
        throw stepError(
          ctx,
          KIND,
          "undo",
          `${show(dir)} is no longer a directory, so it was left untouched`,
          {
            expected: "the empty directory this step created",
            found: `a ${st.type}`,
            hint: "someone replaced it; remove it by hand if it should go",
          },
        );
      }
      // rmdir(2) removes it only while empty, in one step: nothing put there since can be lost
      try {
        await host.rmdir(dir);
      } catch (error) {
        if (errorReason(error) === "ENOENT") continue;
        if (errorReason(error) !== "ENOTEMPTY") throw error;
        const entries = await host.readdir(dir).catch(() => []);
        throw stepError(ctx, KIND, "undo", `${show(dir)} is not empty, so it was left in place`, {
          expected: "the empty directory this step created",
          found: `${entries.length} entries, e.g. ${show(entries.slice(0, 3))}`,
          hint: "something put files there after this step (not a step of this run, or it would have been undone first); move them away, then undo again",
        });
      }
    }
  },
});

async function observeDir(host: Host, path: string): Promise<MakeDirState> {
  const st = await host.lstat(path);
  if (st?.type === "directory") return { type: "directory", mode: st.mode };
  if (st) return { type: st.type };
  const missing = [path];
  for (let dir = posix.dirname(path); dir !== "/" && !(await host.lstat(dir)); dir = posix.dirname(dir)) {
    missing.unshift(dir);
  }
  return { type: "missing", missing };
}

/** A recorded list of missing directories: absolute paths, each the parent of the next. */
function dirChain(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new ParamsFieldError(field, `expected a non-empty list of directories, found ${show(value)}`);
  }
  value.forEach((dir, i) => {
    absPath(dir, `${field}.${i}`);
    if (i > 0 && posix.dirname(dir as string) !== value[i - 1]) {
      throw new ParamsFieldError(
        `${field}.${i}`,
        `expected a directory inside ${show(value[i - 1])}, found ${show(dir)}`,
      );
    }
  });
  return [...value] as string[];
}

/** Undo removes only `path` and its own parents, whatever a (forged) trail lists. */
function refuseForeign(ctx: StepContext, path: string, missing: string[]): void {
  const foreign = missing.find((dir) => dir !== path && !path.startsWith(`${dir}/`));
  if (foreign === undefined) return;
  throw stepError(
    ctx,
    KIND,
    "undo",
    `the recorded state names ${show(foreign)}, which is not ${show(path)} nor a parent of it`,
    {
      expected: `${show(path)} and its parents`,
      found: missing,
      hint: "the trail was changed or belongs to another step; nothing was removed",
    },
  );
}
