import { getPath, newRunId } from "./_utils";
import { type Atom, stepsOf } from "./atom";
import { type BoundStep, Engine, type Entry, isLive } from "./engine";
import { AtomError, type AtomErrorCode, LockedError } from "./errors";
import type { RunEvent } from "./events";
import type { Host, Lease } from "./host";
import { validateParams } from "./params";
import { Redactor } from "./redact";
import { resolveKind } from "./registry";
import { type LockSettings, type RunResult, takeLock } from "./run";
import type { AnyStepKind } from "./step";
import { foldRun, type RunStatus, type RunView, type StepView, type TrailStore } from "./trail";
import type { Json } from "./types";

export interface TrailRunOptions {
  /** The host a run acted on, by the name recorded in its trail. */
  host: Host | ((name: string) => Host | Promise<Host>);
  /** Step kinds to rebuild steps from, on top of those given to `registerSteps`. */
  steps?: readonly AnyStepKind[];
  /** Undo through drift instead of stopping. Default false. */
  force?: boolean;
  /**
   * Secret param values, which the trail never holds, by step name and dotted path:
   * `{ stop: { "secretEnv.TOKEN": "…" } }`. Given back to the rebuilt steps (a restart that needs them).
   */
  secrets?: SecretValues | ((atom: string) => SecretValues | undefined);
  onEvent?: (event: RunEvent) => void;
  /** Default `{ name: "deploy" }`, as for `run`. */
  lock?: LockSettings | false;
  backoffMs?: number;
  abortGraceMs?: number;
}

/** Secret param values by step name, then dotted path. */
export type SecretValues = Record<string, Record<string, unknown>>;

export interface RecoverOptions extends TrailRunOptions {
  /** Only this run; default every unfinished run in the store. */
  runId?: string;
  /**
   * A run that died after its last step was applied but before it was marked committed is left
   * committed (its change is complete). Set this to roll it back instead. Default false.
   */
  rollbackCommitted?: boolean;
}

export interface RecoverResult extends RunResult {
  /** What recover found: the process died while acting (`applying`/`undoing`), between steps, or after the last step. */
  found: "died-while-applying" | "died-between-steps" | "died-while-undoing" | "died-before-commit";
}

/**
 * Finishes runs whose process died (a trail without an end record): re-observes the uncertain step
 * (check), then completes the rollback with drift detection and verification, and writes the outcome to
 * the same trail. Nothing is guessed: every decision comes from a fresh observe.
 */
export async function recover(store: TrailStore, options: RecoverOptions): Promise<RecoverResult[]> {
  const ids = options.runId
    ? [options.runId]
    : (await store.listRuns()).filter((r) => r.status === "unfinished").map((r) => r.runId);
  const out: RecoverResult[] = [];
  for (const runId of ids) {
    const view = await load(store, runId);
    if (view.end) {
      throw new AtomError(
        "ATOM_NOT_UNDOABLE",
        `run ${runId} is not unfinished: it ended ${view.end.status}`,
        {
          atom: view.run.atom,
          host: view.run.host,
          hint:
            view.end.status === "committed"
              ? "to roll back a committed run use `atomkit undo <runId>`"
              : undefined,
        },
      );
    }
    out.push(await recoverOne(store, view, options));
  }
  return out;
}

async function recoverOne(
  store: TrailStore,
  first: RunView,
  options: RecoverOptions,
): Promise<RecoverResult> {
  const host = await hostFor(options.host, first.run.host);
  const lease = await lockFor(host, options.lock, first.run.runId);
  // decide from the trail as it is now that we hold the lock: another recover may have finished this
  // run, or a deploy may have started, while we were connecting
  let view: RunView;
  try {
    view = await load(store, first.run.runId);
    if (view.end) {
      throw new AtomError(
        "ATOM_NOT_UNDOABLE",
        `run ${view.run.runId} was finished meanwhile: it ended ${view.end.status}`,
        {
          atom: view.run.atom,
          host: view.run.host,
        },
      );
    }
    // A run started on this host after the dead one has changed the state recover would observe:
    // check would take that run's result for the dead run's, and rollback would undo it.
    const later = (await store.listRuns()).filter(
      (r) =>
        r.host === view.run.host &&
        r.runId !== view.run.runId &&
        r.startedAt > view.run.at &&
        r.undoOf !== view.run.runId,
    );
    if (later.length && !options.force) {
      throw new AtomError(
        "ATOM_DRIFT",
        `run ${view.run.runId} died, but ${later.length} later run(s) acted on the host since`,
        {
          atom: view.run.atom,
          host: view.run.host,
          expected: "no run on this host after the one being recovered",
          found: later.map((r) => `${r.runId} (${r.atom}, ${r.status})`).join(", "),
          hint: "recovering now would act on their state: inspect the host, then recover with force (--force) if the dead run's steps still need undoing",
        },
      );
    }
  } catch (error) {
    await lease?.release().catch(() => {});
    throw error;
  }
  const started = Date.now();
  try {
    const engine = engineFor(store, view, host, options, view.run.runId, true);
    for (const s of view.steps) {
      const entry = engine.add(bindFromTrail(s, view, options), recordOf(s));
      if (s.final !== undefined) entry.final = s.final; // a dead undo run: what the undone run left
    }

    const undoing =
      view.run.mode === "undo" ||
      view.steps.some((s) => ["undoing", "undone", "undo-failed", "drift"].includes(s.status));
    const applying = view.steps.find((s) => s.status === "applying");
    const found: RecoverResult["found"] = undoing
      ? "died-while-undoing"
      : applying
        ? "died-while-applying"
        : view.steps.every((s) => s.status === "applied")
          ? "died-before-commit"
          : "died-between-steps";

    // check the steps the dead process was acting on
    for (const entry of engine.entries) {
      if (entry.rec.status === "applying") await engine.check(entry);
      else if (entry.rec.status === "undoing") {
        // the undo may have stopped half-way: the state may be neither after nor before, so this
        // one step is undone from what is there now rather than refused as drift
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
        `the process running this ${view.run.mode === "undo" ? "undo" : "run"} died (${found.replace(/-/g, " ")}); recover ${
          found === "died-before-commit" ? "rolls back the complete run as asked" : "finishes the rollback"
        }`,
        { atom: view.run.atom, host: host.name },
      );
      const rollbackError = await engine.rollback({ force: options.force, reason });
      status = rollbackError ? "rollback-failed" : "rolled-back";
      if (rollbackError) rollbackError.reason = reason;
      error = rollbackError ?? reason;
    }
    await engine.end(status, error);
    return {
      runId: view.run.runId,
      atom: view.run.atom,
      host: host.name,
      status,
      steps: engine.entries.map((e) => e.rec),
      ...(error ? { error } : {}),
      stillApplied: status === "committed" ? [] : engine.stillApplied(),
      durationMs: Date.now() - started,
      found,
    };
  } finally {
    await lease?.release().catch(() => {});
  }
}

/**
 * Rolls back a committed run later ("back to the previous release"): newest step first, refusing with
 * `ATOM_DRIFT` when a step's state is no longer what the run left (someone deployed since) unless
 * `force`; each undo verified. Recorded as its own run (`mode: "undo"`, `undoOf: runId`).
 */
export async function undoRun(
  store: TrailStore,
  runId: string,
  options: TrailRunOptions,
): Promise<RunResult> {
  const host = await hostFor(options.host, (await load(store, runId)).run.host);
  const lease = await lockFor(host, options.lock, runId);
  // every check on the trail as it is once we hold the lock (another undo may have won the race)
  let view: RunView;
  let live: StepView[];
  try {
    view = await load(store, runId);
    const v = view;
    const refuse = (code: AtomErrorCode, message: string, hint?: string) =>
      new AtomError(code, message, { atom: v.run.atom, host: v.run.host, hint });
    if (view.run.mode === "undo")
      throw refuse(
        "ATOM_NOT_UNDOABLE",
        `run ${runId} is itself an undo`,
        "undo the original run again, or run the atom anew",
      );
    if (!view.end)
      throw refuse(
        "ATOM_NOT_UNDOABLE",
        `run ${runId} is unfinished`,
        `run \`atomkit recover ${runId}\` first`,
      );
    const undone = (await store.listRuns()).find((r) => r.undoOf === runId && r.status === "rolled-back");
    if (undone) throw refuse("ATOM_NOT_UNDOABLE", `run ${runId} was already undone by run ${undone.runId}`);
    live = view.steps.filter((s) => isLive(s));
    if (!live.length)
      throw refuse(
        "ATOM_NOT_UNDOABLE",
        `run ${runId} ended ${view.end.status} and has no applied change to undo`,
      );
  } catch (error) {
    await lease?.release().catch(() => {});
    throw error;
  }
  const started = Date.now();
  const newId = newRunId();
  try {
    const engine = engineFor(store, view, host, options, newId, false);
    for (const s of live) {
      const entry = engine.add(bindFromTrail(s, view, options), {
        ...recordOf(s),
        status: "applied",
        changed: true,
      });
      const final = view.end?.final?.[s.name] ?? s.final;
      if (final !== undefined) entry.final = final;
    }
    // refuse before changing anything (or opening an undo run) when someone changed the host since
    if (!options.force) await engine.refuseDrift(view.end.final);
    await engine.start(
      "undo",
      live.map((s) => ({
        name: s.name,
        kind: s.kind,
        phase: s.phase,
        title: s.title,
        params: s.params,
        ...(s.package ? { package: s.package } : {}),
        ...(s.timeoutMs !== undefined ? { timeoutMs: s.timeoutMs } : {}),
        ...(s.undoRetries !== undefined ? { undoRetries: s.undoRetries } : {}),
        status: "applied",
        ...(view.end?.final?.[s.name] !== undefined ? { final: view.end.final[s.name] } : {}),
        ...(s.before !== undefined ? { before: s.before } : {}),
        ...(s.after !== undefined && s.status !== "undoing" ? { after: s.after } : {}),
      })),
      runId,
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
    };
  } finally {
    await lease?.release().catch(() => {});
  }
}

// --- Internal helpers ---

async function load(store: TrailStore, runId: string): Promise<RunView> {
  const view = foldRun(await store.readRun(runId));
  if (!view) {
    throw new AtomError("ATOM_RUN_NOT_FOUND", `no run ${runId} in the trail`, {
      hint: "list runs with `atomkit trail`; check the trail directory (--trail)",
    });
  }
  return view;
}

async function hostFor(host: TrailRunOptions["host"], name: string): Promise<Host> {
  const h = typeof host === "function" ? await host(name) : host;
  if (h.name !== name) {
    throw new AtomError(
      "ATOM_PARAMS_INVALID",
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

function engineFor(
  store: TrailStore,
  view: RunView,
  host: Host,
  o: TrailRunOptions,
  runId: string,
  recovering: boolean,
) {
  return new Engine({
    runId,
    atom: view.run.atom,
    host,
    trail: store,
    redactor: secretsRedactor(secretsOf(o, view.run.atom)),
    onEvent: o.onEvent,
    backoffMs: o.backoffMs ?? 200,
    abortGraceMs: o.abortGraceMs ?? 5_000,
    recovering,
  });
}

function bindFromTrail(s: StepView, view: RunView, options: TrailRunOptions): BoundStep {
  const definition = resolveKind(
    s.kind,
    { step: s.name, runId: view.run.runId, package: s.package },
    options.steps,
  );
  const secrets = secretsOf(options, view.run.atom)?.[s.name];
  return {
    name: s.name,
    kind: s.kind,
    phase: s.phase,
    title: s.title,
    // stored params are the validated ones minus secrets: not validated again (a secret is missing)
    params: secrets ? withPaths(s.params, secrets) : s.params,
    definition,
    ...(s.timeoutMs !== undefined ? { timeoutMs: s.timeoutMs } : {}),
    retries: 0,
    undoRetries: s.undoRetries ?? 2,
    // given-back secrets stay out of this run's trail too
    secret: secrets ? Object.keys(secrets) : [],
  };
}

/** Secrets never reached the trail; those given back by the caller are masked like a run's own. */
function secretsOf(o: TrailRunOptions, atom: string): SecretValues | undefined {
  return typeof o.secrets === "function" ? o.secrets(atom) : o.secrets;
}

function secretsRedactor(secrets: SecretValues | undefined): Redactor {
  const r = new Redactor();
  for (const values of Object.values(secrets ?? {})) r.add({ values: Object.values(values) }, ["values"]);
  return r;
}

/** A copy of `obj` with `values` set at their dotted paths. */
function withPaths(obj: Json, values: Record<string, unknown>): Json {
  const copy = (obj && typeof obj === "object" ? structuredClone(obj) : {}) as Record<string, unknown>;
  for (const [path, value] of Object.entries(values)) {
    const parts = path.split(".");
    let cur = copy;
    for (const part of parts.slice(0, -1)) {
      if (!cur[part] || typeof cur[part] !== "object") cur[part] = {};
      cur = cur[part] as Record<string, unknown>;
    }
    cur[parts.at(-1)!] = value;
  }
  return copy as Json;
}

function recordOf(s: StepView): Partial<Entry["rec"]> {
  return {
    status: s.status,
    ...(s.before !== undefined ? { before: s.before as Json } : {}),
    ...(s.after !== undefined ? { after: s.after as Json } : {}),
    ...(s.changed !== undefined ? { changed: s.changed } : {}),
    ...(s.verified !== undefined ? { verified: s.verified } : {}),
  };
}

/** Takes the host lock; a lease left by the very run being recovered, whose process is dead, is broken. */
async function lockFor(
  host: Host,
  lock: LockSettings | false | undefined,
  runId: string,
): Promise<Lease | undefined> {
  try {
    return await takeLock(host, lock, `recover/undo of run ${runId}`);
  } catch (error) {
    if (!(error instanceof LockedError) || lock === false) throw error;
    const note = (error.holder as LockedError["holder"] & { note?: string }).note ?? "";
    // the dead run's own lease (its process is gone from this machine, so the lease is stale) is
    // taken over; any other holder is respected
    const own = note.split(/\s+/).includes(runId);
    if (!(own && error.stale)) throw error;
    return takeLock(host, { ...(lock ?? {}), breakStale: true }, `recover/undo of run ${runId}`);
  }
}

/**
 * The secret param values of an atom's steps (by step name and dotted path), which the trail never
 * holds: give them to `undoRun`/`recover` as `secrets` when their undo needs them.
 */
export async function atomSecrets(a: Atom): Promise<SecretValues> {
  const out: SecretValues = {};
  for (const { step } of stepsOf(a)) {
    const paths = [...(step.definition.secret ?? []), ...(step.options.secret ?? [])];
    if (!paths.length) continue;
    const v = await validateParams(step);
    if (v.issues) continue;
    const values: Record<string, unknown> = {};
    for (const path of paths) {
      const value = getPath(v.value, path);
      if (value !== undefined) values[path] = value;
    }
    if (Object.keys(values).length) out[step.name] = values;
  }
  return out;
}
