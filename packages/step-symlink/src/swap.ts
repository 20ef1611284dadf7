import { posix } from "node:path";
import { defineStep, type Host, type StepContext } from "@atomkit/core";
import {
  absolutePath,
  checkFields,
  ParamsFieldError,
  show,
  stepError,
  tempBeside,
  tempPrefix,
} from "./_utils";

export interface SwapSymlinkOptions {
  /** Absolute path of the link on the host, e.g. `/srv/app/current`. */
  link: string;
  /**
   * What the link points to, written as given: relative targets (`releases/42`) resolve from the link's
   * directory and survive moving the whole tree; absolute targets do not.
   */
  target: string;
  /**
   * Refuse when `target` does not exist on the host (resolved from the link's directory), so a typo never
   * leaves a dangling `current`. Default true.
   */
  mustExist?: boolean;
}

export interface SwapSymlinkParams {
  link: string;
  target: string;
  mustExist: boolean;
}

/**
 * What is at `link`: nothing, a symlink and its target, or something else (never replaced). The target
 * is what the user cares about (which release serves); the link's inode, owner and times are not.
 */
export type SymlinkState =
  | { type: "missing" }
  | { type: "symlink"; target: string }
  | { type: "file" | "directory" | "other" };

const KIND = "symlink.swap";

/**
 * `symlink.swap`: points `link` at `target` atomically. A temporary link is created beside `link` and
 * renamed over it (rename(2) replaces the old link in one step, so a reader sees the old or the new
 * target, never nothing). Undo swaps back the same way, or removes the link if there was none.
 */
export const swapSymlink = defineStep({
  kind: KIND,
  package: "@atomkit/step-symlink",
  params: (input: SwapSymlinkOptions): SwapSymlinkParams =>
    checkFields(input, {
      link: absolutePath,
      target: (v, p) => {
        if (typeof v !== "string" || v === "") {
          throw new ParamsFieldError(p, `expected a non-empty path, found ${show(v)}`);
        }
        if (v.includes("\0")) throw new ParamsFieldError(p, "a path cannot contain a NUL byte");
        return v;
      },
      mustExist: (v, p) => {
        if (v !== undefined && typeof v !== "boolean") {
          throw new ParamsFieldError(p, `expected true or false, found ${show(v)}`);
        }
        return v ?? true;
      },
    }),
  describe: (p) => `link ${p.link} → ${p.target}`,
  observe: (ctx, p) => observeLink(ctx.host, p.link),
  state: checkState,
  // an undo to a recorded state points the link at that state's target: it must lie within the roots too
  owns: (p, state) =>
    state?.type === "symlink" ? [p.link, posix.resolve(posix.dirname(p.link), state.target)] : [p.link],
  // the temporary link of an interrupted swap (apply or undo), beside the link
  async cleanup(ctx, p) {
    const dir = posix.dirname(p.link);
    const prefix = tempPrefix(p.link);
    if ((await ctx.host.lstat(dir))?.type !== "directory") return;
    for (const name of await ctx.host.readdir(dir)) {
      const leftover = posix.join(dir, name);
      if (name.startsWith(prefix) && (await ctx.host.lstat(leftover))?.type === "symlink") {
        await ctx.host.rm(leftover, { force: true });
      }
    }
  },
  plan: async (_ctx, p): Promise<SymlinkState> => ({ type: "symlink", target: p.target }),
  async apply(ctx, p) {
    const now = await observeLink(ctx.host, p.link);
    refuseNonLink(ctx, p.link, now, "apply");
    if (now.type === "symlink" && now.target === p.target) return;
    if (p.mustExist) {
      const resolved = posix.resolve(posix.dirname(p.link), p.target);
      if (!(await ctx.host.stat(resolved))) {
        throw stepError(ctx, KIND, "apply", `the link target ${show(p.target)} does not exist`, {
          expected: `an existing file or directory at ${show(resolved)}`,
          found: "nothing",
          hint: "extract or upload the release before swapping the link, or pass mustExist: false",
        });
      }
    }
    await pointLink(ctx, p.link, p.target);
  },
  // Cannot restore: a link's own owner and timestamps (the new link is created by the deploy user).
  async undo(ctx, p, before) {
    const now = await observeLink(ctx.host, p.link);
    if (before.type === "symlink") {
      if (now.type === "symlink" && now.target === before.target) return;
      refuseNonLink(ctx, p.link, now, "undo");
      await pointLink(ctx, p.link, before.target);
    } else if (before.type === "missing") {
      // only ever remove a symlink: whatever else is there now was not made by this step
      if (now.type === "symlink") await ctx.host.rm(p.link, { force: true });
    }
    // before was a file or directory: apply refused to touch it, so there is nothing to undo
  },
});

// --- Internal helpers ---

/** A state read back from a trail: exactly one of the shapes observe returns, or refused. */
function checkState(input: unknown): SymlinkState {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new ParamsFieldError("", `expected a state object, found ${show(input)}`);
  }
  const o = input as Record<string, unknown>;
  const types = ["missing", "symlink", "file", "directory", "other"];
  if (typeof o.type !== "string" || !types.includes(o.type)) {
    throw new ParamsFieldError("type", `expected one of ${types.join(", ")}, found ${show(o.type)}`);
  }
  const allowed = o.type === "symlink" ? ["type", "target"] : ["type"];
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key))
      throw new ParamsFieldError(key, `unexpected key "${key}" in a recorded state`);
  }
  if (o.type !== "symlink") return { type: o.type } as SymlinkState;
  if (typeof o.target !== "string" || o.target === "" || o.target.includes("\0")) {
    throw new ParamsFieldError("target", `expected a symlink target, found ${show(o.target)}`);
  }
  return { type: "symlink", target: o.target };
}

async function observeLink(host: Host, link: string): Promise<SymlinkState> {
  const st = await host.lstat(link);
  if (!st) return { type: "missing" };
  if (st.type === "symlink") return { type: "symlink", target: await host.readlink(link) };
  return { type: st.type };
}

function refuseNonLink(ctx: StepContext, link: string, state: SymlinkState, phase: "apply" | "undo") {
  if (state.type === "missing" || state.type === "symlink") return;
  throw stepError(ctx, KIND, phase, `${show(link)} exists and is not a symlink, so it was left untouched`, {
    expected: "a symlink or nothing",
    found: `a ${state.type}`,
    hint: `move the ${state.type} away first (e.g. with fs.remove), then swap the link; symlink.swap never replaces a real ${state.type}`,
  });
}

/** symlink to a temporary name beside the link, then rename over it: atomic, never unlink-then-link. */
async function pointLink(ctx: StepContext, link: string, target: string): Promise<void> {
  const tmp = tempBeside(link);
  await ctx.host.symlink(target, tmp);
  try {
    await ctx.host.rename(tmp, link);
  } catch (error) {
    await ctx.host.rm(tmp, { force: true }).catch(() => {});
    throw error;
  }
}
