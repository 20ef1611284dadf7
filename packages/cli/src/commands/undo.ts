import { recover, recoverFleet, type TrailRunOptions, undoFleet, undoRun } from "@atomkit/core";
import type { Context } from "../context";
import { EXIT } from "../exit-codes";
import { reportFleet, reportRun } from "../report";

/** What undo, rollback and recover share: the hosts, the deploy file's atoms, the roots, the flags. */
export async function trailOptions(
  ctx: Context,
): Promise<
  Omit<TrailRunOptions, "host"> & { host: (name: string) => Promise<import("@atomkit/core").Host> }
> {
  const pool = await ctx.hosts();
  const atoms = await ctx.atoms();
  const loaded = await ctx.loaded();
  const given = ctx.vars();
  return {
    host: (name) => pool.get(name),
    // undo and recover act on steps rebuilt from the deploy file, checked against the trail
    atom: (view) => atoms.forRun(view, given),
    ...(loaded.config.roots ? { roots: loaded.config.roots } : {}),
    force: ctx.flags.force,
    allowLaterRuns: ctx.flags["allow-later-runs"],
    lock: ctx.lockSettings(),
    onEvent: (e) => ctx.renderer.event(e),
  };
}

/** `atomkit undo <runId | fleetId>`: roll back a committed run (every host of a fleet run). */
export async function undoCommand(ctx: Context, id: string): Promise<number> {
  const spread = ctx.spread();
  const trail = await ctx.trail();
  const options = await trailOptions(ctx);
  if (await ctx.isFleet(id)) {
    const fleet = await undoFleet(trail, id, { ...options, ...spread });
    ctx.renderer.done();
    return reportFleet(ctx, fleet, "undo");
  }
  const result = await undoRun(trail, id, options);
  ctx.renderer.done();
  return reportRun(ctx, result, "undo");
}

/**
 * `atomkit recover [runId | fleetId]`: finish runs whose process died; named, also runs whose rollback
 * stopped (rollback-failed), once what stopped it is fixed.
 */
export async function recoverCommand(ctx: Context, id?: string): Promise<number> {
  const spread = ctx.spread();
  const trail = await ctx.trail();
  const options = { ...(await trailOptions(ctx)), rollbackCommitted: ctx.flags["rollback-committed"] };
  const out = (s: string) => ctx.io.stderr.write(`${s}\n`);
  let code: number = EXIT.ok;
  if (id && (await ctx.isFleet(id))) {
    const results = await recoverFleet(trail, id, { ...options, ...spread });
    ctx.renderer.done();
    if (!results.length) out(`fleet ${id} has no unfinished or rollback-failed host run`);
    for (const r of results) {
      out(
        `${r.runId} on ${r.host}: ${r.result ? `${r.result.found.replace(/-/g, " ")} → ${r.result.status}` : `refused: ${r.error?.shortMessage}`}`,
      );
      if (r.error) out(r.error.message);
      if (r.result?.status === "rollback-failed" || r.error) code = EXIT.rollbackFailed;
    }
    return code;
  }
  const results = await recover(trail, { ...options, ...(id ? { runId: id } : {}) });
  ctx.renderer.done();
  if (!results.length) ctx.renderer.note("no unfinished runs");
  // a file that fails to read may be a dead run too: never acted on, never silently passed over
  if (!id) {
    for (const r of (await trail.listRuns()).filter((x) => x.status === "corrupt"))
      out(`! trail file of ${r.runId} cannot be read, so it was not recovered: ${r.problem}`);
  }
  for (const r of results) {
    out(`${r.runId} on ${r.host}: ${r.found.replace(/-/g, " ")} → ${r.status}`);
    const c = reportRun(ctx, r, "recover");
    if (c !== EXIT.ok) code = c;
  }
  return code;
}
