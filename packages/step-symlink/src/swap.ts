import { posix } from "node:path";
import { defineStep, type Host, type StepContext } from "@atomkit/core";
import {
  absolutePath,
  boolean,
  checkFields,
  fail,
  nonEmptyString,
  oneOf,
  ParamsFieldError,
  show,
  tempBeside,
  tempPrefix,
} from "@atomkit/core/kit";

/** Which link `symlink.swap` points where. */
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

/** `symlink.swap`'s options validated, `mustExist` filled in: what the trail records. */
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
      // written as given: a relative target resolves from the link's directory
      target: nonEmptyString,
      mustExist: (v, p) => boolean(v, p, { fallback: true }),
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
    refuseNonLink(p.link, now);
    if (now.type === "symlink" && now.target === p.target) return;
    if (p.mustExist) {
      const resolved = posix.resolve(posix.dirname(p.link), p.target);
      if (!(await ctx.host.stat(resolved))) {
        throw fail(`the link target ${show(p.target)} does not exist`, {
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
      refuseNonLink(p.link, now);
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
  oneOf(o.type, "type", ["missing", "symlink", "file", "directory", "other"]);
  const allowed = o.type === "symlink" ? ["type", "target"] : ["type"];
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key))
      throw new ParamsFieldError(key, `unexpected key "${key}" in a recorded state`);
  }
  if (o.type !== "symlink") return { type: o.type } as SymlinkState;
  return { type: "symlink", target: nonEmptyString(o.target, "target") };
}

async function observeLink(host: Host, link: string): Promise<SymlinkState> {
  const st = await host.lstat(link);
  if (!st) return { type: "missing" };
  if (st.type === "symlink") return { type: "symlink", target: await host.readlink(link) };
  return { type: st.type };
}

function refuseNonLink(link: string, state: SymlinkState) {
  if (state.type === "missing" || state.type === "symlink") return;
  throw fail(`${show(link)} exists and is not a symlink, so it was left untouched`, {
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
