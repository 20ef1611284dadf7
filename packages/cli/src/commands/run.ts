import { AtomError, type FleetFailurePolicy, run, runFleet, type TrailStore } from "@atomkit/core";
import type { Context } from "../context";
import { EXIT } from "../exit-codes";
import { planCommand } from "./plan";

export async function runCommand(ctx: Context, atomName: string): Promise<number> {
  if (ctx.flags["dry-run"]) return planCommand(ctx, atomName);
  const atom = await ctx.atom(atomName);
  const names = await ctx.hostNames();
  const pool = await ctx.hosts();
  const hosts = [];
  for (const n of names) hosts.push(await pool.get(n));
  const trail = await ctx.trail();
  await refuseUnfinished(
    trail,
    hosts.map((h) => h.name),
  );
  const common = {
    meta: { vars: ctx.vars() },
    trail,
    signal: ctx.signal,
    onEvent: (e: Parameters<typeof ctx.renderer.event>[0]) => ctx.renderer.event(e),
    lock: ctx.lockSettings(),
    force: ctx.flags.force,
  };
  if (hosts.length === 1) {
    const result = await run(atom, { ...common, host: hosts[0]! });
    ctx.renderer.done();
    if (result.status === "committed") return EXIT.ok;
    if (result.error) ctx.io.stderr.write(`\n${result.error.message}\n`);
    if (result.status === "rollback-failed") {
      ctx.io.stderr.write(
        `\nthe host is in a mixed state; still applied: ${result.stillApplied.join(", ")}\nfix the cause, then: atomkit undo ${result.runId}   (or atomkit recover ${result.runId})\n`,
      );
      return EXIT.rollbackFailed;
    }
    return EXIT.rolledBack;
  }
  const fleet = await runFleet(atom, hosts, {
    ...common,
    ...(ctx.flags.batch ? { batch: parseBatch(ctx.flags.batch) } : {}),
    ...(ctx.flags["max-failures"] ? { maxFailures: Number(ctx.flags["max-failures"]) } : {}),
    ...(ctx.flags.concurrency ? { concurrency: Number(ctx.flags.concurrency) } : {}),
    onFailure: (ctx.flags["on-failure"] as FleetFailurePolicy | undefined) ?? "rollback-all",
    onBatch: (b) => ctx.renderer.note(`batch ${b.index + 1}: ${b.hosts.join(", ")}`),
  });
  ctx.renderer.done();
  const lines = fleet.hosts.map(
    (h) => `  ${h.host.padEnd(28)} ${h.state}${h.error ? `: ${h.error.shortMessage}` : ""}`,
  );
  ctx.io.stderr.write(`\nfleet ${fleet.status} (${fleet.failures} failed)\n${lines.join("\n")}\n`);
  for (const h of fleet.hosts)
    if (h.result?.error && h.state !== "committed") ctx.io.stderr.write(`\n${h.result.error.message}\n`);
  return fleet.status === "committed"
    ? EXIT.ok
    : fleet.status === "rollback-failed"
      ? EXIT.rollbackFailed
      : EXIT.rolledBack;
}

/** `--batch 2` or `--batch 1,25%,100%`. */
export function parseBatch(text: string): number | Array<number | `${number}%`> {
  const parts = text.split(",").map((p) => p.trim());
  const parsed = parts.map((p) => (p.endsWith("%") ? (p as `${number}%`) : Number(p)));
  return parsed.length === 1 && typeof parsed[0] === "number" ? parsed[0] : parsed;
}

/**
 * A host whose last run died (or is still going) is not deployed to again until that run is
 * recovered: a new run would change the state recover must observe, and recover would then act on it.
 */
async function refuseUnfinished(trail: TrailStore, hosts: string[]): Promise<void> {
  const unfinished = (await trail.listRuns()).filter(
    (r) => r.status === "unfinished" && hosts.includes(r.host),
  );
  if (!unfinished.length) return;
  const r = unfinished[0]!;
  throw new AtomError(
    "ATOM_LOCKED",
    `host "${r.host}" has an unfinished run ${r.runId} (${r.atom}, started ${r.startedAt})`,
    {
      host: r.host,
      expected: "no unfinished run on the host",
      found: unfinished.map((u) => `${u.runId} on ${u.host}`).join(", "),
      hint: `its process died or is still running: \`atomkit recover ${r.runId}\` once it is not running`,
    },
  );
}
