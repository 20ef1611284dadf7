import { AtomError, readFleet, rollback } from "@atomkit/core";
import type { Context } from "../context";
import { reportFleet } from "../report";
import { trailOptions } from "./undo";

/**
 * `atomkit rollback [<atom>] [--to <runId|fleetId> | --steps N]`: on every selected host, undo the live
 * runs of the atom newest first, so the previous release (or the one named) serves again, verified.
 * All hosts in one fleet run, with --batch and --concurrency.
 */
export async function rollbackCommand(ctx: Context, atomArg?: string): Promise<number> {
  const spread = ctx.spread();
  const loaded = await ctx.loaded();
  const atomNames = Object.keys(loaded.config.atoms);
  const atomName = atomArg ?? (atomNames.length === 1 ? atomNames[0] : undefined);
  if (!atomName) {
    throw new AtomError("ATOM_PARAMS_INVALID", "`atomkit rollback` needs the atom to roll back", {
      expected: atomNames.join(", "),
      found: "none",
      hint: "atomkit rollback <atom>",
    });
  }
  if (ctx.flags.to !== undefined && ctx.flags.steps !== undefined) {
    throw new AtomError("ATOM_PARAMS_INVALID", "give --to or --steps, not both", {
      hint: "atomkit rollback release --steps 2",
    });
  }
  const steps = ctx.flags.steps !== undefined ? Number(ctx.flags.steps) : undefined;
  if (steps !== undefined && !(Number.isInteger(steps) && steps >= 1)) {
    throw new AtomError("ATOM_PARAMS_INVALID", "invalid --steps", {
      expected: "a whole number of at least 1",
      found: JSON.stringify(ctx.flags.steps),
    });
  }
  const trail = await ctx.trail();
  const options = await trailOptions(ctx);
  let to: string | Record<string, string> | undefined = ctx.flags.to;
  let names: string[];
  const fleet = ctx.flags.to ? await readFleet(trail, ctx.flags.to).catch(() => undefined) : undefined;
  if (fleet) {
    // back to what a fleet run deployed: on each of its hosts, that host's run
    const perHost: Record<string, string> = {};
    for (const r of fleet.runs) if (r.mode === "run") perHost[r.host] = r.runId;
    to = perHost;
    names = ctx.flags.host.length
      ? (await ctx.selectedHosts()).map((h) => h.host.name)
      : Object.keys(perHost);
  } else if (ctx.flags.to && !ctx.flags.host.length) {
    // back to a host run: on its host
    const run = (await trail.listRuns()).find((r) => r.runId === ctx.flags.to);
    names = run ? [run.host] : (await ctx.selectedHosts()).map((h) => h.host.name);
  } else {
    names = (await ctx.selectedHosts()).map((h) => h.host.name);
  }
  // connections open while the trail is read to plan
  ctx.warm(
    (await ctx.selectedHosts()).filter((h) => names.includes(h.host.name)),
    spread,
  );
  const result = await rollback(trail, names, {
    ...options,
    ...spread,
    atomName,
    ...(to !== undefined ? { to } : {}),
    ...(steps !== undefined ? { count: steps } : {}),
  });
  ctx.renderer.done();
  return reportFleet(ctx, result, "rollback");
}
