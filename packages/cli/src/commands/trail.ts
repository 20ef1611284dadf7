import { foldRun } from "@atomkit/core";
import { createColors } from "picocolors";
import type { Context } from "../context";
import { EXIT } from "../exit-codes";
import { pickMode } from "../render";

const short = (v: unknown, n = 60) => {
  if (v === undefined) return "—";
  const s = JSON.stringify(v);
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
};
const dur = (a?: string, b?: string) =>
  a && b ? `${((Date.parse(b) - Date.parse(a)) / 1000).toFixed(1)}s` : "";

/** A table of runs, or one run's steps with before → after, status and durations. */
export async function trailCommand(ctx: Context, runId?: string): Promise<number> {
  const trail = await ctx.trail();
  const c = createColors(pickMode(ctx.io.stdout, false, ctx.io.env).color);
  const out = (s: string) => ctx.io.stdout.write(`${s}\n`);
  if (!runId) {
    const runs = await trail.listRuns();
    if (ctx.flags.json) {
      for (const r of runs) out(JSON.stringify(r));
      return EXIT.ok;
    }
    if (!runs.length) {
      out("no runs in the trail");
      return EXIT.ok;
    }
    out(
      c.bold(
        `${"RUN".padEnd(26)} ${"ATOM".padEnd(16)} ${"HOST".padEnd(24)} ${"MODE".padEnd(5)} ${"STATUS".padEnd(16)} STARTED                   TIME`,
      ),
    );
    for (const r of runs) {
      const color = r.status === "committed" ? c.green : r.status === "rolled-back" ? c.yellow : c.red;
      out(
        `${r.runId.padEnd(26)} ${r.atom.padEnd(16)} ${r.host.padEnd(24)} ${r.mode.padEnd(5)} ${color(r.status.padEnd(16))} ${r.startedAt} ${dur(r.startedAt, r.endedAt)}${r.undoOf ? c.dim(` undo of ${r.undoOf}`) : ""}${r.recovered ? c.dim(" (recovered)") : ""}`,
      );
    }
    return EXIT.ok;
  }
  const view = foldRun(await trail.readRun(runId));
  if (!view) {
    ctx.io.stderr.write(`no run ${runId} in the trail\n`);
    return EXIT.invalid;
  }
  if (ctx.flags.json) {
    out(JSON.stringify(view));
    return EXIT.ok;
  }
  out(
    `${c.bold(view.run.runId)} ${view.run.mode} of ${view.run.atom} on ${view.run.host}, started ${view.run.at} by pid ${view.run.pid} on ${view.run.machine}`,
  );
  out(
    `status: ${view.end?.status ?? c.red("unfinished (run `atomkit recover`)")}${view.end?.recovered ? " (decided by recover)" : ""}`,
  );
  for (const s of view.steps) {
    out(
      `  ${s.name.padEnd(14)} ${c.dim(s.kind.padEnd(16))} ${s.status.padEnd(16)} ${short(s.before)} → ${short(s.after)}${s.verified ? c.green(" verified") : ""}`,
    );
    if (s.error) out(`      ${c.red(s.error.message.split("\n")[0] ?? "")}`);
    if (s.undoError) out(`      ${c.red(`undo: ${s.undoError.message.split("\n")[0] ?? ""}`)}`);
  }
  if (view.end?.stillApplied?.length) out(c.red(`still applied: ${view.end.stillApplied.join(", ")}`));
  return EXIT.ok;
}
