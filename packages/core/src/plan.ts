import { deepEqual } from "./_utils";
import { type Atom, stepsOf } from "./atom";
import { type ErrorInfo, toErrorInfo } from "./errors";
import type { Host } from "./host";
import { localHost } from "./local-host";
import { validateAll } from "./params";
import { redactorFor } from "./run";
import type { StepContext } from "./step";
import type { Json } from "./types";

/** One step of a plan: its current state, the state apply would predict, and whether it changes. */
export interface PlannedStep {
  name: string;
  kind: string;
  phase: "pre" | "steps" | "post";
  /** The step's describe(): the intended change. */
  title: string;
  /** The state observed now. */
  current?: Json;
  /** The state the kind predicts after apply (kinds with a `plan()`); absent when unknown. */
  predicted?: Json;
  /** true/false when predicted; undefined when the kind cannot predict. */
  changes?: boolean;
  error?: ErrorInfo;
}

/** What `plan` returns: every step's planned change; nothing was changed. */
export interface PlanResult {
  atom: string;
  host: string;
  steps: PlannedStep[];
}

/**
 * A real dry run: validates every step's params and observes each step read-only, without the lock,
 * trail or any apply. Later steps are observed against today's host, not against the effects of
 * earlier steps, so a prediction is per step.
 */
export async function plan(
  atom: Atom,
  options: { host?: Host; signal?: AbortSignal } = {},
): Promise<PlanResult> {
  const host = options.host ?? localHost();
  const placed = stepsOf(atom);
  const values = await validateAll(
    placed.map((p) => p.step),
    { atom: atom.name, host: host.name },
  );
  // every secret first: a step's state may quote a later step's secret (plan --json printed one)
  const redactor = redactorFor(placed.map((p, i) => ({ step: p.step, params: values[i] })));
  const out: PlannedStep[] = [];
  for (const [i, { step, phase }] of placed.entries()) {
    const params = values[i];
    const ctx: StepContext = {
      host,
      signal: options.signal ?? new AbortController().signal,
      log: () => {},
      runId: "plan",
      step: step.name,
      redact: <T>(value: T) => redactor.scrub(value),
    };
    let title = step.name;
    try {
      title = step.definition.describe?.(params as never) ?? step.name;
    } catch {}
    const planned: PlannedStep = { name: step.name, kind: step.kind, phase, title: redactor.text(title) };
    try {
      const current = redactor.scrub(
        JSON.parse(JSON.stringify((await step.definition.observe(ctx, params)) ?? null)) as Json,
      );
      planned.current = current;
      if (step.definition.plan) {
        const predicted = redactor.scrub(
          JSON.parse(JSON.stringify((await step.definition.plan(ctx, params, current)) ?? null)) as Json,
        );
        planned.predicted = predicted;
        planned.changes = !(step.definition.same
          ? step.definition.same(current, predicted)
          : deepEqual(current, predicted));
      }
    } catch (error) {
      planned.error = redactor.scrub(toErrorInfo(error));
    }
    out.push(planned);
  }
  return { atom: atom.name, host: host.name, steps: out };
}
