import { mkdtempSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Host, localHost, type Step, type StepContext, validateParams } from "@atomkit/core";
import { deepEqual, Redactor } from "@atomkit/core/kit";
import { whenTestEnds } from "./test-end";

/** What `stepContext` and `bindStep` put in the context; every field has a default. */
export interface StepContextOptions {
  /** Where the step acts. Default: `localHost` with a fresh temp `stateDir`, removed when the test ends. */
  host?: Host;
  /** Default: a signal that never aborts. Pass an `AbortController`'s to test cancelling. */
  signal?: AbortSignal;
  /** Values `redact` masks (as the engine masks a run's secret params). */
  secrets?: readonly unknown[];
  /** The run the step acts in (e.g. fs.remove's trash slot `<trash>/<runId>/`). Default `"test"`. */
  runId?: string;
  /** This step's name inside its atom. Default `"under-test"`. */
  step?: string;
  /** Also called for every `ctx.log` line (they are kept in `logs` either way). */
  log?: (message: string) => void;
}

/** A real `StepContext`, plus what a test checks afterwards. */
export interface TestStepContext extends StepContext {
  /** Every `ctx.log` line, in order, masked like the engine masks them before a renderer sees them. */
  logs: string[];
}

/**
 * A `StepContext` for calling a kind's observe, apply and undo directly: the context the engine would
 * give, with a host (by default a local one with its own temp state dir), a signal, a real masker for
 * `redact`, and the log lines captured. See `bindStep` to bind a whole step with its validated params.
 */
export function stepContext(options: StepContextOptions = {}): TestStepContext {
  const redactor = new Redactor();
  if (options.secrets?.length) redactor.addValues(options.secrets);
  return contextWith(options, redactor);
}

function contextWith(options: StepContextOptions, redactor: Redactor): TestStepContext {
  const logs: string[] = [];
  return {
    host: options.host ?? tempLocalHost(),
    signal: options.signal ?? new AbortController().signal,
    runId: options.runId ?? "test",
    step: options.step ?? "under-test",
    log: (message) => {
      const line = redactor.text(String(message));
      logs.push(line);
      options.log?.(line);
    },
    redact: (value) => redactor.scrub(value),
    logs,
  };
}

function tempLocalHost(): Host {
  const stateDir = mkdtempSync(join(tmpdir(), "atomkit-testkit-state-"));
  whenTestEnds(
    () => rm(stateDir, { recursive: true, force: true, maxRetries: 10 }),
    () => rmSync(stateDir, { recursive: true, force: true }),
  );
  return localHost({ stateDir });
}

/** A step bound to its validated params: the kind's functions called as the engine calls them. */
export interface BoundStep<P = unknown, S = unknown> {
  step: Step<P, S>;
  /** The params after validation: what the kind's functions receive. */
  params: P;
  ctx: TestStepContext;
  observe(): Promise<S>;
  apply(before: S): Promise<void>;
  undo(before: S, after: S): Promise<void>;
  /** The kind's `same`, or structural equality of the states as the trail holds them (JSON). */
  same(a: S, b: S): boolean;
  /** The kind's `plan`; throws if it has none. */
  plan(before: S): Promise<S>;
  /** The kind's `cleanup`; does nothing if it has none. */
  cleanup(): Promise<void>;
}

/**
 * Validates a step's params (throws naming the issues) and binds its kind's functions to them and to
 * a `stepContext` whose `redact` masks the step's secret params and whose `step` is the step's name.
 */
export async function bindStep<P, S>(
  step: Step<P, S>,
  options: Omit<StepContextOptions, "secrets"> = {},
): Promise<BoundStep<P, S>> {
  const validated = await validateParams(step as Step);
  if (validated.issues) {
    throw new Error(
      `testkit: the params of step "${step.name}" (${step.kind}) are invalid: ${JSON.stringify(validated.issues)}`,
    );
  }
  const params = validated.value as P;
  const redactor = new Redactor();
  redactor.add(params, [...(step.definition.secret ?? []), ...(step.options.secret ?? [])]);
  const ctx = contextWith({ step: step.name, ...options }, redactor);
  const d = step.definition;
  return {
    step,
    params,
    ctx,
    observe: () => d.observe(ctx, params),
    apply: (before) => d.apply(ctx, params, before),
    undo: (before, after) => d.undo(ctx, params, before, after),
    same: (a, b) => (d.same ? d.same(a, b) : deepEqual(viaJson(a), viaJson(b))),
    plan: (before) => {
      if (!d.plan) throw new Error(`testkit: the kind ${step.kind} has no plan()`);
      return d.plan(ctx, params, before);
    },
    cleanup: async () => {
      await d.cleanup?.(ctx, params);
    },
  };
}

/** A JSON round trip: a value as a new process reads it back from the trail. */
export const viaJson = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
