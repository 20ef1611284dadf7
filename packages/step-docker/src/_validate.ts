// Checks for params and for states read back from a trail: providers do not depend on zod. Each throws
// core's ParamsFieldError, whose `path` names the field (core turns it into a ParamsError naming step
// and field). Integers and unknown keys are the kit's (`@atomkit/core/kit`); the rest is step-docker's
// own until the kit has them.
import { integer, ParamsFieldError, paramsObject } from "@atomkit/core/kit";

export type Input = Record<string, unknown>;

export function fail(path: string, message: string): never {
  throw new ParamsFieldError(path, message);
}

export function object(value: unknown, path: string): Input {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    fail(path, `must be an object, got ${kindOf(value)}`);
  }
  return value as Input;
}

/** Refuses keys the kind does not know: a typo (`stopTimeout` for `stopTimeoutMs`) must not pass silently. */
export function onlyKeys(value: Input, path: string, keys: readonly string[]): void {
  paramsObject(value, keys, path);
}

/** Exactly these keys, each present (a state read back from a trail: nothing missing, nothing extra). */
export function exactKeys(value: Input, path: string, keys: readonly string[]): void {
  onlyKeys(value, path, keys);
  for (const key of keys) if (!(key in value)) fail(join(path, key), "is missing");
}

export function string(value: unknown, path: string, options: { pattern?: RegExp; hint?: string } = {}) {
  if (typeof value !== "string" || value.length === 0)
    fail(path, `must be a non-empty string, got ${kindOf(value)}`);
  if (options.pattern && !options.pattern.test(value)) {
    fail(path, `${JSON.stringify(value)} is not valid${options.hint ? `: ${options.hint}` : ""}`);
  }
  return value;
}

export function optString(value: unknown, path: string, options: { pattern?: RegExp; hint?: string } = {}) {
  return value === undefined ? undefined : string(value, path, options);
}

/** Any string (also empty or hostile): it reaches the container as one argv word or value. */
export function anyString(value: unknown, path: string): string {
  if (typeof value !== "string") fail(path, `must be a string, got ${kindOf(value)}`);
  if (value.includes("\0")) fail(path, "must not contain a NUL byte");
  return value;
}

export function int(value: unknown, path: string, min: number, max: number): number {
  return integer(value, path, { min, max });
}

export function optInt(value: unknown, path: string, min: number, max: number, fallback: number): number;
export function optInt(value: unknown, path: string, min: number, max: number): number | undefined;
export function optInt(value: unknown, path: string, min: number, max: number, fallback?: number) {
  return value === undefined ? fallback : int(value, path, min, max);
}

export function optBool(value: unknown, path: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "boolean") fail(path, `must be true or false, got ${kindOf(value)}`);
  return value;
}

export function bool(value: unknown, path: string): boolean {
  if (typeof value !== "boolean") fail(path, `must be true or false, got ${kindOf(value)}`);
  return value;
}

export function oneOf<T extends string>(
  value: unknown,
  path: string,
  allowed: readonly T[],
  fallback?: T,
): T {
  if (value === undefined && fallback !== undefined) return fallback;
  if (!allowed.includes(value as T)) {
    fail(
      path,
      `must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}, got ${JSON.stringify(value)}`,
    );
  }
  return value as T;
}

export function argv(value: unknown, path: string, options: { allowEmpty?: boolean } = {}): string[] {
  if (!Array.isArray(value)) {
    fail(
      path,
      `must be an argv array of strings (e.g. ["httpd", "-f"]), got ${kindOf(value)}; no shell string`,
    );
  }
  if (!options.allowEmpty && value.length === 0) fail(path, "must not be empty");
  return value.map((v, i) => anyString(v, `${path}.${i}`));
}

export function stringMap(value: unknown, path: string, keyPattern: RegExp, keyHint: string) {
  const o = object(value, path);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) {
    if (!keyPattern.test(k)) fail(join(path, k), `invalid key: ${keyHint}`);
    out[k] = anyString(v, join(path, k));
  }
  return out;
}

export function absolutePath(value: unknown, path: string): string {
  const s = string(value, path);
  if (!s.startsWith("/")) fail(path, `must be an absolute path, got ${JSON.stringify(s)}`);
  if (s.includes("\0")) fail(path, "must not contain a NUL byte");
  return s;
}

export function join(path: string, key: string | number): string {
  return path ? `${path}.${key}` : String(key);
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "string" ? JSON.stringify(value) : typeof value;
}
