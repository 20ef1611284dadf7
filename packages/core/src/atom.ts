import { AtomError } from "./errors";
import type { Step } from "./step";

/** The phase a step runs in: `pre`, then `steps`, then `post` (rollback undoes in reverse). */
export type AtomPhase = "pre" | "steps" | "post";

/** Named, ordered steps in three phases. Rollback undoes in reverse, so `pre` is undone last. */
export interface Atom {
  readonly name: string;
  readonly pre: readonly Step[];
  readonly steps: readonly Step[];
  readonly post: readonly Step[];
}

/** What `atom(name, definition)` takes: the steps of each phase, in order. */
export interface AtomDefinition {
  /** Runs first, e.g. take the instance out of traffic. */
  pre?: readonly Step[];
  steps: readonly Step[];
  /** Runs last, e.g. put the instance back in traffic. */
  post?: readonly Step[];
}

const ATOM_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;

/** Defines an atom: a name (letters, digits, `.`, `_`, `:`, `-`) and its ordered steps; throws `ATOM_INVALID_ATOM` when invalid. */
export function atom(name: string, definition: AtomDefinition): Atom {
  if (!ATOM_NAME_RE.test(name)) {
    throw new AtomError("ATOM_INVALID_ATOM", "invalid atom name", {
      expected: "letters, digits, '.', '_', ':' or '-', at most 100 characters",
      found: JSON.stringify(name),
    });
  }
  const pre = definition.pre ?? [];
  const post = definition.post ?? [];
  const steps = definition.steps ?? [];
  const all = [...pre, ...steps, ...post];
  if (!all.length) {
    throw new AtomError("ATOM_INVALID_ATOM", "atom has no steps", { atom: name });
  }
  const seen = new Set<string>();
  for (const step of all) {
    if (!step || typeof step.definition?.observe !== "function") {
      throw new AtomError("ATOM_INVALID_ATOM", "atom contains something that is not a step", {
        atom: name,
        hint: "call the step kind's factory, e.g. swapSymlink({ link, target })",
      });
    }
    if (seen.has(step.name)) {
      throw new AtomError("ATOM_INVALID_ATOM", `two steps are named "${step.name}"`, {
        atom: name,
        expected: "unique step names within an atom",
        found: `"${step.name}" twice`,
        // the factory's name is the user's (swapSymlink, stopProcess…), not the kind's: the options
        // argument is what every factory shares
        hint: `name one of them: pass { name: "${step.name}-2" } as the second argument of its factory (${step.kind})`,
      });
    }
    seen.add(step.name);
  }
  return Object.freeze({ name, pre: [...pre], steps: [...steps], post: [...post] });
}

/** The steps of an atom in run order, with their phase. */
export function stepsOf(a: Atom): Array<{ step: Step; phase: AtomPhase }> {
  return [
    ...a.pre.map((step) => ({ step, phase: "pre" as const })),
    ...a.steps.map((step) => ({ step, phase: "steps" as const })),
    ...a.post.map((step) => ({ step, phase: "post" as const })),
  ];
}
