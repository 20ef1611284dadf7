// Params validation that reports every invalid field at once. A deploy file with three mistakes should
// take one edit, not three runs: each field has its own check, `checkFields` runs them all (a nested
// object runs its own `checkFields`, whose issues join its parent's), then throws one ParamsFieldError
// listing every issue, unknown keys included, with the key meant when one is close.
import { messageOf } from "./_utils";

/** One invalid field: its dotted path (`health.http.port`; empty for the params object) and what is wrong. */
export interface FieldIssue {
  path: string;
  message: string;
}

/**
 * Thrown by params and state validators: `path` names the field, and the engine reports each of
 * `issues` with its step and field. `new ParamsFieldError(path, message)` is one issue;
 * `new ParamsFieldError(issues)` several, with a short first line and one line per issue.
 */
export class ParamsFieldError extends Error {
  /** The first issue's path. */
  readonly path: string;
  /** Every invalid field, at least one. */
  readonly issues: readonly FieldIssue[];
  constructor(path: string, message: string);
  constructor(issues: readonly FieldIssue[]);
  constructor(pathOrIssues: string | readonly FieldIssue[], message = "") {
    const issues = typeof pathOrIssues === "string" ? [{ path: pathOrIssues, message }] : [...pathOrIssues];
    if (!issues.length) issues.push({ path: "", message: "invalid params" });
    super(
      issues.length === 1
        ? issues[0]!.message
        : `${issues.length} invalid fields:\n${issues.map((i) => `  - ${i.path || "(params)"}: ${i.message}`).join("\n")}`,
    );
    Object.defineProperty(this, "name", { value: "ParamsFieldError", enumerable: false, configurable: true });
    this.path = issues[0]!.path;
    this.issues = issues;
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

/** One check per field: it gets the value (undefined when absent) and the field's path, and returns the value to keep. */
export type FieldChecks<T> = { [K in keyof T]-?: (value: unknown, path: string) => T[K] };

/** What `checkFields` returns: a field whose check may give undefined is optional (it is left out). */
export type CheckedFields<T> = {
  [K in keyof T as undefined extends T[K] ? never : K]: T[K];
} & { [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined> };

/**
 * Checks a params object (or a nested object of it, at path `at`) field by field and returns the
 * checked values (a field whose check returned undefined is left out). Collects, rather than stops at,
 * the first problem: every failing check and every unknown key (`did you mean "http"?`) end up in one
 * ParamsFieldError. A check throws ParamsFieldError (core's `absolutePath`, `integer` do), or anything
 * with a `path`; an error without one is reported under the field. Rules across fields (exactly one of
 * two) belong after the call: they run once every field is valid.
 */
export function checkFields<T extends object>(
  input: unknown,
  checks: FieldChecks<T>,
  at = "",
): CheckedFields<T> {
  if (!isPlainObject(input)) {
    throw new ParamsFieldError(at, `expected an object${at ? "" : " of params"}, found ${show(input)}`);
  }
  const known = Object.keys(checks);
  // a typo'd key and the missing key it was meant as are one mistake: report the typo only
  const { issues: unknown, meant } = unknownKeys(input, known, at);
  const issues: FieldIssue[] = [];
  const out: Record<string, unknown> = {};
  for (const key of known) {
    const path = join(at, key);
    const given = Object.hasOwn(input, key) ? input[key] : undefined;
    try {
      const value = (checks as Record<string, (v: unknown, p: string) => unknown>)[key]!(given, path);
      if (value !== undefined) out[key] = value;
    } catch (error) {
      if (given === undefined && meant.has(key)) continue;
      issues.push(...fieldIssues(error, path));
    }
  }
  issues.push(...unknown);
  if (issues.length) throw new ParamsFieldError(issues);
  return out as CheckedFields<T>;
}

/** The check of an optional field: undefined passes (the field is left out), anything else goes to `check`. */
export function optional<T>(
  check: (value: unknown, path: string) => T,
): (value: unknown, path: string) => T | undefined {
  return (value, path) => (value === undefined ? undefined : check(value, path));
}

/**
 * The params object itself, refusing keys not in `allowed` (a typo must not be silently ignored): every
 * unknown key in one error, each with the key meant when one is close. `checkFields` does this too, and
 * also checks the fields: prefer it.
 */
export function paramsObject(input: unknown, allowed: readonly string[], at = ""): Record<string, unknown> {
  if (!isPlainObject(input)) {
    throw new ParamsFieldError(at, `expected an object${at ? "" : " of params"}, found ${show(input)}`);
  }
  const { issues } = unknownKeys(input, allowed, at);
  if (issues.length) throw new ParamsFieldError(issues);
  return input;
}

/**
 * The issues an error stands for: a ParamsFieldError's (or a Standard Schema / zod error's) list, else
 * one issue under the error's own `path`, or `path` when it names none.
 */
export function fieldIssues(error: unknown, path = ""): FieldIssue[] {
  const e = error as { issues?: unknown; path?: unknown } | null;
  if (Array.isArray(e?.issues) && e.issues.length) {
    const list = e.issues.map((i: { path?: unknown; message?: unknown }) => ({
      path: pathText(i?.path),
      message: typeof i?.message === "string" && i.message ? i.message : "invalid",
    }));
    if (list.every((i) => i.path !== undefined)) {
      return list.map((i) => ({ path: i.path || path, message: i.message }));
    }
  }
  const own = typeof e?.path === "string" ? e.path : "";
  return [{ path: own || path, message: messageOf(error) }];
}

/**
 * The candidate closest to a mistyped word (case aside: an edit distance of at most 2, or one is a
 * prefix of the other), if any: for "did you mean …?".
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const o = c.toLowerCase();
    const d = o === w ? 0 : o.startsWith(w) || w.startsWith(o) ? 1 : distance(w, o);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

// --- Helpers ---

/** An issue per key not in `known` (a key given as undefined gives nothing, so it passes); `meant` the keys suggested. */
function unknownKeys(
  input: Record<string, unknown>,
  known: readonly string[],
  at: string,
): { issues: FieldIssue[]; meant: Set<string> } {
  const issues: FieldIssue[] = [];
  const meant = new Set<string>();
  for (const key of Object.keys(input)) {
    if (known.includes(key) || input[key] === undefined) continue;
    const guess = closest(key, known);
    if (guess !== undefined) meant.add(guess);
    issues.push({
      path: join(at, key),
      message: `unknown param ${show(key)}${guess ? `; did you mean ${show(guess)}?` : ""} (known: ${known.join(", ")})`,
    });
  }
  return { issues, meant };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A path as a string: dotted already, or a Standard Schema path (keys, or `{ key }` segments). */
function pathText(path: unknown): string | undefined {
  if (path === undefined) return "";
  if (typeof path === "string") return path;
  if (!Array.isArray(path)) return undefined;
  return path
    .map((p) => String(typeof p === "object" && p !== null ? (p as { key: unknown }).key : p))
    .join(".");
}

const join = (at: string, key: string) => (at ? `${at}.${key}` : key);

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row[j]!;
      row[j] = next;
    }
  }
  return row[b.length]!;
}
