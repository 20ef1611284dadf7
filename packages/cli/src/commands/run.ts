import { run, runFleet } from "@atomkit/core";
import type { Context } from "../context";
import { reportFleet, reportRun } from "../report";
import { planCommand } from "./plan";
import { retain } from "./prune";

/** `atomkit run <atom>`: one host is one run; several hosts are one fleet run (its own id). */
export async function runCommand(ctx: Context, atomName: string): Promise<number> {
  if (ctx.flags["dry-run"]) return planCommand(ctx, atomName);
  // every flag and var is checked before any host is touched
  const spread = ctx.spread();
  const policy = ctx.failurePolicy();
  const hosts = await ctx.selectedHosts();
  const built = await (await ctx.atoms()).forHosts(
    atomName,
    hosts.map((h) => h.key),
    ctx.vars(),
  );
  // every input is valid: connect while the trail opens
  ctx.warm(hosts, spread);
  const trail = await ctx.trail();
  const common = {
    trail,
    signal: ctx.signal,
    onEvent: (e: Parameters<typeof ctx.renderer.event>[0]) => ctx.renderer.event(e),
    lock: ctx.lockSettings(),
    force: ctx.flags.force,
  };
  if (hosts.length === 1) {
    const { key, host } = hosts[0]!;
    const b = built.get(key)!;
    const result = await run(b.atom, { ...common, host, meta: { ...b.meta } });
    ctx.renderer.done();
    const code = reportRun(ctx, result, "run");
    await retain(ctx);
    return code;
  }
  const byName = new Map(hosts.map((h) => [h.host.name, built.get(h.key)!]));
  const fleet = await runFleet(
    (h) => byName.get(h.name)!.atom,
    hosts.map((h) => h.host),
    { ...common, ...spread, ...policy, meta: (h) => ({ ...byName.get(h.name)!.meta }) },
  );
  ctx.renderer.done();
  const code = reportFleet(ctx, fleet, "run");
  await retain(ctx);
  return code;
}
