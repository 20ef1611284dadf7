import { AtomError } from "./errors";
import type { Host } from "./host";
import type { StandardSchemaV1 } from "./types";

/** What a step's observe, apply and undo receive. */
export interface StepContext {
  host: Host;
  /** Aborted on timeout or cancel: pass it to every long I/O call. */
  signal: AbortSignal;
  /** A progress line, shown by renderers (secrets are scrubbed before they are shown). */
  log: (message: string) => void;
  runId: string;
  /** This step's name inside its atom. */
  step: string;
  /**
   * A value as the trail will hold it, every secret value of the run masked: what `recover` or
   * `undo <runId>` in a new process will hand this kind. A kind whose undo could not work from that
   * (e.g. a command line quoting a secret) can refuse in apply, while nothing has changed yet.
   */
  redact: <T>(value: T) => T;
}

/**
 * How a kind's params are validated before any step runs: a Standard Schema (zod v4, valibot, arktype…)
 * or a plain function that returns the params or throws.
 */
export type ParamsSchema<In, Out> = StandardSchemaV1<In, Out> | ((input: In) => Out);

/** What `defineStep` takes: the kind's name, params validator, observe, apply, undo and optional hooks. */
export interface StepKindDefinition<In, P, S> {
  /** Stable id `<provider>.<action>`, e.g. `symlink.swap`. Stored in the trail: renaming it is breaking. */
  kind: string;
  params: ParamsSchema<In, P>;
  /** One line for humans, e.g. `link /srv/app/current → releases/42`. */
  describe?(params: P): string;
  /** Read-only. The result is journaled, so it must be JSON and hold only stable facts (no timestamps of now). */
  observe(ctx: StepContext, params: P): Promise<S>;
  apply(ctx: StepContext, params: P, before: S): Promise<void>;
  /** Must work from the recorded states alone: `before`/`after` may come from a previous process. */
  undo(ctx: StepContext, params: P, before: S, after: S): Promise<void>;
  /** Equality of two observed states. Default: structural equality. */
  same?(a: S, b: S): boolean;
  /** Dotted param paths that never reach the trail, events or logs, e.g. `["password", "env.TOKEN"]`. */
  secret?: readonly string[];
  /** Predicts the state after apply, for `atomkit plan`. Read-only like observe. */
  plan?(ctx: StepContext, params: P, before: S): Promise<S>;
  /** The npm package exporting this kind, named in the error when a trail needs it and it is not loaded. */
  package?: string;
  /**
   * Checks of the world a run needs beyond its params' shape (a local artifact exists), made by `run`
   * and `plan` after params validation and before any step acts; throw to refuse (a `path` on the error
   * names the field). Never made for undo or recover: a rollback must not depend on an artifact that
   * was cleaned up since. Params validation itself stays pure, so a trail's params validate again.
   */
  preflight?(params: P): void | Promise<void>;
  /**
   * Checks a state read back from a trail before it drives an undo (recover, `undo <runId>` in a new
   * process): returns the state or throws, like a params function (or a Standard Schema). A trail is
   * evidence, never a command: without this, only the trail's integrity MAC vouches for its states.
   */
  state?: ParamsSchema<unknown, S>;
  /**
   * The absolute paths on the host this step changes (e.g. `[params.path]`). Given a recorded state,
   * also the paths an undo to that state would create, point at or work in (a link's target, a
   * restarted process's directory). recover and undo refuse a recorded step whose paths fall outside
   * the roots the caller allows (`roots`).
   */
  owns?(params: P, state?: S): string[];
  /**
   * Removes what an interrupted apply or undo may have left beside its target (temporary names).
   * Called by recover once the run is settled; must not change the observed state.
   */
  cleanup?(ctx: StepContext, params: P): Promise<void>;
}

/** Per-step options given when a step is made: name, timeout, retries (apply and undo), secret params. */
export interface StepOptions {
  /** Identifies the step in its atom and the trail. Default: the kind. Unique within an atom. */
  name?: string;
  /** Per attempt of observe, apply and undo. Default: no limit. */
  timeoutMs?: number;
  /** Extra attempts of apply, made only when check proves the failed attempt changed nothing. Default 0. */
  retries?: number;
  /**
   * Extra attempts of undo, with exponential backoff. Default 2. Made only while they can help: the
   * same failure over the same state twice, or credentials refused, end the attempts.
   */
  undoRetries?: number;
  /** More dotted param paths to keep out of the trail, on top of the kind's own `secret`. */
  secret?: readonly string[];
}

/** One use of a kind with concrete params, inside an atom. */
export interface Step<P = unknown, S = unknown> {
  readonly kind: string;
  readonly name: string;
  /** As given; validated by `run` before anything runs. */
  readonly params: unknown;
  readonly options: Readonly<StepOptions>;
  readonly definition: StepKindDefinition<unknown, P, S>;
}

/** What `defineStep` returns: a factory of steps, carrying its definition for the registry. */
export interface StepKind<In = unknown, P = unknown, S = unknown> {
  (params: In, options?: StepOptions): Step<P, S>;
  readonly kind: string;
  readonly definition: StepKindDefinition<In, P, S>;
}

// biome-ignore lint/suspicious/noExplicitAny: a list of kinds of any params and state
/** A step kind of any params and state: what `registerSteps` and the registries hold. */
export type AnyStepKind = StepKind<any, any, any>;

const KIND_RE = /^[a-z][a-z0-9-]*(\.[a-z][a-zA-Z0-9-]*)+$/;
const NAME_RE = /^[^\s][^\n\r]{0,199}$/;

/**
 * Defines a step kind. Checks the definition once, infers the state type from `observe` for
 * `apply`/`undo`, and returns a factory: `swap({ link, target }, { name: "link" })`.
 */
export function defineStep<In, P, S>(definition: StepKindDefinition<In, P, S>): StepKind<In, P, S> {
  if (typeof definition?.kind !== "string" || !KIND_RE.test(definition.kind)) {
    throw new AtomError("ATOM_INVALID_STEP", "invalid step kind", {
      expected: `"<provider>.<action>", e.g. "symlink.swap"`,
      found: JSON.stringify(definition?.kind),
    });
  }
  for (const fn of ["observe", "apply", "undo"] as const) {
    if (typeof definition[fn] !== "function") {
      throw new AtomError("ATOM_INVALID_STEP", `step kind has no ${fn}()`, {
        kind: definition.kind,
        hint: `every step kind needs observe, apply and undo`,
      });
    }
  }
  if (!definition.params) {
    throw new AtomError("ATOM_INVALID_STEP", "step kind has no params schema", {
      kind: definition.kind,
      hint: "pass a Standard Schema (e.g. a zod object) or a function that returns the params or throws",
    });
  }
  const frozen = Object.freeze({ ...definition });
  const factory = (params: In, options: StepOptions = {}): Step<P, S> => {
    const name = options.name ?? definition.kind;
    if (!NAME_RE.test(name)) {
      throw new AtomError("ATOM_INVALID_STEP", "invalid step name", {
        kind: definition.kind,
        expected: "1-200 characters on one line, not starting with a space",
        found: JSON.stringify(name),
      });
    }
    return Object.freeze({
      kind: definition.kind,
      name,
      params,
      options: Object.freeze({ ...options }),
      definition: frozen as unknown as StepKindDefinition<unknown, P, S>,
    });
  };
  return Object.assign(factory, { kind: definition.kind, definition: frozen }) as StepKind<In, P, S>;
}
