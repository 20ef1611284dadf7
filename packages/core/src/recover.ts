import { type BoundStep, Engine, type EngineOptions, type Entry } from "./engine";
import { AtomError, DriftError } from "./errors";
import type { RunEvent } from "./events";
import { changesAfter } from "./history";
import type { Host } from "./host";
import { loadRun, type RebuildOptions, rebuildSteps } from "./rebuild";
import { Redactor } from "./redact";
import type { LockSettings, RunResult } from "./run";
import { type RunStatus, type RunView, runsWhere, type StepView, type TrailStore } from "./trail";
import { lockLikeRun, refuseLive, takeStoreLock } from "./trail-lock";
import type { Json } from "./types";

export type { SecretValues } from "./rebuild";

export interface TrailRunOptions extends RebuildOptions {
  /** The host a run acted on, by the name recorded in its trail. */
  host: Host | ((name: string) => Host | Promise<Host>);
  /** Undo through drift (a state that is neither what the run left nor its before) instead of stopping. */
  force?: boolean;
  /**
   * Act although later runs left changes on the host (they are what recover or undo would observe).
   * Runs that are net zero (rolled back, or committed and undone) never count. Default false.
   */
  allowLaterRuns?: boolean;
  onEvent?: (event: RunEvent) => void;
  /** Default `{ name: "deploy" }`, as for `run`; a run's own recorded lock name always wins. */
  lock?: LockSettings | false;
  backoffMs?: number;
  abortGraceMs?: number;
  /** Undo runs: the fleet run they belong to. */
  fleet?: string;
  /** The caller holds the host's store lock already (a fleet command takes all its hosts' at once). */
  storeLocked?: boolean;
}

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

    for (const entry of engine.entries) {
      if (entry.rec.status === "applying") await engine.check(entry);
      else if (entry.rec.status === "undoing" || entry.rec.status === "undo-failed") {
        // the undo may have stopped half-way: the state may be neither after nor before, so this one
        // step is undone from what is there now rather than refused as drift
        delete entry.rec.after;
      }
    }

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

/**
 * An engine over recorded steps, each rebuilt and checked (`rebuildSteps`) and added in the state the
 * trail knows it in; `override` sets their status (an undo run starts from "applied").
 */
export async function trailEngine(
  view: RunView,
  recorded: readonly StepView[],
  host: Host,
  trail: TrailStore,
  options: Omit<TrailRunOptions, "host">,
  o: Pick<EngineOptions, "runId" | "recovering" | "lock" | "fleet" | "storeLock"> & {
    override?: Partial<Entry["rec"]>;
  },
): Promise<Engine> {
  const redactor = new Redactor();
  const bound = await rebuildSteps(view, recorded, options, redactor);
  const engine = new Engine({
    atom: view.run.atom,
    host,
    trail,
    redactor,
    onEvent: options.onEvent,
    backoffMs: options.backoffMs ?? 200,
    abortGraceMs: options.abortGraceMs ?? 5_000,
    runId: o.runId,
    recovering: o.recovering,
    lock: o.lock,
    fleet: o.fleet,
    storeLock: o.storeLock,
  });
  for (const [i, s] of recorded.entries())
    addRecorded(engine, bound[i]!, s, view.end?.final?.[s.name] ?? s.final, o.override);
  return engine;
}

/** Adds a recorded step to an engine in the state the trail knows it in. */
export function addRecorded(
  engine: Engine,
  step: BoundStep,
  s: StepView,
  final: Json | undefined,
  override: Partial<Entry["rec"]> = {},
): Entry {
  const entry = engine.add(step, {
    status: s.status,
    ...(s.before !== undefined ? { before: s.before as Json } : {}),
    ...(s.after !== undefined ? { after: s.after as Json } : {}),
    ...(s.changed !== undefined ? { changed: s.changed } : {}),
    ...(s.verified !== undefined ? { verified: s.verified } : {}),
    ...override,
  });
  if (final !== undefined) entry.final = final;
  return entry;
}

export async function hostFor(host: TrailRunOptions["host"], name: string): Promise<Host> {
  const h = typeof host === "function" ? await host(name) : host;
  if (h.name !== name) {
    throw new AtomError(
      "ATOM_INVALID_OPTION",
      `the run acted on host "${name}", but the host given is "${h.name}"`,
      {
        host: name,
        expected: name,
        found: h.name,
        hint: "give the host the run used (same name), or a function that maps host names to hosts",
      },
    );
  }
  return h;
}
