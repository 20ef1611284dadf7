import { hostFor, type TrailRunOptions, trailEngine } from "./engine/from-trail";
import { AtomError, DriftError } from "./errors";
import { changesAfter } from "./history";
import { loadRun } from "./rebuild";
import type { RunResult } from "./run";
import { type RunStatus, type RunView, runsWhere, type TrailStore } from "./trail";
import { lockLikeRun, refuseLive, takeStoreLock } from "./trail-lock";

export type { TrailRunOptions } from "./engine/from-trail";
export type { SecretValues } from "./rebuild";

/** Options of `recover`: those of any trail-driven run, plus which run and whether to roll back a committed one. */
export interface RecoverOptions extends TrailRunOptions {
  /**
   * Only this run; default every unfinished run in the store. A run that ended `rollback-failed` is
   * finished only when named here: once you fixed what stopped its rollback.
   */
  runId?: string;
  /**
   * A run that died after its last step was applied but before it was marked committed is left
   * committed (its change is complete). Set this to roll it back instead. Default false.
   */
  rollbackCommitted?: boolean;
}

/** What `recover` returns: the run's result and what state the crashed run was `found` in. */
export interface RecoverResult extends RunResult {
  /**
   * What recover found: the process died while acting (`applying`/`undoing`), between steps, or after
   * the last step; or the run's rollback had stopped (`rollback-failed`) and recover finished it.
   */
  found:
    | "died-while-applying"
    | "died-between-steps"
    | "died-while-undoing"
    | "died-before-commit"
    | "rollback-failed";
}

/**
 * Finishes runs whose process died (a trail without an end record), and runs whose rollback stopped
 * (`rollback-failed`, named by id): re-observes the uncertain steps (check), then completes the rollback
 * with drift detection and verification, and writes the outcome to the same trail. Nothing is guessed:
 * every decision comes from a fresh observe, and every recorded step is rebuilt and checked first.
 */
export async function recover(store: TrailStore, options: RecoverOptions): Promise<RecoverResult[]> {
  const ids = options.runId
    ? [options.runId]
    : (await runsWhere(store, { status: "unfinished" })).map((r) => r.runId);
  const out: RecoverResult[] = [];
  for (const runId of ids) {
    const view = await loadRun(store, runId);
    refuseFinished(view, options.runId !== undefined);
    out.push(await recoverOne(store, view, options));
  }
  return out;
}

function refuseFinished(view: RunView, named: boolean, meanwhile = false): void {
  if (!view.end || (named && view.end.status === "rollback-failed")) return;
  const { runId } = view.run;
  throw new AtomError(
    "ATOM_NOT_UNDOABLE",
    `run ${runId} ${meanwhile ? "was finished meanwhile: it" : "is not unfinished: it"} ended ${view.end.status}`,
    {
      atom: view.run.atom,
      host: view.run.host,
      hint:
        view.end.status === "committed"
          ? `to roll back a committed run: \`atomkit undo ${runId}\` (or \`atomkit rollback\`)`
          : view.end.status === "rollback-failed"
            ? `name it to finish its rollback: \`atomkit recover ${runId}\``
            : "it is rolled back already: nothing to recover",
    },
  );
}

async function recoverOne(
  store: TrailStore,
  first: RunView,
  options: RecoverOptions,
): Promise<RecoverResult> {
  const host = await hostFor(options.host, first.run.host);
  const note = `recover of run ${first.run.runId}`;
  // Holding the store lock its controller held proves that controller gone (a live one holds it until
  // it ends), so its host lease need not go stale first: recover can run at once from another machine.
  const storeLock = await takeStoreLock(store, [host.name], note, { held: options.storeLocked });
  const ownerGone = first.run.storeLock !== undefined && (storeLock !== undefined || !!options.storeLocked);
  let lease: Awaited<ReturnType<typeof lockLikeRun>>;
  try {
    await refuseLive(host, first, ownerGone);
    lease = await lockLikeRun(host, options.lock, first, note, ownerGone);
  } catch (error) {
    await storeLock?.release().catch(() => {});
    throw error;
  }
  const started = Date.now();
  try {
    // decide from the trail as it is now that we hold the lock: another recover may have finished this
    // run, or a deploy may have started, while we were connecting
    const view = await loadRun(store, first.run.runId);
    refuseFinished(view, options.runId !== undefined, true);
    const later = changesAfter(await runsWhere(store, { host: view.run.host }), {
      runId: view.run.runId,
      host: view.run.host,
      startedAt: view.run.at,
    });
    if (later.length && !options.allowLaterRuns) {
      throw new DriftError(
        `${later.length} later run(s) left changes on the host since run ${view.run.runId}`,
        {
          atom: view.run.atom,
          host: view.run.host,
          expected: "no run on this host after the one being recovered, but net-zero ones",
          found: later.map((r) => `${r.runId} (${r.atom}, ${r.status})`).join(", "),
          hint: "recovering now would act on their state: undo them first, or inspect the host and recover with --allow-later-runs",
        },
      );
    }
    const engine = await trailEngine(view, view.steps, host, store, options, {
      runId: view.run.runId,
      recovering: true,
    });

    const resuming = view.end?.status === "rollback-failed";
    const undoing =
      view.run.mode === "undo" ||
      view.steps.some((s) => ["undoing", "undone", "undo-failed", "drift"].includes(s.status));
    const applying = view.steps.find((s) => s.status === "applying");
    const found: RecoverResult["found"] = resuming
      ? "rollback-failed"
      : undoing
        ? "died-while-undoing"
        : applying
          ? "died-while-applying"
          : view.steps.every((s) => s.status === "applied")
            ? "died-before-commit"
            : "died-between-steps";

    // what the dead process was doing: an apply is checked, a half-done undo is undone from what is there
    await engine.settleInterrupted();

    let status: RunStatus;
    let error: AtomError | undefined;
    if (found === "died-before-commit" && !options.rollbackCommitted) {
      status = "committed";
    } else {
      const reason = new AtomError(
        "ATOM_ABORTED",
        resuming
          ? `the rollback had stopped (${view.end?.error?.message.split("\n")[0] ?? "rollback-failed"}); recover finishes it`
          : `the process running this ${view.run.mode === "undo" ? "undo" : "run"} died (${found.replace(/-/g, " ")}); recover ${
              found === "died-before-commit"
                ? "rolls back the complete run as asked"
                : "finishes the rollback"
            }`,
        { atom: view.run.atom, host: host.name },
      );
      const rollbackError = await engine.rollback({ force: options.force, reason });
      status = rollbackError ? "rollback-failed" : "rolled-back";
      if (rollbackError) rollbackError.reason = reason;
      error = rollbackError ?? reason;
    }
    await engine.end(status, error);
    if (status !== "rollback-failed") await engine.cleanup();
    return {
      runId: view.run.runId,
      atom: view.run.atom,
      host: host.name,
      status,
      steps: engine.entries.map((e) => e.rec),
      ...(error ? { error } : {}),
      stillApplied: status === "committed" ? [] : engine.stillApplied(),
      durationMs: Date.now() - started,
      ...(engine.trailError ? { trailError: engine.trailError } : {}),
      found,
    };
  } finally {
    await lease?.release().catch(() => {});
    await storeLock?.release().catch(() => {});
  }
}
