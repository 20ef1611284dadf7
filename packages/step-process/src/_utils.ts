// This package's own params checks (the kit, `@atomkit/core/kit`, has no argv, environment, signal or
// regular-expression check yet), and how it shows command lines and masks env values in messages.
import { integer, ParamsFieldError, Redactor, show } from "@atomkit/core/kit";

/** Throws the field's error: `message` says what was expected and what was found. */
export function invalid(path: string, message: string): never {
  throw new ParamsFieldError(path, message);
}

/** `expected <what>, found <value>`; `found` overrides how the value is shown (a secret's type only). */
function expected(path: string, what: string, value: unknown, found = show(value)): never {
  invalid(path, `expected ${what}, found ${found}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * A working directory: absolute, kept as written. Unlike the kit's `absolutePath` it allows `/` and is
 * not normalised: `cwd` is part of the recorded launch, which `same()` compares as written.
 */
export function dirPath(value: unknown, path: string): string {
  if (typeof value !== "string" || !value.startsWith("/"))
    expected(path, "an absolute path on the host", value);
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

/** Whole milliseconds from `min` to a day; `fallback` when absent. */
export function msOf(value: unknown, path: string, fallback: number, min = 0): number {
  return integer(value, path, { min, max: 86_400_000, fallback });
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

/**
 * Masks the given values in text this package writes into errors and logs (log tails, command lines).
 * The engine masks declared secrets too; this also covers env values the caller did not mark.
 */
export function masker(values: Iterable<string>): (text: string) => string {
  const redactor = new Redactor();
  // every env value is masked, not only secrets: a short one (`80`, `1`) would blank out unrelated words
  redactor.addValues([...values].filter((v) => v.length >= 4));
  return (text) => redactor.text(text);
}

/** `node /srv/app/server.js --port 8080`, shortened for titles and messages. */
export function showArgv(argv: readonly string[], max = 120): string {
  const text = argv.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : JSON.stringify(w))).join(" ");
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
