// What a recorded step must pass before it drives an undo (rebuild.ts): states its kind could have
// observed, paths within the allowed roots. A failure is a TrailError: nothing was changed.
import { posix } from "node:path";
import { messageOf } from "./_utils";
import type { BoundStep } from "./engine";
import { TrailError } from "./errors";
import { checkWith } from "./params";
import type { StepKindDefinition } from "./step";
import type { RunView, StepView } from "./trail";

/** Every recorded state must be one the kind could have observed. */
export async function checkStates(
  view: RunView,
  s: StepView,
  definition: StepKindDefinition<unknown, unknown, unknown>,
): Promise<void> {
  if (!definition.state) return;
  const finals = view.end?.final?.[s.name];
  for (const [which, state] of [
    ["before", s.before],
    ["after", s.after],
    ["final", finals ?? s.final],
  ] as const) {
    if (state === undefined) continue;
    try {
      await checkWith(definition.state, state);
    } catch (error) {
      const path = (error as { path?: unknown })?.path;
      throw refusal(view, s, `the recorded ${which}-state of step "${s.name}" is not a ${s.kind} state`, {
        expected: `a state ${s.kind} observes`,
        found: `${typeof path === "string" && path ? `${path}: ` : ""}${messageOf(error)}`,
        hint: "the trail was edited or written by something else; nothing was changed",
      });
    }
  }
}

/** Every path the step would change (now, or by an undo to a recorded state) must be under `roots`. */
export function checkRoots(
  view: RunView,
  s: StepView,
  bound: BoundStep,
  roots: readonly string[] | undefined,
) {
  if (!roots || !bound.definition.owns) return;
  let paths: string[];
  try {
    // what the step changes, and what an undo to each recorded state would make of the host
    const states = [s.before, s.after].filter((x) => x !== undefined);
    paths = [
      ...bound.definition.owns(bound.params),
      ...states.flatMap((state) => bound.definition.owns!(bound.params, state)),
    ];
  } catch (error) {
    throw refusal(view, s, `cannot tell which paths step "${s.name}" changes: ${messageOf(error)}`);
  }
  const within = (p: string) =>
    roots.some((root) => {
      const r = posix.normalize(root).replace(/\/+$/, "") || "/";
      const q = posix.normalize(p);
      return r === "/" || q === r || q.startsWith(`${r}/`);
    });
  const outside = paths.filter((p) => !within(p));
  if (outside.length) {
    throw refusal(view, s, `step "${s.name}" would change paths outside the allowed roots`, {
      expected: `paths under ${roots.join(", ")}`,
      found: outside.join(", "),
      hint: "the trail does not match this deploy (forged or from elsewhere); nothing was changed. If the roots are too narrow, widen `roots` in the deploy file",
    });
  }
}

/** The TrailError refusing a recorded step: nothing was changed. */
export function refusal(
  view: RunView,
  s: StepView | undefined,
  message: string,
  details: { expected?: unknown; found?: unknown; hint?: string } = {},
): TrailError {
  return new TrailError(`run ${view.run.runId}: ${message}; nothing was changed`, {
    atom: view.run.atom,
    host: view.run.host,
    ...(s ? { step: s.name, kind: s.kind } : {}),
    ...details,
    hint: details.hint ?? "the trail does not match the deploy file; inspect it before acting",
  });
}
