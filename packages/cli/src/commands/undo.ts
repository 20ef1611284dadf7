import { foldRun, recover, type TrailStore, undoRun } from "@atomkit/core";
import type { Vars } from "../config";
import type { Context } from "../context";
import { EXIT } from "../exit-codes";

/** `atomkit undo <runId>`: roll back a committed run, refusing on drift unless --force. */
export async function undoCommand(ctx: Context, runId: string): Promise<number> {
  const trail = await ctx.trail();
  const secrets = await ctx.registerKinds(await recordedVars(trail, runId));
  const pool = await ctx.hosts();
  const result = await undoRun(trail, runId, {
    secrets,
    host: (name) => pool.get(name),
    force: ctx.flags.force,
    lock: ctx.lockSettings(),
    onEvent: (e) => ctx.renderer.event(e),
  });
  ctx.renderer.done();
  if (result.status === "rolled-back") return EXIT.ok;
  if (result.error) ctx.io.stderr.write(`\n${result.error.message}\n`);
  return EXIT.rollbackFailed;
}

/** `atomkit recover [runId]`: finish runs whose process died. */
export async function recoverCommand(ctx: Context, runId?: string): Promise<number> {
  const trail = await ctx.trail();
  const ids = runId
    ? [runId]
    : (await trail.listRuns()).filter((r) => r.status === "unfinished").map((r) => r.runId);
  let secrets = await ctx.registerKinds();
  for (const id of ids) secrets = await ctx.registerKinds(await recordedVars(trail, id));
  const pool = await ctx.hosts();
  const results = await recover(trail, {
    secrets,
    host: (name) => pool.get(name),
    ...(runId ? { runId } : {}),
    force: ctx.flags.force,
    rollbackCommitted: ctx.flags["rollback-committed"],
    lock: ctx.lockSettings(),
    onEvent: (e) => ctx.renderer.event(e),
  });
  ctx.renderer.done();
  if (!results.length) ctx.renderer.note("no unfinished runs");
  let code: number = EXIT.ok;
  for (const r of results) {
    ctx.io.stderr.write(`${r.runId} on ${r.host}: ${r.found.replace(/-/g, " ")} → ${r.status}\n`);
    if (r.status === "rollback-failed") {
      if (r.error) ctx.io.stderr.write(`${r.error.message}\n`);
      code = EXIT.rollbackFailed;
    }
  }
  return code;
}

/** The `--var`s a run was made with, as `atomkit run` recorded them in the trail. */
async function recordedVars(trail: TrailStore, runId: string): Promise<Vars> {
  const meta = foldRun(await trail.readRun(runId))?.run.meta as { vars?: Vars } | undefined;
  return meta?.vars ?? {};
}
