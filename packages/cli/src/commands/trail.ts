import { readFleet } from "@atomkit/core";
import { foldRun } from "@atomkit/core/kit";
import { createColors } from "picocolors";
import type { RunMeta } from "../atoms";
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

/** A table of runs (of the --host hosts), or one run's steps with before → after, status and durations. */
export async function trailCommand(ctx: Context, runId?: string): Promise<number> {
  const trail = await ctx.trail();
  const c = createColors(pickMode(ctx.io.stdout, false, ctx.io.env).color);
  const out = (s: string) => ctx.io.stdout.write(`${s}\n`);
  if (!runId) {
    // --host: the runs recorded under those host names (the deploy file's keys)
    const hosts = ctx.flags.host.flatMap((h) => h.split(",")).filter(Boolean);
    const runs = (await trail.listRuns()).filter((r) => !hosts.length || hosts.includes(r.host));
    if (ctx.flags.json) {
      for (const r of runs) out(JSON.stringify(r));
      return EXIT.ok;
    }
    if (!runs.length) {
      out(hosts.length ? `no runs of ${hosts.join(", ")} in the trail` : "no runs in the trail");
      return EXIT.ok;
    }
    out(
      c.bold(
        `${"RUN".padEnd(24)} ${"ATOM".padEnd(12)} ${"HOST".padEnd(16)} ${"MODE".padEnd(5)} ${"STATUS".padEnd(15)} ${"STARTED".padEnd(20)} VARS`,
      ),
    );
    for (const r of runs) {
      const color = r.status === "committed" ? c.green : r.status === "rolled-back" ? c.yellow : c.red;
      const meta = (r.meta ?? {}) as Partial<RunMeta>;
      const vars = [
        ...Object.entries(meta.vars ?? {}).map(([k, v]) => `${k}=${v}`),
        ...(meta.secretVars ?? []).map((k) => `${k}=***`),
      ].join(" ");
      out(
        `${r.runId.padEnd(24)} ${r.atom.padEnd(12)} ${r.host.padEnd(16)} ${r.mode.padEnd(5)} ${color(r.status.padEnd(15))} ${r.startedAt.slice(0, 19).padEnd(20)} ${vars}${r.undoOf ? c.dim(` undo of ${r.undoOf}`) : ""}${r.fleet ? c.dim(` fleet ${r.fleet}`) : ""}${r.recovered ? c.dim(" (recovered)") : ""}${r.problem ? c.red(` ${r.problem}`) : ""} ${c.dim(dur(r.startedAt, r.endedAt))}`,
      );
    }
    return EXIT.ok;
  }
  const fleet = await readFleet(trail, runId).catch(() => undefined);
  if (fleet) {
    if (ctx.flags.json) {
      out(JSON.stringify(fleet));
      return EXIT.ok;
    }
    out(
      `${c.bold(runId)} fleet ${fleet.fleet.mode} of ${fleet.fleet.atom} on ${fleet.fleet.hosts.length} host(s), started ${fleet.fleet.at}${fleet.fleet.undoOf ? `, undo of ${fleet.fleet.undoOf}` : ""}`,
    );
    out(`status: ${fleet.end?.status ?? c.red("unfinished")}`);
    for (const host of fleet.fleet.hosts) {
      const r = fleet.runs.filter((x) => x.host === host);
      out(
        `  ${host.padEnd(24)} ${r.map((x) => `${x.runId} ${x.mode} ${x.status}`).join("; ") || c.dim("not run")}`,
      );
    }
    return EXIT.ok;
  }
  const view = foldRun(await trail.readRun(runId), runId);
  if (!view) {
    ctx.io.stderr.write(`no run ${runId} in the trail\n`);
    return EXIT.invalid;
  }
  if (ctx.flags.json) {
    out(JSON.stringify(view));
    return EXIT.ok;
  }
  const meta = (view.run.meta ?? {}) as Partial<RunMeta>;
  out(
    `${c.bold(view.run.runId)} ${view.run.mode} of ${view.run.atom} on ${view.run.host}, started ${view.run.at} by ${view.run.lock?.owner ?? "?"} (pid ${view.run.pid} on ${view.run.machine})${view.run.fleet ? `, fleet ${view.run.fleet}` : ""}`,
  );
  const vars = Object.entries(meta.vars ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const k of meta.secretVars ?? []) vars.push(`${k}=***`);
  if (vars.length) out(`vars: ${vars.join(" ")}`);
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
