import { AtomError } from "./errors";
import type { AnyStepKind, StepKindDefinition } from "./step";

// On globalThis, so two copies of @atomkit/core in one install share the registry.
const KEY = Symbol.for("@atomkit/core:registry");
type Registry = Map<string, StepKindDefinition<unknown, unknown, unknown>>;

function registry(): Registry {
  const g = globalThis as { [KEY]?: Registry };
  g[KEY] ??= new Map();
  return g[KEY];
}

/**
 * Makes step kinds known to this process so a trail record (kind + params) can be rebuilt into a
 * step: what `recover` and `undoRun` need in a new process. Providers export their kinds as `steps`:
 * `registerSteps(...fsSteps, ...symlinkSteps)`.
 */
export function registerSteps(...kinds: ReadonlyArray<AnyStepKind | readonly AnyStepKind[]>): void {
  for (const k of kinds.flat()) {
    registry().set(k.kind, k.definition as StepKindDefinition<unknown, unknown, unknown>);
  }
}

/** The definition for `kind` from the given kinds or the registry; a clear error naming the package otherwise. */
export function resolveKind(
  kind: string,
  where: { step: string; runId: string; package?: string | undefined },
  extra: readonly AnyStepKind[] = [],
): StepKindDefinition<unknown, unknown, unknown> {
  const found = extra.find((k) => k.kind === kind)?.definition ?? registry().get(kind);
  if (found) return found as StepKindDefinition<unknown, unknown, unknown>;
  const provider = kind.split(".")[0];
  const pkg = where.package ?? `@atomkit/step-${provider} (or a third-party atom-step-${provider})`;
  throw new AtomError(
    "ATOM_UNKNOWN_KIND",
    `run ${where.runId} needs step kind "${kind}", which is not registered`,
    {
      step: where.step,
      kind,
      expected: `a registered step kind "${kind}"`,
      found: `registered: ${[...registry().keys()].sort().join(", ") || "none"}`,
      hint: `with the CLI: import ${pkg} in the deploy file (or list its kinds in \`steps: [...]\` of defineConfig, for kinds no atom uses any more); in code: registerSteps(...steps) from ${pkg} before recover or undo`,
    },
  );
}
