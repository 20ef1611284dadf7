import { AtomError, pruneTrail } from "@atomkit/core";
import type { Context } from "../context";
import { EXIT } from "../exit-codes";

/** `atomkit trail prune [--keep N] [--older-than 90d] [--dry-run]`. */
export async function pruneCommand(ctx: Context): Promise<number> {
  const keep = ctx.flags.keep === undefined ? undefined : count(ctx.flags.keep);
  const olderThanMs = ctx.flags["older-than"] === undefined ? undefined : age(ctx.flags["older-than"]);
  const dryRun = ctx.flags["dry-run"];
  const plan = await pruneTrail(await ctx.trail(), {
    ...(keep !== undefined ? { keep } : {}),
    ...(olderThanMs !== undefined ? { olderThanMs } : {}),
    dryRun,
  });
  const out = (s: string) => ctx.io.stdout.write(`${s}\n`);
  if (dryRun) for (const id of plan.remove) out(`would remove ${id}`);
  out(
    `${dryRun ? "would remove" : "removed"} ${plan.remove.length}; kept ${plan.kept.total} run(s), of which ${plan.kept.live} live release(s) and ${plan.kept.unsettled} unfinished or rollback-failed (never pruned)`,
  );
  return EXIT.ok;
}

/** The deploy file's `retain`, after a run: quiet unless it removed something. */
export async function retain(ctx: Context): Promise<void> {
  const r = (await ctx.loaded()).config.retain;
  if (!r) return;
  try {
    const plan = await pruneTrail(await ctx.trail(), {
      ...(r.keep !== undefined ? { keep: r.keep } : {}),
      ...(r.olderThan !== undefined ? { olderThanMs: age(r.olderThan) } : {}),
    });
    if (plan.remove.length) ctx.io.stderr.write(`trail: retain removed ${plan.remove.length} old run(s)\n`);
  } catch (error) {
    // the deploy is done and reported; a retention problem must not change its exit code
    ctx.io.stderr.write(`trail: retain did not prune: ${(error as Error).message.split("\n")[0]}\n`);
  }
}

function count(text: string): number {
  if (!/^\d+$/.test(text))
    throw new AtomError("ATOM_PARAMS_INVALID", "--keep needs a whole number of runs per host", {
      expected: "e.g. --keep 20",
      found: text,
    });
  return Number(text);
}

/** "90d", "12h", "30m" → ms. */
export function age(text: string): number {
  const m = /^(\d+)(d|h|m)$/.exec(text);
  if (!m)
    throw new AtomError("ATOM_PARAMS_INVALID", "--older-than needs an age in days, hours or minutes", {
      expected: "e.g. 90d, 12h or 30m",
      found: text,
    });
  return Number(m[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[m[2] as "d" | "h" | "m"];
}
