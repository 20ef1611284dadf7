import { type BoundStep, Engine, type EngineOptions, type Entry } from "../engine";
import { AtomError } from "../errors";
import type { RunEvent } from "../events";
import type { Host } from "../host";
import { type RebuildOptions, rebuildSteps } from "../rebuild";
import { Redactor } from "../redact";
import type { LockSettings } from "../run";
import type { RunView, StepView, TrailStore } from "../trail";
import type { Json } from "../types";

// An engine over a run read back from the trail, for `recover`, `undoRun` and `compareRun`: every
// recorded step rebuilt and checked first (a trail is evidence, never a command), and the host the run
// acted on, by name.

/** Options shared by the runs a trail drives (`recover`, `undoRun`): the host, lock, events and rebuild options. */
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
function addRecorded(
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
