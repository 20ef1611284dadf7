import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import { AtomError, type ErrorDetails, type StepContext, type StepPhase } from "@atomkit/core";

// --- Params validation (a tiny validator: providers do not depend on zod) ---

/** Thrown by a params validator; core reports `path` as the field name. */
export class ParamsFieldError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

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

export function show(value: unknown): string {
  if (value === undefined) return "nothing";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

// --- Host helpers ---

/** A temporary name beside `path` (same directory, so a rename onto `path` is atomic). */
export function tempBeside(path: string): string {
  const base = Buffer.from(posix.basename(path)).subarray(0, 180).toString("utf8");
  return posix.join(posix.dirname(path), `.${base}.atomkit-${randomBytes(4).toString("hex")}`);
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
