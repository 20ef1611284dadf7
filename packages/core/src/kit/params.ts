// The one set of params validators (for params, and for states read back from a trail). Each is a
// plain function `(value, path, options?) => value` that throws a ParamsFieldError naming its field,
// so it fits `checkFields` as it is (`link: absolutePath`) or with options (`(v, p) => integer(v, p,
// { min: 1 })`). Messages read "expected …, found …"; a value that may be a secret (env values) is
// shown by its type only. `fallback` is what an absent value (undefined) gives; without it, absent is
// an error (wrap the check in `optional` to leave the field out instead).
import { posix } from "node:path";
import { checkFields, closest, type FieldChecks, ParamsFieldError, show } from "../fields";

/** A string without NUL bytes (it can be an argv word or a path), possibly empty. */
export function string(value: unknown, path: string, o: { fallback?: string } = {}): string {
  if (value === undefined && o.fallback !== undefined) return o.fallback;
  if (typeof value !== "string") throw new ParamsFieldError(path, `expected a string, found ${show(value)}`);
  if (value.includes("\0")) throw new ParamsFieldError(path, "a string here cannot contain a NUL byte");
  return value;
}

/** A string without NUL bytes, not empty; `pattern` (with `hint` saying what it means) narrows it. */
export function nonEmptyString(
  value: unknown,
  path: string,
  o: { fallback?: string; pattern?: RegExp; hint?: string } = {},
): string {
  if (value === undefined && o.fallback !== undefined) return o.fallback;
  if (typeof value !== "string" || value === "") {
    throw new ParamsFieldError(path, `expected a non-empty string, found ${show(value)}`);
  }
  string(value, path);
  if (o.pattern && !o.pattern.test(value)) {
    throw new ParamsFieldError(
      path,
      `expected ${o.hint ?? `a string matching ${o.pattern}`}, found ${show(value)}`,
    );
  }
  return value;
}

/**
 * An absolute POSIX path on the host: starts with `/`, holds no NUL byte, and is returned normalised
 * (`/a/./b/` and `/a/c/../b` → `/a/b`; `..` is resolved by the text, not by following links). Any
 * other byte is allowed. `/` itself is refused (replacing or removing the root is always a mistake)
 * unless `allowRoot` (a working directory may be `/`). `asWritten` returns the path unchanged: for a
 * value that is recorded and compared as the user wrote it (a process's working directory).
 */
export function absolutePath(
  value: unknown,
  path: string,
  o: { allowRoot?: boolean; asWritten?: boolean } = {},
): string {
  if (typeof value !== "string" || !value.startsWith("/")) {
    throw new ParamsFieldError(path, `expected an absolute path on the host, found ${show(value)}`);
  }
  if (value.includes("\0")) throw new ParamsFieldError(path, "a path cannot contain a NUL byte");
  if (o.asWritten) {
    if (!o.allowRoot && /^\/+$/.test(value)) throw new ParamsFieldError(path, `"/" cannot be used here`);
    return value;
  }
  const normal = posix.normalize(value);
  const out = normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
  if (out === "/" && !o.allowRoot) throw new ParamsFieldError(path, `"/" cannot be used here`);
  return out;
}

/** An integer from `min` to `max` (both included; default: any safe integer). */
export function integer(
  value: unknown,
  path: string,
  o: { min?: number; max?: number; fallback?: number } = {},
): number {
  if (value === undefined && o.fallback !== undefined) return o.fallback;
  const min = o.min ?? Number.MIN_SAFE_INTEGER;
  const max = o.max ?? Number.MAX_SAFE_INTEGER;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new ParamsFieldError(path, `expected ${range("an integer", min, max)}, found ${show(value)}`);
  }
  return value;
}

/** The longest delay a Node timer keeps (about 24.8 days); beyond it `setTimeout` fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration in whole milliseconds, from `min` (default 0) to `max` (default and at most MAX_TIMER_MS). */
export function durationMs(
  value: unknown,
  path: string,
  o: { min?: number; max?: number; fallback?: number } = {},
): number {
  if (value === undefined && o.fallback !== undefined) return o.fallback;
  const min = o.min ?? 0;
  const max = Math.min(o.max ?? MAX_TIMER_MS, MAX_TIMER_MS);
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new ParamsFieldError(
      path,
      `expected ${range("a whole number of milliseconds", min, max)}, found ${show(value)}`,
    );
  }
  return value;
}

/** A TCP port, 1 to 65535. */
export function port(value: unknown, path: string, o: { fallback?: number } = {}): number {
  if (value === undefined && o.fallback !== undefined) return o.fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65_535) {
    throw new ParamsFieldError(path, `expected a TCP port from 1 to 65535, found ${show(value)}`);
  }
  return value;
}

/** `true` or `false` (never a truthy string: `"false"` is refused). */
export function boolean(value: unknown, path: string, o: { fallback?: boolean } = {}): boolean {
  if (value === undefined && o.fallback !== undefined) return o.fallback;
  if (typeof value !== "boolean")
    throw new ParamsFieldError(path, `expected true or false, found ${show(value)}`);
  return value;
}

/** One of `allowed`, exactly (case counts); a near miss gets "did you mean …?". */
export function oneOf<const T extends string | number>(
  value: unknown,
  path: string,
  allowed: readonly T[],
  o: { fallback?: T } = {},
): T {
  if (value === undefined && o.fallback !== undefined) return o.fallback;
  if (allowed.includes(value as T)) return value as T;
  const near = typeof value === "string" ? closest(value, allowed.map(String)) : undefined;
  throw new ParamsFieldError(
    path,
    `expected one of ${allowed.map((a) => show(a)).join(", ")}, found ${show(value)}${near ? `; did you mean ${show(near)}?` : ""}`,
  );
}

/** An array of strings without NUL bytes; `nonEmpty` refuses `[]`. Each bad item is named by its index. */
export function stringArray(value: unknown, path: string, o: { nonEmpty?: boolean } = {}): string[] {
  if (!Array.isArray(value) || (o.nonEmpty && !value.length)) {
    throw new ParamsFieldError(
      path,
      `expected ${o.nonEmpty ? "a non-empty " : "an "}array of strings, found ${show(value)}`,
    );
  }
  return value.map((item, i) => string(item, `${path}.${i}`));
}

/**
 * A command as an argv array (`["systemctl", "reload", "nginx"]`), never a shell string: at least the
 * program, which is not empty; no word holds a NUL byte. Each word reaches the program as it is.
 */
export function argv(value: unknown, path: string): string[] {
  if (!Array.isArray(value) || !value.length) {
    throw new ParamsFieldError(
      path,
      `expected a non-empty argv array, e.g. ["systemctl", "reload", "nginx"] (not a shell string), found ${show(value)}`,
    );
  }
  const words = stringArray(value, path);
  if (!words[0]) throw new ParamsFieldError(`${path}.0`, 'expected a program name, found ""');
  return words;
}

/**
 * An object of string values (`{ NAME: "value" }`); `keys` narrows the names (`keyHint` says what it
 * means). A value may be a secret: a wrong one is shown by its type only, never quoted.
 */
export function stringRecord(
  value: unknown,
  path: string,
  o: { keys?: RegExp; keyHint?: string } = {},
): Record<string, string> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ParamsFieldError(path, `expected an object of name: value strings, found ${show(value)}`);
  }
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    const at = `${path}.${key}`;
    if (o.keys && !o.keys.test(key)) {
      throw new ParamsFieldError(
        at,
        `expected ${o.keyHint ?? `a name matching ${o.keys}`}, found ${show(key)}`,
      );
    }
    if (typeof v !== "string") {
      throw new ParamsFieldError(at, `expected a string, found ${v === null ? "null" : `a ${typeof v}`}`);
    }
    if (v.includes("\0")) throw new ParamsFieldError(at, "a value cannot contain a NUL byte");
    out[key] = v;
  }
  return out;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ENV_NAME_HINT = "an environment variable name (letters, digits and _, not starting with a digit)";

/** An environment variable's name: letters, digits and `_`, not starting with a digit. */
export function envName(value: unknown, path: string): string {
  return nonEmptyString(value, path, { pattern: ENV_NAME, hint: ENV_NAME_HINT });
}

/** Environment variables: `stringRecord` whose names are letters, digits and `_`, not starting with a digit. */
export function env(value: unknown, path: string): Record<string, string> {
  return stringRecord(value, path, { keys: ENV_NAME, keyHint: ENV_NAME_HINT });
}

/** The check of a field that may be `null` (a state's "none"): null passes, anything else goes to `check`. */
export function nullable<T>(check: (value: unknown, path: string) => T) {
  return (value: unknown, path: string): T | null => (value === null ? null : check(value, path));
}

/** The check of an array whose items each pass `check`; a bad item is named by its index (`mounts.2.target`). */
export function arrayOf<T>(check: (value: unknown, path: string) => T, o: { nonEmpty?: boolean } = {}) {
  return (value: unknown, path: string): T[] => {
    if (!Array.isArray(value) || (o.nonEmpty && !value.length)) {
      throw new ParamsFieldError(
        path,
        `expected ${o.nonEmpty ? "a non-empty array" : "an array"}, found ${show(value)}`,
      );
    }
    return value.map((item, i) => check(item, `${path ? `${path}.` : ""}${i}`));
  };
}

/**
 * The check of a nested object (`limits: optional(object({ maxBytes: … }))`): its fields are checked by
 * `checkFields` at this path, so `limits.maxBytes` is named in full and its issues join the parent's.
 */
export function object<T extends object>(checks: FieldChecks<T>) {
  return (value: unknown, path: string) => checkFields<T>(value, checks, path);
}

function range(what: string, min: number, max: number): string {
  const lo = min > Number.MIN_SAFE_INTEGER;
  const hi = max < Number.MAX_SAFE_INTEGER;
  if (lo && hi) return `${what} from ${min} to ${max}`;
  if (lo) return `${what} of at least ${min}`;
  if (hi) return `${what} of at most ${max}`;
  return what;
}
