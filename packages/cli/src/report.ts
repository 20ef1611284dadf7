import type { AtomError, FleetResult, RunResult } from "@atomkit/core";
import type { Context } from "./context";
import { EXIT, exitCodeOf } from "./exit-codes";

/** What a run or undo's outcome means for the user, on stderr, with commands that work; its exit code. */
export function reportRun(ctx: Context, result: RunResult, verb: "run" | "undo" | "recover"): number {
  const err = (s: string) => ctx.io.stderr.write(`${s}\n`);
  if (result.status !== "committed" && result.error && !(verb === "undo" && result.status === "rolled-back"))
    err(`\n${result.error.message}`);
  if (result.status === "rollback-failed") {
    err(
      `\nthe host is in a mixed state; still applied: ${result.stillApplied.join(", ") || "unknown"}\nfix what stopped it, then: atomkit recover ${result.runId}`,
    );
  }
  // last, where it is seen: the trail lacks the outcome, and the next run is refused until it has it
  trailProblem(ctx, result.trailError, result.runId);
  if (result.status === "rollback-failed") return EXIT.rollbackFailed;
  if (result.trailError) return EXIT.trail;
  if (result.status === "committed") return EXIT.ok;
  return verb === "run" ? EXIT.rolledBack : EXIT.ok;
}

/** A fleet's outcome, host by host, and the one command that acts on all of them. */
export function reportFleet(ctx: Context, fleet: FleetResult, verb: "run" | "undo" | "rollback"): number {
  const err = (s: string) => ctx.io.stderr.write(`${s}\n`);
  const lines = fleet.hosts.map((h) => {
    const why =
      h.error?.shortMessage ??
      (h.state === "rollback-failed" ? (h.undo ?? h.result)?.error?.shortMessage : undefined);
    return `  ${h.host.padEnd(28)} ${h.state}${why ? `: ${why.split("\n")[0]}` : ""}`;
  });
  err(
    `\n${verb === "run" ? "fleet" : verb} ${fleet.fleetId} ${fleet.status} (${fleet.failures} failed)\n${lines.join("\n")}`,
  );
  for (const h of fleet.hosts) {
    const r = h.undo ?? h.result;
    trailProblem(ctx, r?.trailError, r?.runId ?? fleet.fleetId);
    if (r?.error && h.state !== "committed" && !(verb !== "run" && h.state === "rolled-back"))
      err(`\n${r.error.message}`);
    else if (h.error && h.state !== "not-run") err(`\n${h.error.message}`);
  }
  if (fleet.status === "rollback-failed") {
    err(`\nsome hosts are in a mixed state; fix what stopped them, then: atomkit recover ${fleet.fleetId}`);
    return EXIT.rollbackFailed;
  }
  if (fleet.hosts.some((h) => (h.undo ?? h.result)?.trailError)) return EXIT.trail;
  if (verb === "run") {
    if (fleet.status === "committed") {
      err(`to roll every host back later: atomkit undo ${fleet.fleetId}`);
      return EXIT.ok;
    }
    if (fleet.status === "partial") err(`some hosts committed; to undo them: atomkit undo ${fleet.fleetId}`);
    return EXIT.rolledBack;
  }
  // an undo or rollback that could not act on every host: the first refusal says why
  if (fleet.hosts.every((h) => h.state === "rolled-back")) return EXIT.ok;
  const refusal = fleet.hosts.find((h) => h.error)?.error;
  return refusal ? exitCodeOf(refusal) : EXIT.drift;
}

function trailProblem(ctx: Context, error: AtomError | undefined, runId: string): void {
  if (!error) return;
  ctx.io.stderr.write(
    `\n! the trail could not record everything: ${error.shortMessage}\n${error.hint ? `  fix: ${error.hint}\n` : ""}  the host is as reported above; once the trail can be written, run: atomkit recover ${runId}\n`,
  );
}
