// Re-validation of states read back from a trail (a kind's `state` member). A trail is evidence, never
// a command: a state that drives an undo (a backup's name, a trash location, directories to remove)
// must have exactly the shape its kind observes, or the undo is refused before it touches anything.
import { posix } from "node:path";
import { ParamsFieldError, show } from "@atomkit/core/kit";

type Check = (value: unknown, field: string) => unknown;

/**
 * A state `{ type, ...fields }`: `type` one of `shapes`' keys, then exactly that shape's fields (none
 * missing, none extra), each passed through its check. Returns a fresh plain object.
 */
export function typedState<S>(input: unknown, shapes: Record<string, Record<string, Check>>): S {
  const o = plainObject(input, "");
  const type = o.type;
  if (typeof type !== "string" || !Object.hasOwn(shapes, type)) {
    throw new ParamsFieldError(
      "type",
      `expected one of ${Object.keys(shapes)
        .map((t) => `"${t}"`)
        .join(", ")}, found ${show(type)}`,
    );
  }
  return { type, ...fields(o, shapes[type]!, "", ["type"]) } as S;
}

/** Exactly the fields of `shape` (none missing, none extra), each through its check. */
export function fields(
  o: Record<string, unknown>,
  shape: Record<string, Check>,
  at: string,
  also: readonly string[] = [],
): Record<string, unknown> {
  for (const key of Object.keys(o)) {
    if (!Object.hasOwn(shape, key) && !also.includes(key)) {
      throw new ParamsFieldError(join(at, key), `unexpected key "${key}" in a recorded state`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, check] of Object.entries(shape)) {
    if (!Object.hasOwn(o, key)) throw new ParamsFieldError(join(at, key), `missing from the recorded state`);
    out[key] = check(o[key], join(at, key));
  }
  return out;
}

export function plainObject(value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ParamsFieldError(field, `expected an object, found ${show(value)}`);
  }
  return value as Record<string, unknown>;
}

export const sha256: Check = (v, field) => {
  if (typeof v !== "string" || !/^[0-9a-f]{64}$/.test(v)) {
    throw new ParamsFieldError(field, `expected 64 lowercase hex digits (a sha256), found ${show(v)}`);
  }
  return v;
};

export const mode: Check = (v, field) => {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0o7777) {
    throw new ParamsFieldError(field, `expected permission bits from 0 to 0o7777, found ${show(v)}`);
  }
  return v;
};

export const size: Check = (v, field) => {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new ParamsFieldError(field, `expected a size in bytes, found ${show(v)}`);
  }
  return v;
};

/** An absolute, normalised path (as observe builds them): no `.`/`..`, no trailing "/", no NUL. */
export const absPath: Check = (v, field) => {
  if (
    typeof v !== "string" ||
    !v.startsWith("/") ||
    v === "/" ||
    v.includes("\0") ||
    posix.normalize(v) !== v ||
    v.endsWith("/")
  ) {
    throw new ParamsFieldError(field, `expected an absolute, normalised path, found ${show(v)}`);
  }
  return v;
};

/** A symlink's target as readlink returns it: any non-empty string without NUL. */
export const linkTarget: Check = (v, field) => {
  if (typeof v !== "string" || v === "" || v.includes("\0")) {
    throw new ParamsFieldError(field, `expected a symlink target, found ${show(v)}`);
  }
  return v;
};

/** One name inside a directory: never "", ".", "..", nor anything with "/" or NUL. */
export const segment: Check = (v, field) => {
  if (typeof v !== "string" || v === "" || v === "." || v === ".." || /[/\0]/.test(v)) {
    throw new ParamsFieldError(field, `expected a single file name, found ${show(v)}`);
  }
  return v;
};

export const orNull =
  (check: Check): Check =>
  (v, field) =>
    v === null ? null : check(v, field);

export const nothing = {} as const;

const join = (at: string, key: string) => (at ? `${at}.${key}` : key);
