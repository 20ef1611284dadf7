import { newRunId } from "./_utils";
import { hostFor, type TrailRunOptions, trailEngine } from "./engine/from-trail";
import { isLive } from "./engine/state";
import type { ErrorInfo } from "./errors";
import { AtomError, type AtomErrorCode } from "./errors";
import { changesAfter } from "./history";
import { loadRun } from "./rebuild";
import type { RunResult } from "./run";
import {
  memoryTrail,
  type RunStatus,
  type RunView,
  runsWhere,
  type StepView,
  type TrailStore,
} from "./trail";
import { lockLikeRun, lockRecord, storeLockOf, takeStoreLock } from "./trail-lock";
import type { Json } from "./types";

/**
 * Rolls back a committed run later ("back to the previous release"): newest step first, each undo
 * verified. Refuses, before changing anything, when a step's state is no longer what the run left
 * (drift: someone changed it since) unless `force`, and when a later run of the same atom left changes
 * unless `allowLaterRuns`. Net-zero runs (rolled back, or committed and undone) never count. Recorded as
 * its own run (`mode: "undo"`, `undoOf: runId`).
 */
export async function undoRun(
  store: TrailStore,
  runId: string,
  options: TrailRunOptions,
): Promise<RunResult> {
  const first = await loadRun(store, runId);
  const host = await hostFor(options.host, first.run.host);
  const newId = newRunId();
  const note = `run ${newId}: undo of run ${runId}`;
  const storeLock = await takeStoreLock(store, [host.name], note, { held: options.storeLocked });
  const lease = await lockLikeRun(host, options.lock, first, note).catch(async (error) => {
    await storeLock?.release().catch(() => {});
    throw error;
  });
  const started = Date.now();
  try {
    // every check on the trail as it is once we hold the lock (another undo may have won the race)
    const view = await loadRun(store, runId);
    const live = await undoable(store, view);
    const engine = await trailEngine(view, live, host, store, options, {
      runId: newId,
      lock: lockRecord(lease),
      fleet: options.fleet,
      storeLock: storeLockOf(store, host.name),
      override: { status: "applied", changed: true },
    });
    if (!options.allowLaterRuns) await refuseLaterRuns(store, view);
    // refuse before changing anything (or opening an undo run) when someone changed the host since
    if (!options.force) await engine.refuseDrift(view.end?.final);
    await engine.start(
      "undo",
      live.map((s, i) => ({
        name: s.name,
        kind: s.kind,
        phase: s.phase,
        title: s.title,
        params: s.params,
        ...(s.masked ? { masked: true } : {}),
        ...(s.package ? { package: s.package } : {}),
        ...(s.timeoutMs !== undefined ? { timeoutMs: s.timeoutMs } : {}),
        undoRetries: engine.entries[i]!.step.undoRetries,
        status: "applied",
        ...(view.end?.final?.[s.name] !== undefined ? { final: view.end.final[s.name] } : {}),
        ...(s.before !== undefined ? { before: s.before } : {}),
        ...(s.after !== undefined && s.status !== "undoing" ? { after: s.after } : {}),
      })),
      runId,
      view.run.meta,
    );
    const error = await engine.rollback({ force: options.force });
    const status: RunStatus = error ? "rollback-failed" : "rolled-back";
    await engine.end(status, error);
    return {
      runId: newId,
      atom: view.run.atom,
      host: host.name,
      status,
      steps: engine.entries.map((e) => e.rec),
      ...(error ? { error } : {}),
      stillApplied: engine.stillApplied(),
      durationMs: Date.now() - started,
      ...(engine.trailError ? { trailError: engine.trailError } : {}),
    };
  } finally {
    await lease?.release().catch(() => {});
    await storeLock?.release().catch(() => {});
  }
}

/** The steps of a run that undo would reverse, or a refusal saying why there are none to touch. */
async function undoable(store: TrailStore, view: RunView): Promise<StepView[]> {
  const { runId } = view.run;
  const refuse = (code: AtomErrorCode, message: string, hint?: string) =>
    new AtomError(code, message, { atom: view.run.atom, host: view.run.host, hint });
  if (view.run.mode === "undo")
    throw refuse(
      "ATOM_NOT_UNDOABLE",
      `run ${runId} is itself an undo`,
      "undo the original run again, or run the atom anew",
    );
  if (!view.end)
    throw refuse("ATOM_NOT_UNDOABLE", `run ${runId} is unfinished`, `run \`atomkit recover ${runId}\` first`);
  const undos = await runsWhere(store, { undoOf: runId });
  const done = undos.find((r) => r.status === "rolled-back");
  if (done) throw refuse("ATOM_NOT_UNDOABLE", `run ${runId} was already undone by run ${done.runId}`);
  const stuck = undos.find((r) => r.status === "rollback-failed" || r.status === "unfinished");
  if (stuck) {
    throw refuse(
      "ATOM_NOT_UNDOABLE",
      `undo run ${stuck.runId} of run ${runId} ended ${stuck.status}`,
      `finish that undo instead of starting another: \`atomkit recover ${stuck.runId}\``,
    );
  }
  if (view.end.status === "rollback-failed") {
    throw refuse(
      "ATOM_NOT_UNDOABLE",
      `run ${runId} ended rollback-failed: its own rollback is what is unfinished`,
      `fix what stopped it, then \`atomkit recover ${runId}\``,
    );
  }
  const live = view.steps.filter((s) => isLive(s));
  if (!live.length)
    throw refuse(
      "ATOM_NOT_UNDOABLE",
      `run ${runId} ended ${view.end.status} and has no applied change to undo`,
    );
  return live;
}

/** A later run of the same atom that is still live on the host is undone first (or rolled back past). */
async function refuseLaterRuns(store: TrailStore, view: RunView): Promise<void> {
  const later = changesAfter(
    await runsWhere(store, { host: view.run.host }),
    { runId: view.run.runId, host: view.run.host, startedAt: view.run.at },
    (r) => r.atom === view.run.atom,
  );
  if (!later.length) return;
  throw new AtomError(
    "ATOM_DRIFT",
    `run ${view.run.runId} is not the latest change of atom "${view.run.atom}" on host "${view.run.host}"`,
    {
      atom: view.run.atom,
      host: view.run.host,
      expected: "no later run of this atom that left changes (net-zero runs do not count)",
      found: later.map((r) => `${r.runId} (${r.status})`).join(", "),
      hint: `undo those first, or go back past them in one command: \`atomkit rollback ${view.run.atom} --to <the run to serve>\`; --allow-later-runs undoes this one anyway`,
    },
  );
}

/**
 * Read-only: whether the host still holds what a committed run left, step by step (no lock, nothing
 * written). What `atomkit status` shows next to the live release.
 */
export async function compareRun(
  store: TrailStore,
  runId: string,
  options: Pick<TrailRunOptions, "host" | "atom" | "steps" | "secrets" | "roots">,
): Promise<Array<{ step: string; matches: boolean; left?: Json; now?: Json; error?: ErrorInfo }>> {
  const view = await loadRun(store, runId);
  const host = await hostFor(options.host, view.run.host);
  const live = view.steps.filter((s) => isLive(s));
  const engine = await trailEngine(view, live, host, memoryTrail(), options, {
    runId,
    override: { status: "applied", changed: true },
  });
  return engine.compareLeft(view.end?.final);
}
