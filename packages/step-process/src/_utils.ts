import { AtomError, ParamsFieldError, type StepContext, type StepPhase, show } from "@atomkit/core";

// --- Params validation (plain functions: providers do not depend on zod) ---
// Each check throws core's ParamsFieldError for its own field; the kinds run them through core's
// `checkFields`, which collects every invalid field (and unknown key) into one error.

export { checkFields } from "@atomkit/core";

/** Throws the field's error: `message` says what was expected and what was found. */
export function invalid(path: string, message: string): never {
  throw new ParamsFieldError(path, message);
}

/** `expected <what>, found <value>`; `found` overrides how the value is shown (a secret's type only). */
function expected(path: string, what: string, value: unknown, found = show(value)): never {
  invalid(path, `expected ${what}, found ${found}`);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function absolutePath(value: unknown, path: string): string {
  if (typeof value !== "string" || !value.startsWith("/")) expected(path, "an absolute path", value);
  if (value.includes("\0")) invalid(path, "a path cannot contain a NUL byte");
  return value;
}

export function argvOf(value: unknown, path: string): string[] {
  if (!Array.isArray(value) || value.length === 0) {
    expected(path, 'a non-empty argv array, e.g. ["node", "server.js"] (not a shell string)', value);
  }
  value.forEach((word, i) => {
    if (typeof word !== "string") expected(`${path}.${i}`, "a string", word);
    if (word.includes("\0")) invalid(`${path}.${i}`, "an argument cannot contain a NUL byte");
  });
  if (!value[0]) expected(`${path}.0`, "a program", value[0]);
  return [...(value as string[])];
}

export function msOf(value: unknown, path: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > 86_400_000) {
    expected(path, `a whole number of milliseconds from ${min} to 86400000`, value);
  }
  return value;
}

export function portOf(value: unknown, path: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65_535) {
    expected(path, "a TCP port from 1 to 65535", value);
  }
  return value;
}

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function envNameOf(name: string, path: string): string {
  if (!ENV_NAME_RE.test(name)) expected(path, "an environment variable name (letters, digits, _)", name);
  return name;
}

/** NAME: value strings. A value may be a secret: a wrong one is shown by its type only. */
export function envOf(value: unknown, path: string): Record<string, string> {
  if (!isRecord(value)) expected(path, "an object of NAME: value strings", value);
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(value)) {
    envNameOf(name, `${path}.${name}`);
    if (typeof v !== "string")
      expected(`${path}.${name}`, "a string", v, v === null ? "null" : `a ${typeof v}`);
    if (v.includes("\0")) invalid(`${path}.${name}`, "a value cannot contain a NUL byte");
    out[name] = v;
  }
  return out;
}

const SIGNALS = ["TERM", "INT", "QUIT", "HUP", "KILL", "USR1", "USR2", "WINCH", "ABRT", "ALRM"];

/** `SIGTERM`, `TERM` or `term` → `TERM` (the form `kill -s` takes everywhere). */
export function signalOf(value: unknown, path: string, fallback: string): string {
  if (value === undefined) return fallback;
  const name = typeof value === "string" ? value.toUpperCase().replace(/^SIG/, "") : "";
  if (!SIGNALS.includes(name)) expected(path, `a signal name, one of ${SIGNALS.join(", ")}`, value);
  return name;
}

/** A regular expression source: compiles, and is not empty. */
export function regexOf(value: unknown, path: string): string {
  if (typeof value !== "string" || !value) expected(path, "a regular expression source", value);
  try {
    new RegExp(value);
  } catch (error) {
    invalid(path, `expected a valid regular expression, found ${show(value)}: ${(error as Error).message}`);
  }
  return value;
}

// --- Errors ---

/**
 * An error from inside a step. It carries the step and phase, so the engine passes it through as is
 * (its expected/found/hint are shown once, not repeated by a wrapper).
 */
export function stepError(
  ctx: StepContext,
  kind: string,
  phase: StepPhase,
  message: string,
  details: { expected?: unknown; found?: unknown; hint?: string; cause?: unknown } = {},
): AtomError {
  return new AtomError("ATOM_STEP_FAILED", message, {
    host: ctx.host.name,
    step: ctx.step,
    kind,
    phase,
    ...details,
  });
}

/**
 * Masks the given values in text this package writes into errors and logs (log tails, command lines).
 * The engine masks declared secrets too; this also covers env values the caller did not mark.
 */
export function masker(values: Iterable<string>): (text: string) => string {
  const list = [...new Set([...values].filter((v) => v.length >= 4))].sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text;
    for (const v of list) if (out.includes(v)) out = out.split(v).join("***");
    return out;
  };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Throws the abort reason (the engine's timeout or cancel error) when the step was aborted. */
export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason;
}

/** `node /srv/app/server.js --port 8080`, shortened for titles and messages. */
export function showArgv(argv: readonly string[], max = 120): string {
  const text = argv.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : JSON.stringify(w))).join(" ");
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
