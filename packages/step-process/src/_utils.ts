import { AtomError, type StepContext, type StepPhase } from "@atomkit/core";

// --- Params validation (plain functions: providers do not depend on zod) ---

/** Thrown by a params validator; core reads `path` to name the field. */
export function invalid(path: string, message: string): never {
  throw Object.assign(new Error(message), { path });
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Only these keys may appear: a typo (`pidfile`) must not silently fall back to a default. */
export function onlyKeys(value: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(value)) {
    if (value[key] !== undefined && !allowed.includes(key)) {
      invalid(path ? `${path}.${key}` : key, `unknown option "${key}"; known: ${allowed.join(", ")}`);
    }
  }
}

export function absolutePath(value: unknown, path: string): string {
  if (typeof value !== "string" || !value.startsWith("/")) invalid(path, "must be an absolute path");
  if (value.includes("\0")) invalid(path, "must not contain a NUL byte");
  return value;
}

export function argvOf(value: unknown, path: string): string[] {
  if (!Array.isArray(value) || value.length === 0) {
    invalid(path, 'must be a non-empty argv array, e.g. ["node", "server.js"] (not a shell string)');
  }
  value.forEach((word, i) => {
    if (typeof word !== "string") invalid(`${path}.${i}`, "must be a string");
    if (word.includes("\0")) invalid(`${path}.${i}`, "must not contain a NUL byte");
  });
  if (!value[0]) invalid(`${path}.0`, "the program must not be empty");
  return [...(value as string[])];
}

export function msOf(value: unknown, path: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > 86_400_000) {
    invalid(path, `must be a whole number of milliseconds from ${min} to 86400000`);
  }
  return value;
}

export function portOf(value: unknown, path: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65_535) {
    invalid(path, "must be a TCP port from 1 to 65535");
  }
  return value;
}

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function envNameOf(name: string, path: string): string {
  if (!ENV_NAME_RE.test(name)) invalid(path, `"${name}" is not a valid environment variable name`);
  return name;
}

export function envOf(value: unknown, path: string): Record<string, string> {
  if (!isRecord(value)) invalid(path, "must be an object of NAME: value strings");
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(value)) {
    envNameOf(name, `${path}.${name}`);
    if (typeof v !== "string") invalid(`${path}.${name}`, "must be a string");
    if (v.includes("\0")) invalid(`${path}.${name}`, "must not contain a NUL byte");
    out[name] = v;
  }
  return out;
}

const SIGNALS = ["TERM", "INT", "QUIT", "HUP", "KILL", "USR1", "USR2", "WINCH", "ABRT", "ALRM"];

/** `SIGTERM`, `TERM` or `term` → `TERM` (the form `kill -s` takes everywhere). */
export function signalOf(value: unknown, path: string, fallback: string): string {
  if (value === undefined) return fallback;
  const name = typeof value === "string" ? value.toUpperCase().replace(/^SIG/, "") : "";
  if (!SIGNALS.includes(name)) invalid(path, `must be a signal name, one of ${SIGNALS.join(", ")}`);
  return name;
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
