import { deepEqual, getPath, omitPaths, viaJson } from "./_utils";
import { type Atom, stepsOf } from "./atom";
import { type SecretValues, secretPathsOf, withPaths } from "./atom-secrets";
import type { BoundStep } from "./engine";
import { AtomError, TrailError } from "./errors";
import { validateParams } from "./params";
import { checkRoots, checkStates, refusal } from "./rebuild-checks";
import { MASK, type Redactor } from "./redact";
import { resolveKind } from "./registry";
import { bind } from "./run";
import type { AnyStepKind, Step, StepKindDefinition } from "./step";
import { foldRun, type RunView, type StepView, type TrailStore } from "./trail";
import type { Json } from "./types";

// A trail is evidence, never a command. Before a recorded step drives an undo, it is rebuilt the way a
// run builds it: by its kind's params validator, its states by the kind's state check, and, given the
// deploy file's atom, from that atom (the params must be the ones recorded), within the allowed roots.

export type { SecretValues } from "./atom-secrets";
export { atomSecrets } from "./atom-secrets";

/** How recorded steps are rebuilt before a trail drives an undo: kinds, the deploy file's atom, secrets, roots. */
export interface RebuildOptions {
  /** Step kinds to rebuild steps from, on top of those given to `registerSteps`. */
  steps?: readonly AnyStepKind[] | undefined;
  /**
   * The atom as the deploy file builds it for this run (from the run's recorded vars). Each recorded step
   * must be in it with the same kind and params; the step is then taken from it, secrets included.
   */
  atom?: Atom | ((view: RunView) => Atom | Promise<Atom>) | undefined;
  /** Secret param values, when no atom is given (the trail never holds them). */
  secrets?: SecretValues | ((atom: string) => SecretValues | undefined) | undefined;
  /** Absolute paths recorded steps may change (what kinds declare with `owns`); default anywhere. */
  roots?: readonly string[] | undefined;
}

/** A run's records folded into its view; a TrailError when the records are there but are not this run's. */
export async function loadRun(store: TrailStore, runId: string): Promise<RunView> {
  const records = await store.readRun(runId);
  const view = foldRun(records, runId);
  if (!view && records.length) {
    // records are there but are not this run's: not "no such run", a trail that cannot be trusted
    const start = records.find((r) => r.t === "run");
    throw new TrailError(
      `the trail's records for run ${runId} cannot be read as that run`,
      {
        expected: `a run record of run ${runId}`,
        found: start ? `a run record of run ${(start as { runId?: unknown }).runId}` : "no run record",
        hint: "the run's file was copied or renamed from another run, or cut; nothing acts on it. Move it out of the trail",
      },
      "ATOM_TRAIL_CORRUPT",
    );
  }
  if (!view) {
    throw new AtomError("ATOM_RUN_NOT_FOUND", `no run ${runId} in the trail`, {
      hint: "list runs with `atomkit trail`; check the trail directory (--trail)",
    });
  }
  return view;
}

/** Binds every given recorded step, or throws a TrailError naming the first that cannot be trusted. */
export async function rebuildSteps(
  view: RunView,
  recorded: readonly StepView[],
  options: RebuildOptions,
  redactor: Redactor,
): Promise<BoundStep[]> {
  const atom = typeof options.atom === "function" ? await options.atom(view) : options.atom;
  if (atom && atom.name !== view.run.atom) {
    throw refusal(
      view,
      undefined,
      `the deploy file's atom is "${atom.name}", but the run was of "${view.run.atom}"`,
    );
  }
  const fromAtom = new Map<string, { step: Step; phase: BoundStep["phase"] }>();
  if (atom) {
    for (const placed of stepsOf(atom)) {
      fromAtom.set(placed.step.name, placed);
      // every secret of the atom, as the run had them, before anything is compared or masked
      const v = await validateParams(placed.step);
      if (!v.issues) redactor.add(v.value, secretPathsOf(placed.step));
    }
  }
  const out: BoundStep[] = [];
  for (const s of recorded) {
    const definition = resolveKind(s.kind, { step: s.name, runId: view.run.runId, package: s.package }, [
      ...(options.steps ?? []),
      ...(atom ? kindsOf(atom) : []),
    ]);
    const bound = atom
      ? await fromDeployFile(view, s, fromAtom.get(s.name), redactor)
      : await fromTrail(view, s, definition, secretsOf(options, view.run.atom)?.[s.name], redactor);
    await checkStates(view, s, definition);
    checkRoots(view, s, bound, options.roots);
    out.push(bound);
  }
  return out;
}

/** The step as the deploy file builds it, after proving it is the one the trail recorded. */
async function fromDeployFile(
  view: RunView,
  s: StepView,
  placed: { step: Step; phase: BoundStep["phase"] } | undefined,
  redactor: Redactor,
): Promise<BoundStep> {
  if (!placed) {
    throw refusal(view, s, `the deploy file's atom "${view.run.atom}" has no step "${s.name}"`, {
      hint: "undo and recover need the deploy file as it was when the run was made: check that version out (e.g. with git), then retry",
    });
  }
  if (placed.step.kind !== s.kind) {
    throw refusal(
      view,
      s,
      `step "${s.name}" is a ${placed.step.kind} in the deploy file but a ${s.kind} in the trail`,
    );
  }
  const v = await validateParams(placed.step);
  if (v.issues) {
    throw refusal(view, s, `step "${s.name}" of the deploy file has invalid params: ${v.issues[0]?.message}`);
  }
  const bound = bind(placed.step, placed.phase, v.value, redactor);
  const now = redactor.scrub(omitPaths(viaJson(v.value ?? null), bound.secret)) as Json;
  if (!deepEqual(now, s.params)) {
    throw refusal(view, s, `step "${s.name}" differs from the one the run recorded`, {
      expected: s.params,
      found: now,
      hint: "undo and recover act only on the steps that ran: check out the deploy file as it was for that run (and pass the --var values it ran with), then retry",
    });
  }
  return { ...bound, title: s.title, undoRetries: s.undoRetries ?? bound.undoRetries, retries: 0 };
}

/** The step from its recorded params alone (no deploy file): validated again by its kind. */
async function fromTrail(
  view: RunView,
  s: StepView,
  definition: StepKindDefinition<unknown, unknown, unknown>,
  secrets: Record<string, unknown> | undefined,
  redactor: Redactor,
): Promise<BoundStep> {
  if (s.masked) {
    throw refusal(view, s, `step "${s.name}" had a secret value in a param the trail masked`, {
      hint: "rebuild it from the deploy file (the CLI does; with the library pass `atom`)",
    });
  }
  const params = secrets ? withPaths(s.params, secrets) : s.params;
  const step: Step = {
    kind: s.kind,
    name: s.name,
    params,
    options: {
      ...(s.timeoutMs !== undefined ? { timeoutMs: s.timeoutMs } : {}),
      ...(s.undoRetries !== undefined ? { undoRetries: s.undoRetries } : {}),
      ...(secrets ? { secret: Object.keys(secrets) } : {}),
    },
    definition,
  };
  let v = await validateParams(step);
  const missing = secretPathsOf(step).filter((path) => getPath(params, path) === undefined);
  if (
    v.issues &&
    missing.length &&
    v.issues.every((i) => missing.some((m) => i.path === m || i.path.startsWith(`${m}.`)))
  ) {
    // Only secrets the trail never holds are missing: the recorded params are checked with a stand-in
    // there, and the step is bound without them. A kind whose undo needs a secret checks it is there.
    const stand = await validateParams({
      ...step,
      params: withPaths(params, Object.fromEntries(missing.map((m) => [m, MASK]))),
    });
    if (!stand.issues) v = { value: params };
  }
  if (v.issues) {
    throw refusal(
      view,
      s,
      `the recorded params of step "${s.name}" are refused by its kind: ${v.issues[0]?.message}`,
      {
        expected: `params ${s.kind} accepts${missing.length ? ` (with its secret ${missing.join(", ")}, which the trail never holds)` : ""}`,
        found: v.issues.map((i) => `${i.path || "params"}: ${i.message}`).join("; "),
        hint: missing.length
          ? "undo it through the deploy file, which holds the secret (the CLI does; with the library pass `atom` or `secrets`)"
          : "the trail was not written by this kind: inspect the file; nothing was changed",
      },
    );
  }
  return { ...bind(step, s.phase, v.value, redactor), title: s.title, retries: 0 };
}

function kindsOf(atom: Atom): AnyStepKind[] {
  return stepsOf(atom).map(
    ({ step }) => ({ kind: step.kind, definition: step.definition }) as unknown as AnyStepKind,
  );
}

function secretsOf(o: RebuildOptions, atom: string): SecretValues | undefined {
  return typeof o.secrets === "function" ? o.secrets(atom) : o.secrets;
}
