import { compareRun, isAtomError, loadRun, type RunSummary } from "@atomkit/core";
import { liveRuns, undoneRuns } from "@atomkit/core/kit";
import { createColors } from "picocolors";
import type { RunMeta } from "../atoms";
import type { Context } from "../context";
import { EXIT } from "../exit-codes";
import { pickMode } from "../render";
import { trailOptions } from "./undo";

/**
 * `atomkit status [--host h] [--history]`: per host, what serves now — the live run of each atom, its
 * vars (e.g. version=v2), when and by whom — and whether the host still holds what that run left.
 */
export async function statusCommand(ctx: Context): Promise<number> {
  const trail = await ctx.trail();
  const runs = await trail.listRuns();
  const hosts = await ctx.selectedHosts();
  const options = await trailOptions(ctx);
  const c = createColors(pickMode(ctx.io.stdout, false, ctx.io.env).color);
  const out = (s: string) => ctx.io.stdout.write(`${s}\n`);
  let code: number = EXIT.ok;
  for (const { host } of hosts) {
    const mine = runs.filter((r) => r.host === host.name);
    const live = liveRuns(runs, { host: host.name });
    const byAtom = new Map<string, RunSummary>();
    for (const r of live) if (!byAtom.has(r.atom)) byAtom.set(r.atom, r);
    const problems = mine.filter((r) => r.status === "unfinished" || r.status === "rollback-failed");
    const entries = [];
    for (const r of byAtom.values()) {
      const view = await loadRun(trail, r.runId);
      const meta = (view.run.meta ?? {}) as Partial<RunMeta>;
      let matches: boolean | undefined;
      let mismatch: string[] = [];
      try {
        // a read-only look: from the deploy file when it can build the run's atom, else from the sealed
        // trail alone (a secret var not given now must not hide what serves)
        const steps = await compareRun(trail, r.runId, { ...options, host }).catch((error: unknown) => {
          if (isAtomError(error) && error.code === "ATOM_PARAMS_INVALID")
            return compareRun(trail, r.runId, { ...options, host, atom: undefined });
          throw error;
        });
        matches = steps.every((s) => s.matches);
        mismatch = steps.filter((s) => !s.matches).map((s) => s.step);
      } catch (error) {
        mismatch = [`cannot tell: ${isAtomError(error) ? error.shortMessage : String(error)}`];
      }
      if (matches === false) code = EXIT.drift;
      entries.push({
        atom: r.atom,
        runId: r.runId,
        ...(r.fleet ? { fleet: r.fleet } : {}),
        vars: meta.vars ?? {},
        secretVars: meta.secretVars ?? [],
        at: r.endedAt ?? r.startedAt,
        by: view.run.lock?.owner ?? `pid ${view.run.pid} on ${view.run.machine}`,
        matches: matches ?? null,
        ...(mismatch.length ? { differs: mismatch } : {}),
        earlier: live.filter((x) => x.atom === r.atom).length - 1,
      });
    }
    if (ctx.flags.json) {
      out(
        JSON.stringify({
          host: host.name,
          live: entries,
          unfinished: problems.map((p) => ({ runId: p.runId, atom: p.atom, status: p.status })),
          ...(ctx.flags.history ? { history: history(mine, runs) } : {}),
        }),
      );
      continue;
    }
    out(c.bold(c.cyan(host.name)));
    if (!entries.length) out(`  ${c.dim("nothing deployed by Atomkit is live here")}`);
    // runs recorded under the host's own name, before hosts were named by their key: still there
    const earlier = host.ownName !== host.name ? runs.filter((r) => r.host === host.ownName).length : 0;
    if (earlier && !(await ctx.hosts()).names().includes(host.ownName)) {
      out(
        c.dim(
          `  ${earlier} earlier run(s) are recorded as "${host.ownName}", its own name: atomkit status --host ${JSON.stringify(host.ownName)}`,
        ),
      );
    }
    for (const e of entries) {
      const vars = [
        ...Object.entries(e.vars).map(([k, v]) => `${k}=${v}`),
        ...e.secretVars.map((k) => `${k}=***`),
      ].join(" ");
      const state =
        e.matches === true
          ? c.green("as deployed")
          : e.matches === false
            ? c.red(`changed since: ${e.differs?.join(", ")}`)
            : c.yellow(e.differs?.join(", ") ?? "unknown");
      out(
        `  ${e.atom.padEnd(14)} ${vars || c.dim("(no vars)")}  ${c.dim(`run ${e.runId}${e.fleet ? ` (fleet ${e.fleet})` : ""}, ${e.at} by ${e.by}`)}`,
      );
      out(
        `  ${"".padEnd(14)} ${state}${e.earlier ? c.dim(`; ${e.earlier} earlier release(s) to roll back to`) : c.dim("; nothing earlier to roll back to")}`,
      );
    }
    for (const p of problems) {
      code = EXIT.rollbackFailed;
      out(c.red(`  ! run ${p.runId} (${p.atom}) is ${p.status}: atomkit recover ${p.runId}`));
    }
    if (ctx.flags.history) for (const line of history(mine, runs)) out(`  ${c.dim(line)}`);
  }
  const corrupt = runs.filter((r) => r.status === "corrupt");
  for (const r of corrupt) ctx.io.stderr.write(`! trail file of ${r.runId} cannot be read: ${r.problem}\n`);
  return code;
}

/** One line per run of the host, oldest first: what it did, and what undid it. */
function history(mine: RunSummary[], all: RunSummary[]): string[] {
  const undone = undoneRuns(all);
  return mine.map((r) => {
    const vars = Object.entries(((r.meta ?? {}) as Partial<RunMeta>).vars ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    const link = r.undoOf
      ? ` undo of ${r.undoOf}`
      : undone.has(r.runId)
        ? ` (undone by ${undone.get(r.runId)})`
        : "";
    return `${r.startedAt}  ${r.runId}  ${r.atom} ${r.mode} ${r.status}${vars ? `  ${vars}` : ""}${link}`;
  });
}
