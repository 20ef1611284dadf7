// step-process's own params checks, built from the kit's (`@atomkit/core/kit`): a signal name and a
// regular expression have no meaning outside this package. Everything else is the kit's.
import { absolutePath, durationMs, nonEmptyString, oneOf, ParamsFieldError, show } from "@atomkit/core/kit";

/**
 * A working directory: the kit's `absolutePath`, `/` allowed, kept as written: `cwd` is part of the
 * recorded launch, which `same()` compares as written.
 */
export function cwdOf(value: unknown, path: string): string {
  return absolutePath(value, path, { allowRoot: true, asWritten: true });
}

/** Whole milliseconds up to a day; `fallback` when absent. */
export function msOf(value: unknown, path: string, fallback: number): number {
  return durationMs(value, path, { max: 86_400_000, fallback });
}

const SIGNALS = ["TERM", "INT", "QUIT", "HUP", "KILL", "USR1", "USR2", "WINCH", "ABRT", "ALRM"] as const;

/** `SIGTERM`, `TERM` or `term` → `TERM` (the form `kill -s` takes everywhere). */
export function signalOf(value: unknown, path: string, fallback: string): string {
  if (value === undefined) return fallback;
  const name = typeof value === "string" ? value.toUpperCase().replace(/^SIG/, "") : value;
  try {
    return oneOf(name, path, SIGNALS);
  } catch {
    // the message shows what was given, not its upper-cased form
    throw new ParamsFieldError(
      path,
      `expected a signal name, one of ${SIGNALS.join(", ")}, found ${show(value)}`,
    );
  }
}

/** A regular expression source: not empty, and compiles. */
export function regexOf(value: unknown, path: string): string {
  const source = nonEmptyString(value, path, { hint: "a regular expression source" });
  try {
    new RegExp(source);
  } catch (error) {
    throw new ParamsFieldError(
      path,
      `expected a valid regular expression, found ${show(source)}: ${(error as Error).message}`,
    );
  }
  return source;
}
