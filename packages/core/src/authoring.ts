// Helpers for writing step kinds: params validation without a schema library, errors that name the
// host and step, and temporary names for atomic replaces. Our providers use them; so can yours.
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import { AtomError, type ErrorDetails, type StepPhase } from "./errors";
import type { StepContext } from "./step";

/** Thrown by a function params validator; the engine reports `path` as the field name. */
export class ParamsFieldError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    Object.defineProperty(this, "name", { value: "ParamsFieldError", enumerable: false, configurable: true });
  }
}

/** A value for an error message: JSON where possible, `nothing` for undefined. */
export function show(value: unknown): string {
  if (value === undefined) return "nothing";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** The params object itself, refusing keys not in `allowed` (a typo must not be silently ignored). */
export function paramsObject(input: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new ParamsFieldError("", `expected an object of params, found ${show(input)}`);
  }
  for (const key of Object.keys(input)) {
    if (!allowed.includes(key)) {
      throw new ParamsFieldError(key, `unknown param "${key}" (known: ${allowed.join(", ")})`);
    }
  }
  return input as Record<string, unknown>;
}

/** An absolute POSIX path on the host, normalised (`/a/./b/` → `/a/b`). Any byte but NUL is allowed. */
export function absolutePath(value: unknown, field: string): string {
  if (typeof value !== "string" || !value.startsWith("/")) {
    throw new ParamsFieldError(field, `expected an absolute path on the host, found ${show(value)}`);
  }
  if (value.includes("\0")) throw new ParamsFieldError(field, "a path cannot contain a NUL byte");
  const normal = posix.normalize(value);
  const path = normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
  if (path === "/") throw new ParamsFieldError(field, `"/" cannot be used here`);
  return path;
}

/** An integer within bounds; `fallback` when the value is absent. */
export function integer(
  value: unknown,
  field: string,
  o: { min: number; max?: number; fallback?: number },
): number {
  if (value === undefined && o.fallback !== undefined) return o.fallback;
  const max = o.max ?? Number.MAX_SAFE_INTEGER;
  if (typeof value !== "number" || !Number.isInteger(value) || value < o.min || value > max) {
    throw new ParamsFieldError(field, `expected an integer from ${o.min} to ${max}, found ${show(value)}`);
  }
  return value;
}

/** An error raised by a step itself: names the host and step, with what was expected and found. */
export function stepError(
  ctx: StepContext,
  kind: string,
  phase: StepPhase,
  message: string,
  details: Omit<ErrorDetails, "host" | "step" | "kind" | "phase"> = {},
): AtomError {
  return new AtomError("ATOM_STEP_FAILED", message, {
    ...details,
    host: ctx.host.name,
    step: ctx.step,
    kind,
    phase,
  });
}

/** The first `bytes` bytes of a name (UTF-8), so derived names stay under NAME_MAX (255). */
export function clip(name: string, bytes: number): string {
  return Buffer.from(name).subarray(0, bytes).toString("utf8");
}

/** Prefix of every temporary name beside `path`: leftovers of a crashed attempt start with it. */
export const tempPrefix = (path: string) => `.${clip(posix.basename(path), 180)}.atomkit-`;

/** A temporary name beside `path` (same directory, so a rename onto `path` is atomic). */
export function tempBeside(path: string): string {
  return posix.join(posix.dirname(path), `${tempPrefix(path)}${randomBytes(4).toString("hex")}`);
}
